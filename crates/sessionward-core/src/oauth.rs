//! The org as an OAuth 2.0 token endpoint: registered clients and the client-credentials grant.
//!
//! A registered client runs as an integration user. A successful grant (RFC 6749 section 4.4) is
//! an ordinary [`Engine::login`] of that user with [`LoginMethod::ClientCredentials`] and
//! [`SessionType::OAuth2`]: the access token is a session token under the user's profile policy
//! (timeouts, login IP ranges, concurrent-session cap), listed and ended like any other session.
//!
//! Client secrets are generated here (256 random bits, shown once) and kept only as SHA-256
//! digests; a high-entropy secret needs no slow password hash. Secrets are compared in constant
//! time.
//!
//! Scopes belong to the access token (RFC 6749 section 3.3): the registry remembers which client
//! and scopes each live grant carries, and a resource server checks a presented token with
//! [`OAuthClients::authorize`], which validates the session and its scope together.
//!
//! Every engine has a registry, [`Engine::oauth_clients`], kept in the engine's store when it
//! has one: registrations, removals and grants are durable when the call returns, and a
//! restarted engine knows its clients (their secrets still work) and what each live access
//! token was granted. A registry made with `OAuthClients::default()` lives in memory only.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use crate::settings::check_name;
use crate::store::{SessionStore, StoreChange, StoredClient, StoredGrant};
use crate::{
    DenyReason, Engine, Error, Handle, LoginMethod, LoginOutcome, LoginRequest, Refusal,
    Requirement, SessionInfo, SessionType, Token,
};

/// Most scopes one client may hold.
const MAX_SCOPES: usize = 64;

/// A registered client, as listed (no secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthClient {
    /// The client id.
    pub client_id: String,
    /// The integration user the client's sessions run as.
    pub run_as: String,
    /// Scopes the client may be granted.
    pub scopes: BTreeSet<String>,
}

struct ClientEntry {
    client: OAuthClient,
    secret_digest: [u8; 32],
}

/// Why a grant was refused, with the RFC 6749 section 5.2 error code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum GrantError {
    /// Unknown client or wrong secret (`invalid_client`, HTTP 401). Deliberately does not say
    /// which.
    InvalidClient,
    /// A requested scope was not registered for the client (`invalid_scope`).
    InvalidScope {
        /// The refused scope (shortened).
        scope: String,
    },
    /// The run-as user may not get a session (`unauthorized_client`): removed, outside the
    /// profile's login ranges, at the session cap...
    Unauthorized(DenyReason),
    /// The engine could not issue a token (`server_error`).
    Server(Error),
}

impl GrantError {
    /// The RFC 6749 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidClient => "invalid_client",
            Self::InvalidScope { .. } => "invalid_scope",
            Self::Unauthorized(_) => "unauthorized_client",
            Self::Server(_) => "server_error",
        }
    }
}

impl fmt::Display for GrantError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidClient => f.write_str("invalid_client: unknown client or wrong secret"),
            Self::InvalidScope { scope } => {
                write!(f, "invalid_scope: {scope:?} is not granted to this client")
            }
            Self::Unauthorized(reason) => {
                write!(
                    f,
                    "unauthorized_client: the run-as user was denied ({reason})"
                )
            }
            Self::Server(error) => write!(f, "server_error: {error}"),
        }
    }
}

impl std::error::Error for GrantError {}

/// Why [`OAuthClients::authorize`] refused an access token, with the RFC 6750 section 3.1 error
/// code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AuthorizeError {
    /// The session behind the token does not validate (`invalid_token`, HTTP 401): malformed,
    /// unknown, ended, expired, wrong address...
    Session(Refusal),
    /// The token is not an access token granted by this registry (`invalid_token`, HTTP 401):
    /// for example a browser session's token presented as a bearer token.
    NotAnAccessToken,
    /// The token is valid but was not granted this scope (`insufficient_scope`, HTTP 403).
    InsufficientScope {
        /// The missing scope (shortened).
        scope: String,
    },
}

impl AuthorizeError {
    /// The RFC 6750 `error` code.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Session(_) | Self::NotAnAccessToken => "invalid_token",
            Self::InsufficientScope { .. } => "insufficient_scope",
        }
    }
}

