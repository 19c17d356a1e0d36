//! A deliberately simple reference model of the engine: a vector of sessions and a clock.
//!
//! It knows nothing about shards, digests or atomics; it only encodes the rules of the policy,
//! so that the property tests and the fuzz target can check the engine against it.

use std::net::IpAddr;

use proptest::prelude::*;
use sessionward_core::{EndReason, ExpiryKind, Refusal};

/// The addresses operations pick from. 10.0.0.0/8 is trusted; the mapped form of 10.0.0.1 must
/// behave exactly like 10.0.0.1.
pub const IPS: [&str; 4] = ["10.0.0.1", "10.0.0.2", "192.168.1.1", "::ffff:10.0.0.1"];
/// Ranges for `end_sessions_from`.
pub const CIDRS: [&str; 3] = ["10.0.0.1/32", "10.0.0.0/8", "192.168.0.0/16"];
/// Users, with the profile index each belongs to.
pub const USERS: [(&str, usize); 4] = [("ada", 0), ("bob", 0), ("cy", 1), ("di", 1)];
/// Profiles: `p0` uses the org's timeouts, `p1` overrides idle to 15 minutes.
pub const PROFILES: [&str; 2] = ["p0", "p1"];
/// Inactivity timeouts the settings updates choose from, in seconds.
pub const IDLE_CHOICES: [u64; 3] = [15 * 60, 30 * 60, 2 * 3600];
/// Tombstone retention the engine under test is built with.
pub const RETENTION: u64 = 3600;
/// Maximum session length of the org, in seconds.
pub const MAX_LENGTH: u64 = 4 * 3600;

/// One step of a property test.
#[derive(Clone, Debug)]
pub enum Op {
    /// Log `user` in from `ip`; `mfa` picks MFA (HIGH_ASSURANCE) over a password.
    Login {
        /// Index into [`USERS`].
        user: usize,
        /// Index into [`IPS`].
        ip: usize,
        /// MFA instead of password.
        mfa: bool,
    },
    /// Validate session `session` (modulo the sessions issued so far) from `ip`.
    Validate {
        /// Which issued session.
        session: usize,
        /// Index into [`IPS`].
        ip: usize,
        /// Ask for the high-assurance operation `setup`.
        sensitive: bool,
    },
    /// Step session `session` up with MFA from `ip`.
    StepUp {
        /// Which issued session.
        session: usize,
        /// Index into [`IPS`].
        ip: usize,
    },
    /// Move the clock forward.
    Advance {
        /// Seconds.
        secs: u64,
    },
    /// Replace the org settings.
    UpdateSettings {
        /// Index into [`IDLE_CHOICES`].
        idle: usize,
        /// Lock new sessions to their IP.
        lock: bool,
    },
    /// Log a session out.
    Logout {
        /// Which issued session.
        session: usize,
    },
    /// End a session by handle.
    EndHandle {
        /// Which issued session.
        session: usize,
    },
    /// Password reset for a user.
    ResetPassword {
        /// Index into [`USERS`].
        user: usize,
    },
    /// End every session of a profile.
    EndProfile {
        /// Index into [`PROFILES`].
        profile: usize,
    },
    /// End every session.
    EndAll,
    /// End every session from a range.
    EndFrom {
        /// Index into [`CIDRS`].
        cidr: usize,
    },
    /// Sweep every shard.
    Sweep,
    /// Count the active sessions in the admin listing.
    List,
}

