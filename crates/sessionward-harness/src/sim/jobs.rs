//! Async jobs and named credentials.
//!
//! A job runs with **no session id**: its context says so, always. To call the org's API it
//! asks a named credential for a bearer token; the credential runs the OAuth 2.0
//! client-credentials grant against the org (a `client_credentials` login of the credential's
//! integration user, an `OAUTH2` session under that user's profile policy) and caches the token
//! until shortly before it would expire.

use std::fmt;

use super::model::SessionId;

/// What a job sees of its surroundings: never a session id.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct JobContext {
    _private: (),
}

impl JobContext {
    /// The session id of the request that queued the job: always `None` for async jobs
    /// (batch, future, queueable, scheduled, event trigger).
    pub(crate) fn session_id(&self) -> Option<&str> {
        None
    }
}

/// A named credential's token cache.
pub(crate) struct CredentialCache {
    pub(crate) name: String,
    pub(crate) user: u32,
    pub(crate) refresh_before_expiry_secs: u64,
    /// The cached token's session and the deadline the last validation reported.
    pub(crate) cached: Option<(SessionId, u64)>,
}

impl CredentialCache {
    /// The cached session if it stays valid past `now` plus the refresh margin.
    pub(crate) fn fresh(&self, now: u64) -> Option<SessionId> {
        self.cached
            .filter(|&(_, valid_until)| now + self.refresh_before_expiry_secs < valid_until)
            .map(|(id, _)| id)
    }
}

impl fmt::Debug for CredentialCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Self {
            name,
            user,
            refresh_before_expiry_secs,
            cached,
        } = self;
        f.debug_struct("CredentialCache")
            .field("name", name)
            .field("user", user)
            .field("refresh_before_expiry_secs", refresh_before_expiry_secs)
            .field("cached", &cached.map(|(_, until)| ("[REDACTED]", until)))
            .finish()
    }
}