impl fmt::Display for AuthorizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Session(refusal) => write!(f, "invalid_token: {refusal}"),
            Self::NotAnAccessToken => {
                f.write_str("invalid_token: not an access token granted to a client")
            }
            Self::InsufficientScope { scope } => {
                write!(f, "insufficient_scope: the token was not granted {scope:?}")
            }
        }
    }
}

impl std::error::Error for AuthorizeError {}

/// An access token that passed [`OAuthClients::authorize`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Authorized {
    /// The session behind the token (last activity refreshed).
    pub session: SessionInfo,
    /// The client the token was granted to.
    pub client_id: String,
    /// Every scope the token was granted, sorted.
    pub scopes: Vec<String>,
}

/// What one grant gave its token: kept by handle while the session lives.
struct GrantedToken {
    client_id: Arc<str>,
    scopes: Arc<[String]>,
}

/// The grants of live access tokens, by session handle.
#[derive(Default)]
struct GrantedTokens {
    by_handle: HashMap<u64, GrantedToken>,
    /// Size after the last pruning: the map is pruned of ended and expired sessions whenever
    /// it doubles, so its size stays within twice the live grants (amortised one lookup per
    /// grant).
    pruned_len: usize,
}

/// An access token granted to a client.
#[derive(Debug)]
pub struct Grant {
    /// The access token (a session token of type OAUTH2). Redacted in `Debug`.
    pub access_token: Token,
    /// Seconds until the token expires if unused (the session's `valid_until - now`).
    pub expires_in: u64,
    /// The scopes granted, sorted.
    pub scopes: Vec<String>,
    /// The session behind the token.
    pub session: SessionInfo,
}

/// The registry of OAuth clients of one org: use the engine's own, [`Engine::oauth_clients`],
/// which its store keeps; `OAuthClients::default()` makes a registry in memory only.
///
/// # Examples
///
/// ```
/// use sessionward_core::*;
///
/// let engine = Engine::builder().build()?;
/// engine.add_profile(Profile::builder("integrations").build()?)?;
/// engine.add_user("erp-bot", "integrations")?;
/// let clients = engine.oauth_clients();
/// let secret = clients.register("erp", "erp-bot", ["orders.read"])?;
///
/// let ip = "10.0.0.5".parse()?;
/// let grant = clients.grant(&engine, "erp", secret.expose_secret(), Some("orders.read"), ip)?;
/// assert_eq!(grant.scopes, ["orders.read"]);
/// assert!(engine.validate(grant.access_token.expose_secret(), ip, Requirement::Any).is_ok());
/// assert_eq!(
///     clients.grant(&engine, "erp", "wrong", None, ip).unwrap_err().code(),
///     "invalid_client"
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Default)]
pub struct OAuthClients {
    clients: RwLock<HashMap<String, ClientEntry>>,
    granted: Mutex<GrantedTokens>,
    /// The engine's store, for the registry an engine keeps (`None`: memory only).
    store: Option<Arc<dyn SessionStore>>,
}

impl fmt::Debug for OAuthClients {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthClients")
            .field("clients", &self.clients.read().len())
            .field("granted", &self.granted.lock().by_handle.len())
            .finish_non_exhaustive()
    }
}

impl OAuthClients {
    /// The registry of an engine with a store: what the store held, and every change written
    /// to it from now on.
    pub(crate) fn restored(
        store: Arc<dyn SessionStore>,
        clients: Vec<StoredClient>,
        grants: Vec<StoredGrant>,
    ) -> Self {
        let clients = clients
            .into_iter()
            .map(|stored| {
                let entry = ClientEntry {
                    client: OAuthClient {
                        client_id: stored.client_id.clone(),
                        run_as: stored.run_as,
                        scopes: stored.scopes.into_iter().collect(),
                    },
                    secret_digest: stored.secret_digest,
                };
                (stored.client_id, entry)
            })
            .collect();
        let by_handle: HashMap<u64, GrantedToken> = grants
            .into_iter()
            .map(|grant| {
                let token = GrantedToken {
                    client_id: grant.client_id.into(),
                    scopes: grant.scopes.into(),
                };
                (grant.handle, token)
            })
            .collect();
        Self {
            clients: RwLock::new(clients),
            granted: Mutex::new(GrantedTokens {
                pruned_len: by_handle.len(),
                by_handle,
            }),
            store: Some(store),
        }
    }

