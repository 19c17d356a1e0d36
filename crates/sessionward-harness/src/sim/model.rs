//! The harness's own expectation model: what every session is, in plain fields, and what the
//! engine must answer. Written from the documented semantics, independently of the engine: it
//! reads the configured values (timeouts, ranges, flags) from the settings and profiles, but
//! decides with its own logic which range holds an address, what counts as the same address
//! and which level a login method grants.

use std::collections::BTreeSet;
use std::net::IpAddr;

use sessionward_core::{
    CapAction, DenyReason, EndReason, ExpiryKind, Handle, IpNet, LoginMethod, OrgSettings, Profile,
    Refusal, Requirement, SecurityLevel, SessionInfo, SessionType, Token,
};

/// The level a login (or step-up) with `method` grants: the documented default mapping of
/// `OrgSettings` (password, SSO and delegated STANDARD; MFA and passkey HIGH_ASSURANCE; client
/// credentials LOW). Scenarios cannot change it, so the model keeps its own copy rather than
/// asking the engine's settings.
pub(crate) fn level_of(method: LoginMethod) -> SecurityLevel {
    match method {
        LoginMethod::Password | LoginMethod::Sso | LoginMethod::Delegated => {
            SecurityLevel::Standard
        }
        LoginMethod::Mfa | LoginMethod::Passkey => SecurityLevel::HighAssurance,
        LoginMethod::ClientCredentials => SecurityLevel::Low,
    }
}

/// Index of a session in [`Model::sessions`].
pub(crate) type SessionId = u32;

/// One session as the model sees it.
pub(crate) struct ModelSession {
    pub(crate) token: Token,
    pub(crate) handle: Handle,
    pub(crate) user: u32,
    pub(crate) profile: usize,
    pub(crate) last: u64,
    pub(crate) idle: u64,
    pub(crate) absolute: u64,
    pub(crate) ip_locked: bool,
    pub(crate) origin: IpAddr,
    pub(crate) browser_bound: bool,
    pub(crate) level: SecurityLevel,
    pub(crate) ended: Option<(EndReason, u64)>,
}

impl ModelSession {
    pub(crate) fn valid_until(&self) -> u64 {
        (self.last + self.idle).min(self.absolute)
    }

    pub(crate) fn live_at(&self, now: u64) -> bool {
        self.ended.is_none() && now < self.valid_until()
    }

    /// When the tombstone may be dropped (then the token is simply unknown), if dead.
    fn removable_at(&self, retention: u64) -> u64 {
        match self.ended {
            Some((_, at)) => at + retention,
            None => self.valid_until() + retention,
        }
    }

    /// The refusal a dead session gets, or `None` if live.
    fn tombstone(&self, now: u64) -> Option<Refusal> {
        if let Some((reason, _)) = self.ended {
            return Some(Refusal::Ended(reason));
        }
        let idle_deadline = self.last + self.idle;
        if now >= idle_deadline.min(self.absolute) {
            let kind = if self.absolute <= idle_deadline {
                ExpiryKind::Absolute
            } else {
                ExpiryKind::Idle
            };
            return Some(Refusal::Expired(kind));
        }
        None
    }
}

/// An outcome of a validation-like call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    Ok {
        valid_until: u64,
        level: SecurityLevel,
    },
    Refused(Refusal),
}

impl Outcome {
    pub(crate) fn of(result: &Result<SessionInfo, Refusal>) -> Self {
        match result {
            Ok(info) => Self::Ok {
                valid_until: info.valid_until,
                level: info.level,
            },
            Err(refusal) => Self::Refused(*refusal),
        }
    }

    pub(crate) fn describe(&self, day_start: u64) -> String {
        match self {
            Self::Ok { valid_until, level } => format!(
                "ok (valid until t+{}s, {level})",
                valid_until.saturating_sub(day_start)
            ),
            Self::Refused(refusal) => refusal.code().to_owned(),
        }
    }
}

/// What the model expects: one outcome, or (past a tombstone's retention, when the engine may
/// or may not have swept it) either of two.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Expect {
    pub(crate) outcome: Outcome,
    pub(crate) or_else: Option<Outcome>,
}

