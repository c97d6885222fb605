//! The use-cases: register, log in, refresh, revoke one, revoke all, resolve an access token.
//! Written against the ports; every instant is a parameter.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};
use uuid::Uuid;

use crate::keys::TimedClaims;
use crate::ports::{NewRefresh, PasswordHasher, RevocationList, RotateOutcome, RotateRequest, Store};
use crate::rotation::{RefreshRecord, Session, SessionId, refresh_expiry};
use crate::secret::{KeyedHasher, RefreshSecret, Sealer};
use crate::{
    Algorithm, AuthError, DomainError, Email, Keyring, OAuthClient, Password, PasswordPolicy, TokenHash, TokenProfile, User, UserId,
    UserStatus,
};

/// Settings of the use-cases, from configuration.
#[derive(Debug, Clone)]
pub struct TokenSettings {
    /// How long after a rotation the parent may be presented again and get the same child.
    pub refresh_grace: Duration,
    /// No session outlives this, however often it is refreshed.
    pub max_session_lifetime: Duration,
    /// `iss` of native access tokens.
    pub issuer: String,
    /// The algorithm native access tokens are signed with.
    pub access_alg: Algorithm,
    pub password_policy: PasswordPolicy,
}

impl Default for TokenSettings {
    fn default() -> Self {
        Self {
            refresh_grace: Duration::seconds(5),
            max_session_lifetime: Duration::days(365),
            issuer: "tessera".into(),
            access_alg: Algorithm::HS256,
            password_policy: PasswordPolicy::default(),
        }
    }
}

/// The claims of a native access token (RFC 9068 names where they exist).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
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

/// The two tokens of a pair, as a face writes them.
#[derive(Debug, Clone)]
pub struct RenderedPair {
    pub access_token: String,
    pub refresh_token: String,
}

/// How a face writes a token pair. `render` must be a pure function of its inputs: within the
/// grace window the stored record is rendered again and must give the very tokens issued the
/// first time.
pub trait TokenFormat: Send + Sync {
    /// Bytes of a new refresh secret.
    fn secret_len(&self) -> usize {
        RefreshSecret::OPAQUE_LEN
    }
    /// The face's own grace window, when it differs from the configured one (a face whose
    /// clients expect every second use to fail says zero).
    fn refresh_grace(&self) -> Option<Duration> {
        None
    }
    fn render(
        &self,
        keyring: &Keyring,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<RenderedPair, DomainError>;
}

/// The native face: an RFC 9068-style access JWT and an opaque base64url refresh token.
#[derive(Debug, Clone)]
pub struct NativeFormat {
    pub issuer: String,
    pub alg: Algorithm,
}

impl TokenFormat for NativeFormat {
    fn render(
        &self,
        keyring: &Keyring,
        session: &Session,
        record: &RefreshRecord,
        secret: &RefreshSecret,
    ) -> Result<RenderedPair, DomainError> {
        let iat = record.issued_at.unix_timestamp();
        let claims = AccessClaims {
            iss: self.issuer.clone(),
            sub: session.user_id.0.to_string(),
            sid: session.id.0,
            jti: record.access_jti,
            iat,
            exp: iat + session.profile.access_ttl().whole_seconds(),
            token_type: "access".into(),
            client_id: session.client_id.clone(),
        };
        Ok(RenderedPair {
            access_token: keyring.sign(self.alg, "at+jwt", &claims)?,
            refresh_token: secret.encode(crate::secret::SecretEncoding::UrlSafe),
        })
    }
}

/// Where a login comes from.
#[derive(Debug, Clone)]
pub struct LoginOrigin<'a> {
    pub client_id: Option<&'a str>,
    pub face: &'a str,
    pub profile: &'a TokenProfile,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The face's subject data for the session (see [`Session::subject`]).
    pub subject: Option<String>,
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
    keyring: Keyring,
    refresh_hasher: KeyedHasher,
    sealer: Sealer,
    settings: TokenSettings,
}