    /// Makes `change` durable if the registry has a store.
    fn persist(&self, change: StoreChange) -> Result<(), Error> {
        match &self.store {
            Some(store) => store.commit(vec![change]),
            None => Ok(()),
        }
    }

    /// Registers (or re-registers, rotating the secret) a client running as `run_as` with the
    /// given scopes; returns the new client secret, shown only this once.
    ///
    /// The run-as user is checked at grant time (it may be added later, moved or removed).
    /// With a store, the client is durable when this returns; if the store fails, the error
    /// is returned and the registry is unchanged (an earlier registration keeps its secret).
    pub fn register<S: Into<String>>(
        &self,
        client_id: &str,
        run_as: &str,
        scopes: impl IntoIterator<Item = S>,
    ) -> Result<Token, Error> {
        check_name("client_id", client_id)?;
        check_name("run_as", run_as)?;
        let mut set = BTreeSet::new();
        for scope in scopes {
            let scope = scope.into();
            check_scope(&scope)?;
            set.insert(scope);
        }
        if set.len() > MAX_SCOPES {
            return Err(Error::OutOfRange {
                field: "scopes",
                value: set.len().to_string(),
                allowed: "at most 64 scopes",
            });
        }
        let secret = Token::generate()?;
        let entry = ClientEntry {
            client: OAuthClient {
                client_id: client_id.to_owned(),
                run_as: run_as.to_owned(),
                scopes: set,
            },
            secret_digest: crate::token::sha256(secret.expose_secret()),
        };
        // Written under the lock, so that the store sees registrations and removals of one
        // client in the order the registry applies them.
        let mut clients = self.clients.write();
        self.persist(StoreChange::ClientPut(StoredClient {
            client_id: entry.client.client_id.clone(),
            run_as: entry.client.run_as.clone(),
            scopes: entry.client.scopes.iter().cloned().collect(),
            secret_digest: entry.secret_digest,
        }))?;
        clients.insert(client_id.to_owned(), entry);
        Ok(secret)
    }

    /// Removes a client; tokens already granted stay valid until they expire or are ended
    /// (end them with [`revoke`](Self::revoke) first, or later one by one by handle).
    /// Re-registering a client (a new secret, perhaps another run-as user or other scopes)
    /// likewise leaves its earlier tokens as they were granted. Whether the client was
    /// registered; with a store, the removal is durable when this returns (if the store fails,
    /// the error is returned and the client stays).
    pub fn remove(&self, client_id: &str) -> Result<bool, Error> {
        let mut clients = self.clients.write();
        if !clients.contains_key(client_id) {
            return Ok(false);
        }
        self.persist(StoreChange::ClientRemoved {
            client_id: client_id.to_owned(),
        })?;
        clients.remove(client_id);
        Ok(true)
    }

    /// Ends every live access token granted to `client_id` (reason `admin`), and only those:
    /// other clients running as the same user keep theirs. Returns how many ended.
    pub fn revoke(&self, engine: &Engine, client_id: &str) -> usize {
        let handles: Vec<u64> = {
            let mut granted = self.granted.lock();
            let handles = granted
                .by_handle
                .iter()
                .filter(|(_, token)| &*token.client_id == client_id)
                .map(|(&handle, _)| handle)
                .collect::<Vec<_>>();
            for handle in &handles {
                granted.by_handle.remove(handle);
            }
            handles
        };
        handles
            .into_iter()
            .filter(|&handle| engine.end_session(Handle(handle)))
            .count()
    }