impl Expect {
    fn exactly(outcome: Outcome) -> Self {
        Self {
            outcome,
            or_else: None,
        }
    }

    pub(crate) fn admits(&self, observed: &Outcome) -> bool {
        self.outcome == *observed || self.or_else.as_ref() == Some(observed)
    }

    pub(crate) fn describe(&self, day_start: u64) -> String {
        match &self.or_else {
            None => self.outcome.describe(day_start),
            Some(other) => format!(
                "{} or {}",
                self.outcome.describe(day_start),
                other.describe(day_start)
            ),
        }
    }
}

/// What a login (or a challenge completion) is expected to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum LoginExpect {
    Issued(Snapshot),
    Challenge {
        expires_at: u64,
    },
    StepUp {
        required: SecurityLevel,
        offered: SecurityLevel,
    },
    Denied(DenyReason),
}

/// What a new session snapshots, and which older sessions of the user the cap ends.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Snapshot {
    pub(crate) idle: u64,
    pub(crate) absolute: u64,
    pub(crate) ip_locked: bool,
    pub(crate) browser_bound: bool,
    pub(crate) level: SecurityLevel,
    pub(crate) origin: IpAddr,
    pub(crate) session_type: SessionType,
    pub(crate) cap_ends: Vec<SessionId>,
}

impl Snapshot {
    /// The facts as text, for comparison and for disagreement reports.
    pub(crate) fn describe(&self, day_start: u64) -> String {
        format!(
            "issued ({} {}, idle {}s, ends by t+{}s, {}, {}, from {})",
            self.session_type,
            self.level,
            self.idle,
            self.absolute.saturating_sub(day_start),
            if self.ip_locked {
                "ip-locked"
            } else {
                "not ip-locked"
            },
            if self.browser_bound {
                "browser-bound"
            } else {
                "not browser-bound"
            },
            self.origin
        )
    }

    /// The facts of an issued session as the engine reported them; `None` if its times do not
    /// add up (created, last activity and valid-until must all follow from the snapshot).
    pub(crate) fn of_info(info: &SessionInfo, now: u64) -> Option<Self> {
        let consistent = info.created == now
            && info.last_activity == now
            && info.valid_until
                == (now + u64::from(info.idle_timeout_secs)).min(info.absolute_deadline);
        consistent.then(|| Self {
            idle: u64::from(info.idle_timeout_secs),
            absolute: info.absolute_deadline,
            ip_locked: info.ip_locked,
            browser_bound: info.browser_bound,
            level: info.level,
            origin: info.source_ip,
            session_type: info.session_type,
            cap_ends: Vec::new(),
        })
    }
}

/// An OAuth client of the org (a named credential) as the model knows it.
pub(crate) struct ModelClient {
    /// The integration user the client's grants log in.
    pub(crate) user: u32,
    /// The scopes it was registered with.
    pub(crate) scopes: BTreeSet<String>,
}

/// What a client-credentials grant is expected to give.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GrantExpect {
    /// An OAUTH2 session of the client's user, with these scopes, sorted.
    Granted {
        snapshot: Snapshot,
        scopes: Vec<String>,
    },
    /// Unknown client or wrong secret.
    InvalidClient,
    /// The first requested scope the client was not registered with.
    InvalidScope(String),
    /// The login of the client's user gave no session; `challenged` if the engine issued a
    /// challenge on the way (a machine cannot answer it).
    Unauthorized {
        reason: DenyReason,
        challenged: bool,
    },
}

impl GrantExpect {
    /// The outcome as text, for comparison and for disagreement reports (never a secret).
    pub(crate) fn describe(&self, now: u64, day_start: u64) -> String {
        match self {
            Self::Granted { snapshot, scopes } => Self::describe_granted(
                scopes,
                (now + snapshot.idle)
                    .min(snapshot.absolute)
                    .saturating_sub(now),
                snapshot,
                day_start,
            ),
            Self::InvalidClient => "invalid_client".to_owned(),
            Self::InvalidScope(scope) => format!("invalid_scope ({scope})"),
            Self::Unauthorized { reason, .. } => format!("unauthorized_client ({reason})"),
        }
    }

