//! How each API writes and reads its tokens ([`TokenFormat`]), and the native API's format:
//! an RFC 9068-style access JWT and an opaque refresh token.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::TimedClaims;
use crate::legacy::{LegacyToken, TokenKind};
use crate::rotation::{RefreshRecord, Session, SessionId};
use crate::secret::RefreshSecret;
use crate::{Algorithm, AuthError, DomainError, Keyring, UserId};

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
