//! The use-cases: register, log in, refresh, revoke one, revoke all, resolve an access token.
//! Written against the ports; every instant is a parameter.
//!
//! One service, [`TokenService`], its `impl` split by capability, one file each: [`login`]
//! (registration, password logins and their limits), [`sessions`], [`refresh`] (rotation and
//! access-only refresh), [`revocation`], [`legacy`] (tokens of the replaced deployment),
//! [`access`] (access tokens and introspection), [`admin`] (operators' changes and OAuth client
//! checks), [`identity`] (external identities) and [`audit_trail`]. This file holds the types
//! they share, the service's state and its construction.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{self, AuditChain, AuditHead, AuditRecord, AuditVerdict, BrokenLink, ChainPoint, ChainWalk, NewAuditEvent, Sealing};
use crate::events::{Event, EventSink, LoginOutcome, RefreshOutcome};
use crate::face::{Face, Faces};
use crate::legacy::{LegacyToken, TokenKind};
use crate::ports::{NewRefresh, Notifier, PasswordHasher, RevocationList, RotateOutcome, RotateRequest, Store};
use crate::risk::{RequestMeta, RiskAction, RiskSignal, assess, strictest};
use crate::rotation::{RefreshRecord, Session, SessionId, refresh_expiry};
use crate::secret::{KeyedHasher, RefreshSecret, Sealer};
use crate::throttle::{AttemptLimiter, LockoutPolicy, retry_after_secs};
use crate::{
    AuthError, ClientId, DomainError, Email, Keyring, OAuthClient, Password, PasswordHash, PasswordPolicy, RefreshPolicy, Route, TokenHash,
    TokenProfile, User, UserId, UserStatus,
};

pub use crate::format::{AccessClaims, AccessView, NativeFormat, RefreshView, TokenFormat};

mod access;
pub use exchange::{ACCESS_TOKEN_TYPE, ExchangeRequest, Exchanged, ExchangedIntrospection, REFRESH_TOKEN_TYPE, short_token_type};
pub use machine::{ClientIntrospection, ClientToken, ClientTokenRequest};
mod admin;
mod audit_trail;
mod binding;
mod exchange;
mod failover;
mod identity;
mod legacy;
mod login;
mod machine;
mod refresh;
mod revocation;
mod routes;
mod sessions;

/// Settings of the use-cases, from configuration. What differs per face (grace window,
/// algorithm, issuer) is the face's.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// No session outlives this, however often it is refreshed.
    pub max_session_lifetime: Duration,
    pub password_policy: PasswordPolicy,
    /// When failed logins lock an account out (see [`crate::throttle`]).
    pub lockout: LockoutPolicy,
    /// The prefix lengths client addresses are limited under, IPv4 and IPv6
    /// ([`crate::throttle::address_key`]).
    pub address_prefixes: (u8, u8),
    /// Failed logins from one address network are audited once per this window: the first in
    /// full, the rest as one `login_failures` event when the window has passed (zero: each one).
    pub failed_login_window: Duration,
    /// How long the record of an address's failed and successful logins is kept (never less
    /// than the lockout's reset time).
    pub attempts_retention: Duration,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            max_session_lifetime: Duration::days(365),
            password_policy: PasswordPolicy::default(),
            lockout: LockoutPolicy::default(),
            address_prefixes: (32, 64),
            failed_login_window: Duration::MINUTE,
            attempts_retention: Duration::days(90),
        }
    }
}

/// Who an accepted access token speaks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessContext {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub jti: Uuid,
    pub client_id: Option<String>,
    pub expires_at: i64,
    /// Minted by the original library with the secret of the deployment named here (`django`,
    /// `flask`): it belongs to no Tessera session (`session_id` is its `jti`), lives out its own
    /// short life, and speaks only for a user imported from that deployment.
    pub legacy: Option<&'static str>,
    /// The key the token is bound to (DPoP `cnf.jkt`): a request must prove it.
    pub dpop_jkt: Option<String>,
}

/// Address networks whose failed logins are counted at once, beyond which each failure is
/// audited on its own.
const MAX_FAILURE_WINDOWS: usize = 10_000;