    /// A grant's facts as text.
    pub(crate) fn describe_granted(
        scopes: &[String],
        expires_in: u64,
        snapshot: &Snapshot,
        day_start: u64,
    ) -> String {
        format!(
            "granted [{}], expires in {expires_in}s, {}",
            scopes.join(" "),
            snapshot.describe(day_start)
        )
    }
}

/// The model of the whole org.
pub(crate) struct Model {
    pub(crate) settings: OrgSettings,
    pub(crate) profiles: Vec<Profile>,
    pub(crate) sessions: Vec<ModelSession>,
    pub(crate) user_profile: Vec<usize>,
    pub(crate) user_sessions: Vec<Vec<SessionId>>,
    pub(crate) remembered_device: Vec<bool>,
    pub(crate) password_reset_at: Vec<Option<u64>>,
    pub(crate) retention: u64,
    /// The documented address rule: an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`) is its
    /// IPv4 address, and a mapped range (`::ffff:10.0.0.0/104`) its IPv4 range. `false` only
    /// to plant a false belief in tests.
    pub(crate) mapped_is_ipv4: bool,
    /// The org's OAuth clients, one per named credential, in the scenario's order.
    pub(crate) clients: Vec<ModelClient>,
}

impl Model {
    /// The address as the engine must treat it: IPv4-mapped IPv6 as IPv4.
    pub(crate) fn canonical(&self, ip: IpAddr) -> IpAddr {
        match ip {
            IpAddr::V6(v6) if self.mapped_is_ipv4 => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        }
    }

    /// The range as the engine must treat it: an IPv4-mapped range of prefix 96 or more is the
    /// IPv4 range of 96 bits less; anything else stays as it is.
    pub(crate) fn canonical_net(&self, net: IpNet) -> IpNet {
        if let (IpNet::V6(v6), true) = (net, self.mapped_is_ipv4) {
            if let (Some(v4), Some(prefix)) =
                (v6.addr().to_ipv4_mapped(), v6.prefix_len().checked_sub(96))
            {
                if let Ok(mapped) = IpNet::new(IpAddr::V4(v4), prefix) {
                    return mapped.trunc();
                }
            }
        }
        net.trunc()
    }

    /// Whether `ip` lies in `net`, both read by the address rule.
    pub(crate) fn net_contains(&self, net: IpNet, ip: IpAddr) -> bool {
        self.canonical_net(net).contains(&self.canonical(ip))
    }

    /// Whether `ip` lies in any of `ranges`; `anywhere_if_empty` for login ranges, where an
    /// empty list means anywhere.
    fn in_ranges(&self, ranges: &[IpNet], ip: IpAddr, anywhere_if_empty: bool) -> bool {
        (anywhere_if_empty && ranges.is_empty())
            || ranges.iter().any(|&net| self.net_contains(net, ip))
    }

    /// Whether the profile's login ranges admit `ip` (none configured: anywhere).
    fn login_allowed(&self, profile: usize, ip: IpAddr) -> bool {
        self.in_ranges(self.profiles[profile].login_ranges(), ip, true)
    }

    /// The expected answer of `validate` (or of `step_up` with `raise_to`).
    pub(crate) fn expect_validate(
        &self,
        id: SessionId,
        now: u64,
        ip: IpAddr,
        requirement: Requirement<'_>,
        raise_to: Option<SecurityLevel>,
    ) -> Expect {
        let s = &self.sessions[id as usize];
        if let Some(refusal) = s.tombstone(now) {
            return self.dead(s, now, refusal);
        }
        if s.ip_locked && s.origin != self.canonical(ip) {
            return Expect::exactly(Outcome::Refused(Refusal::IpMismatch));
        }
        if self.settings.enforce_login_ranges_every_request() && !self.login_allowed(s.profile, ip)
        {
            return Expect::exactly(Outcome::Refused(Refusal::IpNotAllowed));
        }
        let required = match requirement {
            Requirement::Any => None,
            Requirement::Level(level) => Some(level),
            Requirement::Operation(op) => self
                .settings
                .high_assurance_operations()
                .contains(op)
                .then_some(SecurityLevel::HighAssurance),
        };
        if let Some(required) = required.filter(|&r| s.level < r) {
            return Expect::exactly(Outcome::Refused(Refusal::StepUpRequired {
                required,
                current: s.level,
            }));
        }
        let level = raise_to.map_or(s.level, |raised| s.level.max(raised));
        Expect::exactly(Outcome::Ok {
            valid_until: (now.max(s.last) + s.idle).min(s.absolute),
            level,
        })
    }

