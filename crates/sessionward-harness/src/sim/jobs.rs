//! Async jobs and named credentials.
//!
//! A job runs with **no session id**: a simulated job holds nothing but its named credential,
//! so there is no session id it could see, and the harness counts no check for it (a check of
//! its own stub could never fail). To call the org's API a job asks the named credential for a
//! bearer token; the credential runs the OAuth 2.0 client-credentials grant against the org
//! (`OAuthClients::grant`: the client's secret and scopes are checked, then a
//! `client_credentials` login of the credential's integration user gives an `OAUTH2` session
//! under that user's profile policy) and caches the token until shortly before it would expire.

use std::fmt;

use sessionward_core::Token;

use super::model::SessionId;

/// A named credential's token cache.
pub(crate) struct CredentialCache {
    /// The credential's name, which is also its OAuth client id.
    pub(crate) name: String,
    pub(crate) user: u32,
    /// The client secret the org handed out when the client was registered.
    pub(crate) secret: Token,
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
            secret: _,
            refresh_before_expiry_secs,
            cached,
        } = self;
        f.debug_struct("CredentialCache")
            .field("name", name)
            .field("user", user)
            .field("secret", &"[REDACTED]")
            .field("refresh_before_expiry_secs", refresh_before_expiry_secs)
            .field("cached", &cached.map(|(_, until)| ("[REDACTED]", until)))
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use sessionward_core::OAuthClients;

    use super::*;

    #[test]
    fn debug_never_shows_the_client_secret() {
        let secret = OAuthClients::default()
            .register("erp", "erp-bot", ["api"])
            .expect("registered");
        let cache = CredentialCache {
            name: "erp".to_owned(),
            user: 3,
            secret: secret.clone(),
            refresh_before_expiry_secs: 60,
            cached: Some((7, 1_000)),
        };
        let printed = format!("{cache:?} {cache:#?}");
        assert!(!printed.contains(secret.expose_secret()), "{printed}");
        assert!(!printed.contains(&secret.expose_secret()[4..20]));
        assert!(printed.contains("[REDACTED]") && printed.contains("erp"));
        assert_eq!(cache.fresh(900), Some(7));
        assert_eq!(cache.fresh(950), None, "within the refresh margin");
    }
}