    /// Checks an access token presented to a resource server: the session behind it must
    /// validate from `ip` (every rule of [`Engine::validate`]), it must have been granted by
    /// this registry, and with `scope` (space-separated, every one required) it must carry
    /// those scopes. Only a token that passes refreshes its session's last activity.
    pub fn authorize(
        &self,
        engine: &Engine,
        access_token: &str,
        ip: IpAddr,
        scope: Option<&str>,
    ) -> Result<Authorized, AuthorizeError> {
        let Some(selector) = crate::token::selector_of(access_token) else {
            return Err(AuthorizeError::Session(Refusal::Malformed));
        };
        let (client_id, scopes) = match self.granted.lock().by_handle.get(&selector) {
            Some(token) => (Arc::clone(&token.client_id), Arc::clone(&token.scopes)),
            None => {
                // Not ours; the session's own refusal (malformed, unknown...) says more, if it
                // has one, and checking it keeps nothing alive.
                engine
                    .check(access_token, ip, Requirement::Any)
                    .map_err(AuthorizeError::Session)?;
                return Err(AuthorizeError::NotAnAccessToken);
            }
        };
        let missing = scope
            .into_iter()
            .flat_map(|scope| scope.split(' '))
            .filter(|scope| !scope.is_empty())
            .find(|scope| !scopes.iter().any(|granted| granted == scope));
        if let Some(missing) = missing {
            // An invalid token is `invalid_token` whatever it asks for.
            engine
                .check(access_token, ip, Requirement::Any)
                .map_err(AuthorizeError::Session)?;
            return Err(AuthorizeError::InsufficientScope {
                scope: crate::error::shorten(missing),
            });
        }
        let session = engine
            .validate(access_token, ip, Requirement::Any)
            .map_err(AuthorizeError::Session)?;
        Ok(Authorized {
            session,
            client_id: client_id.to_string(),
            scopes: scopes.to_vec(),
        })
    }

    /// Remembers what a grant gave its token, pruning grants of sessions no longer live
    /// whenever the map has doubled since the last pruning.
    fn remember(&self, engine: &Engine, handle: Handle, client_id: &str, scopes: &[String]) {
        let mut granted = self.granted.lock();
        if granted.by_handle.len() >= 2 * granted.pruned_len.max(64) {
            granted
                .by_handle
                .retain(|&handle, _| engine.session(Handle(handle)).is_some());
            granted.pruned_len = granted.by_handle.len();
        }
        granted.by_handle.insert(
            handle.0,
            GrantedToken {
                client_id: client_id.into(),
                scopes: scopes.into(),
            },
        );
    }

    /// The registered clients, sorted by id.
    pub fn list(&self) -> Vec<OAuthClient> {
        let mut clients: Vec<OAuthClient> = self
            .clients
            .read()
            .values()
            .map(|entry| entry.client.clone())
            .collect();
        clients.sort_by(|a, b| a.client_id.cmp(&b.client_id));
        clients
    }

    /// The client-credentials grant: checks the client and secret, the requested scopes
    /// (space-separated, RFC 6749 section 3.3; `None` grants every registered scope), then logs
    /// the run-as user in from `ip` as an OAUTH2 session.
    pub fn grant(
        &self,
        engine: &Engine,
        client_id: &str,
        client_secret: &str,
        scope: Option<&str>,
        ip: IpAddr,
    ) -> Result<Grant, GrantError> {
        let (run_as, granted) = {
            let clients = self.clients.read();
            let presented = crate::token::sha256(client_secret);
            let entry = clients.get(client_id);
            // Compare against a dummy digest for unknown clients so both paths cost the same.
            let expected = entry.map_or([0xA5; 32], |entry| entry.secret_digest);
            let secret_ok = constant_time_eq(&presented, &expected);
            let Some(entry) = entry.filter(|_| secret_ok) else {
                drop(clients);
                // Secret guessing shows in the audit stream, as failed logins do.
                engine.emit_denied(DenyReason::InvalidClient, ip);
                return Err(GrantError::InvalidClient);
            };
            let granted: Vec<String> = match scope {
                None => entry.client.scopes.iter().cloned().collect(),
                Some(requested) => {
                    let mut granted = BTreeSet::new();
                    for scope in requested.split(' ').filter(|s| !s.is_empty()) {
                        if !entry.client.scopes.contains(scope) {
                            return Err(GrantError::InvalidScope {
                                scope: crate::error::shorten(scope),
                            });
                        }
                        granted.insert(scope.to_owned());
                    }
                    granted.into_iter().collect()
                }
            };
            (entry.client.run_as.clone(), granted)
        };
        let request = LoginRequest::new(&run_as, ip)
            .method(LoginMethod::ClientCredentials)
            .session_type(SessionType::OAuth2);
        // A durable registry's grant is written in the session's own commit: if it fails,
        // the login fails whole and no token is handed out whose scopes a restart would
        // forget. (A registry kept in memory only writes none.)
        let grant = |handle: Handle| {
            StoreChange::Granted(StoredGrant {
                handle: handle.0,
                client_id: client_id.to_owned(),
                scopes: granted.clone(),
            })
        };
        let also = self
            .store
            .is_some()
            .then_some(&grant as &dyn Fn(Handle) -> StoreChange);
        match engine
            .login_with(&request, also)
            .map_err(GrantError::Server)?
        {
            LoginOutcome::Issued(issued) => {
                let handle = issued.session.handle;
                self.remember(engine, handle, client_id, &granted);
                Ok(Grant {
                    expires_in: issued.session.valid_until.saturating_sub(engine.now()),
                    access_token: issued.token,
                    scopes: granted,
                    session: issued.session,
                })
            }
            LoginOutcome::Denied(reason) => Err(GrantError::Unauthorized(reason)),
            // Only reachable if the org maps client credentials to STANDARD (challenge) or the
            // profile's rule applied: a machine cannot answer either.
            LoginOutcome::ChallengeRequired(_) | LoginOutcome::StepUpRequired { .. } => {
                Err(GrantError::Unauthorized(DenyReason::ChallengeInvalid))
            }
        }
    }
}