/// Failed logins not yet audited: the open window of each address network, and windows that
/// have passed, waiting for [`TokenService::flush_failed_logins`].
#[derive(Debug, Default)]
struct FailedLogins {
    open: std::collections::HashMap<String, FailureWindow>,
    closed: Vec<(String, FailureWindow)>,
}

/// The failed logins from one address network since the first of its window, which alone was
/// audited in full.
#[derive(Debug, Clone)]
struct FailureWindow {
    started: OffsetDateTime,
    last: OffsetDateTime,
    /// Failures after the first.
    more: u32,
    /// Up to ten of the accounts they named, as typed.
    accounts: Vec<String>,
}

impl FailureWindow {
    fn new(now: OffsetDateTime) -> Self {
        Self { started: now, last: now, more: 0, accounts: vec![] }
    }
}

/// What became of one blacklisted token of the original deployment at import.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlacklistImport {
    /// Carried over as a revoked session (or already here).
    Imported,
    /// Expired already, or of a user who did not come over: nothing to carry over, since no such
    /// token is ever honoured.
    Dropped,
    /// Not a token of the face's legacy secret: it could never be presented successfully either.
    Unreadable(&'static str),
}

/// A token pair as issued.
#[derive(Debug, Clone)]
pub struct IssuedPair {
    pub access_token: String,
    pub access_jti: Uuid,
    /// The refresh token as the face writes it on the wire.
    pub refresh_token: String,
    pub refresh_secret: RefreshSecret,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    pub session_id: SessionId,
    pub user_id: UserId,
    pub refresh_expires_at: OffsetDateTime,
}

/// Where a login comes from.
#[derive(Debug, Clone, Default)]
pub struct LoginOrigin<'a> {
    pub client_id: Option<&'a str>,
    /// The session's profile when it is not the face's own (a native OAuth client's).
    pub profile: Option<&'a TokenProfile>,
    pub request: RequestMeta,
    /// The face's subject data for the session (see [`Session::subject`]).
    pub subject: Option<String>,
    /// The key the session's tokens are bound to (DPoP), proved by the login request.
    pub dpop_jkt: Option<String>,
}

/// What a refresh request brings beside its refresh token.
#[derive(Debug, Clone, Default)]
pub struct RefreshInput<'a> {
    /// The authenticated OAuth client, for faces that have them.
    pub client: Option<&'a str>,
    /// For faces that bind a pair: the access token presented with the refresh (it may have
    /// expired; it names the pair).
    pub bound_access: Option<&'a str>,
    pub request: RequestMeta,
    /// The key the request proved possession of (DPoP), by its thumbprint.
    pub dpop_jkt: Option<&'a str>,
}

/// An access token issued by a refresh that keeps its refresh token (`reuse`).
#[derive(Debug, Clone)]
pub struct IssuedAccess {
    pub access_token: String,
    pub access_jti: Uuid,
    pub expires_in: i64,
    pub session_id: SessionId,
    pub user_id: UserId,
}

/// What a refresh gives, by the face's policy.
#[derive(Debug, Clone)]
pub enum Refreshed {
    /// `rotate`: a new pair.
    Pair(IssuedPair),
    /// `reuse`: a new access token; the refresh token presented stays valid.
    Access(IssuedAccess),
}

impl Refreshed {
    pub fn access_token(&self) -> &str {
        match self {
            Refreshed::Pair(p) => &p.access_token,
            Refreshed::Access(a) => &a.access_token,
        }
    }
    pub fn expires_in(&self) -> i64 {
        match self {
            Refreshed::Pair(p) => p.expires_in,
            Refreshed::Access(a) => a.expires_in,
        }
    }
    /// The new refresh token, when the policy rotated one.
    pub fn refresh_token(&self) -> Option<&str> {
        match self {
            Refreshed::Pair(p) => Some(&p.refresh_token),
            Refreshed::Access(_) => None,
        }
    }
}