/// A strategy for one operation, weighted towards logins and validations.
pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0..USERS.len(), 0..IPS.len(), any::<bool>())
            .prop_map(|(user, ip, mfa)| Op::Login { user, ip, mfa }),
        10 => (any::<usize>(), 0..IPS.len(), any::<bool>())
            .prop_map(|(session, ip, sensitive)| Op::Validate { session, ip, sensitive }),
        2 => (any::<usize>(), 0..IPS.len()).prop_map(|(session, ip)| Op::StepUp { session, ip }),
        5 => prop_oneof![0_u64..120, 600_u64..2400, 3000_u64..8000]
            .prop_map(|secs| Op::Advance { secs }),
        1 => (0..IDLE_CHOICES.len(), any::<bool>())
            .prop_map(|(idle, lock)| Op::UpdateSettings { idle, lock }),
        2 => any::<usize>().prop_map(|session| Op::Logout { session }),
        2 => any::<usize>().prop_map(|session| Op::EndHandle { session }),
        1 => (0..USERS.len()).prop_map(|user| Op::ResetPassword { user }),
        1 => (0..PROFILES.len()).prop_map(|profile| Op::EndProfile { profile }),
        1 => Just(Op::EndAll),
        1 => (0..CIDRS.len()).prop_map(|cidr| Op::EndFrom { cidr }),
        1 => Just(Op::Sweep),
        1 => Just(Op::List),
    ]
}

/// A session as the model sees it.
#[derive(Clone, Debug)]
pub struct ModelSession {
    /// Index into [`USERS`].
    pub user: usize,
    /// Index into [`PROFILES`].
    pub profile: usize,
    /// Canonical origin address.
    pub origin: IpAddr,
    /// Seconds.
    pub created: u64,
    /// Seconds of the last successful validation.
    pub last: u64,
    /// Snapshotted inactivity timeout.
    pub idle: u64,
    /// Snapshotted IP lock.
    pub locked: bool,
    /// Reached HIGH_ASSURANCE.
    pub high_assurance: bool,
    /// Why and when it ended.
    pub ended: Option<(EndReason, u64)>,
    /// Removed from the table by an explicit sweep.
    pub swept: bool,
}

/// What the model says a validation must return.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Success.
    Valid,
    /// This refusal.
    Refused(Refusal),
    /// This refusal, or `Unknown` if an opportunistic sweep already dropped the tombstone.
    RefusedOrForgotten(Refusal),
}

impl Expect {
    /// Whether the engine's answer is acceptable.
    pub fn admits<T>(self, observed: &Result<T, Refusal>) -> bool {
        match (self, observed) {
            (Self::Valid, Ok(_)) => true,
            (Self::Refused(expected), Err(got)) => expected == *got,
            (Self::RefusedOrForgotten(expected), Err(got)) => {
                expected == *got || *got == Refusal::Unknown
            }
            _ => false,
        }
    }
}

impl ModelSession {
    /// Absolute deadline.
    pub fn absolute(&self) -> u64 {
        self.created + MAX_LENGTH
    }

    /// When it stops being valid (exclusive).
    pub fn valid_until(&self) -> u64 {
        (self.last + self.idle).min(self.absolute())
    }

    /// Live and unexpired at `now`.
    pub fn live(&self, now: u64) -> bool {
        self.ended.is_none() && now < self.valid_until()
    }

    /// When the engine may drop its tombstone.
    pub fn removable_at(&self) -> u64 {
        match self.ended {
            Some((_, at)) => at + RETENTION,
            None => self.valid_until() + RETENTION,
        }
    }

    /// The refusal a dead session gets, ignoring sweeping.
    fn death(&self) -> Refusal {
        match self.ended {
            Some((reason, _)) => Refusal::Ended(reason),
            None if self.absolute() <= self.last + self.idle => {
                Refusal::Expired(ExpiryKind::Absolute)
            }
            None => Refusal::Expired(ExpiryKind::Idle),
        }
    }

    /// What a lookup of this session returns if it is not live: `None` if it is live.
    pub fn dead_outcome(&self, now: u64) -> Option<Expect> {
        if self.swept {
            return Some(Expect::Refused(Refusal::Unknown));
        }
        if self.live(now) {
            return None;
        }
        if now >= self.removable_at() {
            Some(Expect::RefusedOrForgotten(self.death()))
        } else {
            Some(Expect::Refused(self.death()))
        }
    }
}