    fn dead(&self, s: &ModelSession, now: u64, refusal: Refusal) -> Expect {
        let outcome = Outcome::Refused(refusal);
        if now >= s.removable_at(self.retention) {
            Expect {
                outcome,
                or_else: Some(Outcome::Refused(Refusal::Unknown)),
            }
        } else {
            Expect::exactly(outcome)
        }
    }

    /// The expected answer of `logout`/`browser_closed`: `Ok(level)` means the session is live
    /// (no IP or level check applies to ending one's own session).
    pub(crate) fn expect_end_token(&self, id: SessionId, now: u64) -> Expect {
        let s = &self.sessions[id as usize];
        match s.tombstone(now) {
            Some(refusal) => self.dead(s, now, refusal),
            None => Expect::exactly(Outcome::Ok {
                valid_until: s.valid_until(),
                level: s.level,
            }),
        }
    }

    /// Applies a successful validation (or step-up) at `now`.
    pub(crate) fn touch(&mut self, id: SessionId, now: u64, raise_to: Option<SecurityLevel>) {
        let s = &mut self.sessions[id as usize];
        s.last = s.last.max(now);
        if let Some(level) = raise_to {
            s.level = s.level.max(level);
        }
    }

    /// Ends a session if it is live at `now`; whether it ended.
    pub(crate) fn end(&mut self, id: SessionId, reason: EndReason, now: u64) -> bool {
        let s = &mut self.sessions[id as usize];
        if s.live_at(now) {
            s.ended = Some((reason, now));
            true
        } else {
            false
        }
    }

    /// The expected outcome of a login.
    pub(crate) fn expect_login(
        &self,
        user: u32,
        ip: IpAddr,
        method: LoginMethod,
        session_type: SessionType,
        device: bool,
        now: u64,
    ) -> LoginExpect {
        let profile_index = self.user_profile[user as usize];
        let profile = &self.profiles[profile_index];
        if !self.login_allowed(profile_index, ip) {
            return LoginExpect::Denied(DenyReason::IpNotAllowed);
        }
        let level = level_of(method);
        if session_type == SessionType::Ui && level < profile.required_level() {
            return LoginExpect::StepUp {
                required: profile.required_level(),
                offered: level,
            };
        }
        let trusted = self.in_ranges(self.settings.trusted_ranges(), ip, false);
        if level == SecurityLevel::Standard
            && !trusted
            && !(device && self.remembered_device[user as usize])
        {
            return LoginExpect::Challenge {
                expires_at: now + sessionward_core::CHALLENGE_LIFETIME.as_secs(),
            };
        }
        self.expect_issue(user, ip, method, session_type, now)
    }