impl std::fmt::Debug for TokenService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenService").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl TokenService {
    pub fn new(
        store: Arc<dyn Store>,
        hasher: Arc<dyn PasswordHasher>,
        revocations: Arc<dyn RevocationList>,
        keyring: Keyring,
        refresh_hasher: KeyedHasher,
        sealer: Sealer,
        settings: TokenSettings,
    ) -> Self {
        Self { store, hasher, revocations, keyring, refresh_hasher, sealer, settings }
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }
    pub fn settings(&self) -> &TokenSettings {
        &self.settings
    }
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The keyed hash under which a refresh secret or client secret is stored.
    pub fn secret_hash(&self, bytes: &[u8]) -> TokenHash {
        self.refresh_hasher.hash(bytes)
    }

    #[tracing::instrument(skip_all)]
    pub async fn register(&self, email: &str, password: String, now: OffsetDateTime) -> Result<User, DomainError> {
        let email = Email::parse(email)?;
        let password = self.settings.password_policy.new_password(password)?;
        let hash = self.hasher.hash(password).await?;
        let user = self.store.create_user(&email, Some(&hash), now).await?;
        tracing::info!(user_id = %user.id, "user registered");
        Ok(user)
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
        let ok = self.hasher.verify(password, hash).await?;
        match user {
            Some(u) if ok => {
                if u.status == UserStatus::Blocked {
                    return Err(AuthError::UserBlocked.into());
                }
                Ok(u)
            }
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    /// Password login: a new session and its first pair.
    #[tracing::instrument(skip_all, fields(face = origin.face))]
    pub async fn login_password(
        &self,
        email: &str,
        password: String,
        origin: LoginOrigin<'_>,
        format: &dyn TokenFormat,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let user = self.check_password(email, password).await?;
        self.open_session(&user, origin, format, now).await
    }

    /// Opens a session for a user already authenticated (by password, a trusted caller, or an
    /// external identity provider) and issues its first pair.
    #[tracing::instrument(skip_all, fields(user_id = %user.id, face = origin.face))]
    pub async fn open_session(
        &self,
        user: &User,
        origin: LoginOrigin<'_>,
        format: &dyn TokenFormat,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        let session = Session {
            id: SessionId(Uuid::now_v7()),
            user_id: user.id,
            client_id: origin.client_id.map(str::to_owned),
            face: origin.face.to_owned(),
            profile: origin.profile.clone(),
            created_at: now,
            expires_at: now + self.settings.max_session_lifetime.max(origin.profile.refresh_ttl()),
            last_refresh_at: None,
            ip: origin.ip,
            user_agent: origin.user_agent,
            revoked_at: None,
            revoked_reason: None,
            subject: origin.subject,
        };
        let secret = RefreshSecret::generate_len(format.secret_len())?;
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
        self.store.open_session(&session, &record).await?;
        tracing::info!(session_id = %session.id, "session opened");
        self.pair(format, &session, &record, secret, now)
    }

    /// Rotates a refresh token. `client` is the authenticated OAuth client, for faces that have
    /// them: a token issued to another client is refused.
    #[tracing::instrument(skip_all)]
    pub async fn refresh(
        &self,
        presented: &RefreshSecret,
        client: Option<&str>,
        bound_access: Option<Uuid>,
        format: &dyn TokenFormat,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let secret = RefreshSecret::generate_len(format.secret_len())?;
        let child = self.prepare_refresh(&secret)?;
        let req = RotateRequest {
            presented: self.secret_hash(presented.as_bytes()),
            presenting_client: client,
            now,
            grace: format.refresh_grace().unwrap_or(self.settings.refresh_grace),
            child,
            bound_access,
        };
        match self.store.rotate(req).await? {
            RotateOutcome::Rotated { session, child } => {
                tracing::info!(session_id = %session.id, "refresh token rotated");
                self.pair(format, &session, &child, secret, now)
            }
            RotateOutcome::Reissued { session, child } => {
                tracing::info!(session_id = %session.id, "parent presented again within the grace window; same child returned");
                let sealed =
                    child.sealed_secret.as_deref().ok_or_else(|| DomainError::Internal("grace child has no sealed secret".into()))?;
                let bytes = self.sealer.open(sealed, &child.hash.0)?;
                let secret = RefreshSecret::from_bytes(bytes)
                    .ok_or_else(|| DomainError::Internal("sealed refresh secret has the wrong length".into()))?;
                if !self.secret_hash(secret.as_bytes()).ct_eq(&child.hash) {
                    return Err(DomainError::Internal("sealed refresh secret does not match its hash".into()));
                }
                self.pair(format, &session, &child, secret, now)
            }
            RotateOutcome::Refused { refusal, session } => {
                if let (crate::RefreshRefusal::Reused, Some(sid)) = (refusal, session) {
                    tracing::warn!(session_id = %sid, "refresh token reuse detected; session revoked");
                    self.revocations.note_revoked(sid, now);
                }
                Err(AuthError::from(refusal).into())
            }
        }
    }

    /// Revokes the session a refresh token belongs to. Unknown tokens are not an error (RFC
    /// 7009): the answer is the same whether or not the token existed. A token of another client
    /// is left alone.
    #[tracing::instrument(skip_all)]
    pub async fn revoke_refresh(&self, presented: &RefreshSecret, client: Option<&str>, now: OffsetDateTime) -> Result<(), DomainError> {
        let hash = self.secret_hash(presented.as_bytes());
        if let Some((_, session)) = self.store.refresh_by_hash(hash).await?
            && (client.is_none() || session.client_id.as_deref() == client)
        {
            self.revoke_session(session.id, "revoked", now).await?;
        }
        Ok(())
    }

    /// RFC 7009 for tokens of the native format: a refresh token ends its session, and so does
    /// an access token of ours. Tokens of other clients, unknown tokens and garbage change
    /// nothing and are not an error: the answer must not tell them apart.
    pub async fn revoke_token(&self, raw: &str, client_id: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if let Some(secret) = RefreshSecret::parse(raw, crate::secret::SecretEncoding::UrlSafe) {
            return self.revoke_refresh(&secret, Some(client_id), now).await;
        }
        if let Ok(ctx) = self.resolve_access(raw, now)
            && ctx.client_id.as_deref() == Some(client_id)
        {
            self.revoke_session(ctx.session_id, "revoked", now).await?;
        }
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(session_id = %id))]
    pub async fn revoke_session(&self, id: SessionId, reason: &str, now: OffsetDateTime) -> Result<(), DomainError> {
        if self.store.revoke_session(id, reason, now).await? {
            tracing::info!(reason, "session revoked");
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
        for id in &ids {
            self.revocations.note_revoked(*id, now);
        }
        tracing::info!(count = ids.len(), reason, "sessions revoked");
        Ok(ids.len())
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
        let ids = self.store.set_user_status(user, status, now).await?;
        for id in ids {
            self.revocations.note_revoked(id, now);
        }
        Ok(())
    }

    /// Accepts a native access token: a signature check and an in-memory look-up, no I/O.
    pub fn resolve_access(&self, token: &str, now: OffsetDateTime) -> Result<AccessContext, AuthError> {
        let claims: AccessClaims = self.keyring.verify(token, &[self.settings.access_alg], now)?;
        if claims.token_type != "access" || claims.iss != self.settings.issuer {
            return Err(AuthError::WrongTokenType);
        }
        let user_id = claims.sub.parse::<i64>().map(UserId).map_err(|_| AuthError::TokenInvalid)?;
        let session_id = SessionId(claims.sid);
        if self.revocations.is_revoked(session_id) {
            return Err(AuthError::TokenRevoked);
        }
        Ok(AccessContext { user_id, session_id, jti: claims.jti, client_id: claims.client_id, expires_at: claims.exp })
    }

    /// Authenticates an OAuth client. Public clients present no secret; confidential clients
    /// must present theirs. Every failure is the same error.
    pub async fn authenticate_client(&self, client_id: &str, secret: Option<&str>) -> Result<OAuthClient, DomainError> {
        let client = self.store.client_by_id(client_id).await?.ok_or(AuthError::InvalidCredentials)?;
        match (&client.secret_hash, secret) {
            (None, None) => Ok(client),
            (Some(expected), Some(given)) if self.secret_hash(given.as_bytes()).ct_eq(expected) => Ok(client),
            _ => Err(AuthError::InvalidCredentials.into()),
        }
    }

    fn prepare_refresh(&self, secret: &RefreshSecret) -> Result<NewRefresh, DomainError> {
        let hash = self.secret_hash(secret.as_bytes());
        let sealed_secret = self.sealer.seal(secret.as_bytes(), &hash.0)?;
        Ok(NewRefresh { hash, sealed_secret, access_jti: Uuid::new_v4() })
    }

    fn pair(
        &self,
        format: &dyn TokenFormat,
        session: &Session,
        record: &RefreshRecord,
        secret: RefreshSecret,
        now: OffsetDateTime,
    ) -> Result<IssuedPair, DomainError> {
        let rendered = format.render(&self.keyring, session, record, &secret)?;
        let exp = record.issued_at.unix_timestamp() + session.profile.access_ttl().whole_seconds();
        Ok(IssuedPair {
            access_token: rendered.access_token,
            access_jti: record.access_jti,
            refresh_token: rendered.refresh_token,
            refresh_secret: secret,
            expires_in: (exp - now.unix_timestamp()).max(0),
            session_id: session.id,
            user_id: session.user_id,
            refresh_expires_at: record.expires_at,
        })
    }

    /// The format of the native face.
    pub fn native_format(&self) -> NativeFormat {
        NativeFormat { issuer: self.settings.issuer.clone(), alg: self.settings.access_alg }
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
        if let Some(e) = email.and_then(|e| Email::parse(e).ok()) {
            match self.store.create_user_with_identity(provider, subject, &e, now).await {
                Ok(u) => return Ok(u),
                Err(crate::RepoError::Conflict("users_email_key")) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.user_for_identity(provider, subject, now).await
    }

    /// Whether a session's access tokens must be refused (an in-memory look-up).
    pub fn is_revoked(&self, session: SessionId) -> bool {
        self.revocations.is_revoked(session)
    }

    /// Checks a refresh token without rotating it, for faces whose refresh keeps the refresh
    /// token (flask-jwt-extended): it must exist, be the newest of its family, be unexpired, and
    /// its session and user must be live.
    pub async fn check_refresh(
        &self,
        presented: &RefreshSecret,
        now: OffsetDateTime,
    ) -> Result<(RefreshRecord, Session, User), DomainError> {
        let hash = self.secret_hash(presented.as_bytes());
        let (record, session) = self.store.refresh_by_hash(hash).await?.ok_or(AuthError::TokenInvalid)?;
        let user = self.store.user_by_id(session.user_id).await?.ok_or(AuthError::UnknownUser)?;
        if user.status == UserStatus::Blocked {
            return Err(AuthError::UserBlocked.into());
        }
        if session.is_revoked() || record.rotated_at.is_some() {
            return Err(AuthError::TokenRevoked.into());
        }
        if record.expires_at <= now || session.expires_at <= now {
            return Err(AuthError::TokenExpired.into());
        }
        Ok((record, session, user))
    }
}

#[cfg(test)]
mod tests;
