//! The use-cases: register, log in, refresh, revoke one, revoke all, resolve an access token.
//! Written against the ports; every instant is a parameter.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::audit::{self, AuditChain, AuditHead, AuditRecord, AuditVerdict, BrokenLink, ChainPoint, ChainWalk, NewAuditEvent, Sealing};
use crate::events::{Event, EventSink, LoginOutcome, RefreshOutcome};
use crate::face::{Face, Faces, RequestMeta, RiskAction, RiskSignal, assess, strictest};
use crate::keys::TimedClaims;
use crate::legacy::{LegacyToken, TokenKind};
use crate::ports::{NewRefresh, Notifier, PasswordHasher, RevocationList, RotateOutcome, RotateRequest, Store};
use crate::rotation::{RefreshRecord, Session, SessionId, refresh_expiry};
use crate::secret::{KeyedHasher, RefreshSecret, Sealer};
use crate::throttle::{AttemptLimiter, LockoutPolicy, retry_after_secs};
use crate::{
    Algorithm, AuthError, ClientId, DomainError, Email, Keyring, OAuthClient, Password, PasswordHash, PasswordPolicy, RefreshPolicy,
    TokenHash, TokenProfile, User, UserId, UserStatus,
};

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

/// The claims of a native access token (RFC 9068 names where they exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    /// The audience: the face (or group of faces) that accepts the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    pub sid: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub token_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
}

impl TimedClaims for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
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

/// What a face's format reads off an access token it accepts (signature, algorithm, type and
/// times already checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessView {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub jti: Uuid,
    /// `aud`: the use-cases compare it with the presenting face's audience.
    pub audience: Option<String>,
    pub expires_at: i64,
    pub client_id: Option<String>,
}

/// What a face's format reads off a refresh token: the secret whose keyed hash names the stored
/// record, and the audience when the token carries one (JWT refresh tokens).
#[derive(Debug)]
pub struct RefreshView {
    pub secret: RefreshSecret,
    pub audience: Option<String>,
}

/// How a face writes and reads its tokens. Rendering must be a pure function of its inputs:
/// within the grace window the stored record is rendered again and must give the very tokens
/// issued the first time.
pub trait TokenFormat: Send + Sync {
    /// Bytes of a new refresh secret.
    fn secret_len(&self) -> usize {
        RefreshSecret::OPAQUE_LEN
    }
    /// Whether a signing key must verify the face's tokens for as long as its refresh tokens
    /// live, not only its access tokens: refresh tokens that are JWTs, or (Medods) an access token
    /// that proves which pair a refresh belongs to after it has expired.
    fn keys_live_as_long_as_refresh_tokens(&self) -> bool {
        false
    }
    /// An access token of `session` with `jti`, issued at `issued_at`, for audience `aud`.
    fn render_access(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        jti: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<String, DomainError>;
    /// The refresh token of `record`.
    fn render_refresh(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<String, DomainError>;
    /// Reads an access token: signature, the key's algorithm, the token's type, and its times
    /// against `now` (`None`: whatever its times, for a face that names a pair with an expired
    /// access token).
    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError>;
    /// Reads a refresh token as the face writes it.
    fn read_refresh(&self, keyring: &Keyring, token: &str, now: OffsetDateTime) -> Result<RefreshView, AuthError>;
    /// Reads a token of `kind` minted by the original library with the original deployment's
    /// secret (see [`crate::legacy`]). `None` when the face has no such secret or the token is
    /// not a legacy one (it names a key).
    fn read_legacy(&self, _token: &str, _kind: TokenKind, _now: OffsetDateTime) -> Option<Result<LegacyToken, AuthError>> {
        None
    }
}

/// The native face: an RFC 9068-style access JWT and an opaque base64url refresh token.
#[derive(Debug, Clone)]
pub struct NativeFormat {
    pub issuer: String,
    pub alg: Algorithm,
}

impl TokenFormat for NativeFormat {
    fn render_access(
        &self,
        keyring: &Keyring,
        aud: &str,
        session: &Session,
        jti: Uuid,
        issued_at: OffsetDateTime,
    ) -> Result<String, DomainError> {
        let iat = issued_at.unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: session.user_id.0.to_string(),
            aud: Some(aud.to_owned()),
            sid: session.id.0,
            jti,
            iat,
            exp: iat + session.profile.access_ttl().whole_seconds(),
            token_type: "access".into(),
            client_id: session.client_id.clone(),
        };
        keyring.sign(self.alg, "at+jwt", &claims)
    }

    fn render_refresh(&self, _: &Keyring, _: &str, _: &Session, _: &RefreshRecord, secret: &RefreshSecret) -> Result<String, DomainError> {
        Ok(secret.encode(crate::secret::SecretEncoding::UrlSafe))
    }

    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        let claims: AccessClaims = keyring.verify_at(token, &[self.alg], now)?;
        if claims.token_type != "access" || claims.iss != self.issuer {
            return Err(AuthError::WrongTokenType);
        }
        let user_id = claims.sub.parse::<i64>().map(UserId).map_err(|_| AuthError::TokenInvalid)?;
        Ok(AccessView {
            user_id,
            session_id: SessionId(claims.sid),
            jti: claims.jti,
            audience: claims.aud,
            expires_at: claims.exp,
            client_id: claims.client_id,
        })
    }