    /// The expected outcome of completing a challenge issued for this login.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn expect_complete(
        &self,
        user: u32,
        ip: IpAddr,
        method: LoginMethod,
        session_type: SessionType,
        expires_at: u64,
        now: u64,
    ) -> LoginExpect {
        if now >= expires_at {
            return LoginExpect::Denied(DenyReason::ChallengeInvalid);
        }
        if !self.login_allowed(self.user_profile[user as usize], ip) {
            return LoginExpect::Denied(DenyReason::IpNotAllowed);
        }
        self.expect_issue(user, ip, method, session_type, now)
    }

    fn expect_issue(
        &self,
        user: u32,
        ip: IpAddr,
        method: LoginMethod,
        session_type: SessionType,
        now: u64,
    ) -> LoginExpect {
        let profile = &self.profiles[self.user_profile[user as usize]];
        let idle = profile
            .session_timeout()
            .unwrap_or(self.settings.inactivity_timeout())
            .as_secs();
        let max_length = profile
            .max_session_length()
            .unwrap_or(self.settings.max_session_length())
            .as_secs();
        let mut cap_ends = Vec::new();
        if let Some(cap) = profile.session_cap() {
            let live: Vec<SessionId> = self.user_sessions[user as usize]
                .iter()
                .copied()
                .filter(|&id| self.sessions[id as usize].live_at(now))
                .collect();
            let limit = cap.max_sessions as usize;
            if live.len() >= limit {
                match cap.action {
                    CapAction::RefuseNew => return LoginExpect::Denied(DenyReason::SessionCap),
                    CapAction::EndOldest => cap_ends = live[..live.len() + 1 - limit].to_vec(),
                }
            }
        }
        LoginExpect::Issued(Snapshot {
            idle,
            absolute: now + max_length,
            ip_locked: self.settings.lock_sessions_to_ip(),
            browser_bound: self.settings.force_relogin_on_browser_close()
                && session_type == SessionType::Ui,
            level: level_of(method),
            // Sessions remember where they came from in the canonical form.
            origin: self.canonical(ip),
            session_type,
            cap_ends,
        })
    }

    /// The expected outcome of a client-credentials grant by `client`, presenting its
    /// registered secret or not, asking for `requested` scopes (`None`: all it has) from `ip`:
    /// the client and secret first, then the scopes, then a `client_credentials` login of the
    /// client's user as an OAUTH2 session.
    pub(crate) fn expect_grant(
        &self,
        client: usize,
        right_secret: bool,
        requested: Option<&[String]>,
        ip: IpAddr,
        now: u64,
    ) -> GrantExpect {
        let client = &self.clients[client];
        if !right_secret {
            return GrantExpect::InvalidClient;
        }
        let scopes: Vec<String> = match requested {
            None => client.scopes.iter().cloned().collect(),
            Some(requested) => {
                if let Some(missing) = requested.iter().find(|s| !client.scopes.contains(*s)) {
                    return GrantExpect::InvalidScope(missing.clone());
                }
                let granted: BTreeSet<&String> = requested.iter().collect();
                granted.into_iter().cloned().collect()
            }
        };
        let login = self.expect_login(
            client.user,
            ip,
            LoginMethod::ClientCredentials,
            SessionType::OAuth2,
            false,
            now,
        );
        match login {
            LoginExpect::Issued(snapshot) => GrantExpect::Granted { snapshot, scopes },
            LoginExpect::Denied(reason) => GrantExpect::Unauthorized {
                reason,
                challenged: false,
            },
            // Documented: a machine can answer neither a challenge nor a step-up.
            LoginExpect::Challenge { .. } => GrantExpect::Unauthorized {
                reason: DenyReason::ChallengeInvalid,
                challenged: true,
            },
            LoginExpect::StepUp { .. } => GrantExpect::Unauthorized {
                reason: DenyReason::ChallengeInvalid,
                challenged: false,
            },
        }
    }

    /// Records an issued session: with the model's own snapshot when it expected one, else
    /// with the facts the engine reported (after a disagreement was recorded).
    pub(crate) fn add_session(
        &mut self,
        user: u32,
        token: Token,
        info: &SessionInfo,
        expected: Option<&Snapshot>,
        now: u64,
    ) -> SessionId {
        let id = self.sessions.len() as SessionId;
        let engine = Snapshot {
            idle: u64::from(info.idle_timeout_secs),
            absolute: info.absolute_deadline,
            ip_locked: info.ip_locked,
            browser_bound: info.browser_bound,
            level: info.level,
            origin: info.source_ip,
            session_type: info.session_type,
            cap_ends: Vec::new(),
        };
        let snapshot = expected.unwrap_or(&engine);
        self.sessions.push(ModelSession {
            token,
            handle: info.handle,
            user,
            profile: self.user_profile[user as usize],
            last: now,
            idle: snapshot.idle,
            absolute: snapshot.absolute,
            ip_locked: snapshot.ip_locked,
            origin: snapshot.origin,
            browser_bound: snapshot.browser_bound,
            level: snapshot.level,
            ended: None,
        });
        self.user_sessions[user as usize].push(id);
        id
    }

    /// Whether a replay of this session's token at `now` has one certain outcome (its
    /// tombstone, if dead, is still within the retention).
    pub(crate) fn certain_at(&self, id: SessionId, now: u64) -> bool {
        let s = &self.sessions[id as usize];
        s.live_at(now) || now < s.removable_at(self.retention)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use sessionward_core::{Engine, LoginOutcome, LoginRequest, ManualClock};

    use super::*;

    const NOW: u64 = 1_709_539_200;

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn net(text: &str) -> IpNet {
        text.parse().expect("a range")
    }

    /// One org locked to IP with the offices trusted, one profile that may log in from
    /// 10.20.0.0/16 only, one user.
    fn org() -> (OrgSettings, Profile) {
        let settings = OrgSettings::builder()
            .lock_sessions_to_ip(true)
            .enforce_login_ranges_every_request(true)
            .trusted_ranges([net("10.0.0.0/8")])
            .build()
            .expect("settings");
        let profile = Profile::builder("staff")
            .login_ranges([net("10.20.0.0/16")])
            .build()
            .expect("profile");
        (settings, profile)
    }

    fn model(mapped_is_ipv4: bool) -> Model {
        let (settings, profile) = org();
        Model {
            settings,
            profiles: vec![profile],
            sessions: Vec::new(),
            user_profile: vec![0],
            user_sessions: vec![Vec::new()],
            remembered_device: vec![false],
            password_reset_at: vec![None],
            retention: 3600,
            mapped_is_ipv4,
            clients: vec![ModelClient {
                user: 0,
                scopes: ["api".to_owned(), "bulk".to_owned()].into(),
            }],
        }
    }

    #[test]
    fn mapped_addresses_and_ranges_read_as_ipv4() {
        let m = model(true);
        assert_eq!(m.canonical(ip("::ffff:10.1.2.3")), ip("10.1.2.3"));
        assert_eq!(m.canonical(ip("2001:db8::1")), ip("2001:db8::1"));
        assert_eq!(
            m.canonical_net(net("::ffff:10.0.0.0/104")),
            net("10.0.0.0/8")
        );
        assert!(m.net_contains(net("::ffff:10.0.0.0/104"), ip("10.1.2.3")));
        assert!(m.net_contains(net("::ffff:10.0.0.0/104"), ip("::ffff:10.1.2.3")));
        assert!(m.net_contains(net("10.0.0.0/8"), ip("::ffff:10.1.2.3")));
        assert!(!m.net_contains(net("::ffff:10.0.0.0/104"), ip("11.0.0.1")));
        assert!(!m.net_contains(net("::ffff:10.0.0.0/104"), ip("2001:db8::1")));
        // Shorter than 96 bits the range is not an IPv4 range: it stays IPv6.
        assert!(!m.net_contains(net("::ffff:0.0.0.0/80"), ip("10.1.2.3")));

        // The false belief of the skew: a mapped address is another address.
        let skewed = model(false);
        assert!(!skewed.net_contains(net("::ffff:10.0.0.0/104"), ip("10.1.2.3")));
        assert!(!skewed.net_contains(net("10.0.0.0/8"), ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn a_mapped_login_and_request_are_the_ipv4_ones() {
        let m = model(true);
        let mapped = ip("::ffff:10.20.1.2");
        let expected = m.expect_login(
            0,
            mapped,
            LoginMethod::Password,
            SessionType::Ui,
            false,
            NOW,
        );
        // Inside the login ranges and the trusted ranges (no challenge), origin in IPv4 form.
        let LoginExpect::Issued(snapshot) = &expected else {
            panic!("{expected:?}");
        };
        assert_eq!(snapshot.origin, ip("10.20.1.2"));
        assert_eq!(snapshot.level, SecurityLevel::Standard);
        assert_eq!(
            expected,
            m.expect_login(
                0,
                ip("10.20.1.2"),
                LoginMethod::Password,
                SessionType::Ui,
                false,
                NOW
            )
        );
        assert_eq!(
            m.expect_login(
                0,
                ip("::ffff:10.30.1.2"),
                LoginMethod::Password,
                SessionType::Ui,
                false,
                NOW
            ),
            LoginExpect::Denied(DenyReason::IpNotAllowed)
        );

        // A session locked to 10.20.1.2 accepts its mapped form and nothing else.
        let (settings, profile) = org();
        let engine = Engine::builder()
            .settings(settings)
            .clock(Arc::new(ManualClock::new(NOW)))
            .build()
            .expect("engine");
        engine.add_profile(profile).expect("profile");
        engine.add_user("ada", "staff").expect("user");
        let LoginOutcome::Issued(issued) = engine
            .login(&LoginRequest::new("ada", ip("10.20.1.2")))
            .expect("login")
        else {
            panic!("issued from a trusted office address");
        };
        let mut m = m;
        let id = m.add_session(0, issued.token, &issued.session, Some(snapshot), NOW);
        let outcome = |m: &Model, from: &str| {
            m.expect_validate(id, NOW + 1, ip(from), Requirement::Any, None)
                .outcome
        };
        assert!(matches!(
            outcome(&m, "::ffff:10.20.1.2"),
            Outcome::Ok { .. }
        ));
        assert_eq!(
            outcome(&m, "::ffff:10.20.1.3"),
            Outcome::Refused(Refusal::IpMismatch)
        );
        assert_eq!(
            outcome(&model_with(&m, false), "::ffff:10.20.1.2"),
            Outcome::Refused(Refusal::IpMismatch),
            "the skewed model would refuse what the engine must accept"
        );
    }

    /// `m` with another belief about mapped addresses.
    fn model_with(m: &Model, mapped_is_ipv4: bool) -> Model {
        let mut other = model(mapped_is_ipv4);
        for s in &m.sessions {
            other.sessions.push(ModelSession {
                token: s.token.clone(),
                ..*s
            });
        }
        other
    }

    #[test]
    fn grants_check_the_secret_then_the_scopes_then_the_login() {
        let m = model(true);
        let office = ip("10.20.1.1");
        let scopes = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(
            m.expect_grant(0, false, Some(&scopes(&["nope"])), ip("192.0.2.1"), NOW),
            GrantExpect::InvalidClient,
            "a wrong secret is refused before anything else is looked at"
        );
        assert_eq!(
            m.expect_grant(
                0,
                true,
                Some(&scopes(&["api", "admin", "root"])),
                office,
                NOW
            ),
            GrantExpect::InvalidScope("admin".to_owned())
        );
        assert_eq!(
            m.expect_grant(0, true, None, ip("192.0.2.1"), NOW),
            GrantExpect::Unauthorized {
                reason: DenyReason::IpNotAllowed,
                challenged: false
            }
        );
        let GrantExpect::Granted {
            snapshot,
            scopes: granted,
        } = m.expect_grant(
            0,
            true,
            Some(&scopes(&["bulk", "api", "bulk"])),
            office,
            NOW,
        )
        else {
            panic!("granted from inside the login ranges");
        };
        assert_eq!(granted, ["api", "bulk"], "sorted, once each");
        assert_eq!(snapshot.session_type, SessionType::OAuth2);
        assert_eq!(snapshot.level, SecurityLevel::Low);
        assert!(!snapshot.browser_bound);
        let GrantExpect::Granted { scopes: all, .. } = m.expect_grant(0, true, None, office, NOW)
        else {
            panic!("granted");
        };
        assert_eq!(all, ["api", "bulk"], "no scope asked: every registered one");
    }

    #[test]
    fn login_methods_grant_the_documented_levels() {
        // The model's own table agrees with the documented defaults of the settings.
        let defaults = OrgSettings::default();
        for method in LoginMethod::ALL {
            assert_eq!(level_of(method), defaults.level_for(method), "{method}");
        }
        assert_eq!(level_of(LoginMethod::Password), SecurityLevel::Standard);
        assert_eq!(level_of(LoginMethod::Mfa), SecurityLevel::HighAssurance);
        assert_eq!(level_of(LoginMethod::ClientCredentials), SecurityLevel::Low);
    }
}