/// What introspection (RFC 7662) tells of a live token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Introspection {
    /// `access_token` or `refresh_token`.
    pub token_type: &'static str,
    /// The face that issued it, and the audience it carries.
    pub face: String,
    pub audience: String,
    pub user_id: UserId,
    /// `None` for a legacy token not yet used here: it belongs to no session.
    pub session_id: Option<SessionId>,
    pub client_id: Option<String>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    /// The access token's `jti`.
    pub jti: Option<Uuid>,
    /// A legacy token: the deployment whose library minted it (`django`, `flask`).
    pub legacy: Option<&'static str>,
    /// The key its session's tokens are bound to (DPoP `cnf.jkt`).
    pub dpop_jkt: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogoutScope {
    /// This session only.
    Local,
    /// Every session of the user.
    Global,
    /// Every session of the user but this one.
    Others,
}

/// The use-cases over one store.
#[derive(Clone)]
pub struct TokenService {
    store: Arc<dyn Store>,
    hasher: Arc<dyn PasswordHasher>,
    revocations: Arc<dyn RevocationList>,
    notifier: Option<Arc<dyn Notifier>>,
    keyring: Keyring,
    refresh_hasher: KeyedHasher,
    sealer: Sealer,
    settings: TokenSettings,
    faces: Faces,
    limiter: Option<Arc<dyn AttemptLimiter>>,
    events: Option<Arc<dyn EventSink>>,
    audit: AuditChain,
    /// When each address was last audited as throttled: one event per address per minute, so
    /// that a flood of refused attempts cannot flood the trail.
    throttle_audited: Arc<std::sync::Mutex<std::collections::HashMap<String, OffsetDateTime>>>,
    /// Failed logins not audited one by one, per address network (see `first_failure_in_window`).
    failed_logins: Arc<std::sync::Mutex<FailedLogins>>,
    /// Origins whose import has finished (see `legacy_user`): once finished, always finished.
    imports_finished: Arc<std::sync::Mutex<std::collections::HashSet<&'static str>>>,
    /// Active users read by `current_user` (see there).
    active_users: Arc<std::sync::Mutex<std::collections::HashMap<UserId, User>>>,
    /// OAuth clients as read by `authenticate_client`, with when they were read: every native
    /// token request authenticates its client, and clients change rarely (see `CLIENT_FRESH`).
    clients: Arc<quick_cache::sync::Cache<String, (std::time::Instant, OAuthClient)>>,
    /// Live refresh tokens of faces that do not rotate, as read from the store, with when they
    /// were read (see `live_refresh`): a refresh that does not rotate is answered from memory.
    refresh_memo: Arc<quick_cache::sync::Cache<TokenHash, Arc<Remembered>>>,
    /// Sessions as read by introspection, for what never changes in them (their face, user,
    /// client, profile and key): whether one is revoked is the revocation list's to say.
    session_memo: Arc<quick_cache::sync::Cache<SessionId, Arc<Session>>>,
    /// Sessions whose refresh tokens were used without being rotated, and when: written to the
    /// store behind the answers, in one batch (see `flush_session_uses`).
    session_uses: Arc<std::sync::Mutex<std::collections::HashMap<SessionId, (Route, OffsetDateTime)>>>,
    /// Whether refresh tokens issued before routing keys may still be live (see `routes`).
    unrouted: Arc<std::sync::Mutex<routes::Unrouted>>,
    /// When rotations last failed on an unreachable store (see [`failover`]).
    lost_answers: Arc<failover::LostAnswers>,
}

/// A refresh token read from the store, live when it was read at `read_at`.
#[derive(Debug)]
struct Remembered {
    record: RefreshRecord,
    session: Session,
    read_at: OffsetDateTime,
}

/// Refresh tokens and sessions kept in memory by `live_refresh` and `introspect`, each.
const MEMO_KEPT: usize = 10_000;

/// The longest a refresh token read from the store is trusted without reading it again, however
/// long the revocation list remembers: what a store-side change that is no revocation (an
/// `invalidate-refresh-tokens` of drf-social-oauth2 on a face set to reuse) takes to count on
/// every instance.
const MEMO_FRESH: Duration = Duration::minutes(1);

/// Session uses held before they are written whatever the time.
const SESSION_USES_HELD: usize = 10_000;

