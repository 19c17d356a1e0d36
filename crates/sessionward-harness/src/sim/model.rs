//! The harness's own expectation model: what every session is, in plain fields, and what the
//! engine must answer. Written from the documented semantics, independently of the engine.

use std::net::IpAddr;

use sessionward_core::{
    CapAction, DenyReason, EndReason, ExpiryKind, Handle, LoginMethod, OrgSettings, Profile,
    Refusal, Requirement, SecurityLevel, SessionInfo, SessionType, Token,
};

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
}

impl Model {
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
        if s.ip_locked && s.origin != ip {
            return Expect::exactly(Outcome::Refused(Refusal::IpMismatch));
        }
        if self.settings.enforce_login_ranges_every_request()
            && !self.profiles[s.profile].allows(ip)
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
        let profile = &self.profiles[self.user_profile[user as usize]];
        if !profile.allows(ip) {
            return LoginExpect::Denied(DenyReason::IpNotAllowed);
        }
        let level = self.settings.level_for(method);
        if session_type == SessionType::Ui && level < profile.required_level() {
            return LoginExpect::StepUp {
                required: profile.required_level(),
                offered: level,
            };
        }
        let trusted = self
            .settings
            .trusted_ranges()
            .iter()
            .any(|net| net.contains(&ip));
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
        if !self.profiles[self.user_profile[user as usize]].allows(ip) {
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
            level: self.settings.level_for(method),
            origin: ip,
            session_type,
            cap_ends,
        })
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