/// RFC 6749 scope-token: printable ASCII except space, `"` and `\`.
fn check_scope(scope: &str) -> Result<(), Error> {
    let valid = !scope.is_empty()
        && scope.len() <= 128
        && scope
            .bytes()
            .all(|b| b == 0x21 || (0x23..=0x5B).contains(&b) || (0x5D..=0x7E).contains(&b));
    if valid {
        Ok(())
    } else {
        Err(Error::InvalidName {
            field: "scopes",
            value: crate::error::shorten(scope),
            allowed: "1 to 128 printable ASCII characters, no space, quote or backslash",
        })
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0_u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EndReason, Profile};

    fn org() -> (Engine, OAuthClients) {
        // A manual clock: `expires_in` is read against the clock again after the grant, and a
        // real one may tick in between (it did under valgrind).
        let clock = std::sync::Arc::new(crate::ManualClock::new(1_700_000_000));
        (
            with_bot(Engine::builder().clock(clock)),
            OAuthClients::default(),
        )
    }

    /// The engine `builder` builds (two shards), with the integration user `bot` of profile
    /// `integrations` (login range 10.0.0.0/8).
    fn with_bot(builder: crate::EngineBuilder) -> Engine {
        let engine = builder.shards(2).build().unwrap();
        engine
            .add_profile(
                Profile::builder("integrations")
                    .login_range("10.0.0.0/8")
                    .build()
                    .unwrap(),
            )
            .unwrap();
        engine.add_user("bot", "integrations").unwrap();
        engine
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn grants_are_oauth2_sessions_under_the_profile_policy() {
        let (engine, clients) = org();
        let secret = clients.register("erp", "bot", ["a", "b"]).unwrap();
        let grant = clients
            .grant(
                &engine,
                "erp",
                secret.expose_secret(),
                Some("b"),
                ip("10.1.1.1"),
            )
            .unwrap();
        assert_eq!(grant.scopes, ["b"]);
        assert_eq!(grant.session.session_type, SessionType::OAuth2);
        assert_eq!(grant.expires_in, 2 * 3600);
        let listed = engine
            .sessions(&crate::SessionFilter::default(), None, 10)
            .unwrap();
        assert_eq!(listed.total, 1);
        // Outside the integration profile's login ranges: unauthorized.
        assert_eq!(
            clients
                .grant(
                    &engine,
                    "erp",
                    secret.expose_secret(),
                    None,
                    ip("192.0.2.1")
                )
                .unwrap_err(),
            GrantError::Unauthorized(DenyReason::IpNotAllowed)
        );
        // Ending the run-as user's sessions revokes the token.
        engine.end_user_sessions("bot").unwrap();
        assert_eq!(
            engine.validate(
                grant.access_token.expose_secret(),
                ip("10.1.1.1"),
                Requirement::Any
            ),
            Err(Refusal::Ended(EndReason::Admin))
        );
    }

    #[test]
    fn wrong_secret_unknown_client_and_bad_scopes_are_refused() {
        let (engine, clients) = org();
        let secret = clients.register("erp", "bot", ["a"]).unwrap();
        let here = ip("10.0.0.1");
        engine.drain_events();
        assert_eq!(
            clients
                .grant(&engine, "erp", "nope", None, here)
                .unwrap_err(),
            GrantError::InvalidClient
        );
        // Guessing at secrets shows in the audit stream, with the caller's address only.
        let events = engine.drain_events();
        assert_eq!(events.len(), 1, "{events:?}");
        assert_eq!(
            events[0].kind,
            crate::EventKind::LoginDenied(DenyReason::InvalidClient)
        );
        assert_eq!(
            (events[0].ip, events[0].user.as_deref()),
            (Some(here), None)
        );
        assert_eq!(
            clients
                .grant(&engine, "crm", secret.expose_secret(), None, here)
                .unwrap_err(),
            GrantError::InvalidClient
        );
        assert_eq!(
            clients
                .grant(
                    &engine,
                    "erp",
                    secret.expose_secret(),
                    Some("a admin"),
                    here
                )
                .unwrap_err()
                .code(),
            "invalid_scope"
        );
        assert!(clients.register("x", "bot", ["has space"]).is_err());
        assert!(clients.register("", "bot", ["a"]).is_err());
        // Rotation invalidates the old secret.
        let rotated = clients.register("erp", "bot", ["a"]).unwrap();
        assert!(clients
            .grant(&engine, "erp", secret.expose_secret(), None, here)
            .is_err());
        assert!(clients
            .grant(&engine, "erp", rotated.expose_secret(), None, here)
            .is_ok());
        assert_eq!(clients.remove("erp"), Ok(true));
        assert_eq!(clients.remove("erp"), Ok(false));
        assert!(clients
            .grant(&engine, "erp", rotated.expose_secret(), None, here)
            .is_err());
    }

    #[test]
    fn removed_run_as_user_is_unauthorized_and_secrets_never_print() {
        let (engine, clients) = org();
        let secret = clients.register("erp", "bot", ["a"]).unwrap();
        engine.remove_user("bot").unwrap();
        let error = clients
            .grant(&engine, "erp", secret.expose_secret(), None, ip("10.0.0.1"))
            .unwrap_err();
        assert_eq!(error, GrantError::Unauthorized(DenyReason::UnknownUser));
        let printed = format!("{error} {error:?} {clients:?} {:?}", clients.list());
        assert!(!printed.contains(&secret.expose_secret()[4..]));
    }

    /// Found by an audit: scopes were checked at the grant and then forgotten, so a token
    /// granted `orders.read` could not be told from one granted every scope.
    #[test]
    fn scopes_belong_to_the_token_and_authorize_enforces_them() {
        let (engine, clients) = org();
        let secret = clients
            .register("erp", "bot", ["orders.read", "orders.write"])
            .unwrap();
        let here = ip("10.0.0.1");
        let read = clients
            .grant(
                &engine,
                "erp",
                secret.expose_secret(),
                Some("orders.read"),
                here,
            )
            .unwrap();
        let none = clients
            .grant(&engine, "erp", secret.expose_secret(), Some(""), here)
            .unwrap();
        let all = clients
            .grant(&engine, "erp", secret.expose_secret(), None, here)
            .unwrap();
        let token = |grant: &Grant| grant.access_token.expose_secret().to_owned();

        let ok = clients
            .authorize(&engine, &token(&read), here, Some("orders.read"))
            .unwrap();
        assert_eq!(ok.client_id, "erp");
        assert_eq!(ok.scopes, ["orders.read"]);
        assert_eq!(ok.session.handle, read.session.handle);
        let refused = clients
            .authorize(
                &engine,
                &token(&read),
                here,
                Some("orders.read orders.write"),
            )
            .unwrap_err();
        assert_eq!(
            refused,
            AuthorizeError::InsufficientScope {
                scope: "orders.write".into()
            }
        );
        assert_eq!(refused.code(), "insufficient_scope");
        assert!(clients
            .authorize(&engine, &token(&none), here, Some("orders.read"))
            .is_err());
        assert!(clients
            .authorize(&engine, &token(&none), here, None)
            .is_ok());
        assert_eq!(
            clients
                .authorize(
                    &engine,
                    &token(&all),
                    here,
                    Some("orders.write orders.read")
                )
                .unwrap()
                .scopes,
            ["orders.read", "orders.write"]
        );
        // A browser session is not an access token; a broken one is invalid_token either way.
        engine
            .add_profile(Profile::builder("staff").build().unwrap())
            .unwrap();
        engine.add_user("ada", "staff").unwrap();
        let ui = engine
            .login(&LoginRequest::new("ada", here).method(LoginMethod::Mfa))
            .unwrap()
            .issued()
            .unwrap();
        assert_eq!(
            clients
                .authorize(&engine, ui.token.expose_secret(), here, None)
                .unwrap_err(),
            AuthorizeError::NotAnAccessToken
        );
        assert_eq!(
            clients
                .authorize(&engine, "swd_nope", here, Some("orders.read"))
                .unwrap_err(),
            AuthorizeError::Session(Refusal::Malformed)
        );
        // Ended: invalid_token, not insufficient_scope.
        engine.end_session(read.session.handle);
        assert_eq!(
            clients
                .authorize(&engine, &token(&read), here, Some("orders.write"))
                .unwrap_err(),
            AuthorizeError::Session(Refusal::Ended(EndReason::Admin))
        );
    }

    #[test]
    fn a_refused_scope_keeps_nothing_alive() {
        let clock = crate::ManualClock::new(1_700_000_000);
        let engine = Engine::builder()
            .shards(2)
            .clock(std::sync::Arc::new(clock.clone()))
            .build()
            .unwrap();
        engine
            .add_profile(Profile::builder("integrations").build().unwrap())
            .unwrap();
        engine.add_user("bot", "integrations").unwrap();
        let clients = OAuthClients::default();
        let secret = clients.register("erp", "bot", ["a", "b"]).unwrap();
        let here = ip("10.0.0.1");
        let grant = clients
            .grant(&engine, "erp", secret.expose_secret(), Some("a"), here)
            .unwrap();
        let token = grant.access_token.expose_secret();
        clock.advance(std::time::Duration::from_secs(600));
        assert!(clients.authorize(&engine, token, here, Some("b")).is_err());
        let info = engine.session(grant.session.handle).unwrap();
        assert_eq!(
            info.last_activity, 1_700_000_000,
            "the refusal refreshed nothing"
        );
        let ok = clients.authorize(&engine, token, here, Some("a")).unwrap();
        assert_eq!(ok.session.last_activity, 1_700_000_600);
    }

    #[test]
    fn revoke_ends_one_clients_tokens_and_grants_of_dead_sessions_are_pruned() {
        let (engine, clients) = org();
        let erp = clients.register("erp", "bot", ["a"]).unwrap();
        let crm = clients.register("crm", "bot", ["a"]).unwrap();
        let here = ip("10.0.0.1");
        let erp_tokens: Vec<Grant> = (0..3)
            .map(|_| {
                clients
                    .grant(&engine, "erp", erp.expose_secret(), None, here)
                    .unwrap()
            })
            .collect();
        let crm_token = clients
            .grant(&engine, "crm", crm.expose_secret(), None, here)
            .unwrap();
        assert_eq!(clients.revoke(&engine, "erp"), 3);
        for grant in &erp_tokens {
            assert!(clients
                .authorize(&engine, grant.access_token.expose_secret(), here, None)
                .is_err());
        }
        assert!(
            clients
                .authorize(&engine, crm_token.access_token.expose_secret(), here, None)
                .is_ok(),
            "the other client, same run-as user, keeps its token"
        );
        assert_eq!(clients.revoke(&engine, "erp"), 0);

        // Grants of ended sessions do not pile up: the map is pruned as it doubles.
        for _ in 0..1000 {
            let grant = clients
                .grant(&engine, "crm", crm.expose_secret(), None, here)
                .unwrap();
            engine.end_session(grant.session.handle);
        }
        let remembered = clients.granted.lock().by_handle.len();
        assert!(remembered <= 2 * 64 + 1, "{remembered} grants remembered");
        assert!(
            clients
                .authorize(&engine, crm_token.access_token.expose_secret(), here, None)
                .is_ok(),
            "a live grant survives pruning"
        );
    }

    /// Which changes a [`FlakyStore`] refuses to write.
    type Refused = fn(&StoreChange) -> bool;

    /// A store that keeps nothing but a record of its commits, and fails the commits `fails`
    /// picks.
    #[derive(Debug, Default)]
    struct FlakyStore {
        fails: Mutex<Option<Refused>>,
        committed: Mutex<Vec<Vec<StoreChange>>>,
    }

    impl SessionStore for FlakyStore {
        fn load(&self, _now: u64, _retention: u32) -> Result<crate::store::StoredState, Error> {
            Ok(crate::store::StoredState::default())
        }

        fn commit(&self, changes: Vec<StoreChange>) -> Result<(), Error> {
            match *self.fails.lock() {
                Some(fails) if changes.iter().any(fails) => Err(Error::StoreWrite {
                    path: "flaky".into(),
                    reason: "injected".into(),
                }),
                _ => {
                    self.committed.lock().push(changes);
                    Ok(())
                }
            }
        }
    }

    #[test]
    fn a_durable_grant_writes_its_session_and_scopes_in_one_commit() {
        let store = Arc::new(FlakyStore::default());
        let engine = with_bot(Engine::builder().store(Arc::clone(&store) as Arc<dyn SessionStore>));
        let secret = engine
            .oauth_clients()
            .register("erp", "bot", ["a", "b"])
            .unwrap();
        store.committed.lock().clear();
        let grant = engine
            .oauth_clients()
            .grant(
                &engine,
                "erp",
                secret.expose_secret(),
                Some("b"),
                ip("10.0.0.1"),
            )
            .unwrap();
        let committed = std::mem::take(&mut *store.committed.lock());
        assert_eq!(committed.len(), 1, "one commit: {committed:?}");
        let handle = grant.session.handle.0;
        assert!(matches!(
            committed[0].as_slice(),
            [StoreChange::Created(session), StoreChange::Granted(granted)]
                if session.handle().0 == handle
                    && granted.handle == handle
                    && granted.client_id == "erp"
                    && granted.scopes == ["b"]
        ));
        // A registry kept in memory only writes no grant, also beside a durable engine.
        let in_memory = OAuthClients::default();
        let secret = in_memory.register("crm", "bot", ["a"]).unwrap();
        in_memory
            .grant(&engine, "crm", secret.expose_secret(), None, ip("10.0.0.1"))
            .unwrap();
        let committed = std::mem::take(&mut *store.committed.lock());
        assert!(
            matches!(committed.as_slice(), [changes] if matches!(changes.as_slice(), [StoreChange::Created(_)]))
        );
    }

    #[test]
    fn a_failed_write_changes_nothing_and_hands_out_no_token() {
        let store = Arc::new(FlakyStore::default());
        let engine = with_bot(Engine::builder().store(Arc::clone(&store) as Arc<dyn SessionStore>));
        let clients = engine.oauth_clients();
        let secret = clients.register("erp", "bot", ["a"]).unwrap();
        let here = ip("10.0.0.1");

        *store.fails.lock() = Some(|change| {
            matches!(
                change,
                StoreChange::ClientPut(_) | StoreChange::ClientRemoved { .. }
            )
        });
        assert!(clients.register("crm", "bot", ["a"]).is_err());
        assert!(
            clients.register("erp", "bot", ["b"]).is_err(),
            "no rotation either"
        );
        assert!(clients.remove("erp").is_err());
        let listed = clients.list();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].scopes.iter().collect::<Vec<_>>(), ["a"]);
        assert!(clients
            .grant(&engine, "erp", secret.expose_secret(), None, here)
            .is_ok());

        // The commit holding the session and its grant fails: the token is not handed out,
        // and its session does not stay live.
        *store.fails.lock() = Some(|change| matches!(change, StoreChange::Granted(_)));
        let live = engine.stats().live;
        let error = clients
            .grant(&engine, "erp", secret.expose_secret(), None, here)
            .unwrap_err();
        assert_eq!(error.code(), "server_error");
        assert_eq!(engine.stats().live, live);
    }
}