    fn read_refresh(&self, _: &Keyring, token: &str, _: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let secret = RefreshSecret::parse(token, crate::secret::SecretEncoding::UrlSafe).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: None })
    }
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
}

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
        }
    }

    /// Appends an event to the audit trail. A failure is logged, never the request's failure.
    pub async fn audit(&self, kind: &'static str, user_id: Option<i64>, detail: serde_json::Value, now: OffsetDateTime) {
        let event = NewAuditEvent { at: now, kind, user_id, session_id: None, detail };
        if let Err(e) = self.store.append_audit(&event).await {
            tracing::error!(error = %e, kind, "an audit event could not be written");
        }
    }

    /// Chains every event written since the last sealing; returns how many. It continues only
    /// from where this process last saw the chain end: when the database no longer holds that
    /// event (sealed events deleted, or their seals cleared and sealed again), it seals nothing
    /// and fails with `Internal`, saying so.
    pub async fn seal_audit(&self) -> Result<u64, DomainError> {
        match self.seal_audit_after(None).await? {
            Ok(n) => Ok(n),
            Err(Diverged { expected, found }) => Err(DomainError::Internal(format!(
                "the audit chain no longer holds event #{} as sealed before (it now ends at #{}): sealed events were deleted \
                 or sealed again in the database; nothing more is sealed; run `tessera audit verify`",
                expected.seq,
                found.map_or(0, |f| f.seq)
            ))),
        }
    }

    /// Seals from `kept` (else from this process's trusted point); `Err` when the chain no longer
    /// holds it, and then nothing is sealed.
    async fn seal_audit_after(&self, kept: Option<ChainPoint>) -> Result<Result<u64, Diverged>, DomainError> {
        let mut total = 0;
        let mut after = kept.or_else(|| self.audit.trusted());
        loop {
            match self.store.seal_audit(&self.audit, 1000, after.as_ref()).await? {
                Sealing::Diverged { expected, found } => return Ok(Err(Diverged { expected, found })),
                Sealing::Sealed { count, head } => {
                    total += count;
                    if let Some(head) = head {
                        self.audit.trust(head.clone());
                        after = Some(head);
                    }
                    if count < 1000 {
                        return Ok(Ok(total));
                    }
                }
            }
        }
    }

    /// Seals, then walks the whole chain: the first edited, inserted or deleted event, if any.
    pub async fn verify_audit(&self) -> Result<AuditVerdict, DomainError> {
        self.verify_audit_against(None).await
    }

    /// Seals (continuing only from `kept`, when given), then walks the whole chain: the first
    /// edited, inserted or deleted event, an event whose seal was cleared by hand, and, against
    /// the head an operator kept: a chain that ends before it (truncated) or holds another event
    /// at its place (sealed again).
    pub async fn verify_audit_against(&self, kept: Option<&AuditHead>) -> Result<AuditVerdict, DomainError> {
        // when the chain no longer holds `kept`, nothing is sealed and the walk says where
        // (the head of an empty chain holds nothing to continue from)
        let _ = self.seal_audit_after(kept.filter(|k| k.seq > 0).map(AuditHead::point)).await?;
        let cleared = self.store.audit_unsealed_below_head().await?;
        // the position of the first sealed event written after the cleared one
        let mut cleared_at = None;
        let mut walk = ChainWalk::new(&self.audit);
        let broken = |walk: &ChainWalk<'_>, b| Ok(AuditVerdict { checked: walk.checked, unsealed: 0, broken: Some(b), end: None });
        loop {
            let page = self.store.audit_chain(walk.next_seq() - 1, 1000).await?;
            let last_page = page.len() < 1000;
            for r in &page {
                if let Err(b) = walk.step(r) {
                    return broken(&walk, b);
                }
                if cleared_at.is_none() && cleared.is_some_and(|id| r.id > id) {
                    cleared_at = r.seq;
                }
                if let Some(k) = kept
                    && r.seq == Some(k.seq)
                    && (r.hash.as_deref() != Some(&k.hash[..]) || walk.checked != k.count)
                {
                    return broken(&walk, BrokenLink { seq: k.seq, id: Some(r.id), reason: audit::REWRITTEN });
                }
            }
            if last_page {
                break;
            }
        }
        if let Some(id) = cleared {
            return broken(&walk, BrokenLink { seq: cleared_at.unwrap_or(walk.next_seq()), id: Some(id), reason: audit::CLEARED });
        }
        if let Some(k) = kept
            && k.seq >= walk.next_seq()
        {
            return broken(&walk, BrokenLink { seq: walk.next_seq(), id: None, reason: audit::TRUNCATED });
        }
        let unsealed = self.store.audit_unsealed().await?;
        Ok(AuditVerdict { checked: walk.checked, unsealed, broken: None, end: Some(walk.end()) })
    }

    /// Verifies the whole chain, then its keyed head (see [`AuditHead`]); the first broken link
    /// instead when the chain is not intact.
    pub async fn audit_head(&self) -> Result<Result<AuditHead, BrokenLink>, DomainError> {
        let verdict = self.verify_audit_against(None).await?;
        match (verdict.broken, verdict.end) {
            (Some(b), _) => Ok(Err(b)),
            (None, Some(end)) => Ok(Ok(self.audit.head(&end, verdict.checked))),
            (None, None) => Ok(Ok(self.audit.genesis_head())),
        }
    }

    /// The keyed head of the chain as the database holds it now, without walking the chain (the
    /// server logs it periodically); `None` while nothing is sealed.
    pub async fn current_audit_head(&self) -> Result<Option<AuditHead>, DomainError> {
        Ok(self.store.audit_head().await?.map(|(point, count)| self.audit.head(&point, count)))
    }

    /// Reads a head as `tessera audit head` prints it, and checks its MAC.
    pub fn open_audit_head(&self, text: &str) -> Result<AuditHead, audit::HeadError> {
        self.audit.open_head(text)
    }

    /// Audit events, newest first.
    pub async fn audit_events(
        &self,
        user: Option<UserId>,
        since: Option<OffsetDateTime>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, DomainError> {
        Ok(self.store.audit_events(user.map(|u| u.0), since, limit).await?)
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

    #[tracing::instrument(skip_all)]
    pub async fn register(&self, email: &str, password: String, now: OffsetDateTime) -> Result<User, DomainError> {
        let email = new_account_email(email)?;
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.store.create_user(&email, Some(&hash), now).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// Registration over HTTP, from a client address: under the same per-address rate as
    /// password attempts, and hashed within the share of the hashing capacity registrations may
    /// take (logins keep the rest).
    #[tracing::instrument(skip_all)]
    pub async fn register_from(
        &self,
        email: &str,
        password: String,
        address: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<User, DomainError> {
        let address = self.address_key(address);
        self.address_rate("registration", &address, now).await?;
        let email = new_account_email(email)?;
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash_new_account(password).await?;
        let user = self.store.create_user(&email, Some(&hash), now).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
    }

    /// What a client address is limited and locked out under: its network
    /// ([`crate::throttle::address_key`]).
    fn address_key(&self, address: Option<&str>) -> String {
        let (v4, v6) = self.settings.address_prefixes;
        crate::throttle::address_key(address.unwrap_or("unknown"), v4, v6)
    }

    /// The per-address rate of everything that hashes a password: `Err(Throttled)` beyond it.
    async fn address_rate(&self, face: &str, address: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        let Some(Err(wait)) = self.limiter.as_ref().map(|l| l.check(address)) else { return Ok(()) };
        if face != "registration" {
            self.emit(Event::Login { face, outcome: LoginOutcome::Throttled });
        }
        // once per address and minute, in the log as in the audit trail: a flood of refused
        // attempts (24,000 a second from one address in `make soak`) writes one line, not each
        if self.first_throttle_this_minute(address, now) {
            tracing::warn!(face, %address, "password attempts from this address throttled (logged once a minute per address)");
            self.audit("throttled", None, serde_json::json!({"api": face, "address": address}), now).await;
        }
        let wait = Duration::try_from(wait).unwrap_or(Duration::SECOND);
        Err(DomainError::Throttled { retry_after: retry_after_secs(wait) })
    }

    /// Holds every failed password check to what verifying the costliest hash still stored
    /// costs: one stored hash of each kind not yet re-hashed (an import's pbkdf2 or scrypt, an
    /// older Argon2) is measured, with the dummy hash of unknown e-mails. Run at startup and
    /// every few minutes: the floor falls as imported users log in and are re-hashed. Returns it.
    pub async fn calibrate_password_floor(&self) -> Result<std::time::Duration, DomainError> {
        /// Kinds measured at most: an import has a handful.
        const MAX_KINDS: usize = 32;
        let Some(current) = self.hasher.current_prefix() else { return Ok(std::time::Duration::ZERO) };
        let mut kinds: std::collections::HashMap<String, PasswordHash> = std::collections::HashMap::new();
        let mut after = 0;
        'pages: loop {
            let page = self.store.stale_password_hashes(&current, after, 1000).await?;
            let Some(&(last, _)) = page.last() else { break };
            after = last.0;
            for (_, hash) in page {
                if kinds.len() >= MAX_KINDS {
                    tracing::warn!(kinds = MAX_KINDS, "more kinds of stored password hashes than are measured");
                    break 'pages;
                }
                kinds.entry(crate::password::cost_class(hash.as_str()).to_owned()).or_insert(hash);
            }
        }
        let floor = self.hasher.calibrate(kinds.into_values().collect()).await?;
        Ok(floor)
    }

    /// Checks e-mail and password. An unknown e-mail costs what a known one does.
    #[tracing::instrument(skip_all)]
    pub async fn check_password(&self, email: &str, password: String) -> Result<User, DomainError> {
        let password = Password::presented(password)?;
        let user = match Email::parse(email) {
            Ok(e) => self.store.user_by_email(&e).await?,
            Err(_) => None,
        };
        let hash = user.as_ref().and_then(|u| u.password_hash.clone());
        let rehash = hash.as_ref().is_some_and(|h| self.hasher.needs_rehash(h)).then(|| password.clone());
        let ok = self.hasher.verify(password, hash.clone()).await?;
        match user {
            Some(mut u) if ok => {
                if u.status == UserStatus::Blocked {
                    return Err(AuthError::UserBlocked.into());
                }
                if let (Some(password), Some(old)) = (rehash, hash)
                    && let Some(new) = self.rehash(&u, password, &old).await
                {
                    u.password_hash = Some(new);
                }
                Ok(u)
            }
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// Replaces an imported (or outdated) hash by Tessera's Argon2id once the password has been
    /// checked against it, and returns the hash now stored. A failure is logged and the login
    /// goes on: the old hash still works.
    async fn rehash(&self, user: &User, password: Password, old: &PasswordHash) -> Option<PasswordHash> {
        let result = match self.hasher.hash(password).await {
            Ok(new) => self.store.rehash_password(user.id, old, &new).await.map(|done| done.then_some(new)).map_err(DomainError::from),
            Err(e) => Err(e),
        };
        match result {
            Ok(Some(new)) => {
                tracing::info!(user_id = %user.id, "password re-hashed to Argon2id");
                Some(new)
            }
            Ok(None) => {
                tracing::info!(user_id = %user.id, "password changed meanwhile; not re-hashed");
                None
            }
            Err(e) => {
                tracing::warn!(user_id = %user.id, error = %e, "password re-hash failed; the old hash stays");
                None
            }
        }
    }

    fn first_throttle_this_minute(&self, address: &str, now: OffsetDateTime) -> bool {
        let Ok(mut seen) = self.throttle_audited.lock() else { return true };
        if seen.len() > 10_000 {
            seen.retain(|_, t| now - *t < Duration::MINUTE);
        }
        match seen.get(address) {
            Some(t) if now - *t < Duration::MINUTE => false,
            _ => {
                seen.insert(address.to_owned(), now);
                true
            }
        }
    }

    /// Password login at a face: a new session and its first pair.
    #[tracing::instrument(skip_all, fields(face = %face.name))]
    pub async fn login_password(
        &self,
        face: &Face,
        email: &str,
        password: String,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let address = self.address_key(origin.request.ip.as_deref());
        let (user, account) = self.password_attempt(&face.name, email, password, &address, now).await?;
        // the success is recorded with the session, in one write
        self.start_session(face, &user, origin, now, Some((&account, &address))).await
    }

    /// One password attempt, as every password endpoint makes it: the address's rate, the
    /// hash queue's room, the account's lockout at this address, then the hash; the outcome is
    /// counted, logged and audited. A success is not recorded yet: the caller records it with
    /// what it writes next (`login_succeeded`, or the session it opens), under the returned
    /// account key.
    async fn password_attempt(
        &self,
        face: &str,
        email: &str,
        password: String,
        address: &str,
        now: OffsetDateTime,
    ) -> Result<(User, String), DomainError> {
        self.address_rate(face, address, now).await?;
        // In a flood of logins, refused at once: no database read for a hash that cannot wait.
        self.hasher.admit()?;
        let account = crate::throttle::account_key(email);
        // A locked account is refused before any hash is computed: guesses cost the attacker
        // nothing more, and the server nothing at all.
        if let Some(until) = self.store.login_lock(&account, address, now).await? {
            // once a minute per address: refusals cost no hash, so they come as fast as requests
            if self.first_throttle_this_minute(&format!("locked out {address}"), now) {
                tracing::warn!(face, %address, "login refused: the account is locked out at this address (logged once a minute per address)");
            }
            self.emit(Event::Login { face, outcome: LoginOutcome::Locked });
            return Err(DomainError::Throttled { retry_after: retry_after_secs(until - now) });
        }
        match self.check_password(email, password).await {
            Ok(user) => {
                self.emit(Event::Login { face, outcome: LoginOutcome::Ok });
                Ok((user, account))
            }
            Err(DomainError::Auth(AuthError::InvalidCredentials)) => {
                let lock = self.store.login_failed(&account, address, now, &self.settings.lockout).await?;
                self.emit(Event::Login { face, outcome: LoginOutcome::Failed });
                // the address as typed (the lockout's key is its comparison form)
                let typed = crate::throttle::as_typed(email);
                let detail = serde_json::json!({"api": face, "account": typed, "address": address});
                // the log follows the audit trail: the first failure of a network in its window
                // in full, the rest counted there (a spray writes neither a line nor an event each)
                if self.first_failure_in_window(address, &typed, now) {
                    tracing::warn!(face, %address, locked = lock.is_some(), "login failed: wrong e-mail or password");
                    self.audit("login_failed", None, detail.clone(), now).await;
                } else {
                    tracing::debug!(face, %address, locked = lock.is_some(), "login failed: wrong e-mail or password");
                }
                if let Some(until) = lock {
                    let mut detail = detail;
                    detail["until"] = serde_json::json!(until.unix_timestamp());
                    self.audit("lockout", None, detail, now).await;
                }
                Err(AuthError::InvalidCredentials.into())
            }
            Err(e) => {
                if matches!(e, DomainError::Auth(_)) {
                    self.emit(Event::Login { face, outcome: LoginOutcome::Failed });
                }
                Err(e)
            }
        }
    }

    /// Changes the caller's password: the current one must be right (under the same rate,
    /// lockout and hash bounds as a login), the new one must pass the policy. Every other
    /// session of the user ends; the caller's own goes on. Returns how many sessions ended.
    #[tracing::instrument(skip_all, fields(user_id = %ctx.user_id))]
    pub async fn change_password(
        &self,
        ctx: &AccessContext,
        current: String,
        new: String,
        address: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<usize, DomainError> {
        let user = self.store.user_by_id(ctx.user_id).await?.ok_or(AuthError::UnknownUser)?;
        let new = self.settings.password_policy.new_password(new)?;
        let email = user.email.to_string();
        let address = self.address_key(address);
        // the user as the check left it: with the hash it checked, or the re-hash of an imported one
        let (user, account) = self.password_attempt("native", &email, current, &address, now).await?;
        self.store.login_succeeded(&account, &address, now).await?;
        let old = user.password_hash.clone().ok_or(AuthError::InvalidCredentials)?;
        let hash = self.hasher.hash(new).await?;
        // replaced only if no one changed it since it was checked
        if !self.store.rehash_password(user.id, &old, &hash).await? {
            return Err(DomainError::invalid("current_password", "the password was changed meanwhile; try again"));
        }
        self.forget_user(user.id);
        let ended = self.revoke_all(user.id, Some(ctx.session_id), "password_changed", now).await?;
        self.audit("password_changed", Some(user.id.0), serde_json::json!({"sessions_ended": ended}), now).await;
        if let Some(n) = &self.notifier {
            n.password_changed(&user, false, now);
        }
        tracing::info!(ended, "password changed");
        Ok(ended)
    }

    /// The caller's live sessions, newest first (at most 100).
    pub async fn sessions(&self, ctx: &AccessContext, now: OffsetDateTime) -> Result<Vec<Session>, DomainError> {
        Ok(self.store.sessions_of_user(ctx.user_id, now, 100).await?)
    }

    /// Ends one of the caller's sessions. Another user's session, an unknown one and one that
    /// already ended are all `NotFound`: the answer tells nothing about other users.
    pub async fn end_session(&self, ctx: &AccessContext, id: SessionId, now: OffsetDateTime) -> Result<(), DomainError> {
        match self.store.session(id).await? {
            Some(s) if s.user_id == ctx.user_id && !s.is_revoked() => self.revoke_session(id, "ended_by_user", now).await,
            _ => Err(DomainError::NotFound("session")),
        }
    }

    /// Opens a session at a face for a user already authenticated (by password, a trusted
    /// caller, or an external identity provider) and issues its first pair.
    #[tracing::instrument(skip_all, fields(user_id = %user.id, face = %face.name))]
    pub async fn open_session(
        &self,
        face: &Face,
        user: &User,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        self.start_session(face, user, origin, now, None).await
    }

    /// [`Self::open_session`]; after a password login, `login` (account key, address) records
    /// its success in the same write.
    async fn start_session(
        &self,
        face: &Face,
        user: &User,
        origin: LoginOrigin<'_>,
        now: OffsetDateTime,
        login: Option<(&str, &str)>,
    ) -> Result<IssuedPair, DomainError> {
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        let client_id = origin.client_id;
        let profile = origin.profile.unwrap_or(&face.profile);
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: origin.client_id.map(str::to_owned),
            face: face.name.clone(),
            profile: profile.clone(),
            created_at: now,
            expires_at: now + self.settings.max_session_lifetime.max(profile.refresh_ttl()),
            last_refresh_at: None,
            ip: origin.request.ip,
            user_agent: origin.request.user_agent,
            revoked_at: None,
            revoked_reason: None,
            subject: origin.subject,
        };
        let secret = RefreshSecret::generate_len(face.format.secret_len())?;
        let fresh = self.prepare_refresh(&secret)?;
        let record = RefreshRecord {
            hash: fresh.hash,
            session_id: session.id,
            parent: None,
            access_jti: fresh.access_jti,
            issued_at: now,
            expires_at: refresh_expiry(&session, now),
            rotated_at: None,
            sealed_secret: Some(fresh.sealed_secret),
        };
        let opened = match login {
            Some((account, address)) => self.store.open_session_after_login(&session, &record, account, address).await,
            None => self.store.open_session(&session, &record).await,
        };
        match opened {
            // the client was deleted since it authenticated (another instance, an operator)
            Err(crate::RepoError::Conflict("sessions_client_id_fkey")) => {
                self.forget_client(client_id);
                return Err(AuthError::UnknownClient.into());
            }
            other => other?,
        }
        tracing::info!(session_id = %session.id, "session opened");
        self.pair(face, &session, &record, secret, now)
    }

    /// Reads a refresh token of `face`, checking the audience it carries (if any).
    fn read_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<RefreshSecret, AuthError> {
        let view = face.format.read_refresh(&self.keyring, presented, now)?;
        if view.audience.as_ref().is_some_and(|a| *a != face.audience) {
            return Err(AuthError::WrongAudience);
        }
        Ok(view.secret)
    }

    /// The refresh secret a presented refresh token stands for. A legacy token (minted by the
    /// original library with the face's configured legacy secret) is adopted first: see
    /// [`Self::adopt_legacy`].
    async fn presented_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<RefreshSecret, DomainError> {
        match face.format.read_legacy(presented, TokenKind::Refresh, now) {
            Some(legacy) => self.adopt_legacy(face, &legacy?, now).await,
            None => Ok(self.read_refresh(face, presented, now)?),
        }
    }

    /// The user a legacy token of `origin` speaks for: a user imported from that deployment
    /// with that id, once its import has finished, and active. A user registered here, one of
    /// another deployment, one the import did not carry over (or has not yet), and a deleted one
    /// never answer to it; a blocked one is refused as blocked. Read from the store at every
    /// use, so a block or deletion by any process counts at once.
    pub async fn legacy_user(&self, origin: &'static str, id: UserId) -> Result<User, DomainError> {
        let finished = self.imports_finished.lock().map(|s| s.contains(origin)).unwrap_or(false);
        if !finished {
            if !self.store.import_finished(origin).await? {
                return Err(AuthError::UnknownUser.into());
            }
            if let Ok(mut s) = self.imports_finished.lock() {
                s.insert(origin);
            }
        }
        let user = self.store.user_from(origin, id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        Ok(user)
    }

    /// Makes a legacy refresh token a Tessera one at its first use: a session of the face for
    /// its user, whose first refresh record is the token (its `jti` is the secret, stored only
    /// as its keyed hash), living until the token's own `exp` but no longer than the longest a
    /// session may live from the token's `iat`. From then on the token is like any other: used
    /// once under `rotate` (a second use is reuse), revocable, blocked with its user. Adopting
    /// again finds the record; two instances adopting at once meet on its unique hash. An
    /// imported blacklist entry is such a record, already revoked.
    async fn adopt_legacy(&self, face: &Face, token: &LegacyToken, now: OffsetDateTime) -> Result<RefreshSecret, DomainError> {
        let secret = token.refresh_secret().ok_or(AuthError::TokenInvalid)?;
        let hash = self.secret_hash(secret.as_bytes());
        if self.store.refresh_by_hash(hash).await?.is_some() {
            return Ok(secret);
        }
        let user = self.legacy_user(token.origin, token.user_id).await?;
        let (session, record) = self.legacy_session(face, &user, token, hash, None);
        if record.expires_at <= now {
            return Err(AuthError::TokenExpired.into());
        }
        match self.store.open_session(&session, &record).await {
            Ok(()) => tracing::info!(session_id = %session.id, user_id = %user.id, "legacy refresh token adopted"),
            // Adopted by another request in the meantime.
            Err(crate::RepoError::Conflict(_)) => {
                self.store.refresh_by_hash(hash).await?.ok_or(AuthError::TokenInvalid)?;
            }
            Err(e) => return Err(e.into()),
        }
        Ok(secret)
    }

    /// Carries a refresh token the original deployment had blacklisted over as a revoked
    /// session, so that presenting it is refused as revocation and as reuse. Never fatal for a
    /// row it cannot read: that is reported as [`BlacklistImport::Unreadable`].
    pub async fn import_blacklisted(
        &self,
        face: &Face,
        raw: &str,
        at: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<BlacklistImport, DomainError> {
        let token = match face.format.read_legacy(raw, TokenKind::Refresh, now) {
            None => return Ok(BlacklistImport::Unreadable("not a token of the face's legacy secret (not a JWT, or it names a key)")),
            Some(Err(AuthError::TokenExpired)) => return Ok(BlacklistImport::Dropped),
            Some(Err(AuthError::WrongTokenType)) => return Ok(BlacklistImport::Unreadable("not a refresh token")),
            Some(Err(_)) => {
                return Ok(BlacklistImport::Unreadable("its signature does not verify with the face's legacy secret (an older secret?)"));
            }
            Some(Ok(t)) => t,
        };
        let secret = token.refresh_secret().ok_or(AuthError::TokenInvalid)?;
        let hash = self.secret_hash(secret.as_bytes());
        if let Some((_, session)) = self.store.refresh_by_hash(hash).await? {
            // Adopted before the import: it ends now.
            if !session.is_revoked() {
                self.revoke_session(session.id, "blacklisted before the migration", now).await?;
            }
            return Ok(BlacklistImport::Imported);
        }
        let Some(user) = self.store.user_from(token.origin, token.user_id).await? else { return Ok(BlacklistImport::Dropped) };
        let (session, record) = self.legacy_session(face, &user, &token, hash, Some(at));
        match self.store.open_session(&session, &record).await {
            // a session opens live: it is revoked in a write of its own
            Ok(()) => self.revoke_session(session.id, "blacklisted before the migration", now).await?,
            // imported by a run that stopped part-way, or adopted by a server meanwhile: revoked
            // all the same
            Err(crate::RepoError::Conflict(_)) => {
                if let Some((_, s)) = self.store.refresh_by_hash(hash).await?
                    && !s.is_revoked()
                {
                    self.revoke_session(s.id, "blacklisted before the migration", now).await?;
                }
            }
            Err(e) => return Err(e.into()),
        }
        Ok(BlacklistImport::Imported)
    }

    /// The longest a legacy token's session lives: `max_session_lifetime` from its `iat`, or its
    /// own `exp` when that sum is past the end of time (`iat` is the token's, up to the year 9999:
    /// the sum panicked, shown with the `tokens` fuzz target).
    fn legacy_cap(&self, token: &LegacyToken) -> OffsetDateTime {
        token.issued_at.checked_add(self.settings.max_session_lifetime).unwrap_or(token.expires_at)
    }

    /// The session and first record a legacy refresh token becomes; `revoked`: an imported
    /// blacklist entry. The session lives no longer than `max_session_lifetime` from the token's
    /// `iat`, whatever its `exp` says.
    fn legacy_session(
        &self,
        face: &Face,
        user: &User,
        token: &LegacyToken,
        hash: TokenHash,
        revoked: Option<OffsetDateTime>,
    ) -> (Session, RefreshRecord) {
        let cap = self.legacy_cap(token);
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: None,
            face: face.name.clone(),
            profile: face.profile.clone(),
            created_at: token.issued_at,
            expires_at: cap,
            last_refresh_at: None,
            ip: None,
            user_agent: None,
            revoked_at: revoked,
            revoked_reason: revoked.map(|_| "blacklisted before the migration".to_owned()),
            subject: None,
        };
        let record = RefreshRecord {
            hash,
            session_id: session.id,
            parent: None,
            access_jti: Uuid::new_v4(),
            issued_at: token.issued_at,
            expires_at: token.expires_at.min(cap),
            rotated_at: None,
            sealed_secret: None,
        };
        (session, record)
    }

    /// A refresh at a face, under the face's policy: `rotate` gives a new pair (grace, reuse
    /// detection), `reuse` a new access token. The face's risk rules are decided on the way:
    /// inside the rotation's transaction for `rotate`.
    #[tracing::instrument(skip_all, fields(face = %face.name))]
    pub async fn refresh(
        &self,
        face: &Face,
        presented: &str,
        input: RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<Refreshed, DomainError> {
        let policy = match self.presented_refresh(face, presented, now).await {
            Ok(secret) => self.policy_of(face, &secret).await.map(|p| (secret, p)),
            Err(e) => Err(e),
        };
        let result = match policy {
            Ok((secret, policy)) => match policy {
                RefreshPolicy::Rotate => self.rotate(face, &secret, input, now).await.map(|(pair, how)| (Refreshed::Pair(pair), how)),
                RefreshPolicy::Reuse => {
                    self.reissue_access(face, &secret, input, now).await.map(|a| (Refreshed::Access(a), RefreshOutcome::AccessOnly))
                }
            },
            Err(e) => Err(e),
        };
        let outcome = match &result {
            Ok((_, how)) => *how,
            Err(DomainError::Auth(AuthError::TokenReused)) => RefreshOutcome::ReuseDetected,
            Err(_) => RefreshOutcome::Refused,
        };
        self.emit(Event::Refresh { face: &face.name, outcome });
        result.map(|(r, _)| r)
    }

    /// The policy a refresh token lives by: that of the face that issued it, wherever it is
    /// presented. Faces that share an audience accept each other's refresh tokens and may
    /// refresh differently; a token rotated at one must not live on at a sibling that reuses.
    /// The store is read only when the face's peers refresh differently from it.
    async fn policy_of(&self, face: &Face, secret: &RefreshSecret) -> Result<RefreshPolicy, DomainError> {
        let peers = self.faces.peers_of(face);
        if peers.iter().all(|p| self.faces.get(p).is_none_or(|f| f.refresh == face.refresh)) {
            return Ok(face.refresh);
        }
        Ok(match self.store.refresh_by_hash(self.secret_hash(secret.as_bytes())).await? {
            Some((_, session)) => self.faces.get(&session.face).map_or(face.refresh, |f| f.refresh),
            None => face.refresh,
        })
    }

    async fn rotate(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        input: RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<(IssuedPair, RefreshOutcome), DomainError> {
        let bound_access = match input.bound_access {
            Some(raw) => {
                let view = face.format.read_access(&self.keyring, raw, None)?;
                if view.audience.as_deref() != Some(face.audience.as_str()) {
                    return Err(AuthError::WrongAudience.into());
                }
                Some(view.jti)
            }
            None => None,
        };
        let secret = RefreshSecret::generate_len(face.format.secret_len())?;
        let child = self.prepare_refresh(&secret)?;
        let peers = self.faces.peers_of(face);
        let req = RotateRequest {
            presented: self.secret_hash(presented.as_bytes()),
            presenting_client: input.client,
            now,
            grace: face.grace,
            child,
            bound_access,
            faces: Some(&peers),
            request: &input.request,
            rules: &face.risk,
        };
        match self.store.rotate(req).await? {
            RotateOutcome::Rotated { session, child, signals } => {
                tracing::info!(session_id = %session.id, "refresh token rotated");
                self.report(face, &session, &signals, now);
                self.pair(face, &session, &child, secret, now).map(|p| (p, RefreshOutcome::Rotated))
            }
            RotateOutcome::Reissued { session, child, signals } => {
                tracing::info!(session_id = %session.id, "parent presented again within the grace window; same child returned");
                self.report(face, &session, &signals, now);
                let sealed =
                    child.sealed_secret.as_deref().ok_or_else(|| DomainError::Internal("grace child has no sealed secret".into()))?;
                let bytes = self.sealer.open(sealed, &child.hash.0)?;
                let secret = RefreshSecret::from_bytes(bytes)
                    .ok_or_else(|| DomainError::Internal("sealed refresh secret has the wrong length".into()))?;
                if !self.secret_hash(secret.as_bytes()).ct_eq(&child.hash) {
                    return Err(DomainError::Internal("sealed refresh secret does not match its hash".into()));
                }
                self.pair(face, &session, &child, secret, now).map(|p| (p, RefreshOutcome::ReissuedInGrace))
            }
            RotateOutcome::Refused { refusal, session, revoked } => {
                for id in &revoked {
                    self.revocations.note_revoked(*id, now);
                }
                if !revoked.is_empty() {
                    let reason = match refusal {
                        crate::RefreshRefusal::Reused => "reuse_detected",
                        _ => "risk",
                    };
                    self.emit(Event::Revoked { reason, sessions: revoked.len() as u64 });
                }
                match (refusal, session) {
                    (crate::RefreshRefusal::Reused, Some(sid)) => {
                        tracing::warn!(session_id = %sid, "refresh token reuse detected; session revoked")
                    }
                    (crate::RefreshRefusal::RiskDenied(c) | crate::RefreshRefusal::RiskRevoked(c), Some(sid)) => {
                        tracing::warn!(session_id = %sid, condition = c.as_str(), revoked = revoked.len(), "a risk rule refused a refresh")
                    }
                    _ => {}
                }
                Err(AuthError::from(refusal).into())
            }
        }
    }

    /// `reuse`: the refresh token is checked, not consumed; a new access token of its session.
    async fn reissue_access(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        input: RefreshInput<'_>,
        now: OffsetDateTime,
    ) -> Result<IssuedAccess, DomainError> {
        let (_, session, _) = self.live_refresh(face, presented, input.client, now).await?;
        let signals = assess(&face.risk, session.ip.as_deref(), session.user_agent.as_deref(), &input.request);
        let strict = signals.iter().find(|s| s.action == strictest(&signals)).map(|s| s.condition);
        match (strictest(&signals), strict) {
            (RiskAction::Deny, Some(c)) => return Err(AuthError::RiskRefused { condition: c, revoked: false }.into()),
            (RiskAction::RevokeFamily, Some(c)) => {
                self.revoke_session(session.id, c.as_str(), now).await?;
                return Err(AuthError::RiskRefused { condition: c, revoked: true }.into());
            }
            (RiskAction::RevokeUser, Some(c)) => {
                self.revoke_all(session.user_id, None, c.as_str(), now).await?;
                return Err(AuthError::RiskRefused { condition: c, revoked: true }.into());
            }
            _ => self.report(face, &session, &signals, now),
        }
        let jti = Uuid::new_v4();
        let access_token = face.format.render_access(&self.keyring, &face.audience, &session, jti, now)?;
        Ok(IssuedAccess {
            access_token,
            access_jti: jti,
            expires_in: session.profile.access_ttl().whole_seconds(),
            session_id: session.id,
            user_id: session.user_id,
        })
    }

    fn report(&self, face: &Face, session: &Session, signals: &[RiskSignal], now: OffsetDateTime) {
        let notify: Vec<RiskSignal> = signals.iter().filter(|s| s.action == RiskAction::Notify).cloned().collect();
        if notify.is_empty() {
            return;
        }
        for s in &notify {
            tracing::warn!(session_id = %session.id, condition = s.condition.as_str(), "refresh-time risk signal");
        }
        if let Some(n) = &self.notifier {
            n.notify(&face.name, session, &notify, now);
        }
    }

    /// A refresh token that is live at this face: known, the newest of its family, unexpired,
    /// its session live and of the face's audience, its user active (and its client, when the
    /// face has clients). Nothing is written.
    async fn live_refresh(
        &self,
        face: &Face,
        presented: &RefreshSecret,
        client: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(RefreshRecord, Session, User), DomainError> {
        let hash = self.secret_hash(presented.as_bytes());
        let (record, session) = self.store.refresh_by_hash(hash).await?.ok_or(AuthError::TokenInvalid)?;
        if !self.faces.peers_of(face).contains(&session.face) {
            return Err(AuthError::WrongAudience.into());
        }
        let user = self.store.user_by_id(session.user_id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        if session.is_revoked() || record.rotated_at.is_some() {
            return Err(AuthError::TokenRevoked.into());
        }
        if client.is_some() && session.client_id.as_deref() != client {
            return Err(AuthError::WrongClient.into());
        }
        if record.expires_at <= now || session.expires_at <= now {
            return Err(AuthError::TokenExpired.into());
        }
        Ok((record, session, user))
    }

    /// Checks a refresh token of a face without using it (simplejwt's verify).
    pub async fn check_refresh(
        &self,
        face: &Face,
        presented: &str,
        now: OffsetDateTime,
    ) -> Result<(RefreshRecord, Session, User), DomainError> {
        let secret = self.presented_refresh(face, presented, now).await?;
        self.live_refresh(face, &secret, None, now).await
    }

    /// Logout with a refresh token (simplejwt's blacklist, flask's logout): the token must be
    /// live at this face; its session ends.
    pub async fn logout_refresh(&self, face: &Face, presented: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        let (_, session, _) = self.check_refresh(face, presented, now).await?;
        self.revoke_session(session.id, "logout", now).await
    }

    /// Revokes the session a refresh token of the face belongs to. Unknown tokens, tokens of
    /// another client and of another audience are not an error (RFC 7009): the answer is the
    /// same whether or not the token existed, and nothing changes.
    #[tracing::instrument(skip_all, fields(face = %face.name))]
    pub async fn revoke_refresh(&self, face: &Face, presented: &str, client: Option<&str>, now: OffsetDateTime) -> Result<(), DomainError> {
        let Ok(secret) = self.presented_refresh(face, presented, now).await else { return Ok(()) };
        let hash = self.secret_hash(secret.as_bytes());
        if let Some((_, session)) = self.store.refresh_by_hash(hash).await?
            && self.faces.peers_of(face).contains(&session.face)
            && (client.is_none() || session.client_id.as_deref() == client)
        {
            self.revoke_session(session.id, "revoked", now).await?;
        }
        Ok(())
    }

    /// RFC 7009 at a face: a refresh token ends its session, and so does an access token of
    /// the face. Tokens of other clients or faces, unknown tokens and garbage change nothing
    /// and are not an error: the answer must not tell them apart.
    pub async fn revoke_token(&self, face: &Face, raw: &str, client_id: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if let Ok(ctx) = self.resolve_access(face, raw, now) {
            if ctx.client_id.as_deref() == Some(client_id) {
                self.revoke_session(ctx.session_id, "revoked", now).await?;
            }
            return Ok(());
        }
        self.revoke_refresh(face, raw, Some(client_id), now).await
    }

    #[tracing::instrument(skip_all, fields(session_id = %id))]
    pub async fn revoke_session(&self, id: SessionId, reason: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.store.revoke_session(id, reason, now).await? {
            tracing::info!(reason, "session revoked");
            self.emit(Event::Revoked { reason, sessions: 1 });
        }
        self.revocations.note_revoked(id, now);
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(user_id = %user))]
    pub async fn revoke_all(
        &self,
        user: UserId,
        except: Option<SessionId>,
        reason: &str,
        now: OffsetDateTime,
    ) -> Result<usize, DomainError> {
        let ids = self.store.revoke_user_sessions(user, except, reason, now).await?;
        self.note_revoked_all(&ids, reason, now);
        tracing::info!(count = ids.len(), reason, "sessions revoked");
        Ok(ids.len())
    }

    /// Every session of the user an external identity is linked to (Medods' `/deleteall`); none
    /// when the identity is unknown.
    pub async fn revoke_identity(&self, provider: &str, subject: &str, reason: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        match self.store.user_by_identity(provider, subject).await? {
            Some(u) => self.revoke_all(u.id, None, reason, now).await,
            None => Ok(0),
        }
    }

    /// drf-social-oauth2's `invalidate-sessions`: every session of the user with that client.
    pub async fn revoke_client_sessions(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        let ids = self.store.revoke_client_sessions(user, client_id, "invalidate_sessions", now).await?;
        for id in &ids {
            self.revocations.note_revoked(*id, now);
        }
        Ok(ids.len())
    }

    /// drf-social-oauth2's `invalidate-refresh-tokens`: the refresh tokens only.
    pub async fn expire_client_refresh_tokens(&self, user: UserId, client_id: &str, now: OffsetDateTime) -> Result<u64, DomainError> {
        Ok(self.store.expire_client_refresh_tokens(user, client_id, now).await?)
    }

    pub async fn logout(&self, ctx: &AccessContext, scope: LogoutScope, now: OffsetDateTime) -> Result<(), DomainError> {
        match scope {
            LogoutScope::Local => self.revoke_session(ctx.session_id, "logout", now).await,
            LogoutScope::Global => self.revoke_all(ctx.user_id, None, "logout_global", now).await.map(drop),
            LogoutScope::Others => self.revoke_all(ctx.user_id, Some(ctx.session_id), "logout_others", now).await.map(drop),
        }
    }

    /// Blocks or unblocks a user; blocking revokes every session at once.
    pub async fn set_user_status(&self, user: UserId, status: UserStatus, now: OffsetDateTime) -> Result<(), DomainError> {
        self.forget_user(user);
        let ids = self.store.set_user_status(user, status, now).await?;
        self.note_revoked_all(&ids, "user blocked", now);
        Ok(())
    }

    /// An administrator sets a user's password (the policy applies); every session ends.
    /// Returns how many ended.
    pub async fn set_password(&self, user: UserId, password: String, now: OffsetDateTime) -> Result<usize, DomainError> {
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        if !self.store.set_password(user, &hash, now).await? {
            return Err(DomainError::NotFound("user"));
        }
        self.forget_user(user);
        let ended = self.revoke_all(user, None, "password_set_by_admin", now).await?;
        self.audit("password_set", Some(user.0), serde_json::json!({"sessions_ended": ended}), now).await;
        if let Some(n) = &self.notifier
            && let Ok(Some(u)) = self.store.user_by_id(user).await
        {
            n.password_changed(&u, true, now);
        }
        Ok(ended)
    }

    /// Deletes a user (see [`crate::ports::UserRepository::delete_user`]); every session ends.
    /// Returns how many ended.
    pub async fn delete_user(&self, user: UserId, now: OffsetDateTime) -> Result<usize, DomainError> {
        self.forget_user(user);
        let ids = self.store.delete_user(user, now).await.map_err(|e| match e {
            crate::RepoError::NotFound => DomainError::NotFound("user"),
            other => other.into(),
        })?;
        self.note_revoked_all(&ids, "user deleted", now);
        Ok(ids.len())
    }

    /// Forgets the copy of a client `authenticate_client` keeps (every copy: `None`), so that
    /// the next request reads it again: it was deleted or changed elsewhere.
    pub fn forget_client(&self, client_id: Option<&str>) {
        match client_id {
            Some(id) => {
                self.clients.remove(id);
            }
            None => self.clients.clear(),
        }
    }

    /// Deletes an OAuth client; its sessions end. Returns how many ended. The other instances
    /// forget it when the store announces it (Postgres), or when a login for it meets its absence.
    pub async fn delete_client(&self, client_id: &str, now: OffsetDateTime) -> Result<usize, DomainError> {
        self.forget_client(Some(client_id));
        let ids = self.store.delete_client(client_id, now).await.map_err(|e| match e {
            crate::RepoError::NotFound => DomainError::NotFound("client"),
            other => other.into(),
        })?;
        self.note_revoked_all(&ids, "client deleted", now);
        self.audit("client_deleted", None, serde_json::json!({"client_id": client_id, "sessions_ended": ids.len()}), now).await;
        Ok(ids.len())
    }

    /// Sessions the store has just revoked: refused at once by this instance (the others hear
    /// of it from the store), and counted.
    fn note_revoked_all(&self, ids: &[SessionId], reason: &str, now: OffsetDateTime) {
        if !ids.is_empty() {
            self.emit(Event::Revoked { reason, sessions: ids.len() as u64 });
        }
        for id in ids {
            self.revocations.note_revoked(*id, now);
        }
    }

    /// Drops a user from the active users `current_user` keeps, after a change to the user.
    fn forget_user(&self, user: UserId) {
        if let Ok(mut m) = self.active_users.lock() {
            m.remove(&user);
        }
    }

    /// Accepts an access token at a face: what [`Self::resolve_access`] checks, and for a
    /// legacy token its user (see [`Self::legacy_user`]). A native token's check has no I/O; a
    /// legacy token's reads its user, so that a block or deletion by any process counts at once.
    pub async fn accept_access(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, DomainError> {
        let ctx = self.resolve_any(face, token, now)?;
        if let Some(origin) = ctx.legacy {
            self.legacy_user(origin, ctx.user_id).await?;
        }
        Ok(ctx)
    }

    /// Accepts a Tessera access token at a face: signature and algorithm, type, times, audience
    /// (the face's own, or its group's), and a live session. A blocked user's sessions are
    /// revoked, so this covers the user too. No I/O: a signature check and an in-memory look-up.
    /// A legacy token is refused here (it fails closed): its user must be read, by
    /// [`Self::accept_access`].
    pub fn resolve_access(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, AuthError> {
        let ctx = self.resolve_any(face, token, now)?;
        if ctx.legacy.is_some() {
            return Err(AuthError::UnknownUser);
        }
        Ok(ctx)
    }

    /// [`Self::resolve_access`], legacy tokens read but their user not checked.
    fn resolve_any(&self, face: &Face, token: &str, now: OffsetDateTime) -> Result<AccessContext, AuthError> {
        if let Some(legacy) = face.format.read_legacy(token, TokenKind::Access, now) {
            let t = legacy?;
            return Ok(AccessContext {
                user_id: t.user_id,
                session_id: SessionId(t.jti),
                jti: t.jti,
                client_id: None,
                expires_at: t.expires_at.unix_timestamp(),
                legacy: Some(t.origin),
            });
        }
        let view = face.format.read_access(&self.keyring, token, Some(now))?;
        if view.audience.as_deref() != Some(face.audience.as_str()) {
            return Err(AuthError::WrongAudience);
        }
        if self.revocations.is_revoked(view.session_id) {
            return Err(AuthError::TokenRevoked);
        }
        Ok(AccessContext {
            user_id: view.user_id,
            session_id: view.session_id,
            jti: view.jti,
            client_id: view.client_id,
            expires_at: view.expires_at,
            legacy: None,
        })
    }

    /// The user an accepted access token speaks for, as stored now.
    ///
    /// Active users are kept in memory once read, so `/v1/me` and its kin answer without a
    /// database read, as verify does. Staying fresh needs nothing more: a block revokes every
    /// session of the user in the same transaction, and `resolve_access` refuses a revoked
    /// session before this is reached (on every instance: the revocation list hears of it); a
    /// block made here also drops the user from memory; blocked users are never kept; nothing
    /// else a token's caller sees changes under it.
    pub async fn current_user(&self, ctx: &AccessContext) -> Result<User, DomainError> {
        // a legacy token's user is read every time: no session of it hears of a block
        if let Some(origin) = ctx.legacy {
            return self.legacy_user(origin, ctx.user_id).await;
        }
        if let Some(user) = self.active_users.lock().ok().and_then(|m| m.get(&ctx.user_id).cloned()) {
            return Ok(user);
        }
        let user = self.store.user_by_id(ctx.user_id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        if let Ok(mut m) = self.active_users.lock() {
            if m.len() >= ACTIVE_USERS_KEPT {
                m.clear();
            }
            m.insert(user.id, user.clone());
        }
        Ok(user)
    }

    /// Authenticates an OAuth client. Public clients present no secret; confidential clients
    /// must present theirs. Every failure is the same error.
    pub async fn authenticate_client(&self, client_id: &str, secret: Option<&str>) -> Result<OAuthClient, DomainError> {
        // no stored client has an id that does not parse (a NUL, which Postgres refuses, among
        // others): such an id is unknown, and is never looked up
        if ClientId::parse(client_id).is_err() {
            return Err(AuthError::InvalidCredentials.into());
        }
        let client = match self.clients.get(client_id) {
            Some((read, client)) if read.elapsed() < CLIENT_FRESH => client,
            _ => {
                let client = self.store.client_by_id(client_id).await?.ok_or(AuthError::InvalidCredentials)?;
                self.clients.insert(client_id.to_owned(), (std::time::Instant::now(), client.clone()));
                client
            }
        };
        match (&client.secret_hash, secret) {
            // a public client has nothing to present; HTTP Basic with an empty password (what
            // Swagger UI's Authorize sends for one) presents nothing either
            (None, None) => Ok(client),
            (None, Some("")) => Ok(client),
            (Some(expected), Some(given)) if self.secret_hash(given.as_bytes()).ct_eq(expected) => Ok(client),
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// RFC 7662: what any face's access or refresh token is, when it is live (signature, type,
    /// times, its session not revoked, its user active); `None` for revoked, expired, unknown
    /// and malformed tokens alike. Reads the session, so a revocation by another instance
    /// counts at once. Reads only: a legacy refresh token is not adopted by being looked at, and
    /// a legacy token is reported as what it is (its deployment, no session).
    pub async fn introspect(&self, raw: &str, now: OffsetDateTime) -> Result<Option<Introspection>, DomainError> {
        for face in self.faces.iter() {
            let Ok(ctx) = self.resolve_any(face, raw, now) else { continue };
            if let Some(origin) = ctx.legacy {
                match self.legacy_user(origin, ctx.user_id).await {
                    Ok(_) => {}
                    Err(DomainError::Auth(_)) => return Ok(None),
                    Err(e) => return Err(e),
                }
                return Ok(Some(Introspection {
                    token_type: "access_token",
                    face: face.name.clone(),
                    audience: face.audience.clone(),
                    user_id: ctx.user_id,
                    session_id: None,
                    client_id: None,
                    expires_at: ctx.expires_at,
                    issued_at: None,
                    jti: Some(ctx.jti),
                    legacy: Some(origin),
                }));
            }
            let Some(session) = self.store.session(ctx.session_id).await? else { return Ok(None) };
            if session.is_revoked() || self.current_user(&ctx_for(&session, &ctx)).await.is_err() {
                return Ok(None);
            }
            let issued_at = ctx.expires_at - session.profile.access_ttl().whole_seconds();
            return Ok(Some(Introspection {
                token_type: "access_token",
                face: session.face,
                audience: face.audience.clone(),
                user_id: session.user_id,
                session_id: Some(session.id),
                client_id: session.client_id,
                expires_at: ctx.expires_at,
                issued_at: Some(issued_at),
                jti: Some(ctx.jti),
                legacy: None,
            }));
        }
        for face in self.faces.iter() {
            let secret = match face.format.read_legacy(raw, TokenKind::Refresh, now) {
                Some(Ok(token)) => {
                    let Some(secret) = token.refresh_secret() else { continue };
                    if self.store.refresh_by_hash(self.secret_hash(secret.as_bytes())).await?.is_none() {
                        // never used here: what the token itself says, if its user came over
                        match self.legacy_user(token.origin, token.user_id).await {
                            Ok(_) => {}
                            Err(DomainError::Auth(_)) => continue,
                            Err(e) => return Err(e),
                        }
                        let expires_at = token.expires_at.min(self.legacy_cap(&token));
                        if expires_at <= now {
                            continue;
                        }
                        return Ok(Some(Introspection {
                            token_type: "refresh_token",
                            face: face.name.clone(),
                            audience: face.audience.clone(),
                            user_id: token.user_id,
                            session_id: None,
                            client_id: None,
                            expires_at: expires_at.unix_timestamp(),
                            issued_at: Some(token.issued_at.unix_timestamp()),
                            jti: None,
                            legacy: Some(token.origin),
                        }));
                    }
                    secret
                }
                Some(Err(_)) => continue,
                None => match self.read_refresh(face, raw, now) {
                    Ok(secret) => secret,
                    Err(_) => continue,
                },
            };
            match self.live_refresh(face, &secret, None, now).await {
                Ok((record, session, _)) => {
                    return Ok(Some(Introspection {
                        token_type: "refresh_token",
                        face: session.face.clone(),
                        audience: face.audience.clone(),
                        user_id: session.user_id,
                        session_id: Some(session.id),
                        client_id: session.client_id.clone(),
                        expires_at: record.expires_at.unix_timestamp(),
                        issued_at: Some(record.issued_at.unix_timestamp()),
                        jti: None,
                        legacy: None,
                    }));
                }
                Err(DomainError::Auth(_)) => continue,
                Err(e) => return Err(e),
            }
        }
        Ok(None)
    }

    /// Forgets failed attempts older than the lockout's reset time, and the addresses an owner
    /// logged in from once they have not been seen for 90 days.
    pub async fn sweep_login_attempts(&self, now: OffsetDateTime) -> Result<u64, DomainError> {
        let keep = Duration::seconds(i64::from(self.settings.lockout.reset_seconds)).max(self.settings.attempts_retention);
        Ok(self.store.prune_login_attempts(now - keep).await?)
    }

    /// Whether a failed login from `address` is the first of its window, to be audited in full.
    /// The others are counted (with up to ten of the accounts they named) and audited together
    /// by [`Self::flush_failed_logins`] once the window has passed: a spray from one network
    /// writes at most two audit events a window. Past 10,000 networks at once, every failure is
    /// audited on its own (memory stays bounded; the per-address rate still bounds the writes).
    fn first_failure_in_window(&self, address: &str, account: &str, now: OffsetDateTime) -> bool {
        let window = self.settings.failed_login_window;
        if window <= Duration::ZERO {
            return true;
        }
        let Ok(mut f) = self.failed_logins.lock() else { return true };
        let full = f.open.len() >= MAX_FAILURE_WINDOWS;
        match f.open.get_mut(address) {
            Some(w) if now - w.started < window => {
                w.more += 1;
                w.last = now;
                if w.accounts.len() < 10 && !w.accounts.iter().any(|a| a == account) {
                    w.accounts.push(account.to_owned());
                }
                false
            }
            // the window has passed: it waits for the sweep, and this failure opens the next one
            Some(w) => {
                let passed = std::mem::replace(w, FailureWindow::new(now));
                if passed.more > 0 && f.closed.len() < MAX_FAILURE_WINDOWS {
                    f.closed.push((address.to_owned(), passed));
                }
                true
            }
            None if full => true,
            None => {
                f.open.insert(address.to_owned(), FailureWindow::new(now));
                true
            }
        }
    }

    /// Audits the failed logins counted in windows that have passed (one `login_failures` event
    /// per address network and window), and forgets them. Returns how many events it wrote.
    pub async fn flush_failed_logins(&self, now: OffsetDateTime) -> usize {
        let window = self.settings.failed_login_window;
        let done: Vec<(String, FailureWindow)> = match self.failed_logins.lock() {
            Ok(mut f) => {
                let passed: Vec<String> = f.open.iter().filter(|(_, w)| now - w.started >= window).map(|(k, _)| k.clone()).collect();
                let mut done = std::mem::take(&mut f.closed);
                done.extend(passed.into_iter().filter_map(|k| f.open.remove(&k).map(|w| (k, w))));
                done
            }
            Err(_) => vec![],
        };
        let mut written = 0;
        for (address, w) in done.into_iter().filter(|(_, w)| w.more > 0) {
            let detail = serde_json::json!({"address": address, "failures": w.more, "accounts": w.accounts,
                "from": w.started.unix_timestamp(), "to": w.last.unix_timestamp()});
            self.audit("login_failures", None, detail, now).await;
            written += 1;
        }
        written
    }

    /// Drops the sealed secret of every refresh token whose grace window (the longest of any
    /// face) has passed: a secret is kept in the database only while it may be handed out again.
    pub async fn sweep_sealed_secrets(&self, now: OffsetDateTime) -> Result<u64, DomainError> {
        let grace = self.faces.iter().map(|f| f.grace).max().unwrap_or(Duration::ZERO);
        Ok(self.store.drop_sealed_secrets(now - grace - Duration::seconds(1)).await?)
    }

    /// Whether an OAuth client of that id exists (drf-social-oauth2 names a missing one apart).
    pub async fn client_exists(&self, client_id: &str) -> Result<bool, DomainError> {
        if ClientId::parse(client_id).is_err() {
            return Ok(false);
        }
        Ok(self.store.client_by_id(client_id).await?.is_some())
    }

    fn prepare_refresh(&self, secret: &RefreshSecret) -> Result<NewRefresh, DomainError> {
        let hash = self.secret_hash(secret.as_bytes());
        let sealed_secret = self.sealer.seal(secret.as_bytes(), &hash.0)?;
        Ok(NewRefresh { hash, sealed_secret, access_jti: Uuid::new_v4() })
    }

    fn pair(
        &self,
        face: &Face,
        session: &Session,
        record: &RefreshRecord,
        secret: RefreshSecret,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let access_token = face.format.render_access(&self.keyring, &face.audience, session, record.access_jti, record.issued_at)?;
        let refresh_token = face.format.render_refresh(&self.keyring, &face.audience, session, record, &secret)?;
        let exp = record.issued_at.unix_timestamp() + session.profile.access_ttl().whole_seconds();
        Ok(IssuedPair {
            access_token,
            access_jti: record.access_jti,
            refresh_token,
            refresh_secret: secret,
            expires_in: (exp - now.unix_timestamp()).max(0),
            session_id: session.id,
            user_id: session.user_id,
            refresh_expires_at: record.expires_at,
        })
    }

    /// The local user an external identity is linked to, created on first sight.
    pub async fn user_for_identity(&self, provider: &str, subject: &str, now: OffsetDateTime) -> Result<User, DomainError> {
        if let Some(u) = self.store.user_by_identity(provider, subject).await? {
            return Ok(u);
        }
        // A reserved-domain placeholder: the user has no e-mail of its own (RFC 2606 .invalid).
        let tag = self.secret_hash(format!("{provider}\0{subject}").as_bytes());
        let local: String = tag.0[..10].iter().map(|b| format!("{b:02x}")).collect();
        let email = Email::parse(&format!("{provider}-{local}@identities.invalid"))?;
        Ok(self.store.create_user_with_identity(provider, subject, &email, now).await?)
    }

    /// The local user of an external identity provider's subject, created on first sight with
    /// the provider's e-mail when that e-mail is free. An existing account with the same
    /// e-mail is not linked automatically: whoever controls the provider would take it over.
    pub async fn user_for_external_identity(
        &self,
        provider: &str,
        subject: &str,
        email: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<User, DomainError> {
        if let Some(u) = self.store.user_by_identity(provider, subject).await? {
            return Ok(u);
        }
        if let Some(e) = email.and_then(|e| Email::parse(e).ok()).filter(|e| !e.is_reserved()) {
            match self.store.create_user_with_identity(provider, subject, &e, now).await {
                Ok(u) => return Ok(u),
                Err(crate::RepoError::Conflict("users_email_key")) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.user_for_identity(provider, subject, now).await
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