/// The audit chain no longer holds the point the sealer was to continue from.
struct Diverged {
    expected: ChainPoint,
    found: Option<ChainPoint>,
}

/// Users `current_user` keeps before it starts afresh.
const ACTIVE_USERS_KEPT: usize = 100_000;

/// How long a client read from the store is used before it is read again: a client created,
/// changed or removed by another process (the admin CLI, another instance) counts everywhere
/// within this time.
const CLIENT_FRESH: std::time::Duration = std::time::Duration::from_secs(10);

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("settings", &self.settings).field("faces", &self.faces).finish_non_exhaustive()
    }
}

/// The parts a [`TokenService`] is built from.
pub struct ServiceParts {
    pub store: Arc<dyn Store>,
    pub hasher: Arc<dyn PasswordHasher>,
    pub revocations: Arc<dyn RevocationList>,
    pub notifier: Option<Arc<dyn Notifier>>,
    pub keyring: Keyring,
    pub refresh_hasher: KeyedHasher,
    pub sealer: Sealer,
    pub settings: TokenSettings,
    pub faces: Faces,
    /// The rate of password attempts per client address; `None`: unlimited.
    pub limiter: Option<Arc<dyn AttemptLimiter>>,
    /// Where logins, refreshes and revocations are reported (metrics).
    pub events: Option<Arc<dyn EventSink>>,
    /// The audit trail's chain (its key derives from the master key).
    pub audit: AuditChain,
}

impl TokenService {
    pub fn new(p: ServiceParts) -> Self {
        Self {
            store: p.store,
            hasher: p.hasher,
            revocations: p.revocations,
            notifier: p.notifier,
            keyring: p.keyring,
            refresh_hasher: p.refresh_hasher,
            sealer: p.sealer,
            settings: p.settings,
            faces: p.faces,
            limiter: p.limiter,
            events: p.events,
            audit: p.audit,
            throttle_audited: Arc::default(),
            failed_logins: Arc::default(),
            imports_finished: Arc::default(),
            active_users: Arc::default(),
            clients: Arc::new(quick_cache::sync::Cache::new(1024)),
            refresh_memo: Arc::new(quick_cache::sync::Cache::new(MEMO_KEPT)),
            session_memo: Arc::new(quick_cache::sync::Cache::new(MEMO_KEPT)),
            session_uses: Arc::default(),
            lost_answers: Arc::default(),
            unrouted: Arc::default(),
        }
    }

    fn emit(&self, event: Event<'_>) {
        if let Some(e) = &self.events {
            e.record(event);
        }
    }

    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }
    pub fn faces(&self) -> &Faces {
        &self.faces
    }
    /// A mounted face by name.
    pub fn face(&self, name: &str) -> Result<Arc<Face>, DomainError> {
        self.faces.get(name).cloned().ok_or(DomainError::NotFound("api"))
    }

    /// The keyed hash under which a refresh secret or client secret is stored.
    pub fn secret_hash(&self, bytes: &[u8]) -> TokenHash {
        self.refresh_hasher.hash(bytes)
    }

    /// Whether the store answers (readiness).
    /// The store's connection pool now: (open, idle, maximum).
    pub fn pool_stats(&self) -> Option<(u32, u32, u32)> {
        self.store.pool_stats()
    }

    pub async fn ping(&self) -> Result<(), DomainError> {
        Ok(self.store.ping().await?)
    }
}

/// The address of a new account: one Tessera accepts, and not under `.invalid`, which Tessera
/// keeps for its own placeholders (deleted users, external identities without an e-mail).
fn new_account_email(email: &str) -> Result<Email, DomainError> {
    let email = Email::parse(email)?;
    if email.is_reserved() {
        return Err(DomainError::invalid("email", "is under .invalid, reserved for Tessera's own placeholders"));
    }
    Ok(email)
}

/// The caller of an access token as its session names it (the token of a face that does not
/// carry the local user id, such as Medods', names it through the session).
fn ctx_for(session: &Session, ctx: &AccessContext) -> AccessContext {
    AccessContext { user_id: session.user_id, ..ctx.clone() }
}

#[cfg(test)]
mod tests;
