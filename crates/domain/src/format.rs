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
    /// The key the token is bound to (DPoP, RFC 9449 §6.1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// A token's confirmation claim (RFC 7800): the thumbprint of the key it is bound to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl TimedClaims for AccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// The claims of a client's own access token (`client_credentials`), RFC 9068's profile: no
/// user, so `sub` is the client's id, and no session (`sid`) nor `token_type`, so that no check
/// of a user's token accepts it; and no user's token reads as one (unknown claims are refused).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ClientAccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub client_id: String,
    /// Space-separated, as RFC 6749 writes scopes; absent when none was granted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// The key the token is bound to (DPoP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl TimedClaims for ClientAccessClaims {
    fn exp(&self) -> i64 {
        self.exp
    }
}

/// The claims of an exchanged token (RFC 8693): a user's (`sub`) for another audience, of the
/// subject's session (`sid`), obtained by a client (`client_id`), maybe for an actor (`act`).
/// No `token_type`, and unknown claims refused, so that neither a user's nor a client's token
/// reads as one, nor one as theirs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ExchangeClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub sid: Uuid,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

/// RFC 8693 §4.1: who acts for the subject.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Actor {
    pub sub: String,
}

impl TimedClaims for ExchangeClaims {
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
    /// `cnf.jkt`: the key the token is bound to (DPoP).
    pub dpop_jkt: Option<String>,
}

/// What a face's format reads off a refresh token: the secret whose keyed hash names the stored
/// record, and the audience when the token carries one (JWT refresh tokens).
#[derive(Debug)]
pub struct RefreshView {
    pub secret: RefreshSecret,
    pub audience: Option<String>,
}

/// How a face writes and reads its tokens. Rendering need not be deterministic: a rotation's
/// answer is sealed with its record, and a retry within the grace window gets those bytes back
/// (see [`crate::RefreshRecord::sealed_pair`]).
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
    /// A client's own access token (`client_credentials`), signed as the face signs its access
    /// tokens, with its issuer. Only the native format writes them.
    fn render_client_access(&self, _keyring: &Keyring, _claims: ClientAccessClaims) -> Result<String, DomainError> {
        Err(DomainError::Internal("this API issues no client tokens".into()))
    }
    /// Reads a client's own access token: signature, algorithm, issuer and times.
    fn read_client_access(&self, _keyring: &Keyring, _token: &str, _now: OffsetDateTime) -> Result<ClientAccessClaims, AuthError> {
        Err(AuthError::WrongTokenType)
    }
    /// An exchanged token (RFC 8693), signed as the face signs its access tokens, with its
    /// issuer. Only the native format writes them.
    fn render_exchanged(&self, _keyring: &Keyring, _claims: ExchangeClaims) -> Result<String, DomainError> {
        Err(DomainError::Internal("this API issues no exchanged tokens".into()))
    }
    /// Reads an exchanged token: signature, algorithm, issuer and times.
    fn read_exchanged(&self, _keyring: &Keyring, _token: &str, _now: OffsetDateTime) -> Result<ExchangeClaims, AuthError> {
        Err(AuthError::WrongTokenType)
    }
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
    /// Issuers whose tokens are still read (the one before a change), beside [`Self::issuer`].
    pub accepted_issuers: Vec<String>,
    pub alg: Algorithm,
}

impl NativeFormat {
    fn accepts(&self, iss: &str) -> bool {
        iss == self.issuer || self.accepted_issuers.iter().any(|a| a == iss)
    }
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
            cnf: session.dpop_jkt.clone().map(|jkt| Confirmation { jkt }),
        };
        keyring.sign(self.alg, "at+jwt", &claims)
    }

    fn render_refresh(&self, _: &Keyring, _: &str, _: &Session, _: &RefreshRecord, secret: &RefreshSecret) -> Result<String, DomainError> {
        Ok(secret.encode(crate::secret::SecretEncoding::UrlSafe))
    }

    fn render_client_access(&self, keyring: &Keyring, claims: ClientAccessClaims) -> Result<String, DomainError> {
        keyring.sign(self.alg, "at+jwt", &ClientAccessClaims { iss: self.issuer.clone(), ..claims })
    }

    fn render_exchanged(&self, keyring: &Keyring, claims: ExchangeClaims) -> Result<String, DomainError> {
        keyring.sign(self.alg, "at+jwt", &ExchangeClaims { iss: self.issuer.clone(), ..claims })
    }

    fn read_exchanged(&self, keyring: &Keyring, token: &str, now: OffsetDateTime) -> Result<ExchangeClaims, AuthError> {
        let claims: ExchangeClaims = keyring.verify_at(token, &[self.alg], Some(now))?;
        if !self.accepts(&claims.iss) {
            return Err(AuthError::WrongTokenType);
        }
        Ok(claims)
    }

    fn read_client_access(&self, keyring: &Keyring, token: &str, now: OffsetDateTime) -> Result<ClientAccessClaims, AuthError> {
        let claims: ClientAccessClaims = keyring.verify_at(token, &[self.alg], Some(now))?;
        if !self.accepts(&claims.iss) || claims.sub != claims.client_id {
            return Err(AuthError::WrongTokenType);
        }
        Ok(claims)
    }

    fn read_access(&self, keyring: &Keyring, token: &str, now: Option<OffsetDateTime>) -> Result<AccessView, AuthError> {
        let claims: AccessClaims = keyring.verify_at(token, &[self.alg], now)?;
        if claims.token_type != "access" || !self.accepts(&claims.iss) {
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
            dpop_jkt: claims.cnf.map(|c| c.jkt),
        })
    }

    fn read_refresh(&self, _: &Keyring, token: &str, _: OffsetDateTime) -> Result<RefreshView, AuthError> {
        let secret = RefreshSecret::parse(token, crate::secret::SecretEncoding::UrlSafe).ok_or(AuthError::TokenInvalid)?;
        Ok(RefreshView { secret, audience: None })
    }
}
