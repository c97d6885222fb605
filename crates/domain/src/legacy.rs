//! Tokens minted by the original library a face replaces, with the original deployment's secret:
//! HMAC JWTs without a `kid`. A face configured with that secret reads them so that a migrated
//! deployment logs no one out; the use-cases then adopt a legacy refresh token into a Tessera
//! session at its first use, and Tessera's rules apply to it from there on.

use jsonwebtoken::DecodingKey;
use serde_json::{Map, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use crate::keys::MAX_TOKEN_BYTES;
use crate::secret::RefreshSecret;
use crate::{Algorithm, AuthError, UserId};

/// The deployment a Django face's legacy tokens come from (simplejwt's and djoser's), and the
/// users `tessera import django` carries over.
pub const ORIGIN_DJANGO: &str = "django";
/// The deployment flask-jwt-extended's legacy tokens come from, and the users `tessera import
/// flask` carries over.
pub const ORIGIN_FLASK: &str = "flask";

/// Which of a pair a token must be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    Access,
    Refresh,
}

/// The original deployment's HMAC secret (Django's `SECRET_KEY` or simplejwt's `SIGNING_KEY`,
/// flask's `JWT_SECRET_KEY`) and the algorithm the library was set to.
#[derive(Clone)]
pub struct LegacyKey {
    key: DecodingKey,
    alg: Algorithm,
    origin: &'static str,
}

impl std::fmt::Debug for LegacyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "LegacyKey({:?}, ..)", self.alg)
    }
}

impl LegacyKey {
    /// `None` unless `alg` is an HMAC algorithm: the originals' secrets are shared secrets.
    /// `origin` names the deployment the secret belongs to (`django`, `flask`): its tokens speak
    /// only for users imported from it.
    pub fn hmac(secret: &[u8], alg: Algorithm, origin: &'static str) -> Option<Self> {
        (!alg.is_asymmetric()).then(|| Self { key: DecodingKey::from_secret(secret), alg, origin })
    }

    /// The deployment whose secret this is.
    pub fn origin(&self) -> &'static str {
        self.origin
    }

    /// The claims of a legacy token, its signature and times checked against `now` (`exp`, and
    /// `nbf` when present, with no leeway). `None` when the token is not a legacy one: it names a
    /// key (`kid`), as every token Tessera signs does, or it is not a JWT at all.
    pub fn claims(&self, token: &str, now: OffsetDateTime) -> Option<Result<Map<String, Value>, AuthError>> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return None;
        }
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.kid.is_some() {
            return None;
        }
        Some(self.check(token, header.alg, now))
    }

    /// A legacy token of `kind`, as the original library writes it: its type in the claim
    /// `type_claim` (`access` or `refresh`), the user's id in the first of `user_claims` present.
    /// `None` when the token is not a legacy one (see [`Self::claims`]).
    pub fn read(
        &self,
        token: &str,
        kind: TokenKind,
        type_claim: &str,
        user_claims: &[&str],
        now: OffsetDateTime,
    ) -> Option<Result<LegacyToken, AuthError>> {
        let want = match kind {
            TokenKind::Access => "access",
            TokenKind::Refresh => "refresh",
        };
        Some(self.claims(token, now)?.and_then(|c| {
            if c.get(type_claim).and_then(Value::as_str) != Some(want) {
                return Err(AuthError::WrongTokenType);
            }
            LegacyToken::from_claims(&c, user_claims, self.origin)
        }))
    }

    fn check(&self, token: &str, alg: jsonwebtoken::Algorithm, now: OffsetDateTime) -> Result<Map<String, Value>, AuthError> {
        // Only the configured HMAC algorithm: `none` and every public-key algorithm are refused
        // before any signature is computed.
        if alg != self.alg.jwt() {
            return Err(AuthError::TokenInvalid);
        }
        let claims = jsonwebtoken::decode::<Map<String, Value>>(token, &self.key, &crate::keys::signature_only(self.alg))
            .map_err(|_| AuthError::TokenInvalid)?
            .claims;
        let now = now.unix_timestamp();
        let exp = claims.get("exp").and_then(Value::as_i64).ok_or(AuthError::TokenInvalid)?;
        if exp <= now {
            return Err(AuthError::TokenExpired);
        }
        if claims.get("nbf").and_then(Value::as_i64).is_some_and(|nbf| nbf > now) {
            return Err(AuthError::TokenInvalid);
        }
        Ok(claims)
    }
}

/// What a face reads off a legacy token it accepts.
#[derive(Debug)]
pub struct LegacyToken {
    /// The deployment that minted it (`django`, `flask`): the user id means a user of that
    /// deployment, and only a user imported from it answers to it.
    pub origin: &'static str,
    pub user_id: UserId,
    /// The token's `jti`, as a UUID (simplejwt writes `uuid4().hex`, flask a hyphenated UUID).
    pub jti: Uuid,
    pub issued_at: OffsetDateTime,
    pub expires_at: OffsetDateTime,
}

impl LegacyToken {
    /// Reads the claims every original library writes: `jti`, `iat`, `exp`, and the user's id in
    /// the first of `user_claims` present (an integer, or an integer written as a string).
    pub fn from_claims(claims: &Map<String, Value>, user_claims: &[&str], origin: &'static str) -> Result<Self, AuthError> {
        let user = user_claims.iter().find_map(|c| claims.get(*c)).ok_or(AuthError::TokenInvalid)?;
        let user_id = user.as_i64().or_else(|| user.as_str().and_then(|s| s.parse().ok())).ok_or(AuthError::TokenInvalid)?;
        let jti = claims.get("jti").and_then(Value::as_str).and_then(|j| Uuid::parse_str(j).ok()).ok_or(AuthError::TokenInvalid)?;
        let time = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_i64)
                .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
                .ok_or(AuthError::TokenInvalid)
        };
        Ok(Self { origin, user_id: UserId(user_id), jti, issued_at: time("iat")?, expires_at: time("exp")? })
    }

    /// The refresh secret a legacy refresh token stands for: its `jti`, the same 16 bytes as the
    /// `jti` of the refresh JWTs Tessera writes for these faces. Stored only as its keyed hash.
    pub fn refresh_secret(&self) -> Option<RefreshSecret> {
        RefreshSecret::from_bytes(self.jti.as_bytes().to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jsonwebtoken::{EncodingKey, Header};
    use serde_json::json;
    use time::macros::datetime;

    const NOW: OffsetDateTime = datetime!(2026-12-01 12:00 UTC);

    fn mint(secret: &[u8], header: Header, claims: Value) -> String {
        jsonwebtoken::encode(&header, &claims, &EncodingKey::from_secret(secret)).unwrap()
    }

    fn claims(exp: i64) -> Value {
        json!({"token_type": "access", "exp": exp, "iat": exp - 300, "jti": "73578a194f1f411a8399ca96273605bc", "user_id": 1})
    }

    #[test]
    fn a_token_of_the_secret_without_kid_is_read() {
        let key = LegacyKey::hmac(b"s3cret", Algorithm::HS256, "django").unwrap();
        let t = mint(b"s3cret", Header::default(), claims(NOW.unix_timestamp() + 60));
        let c = key.claims(&t, NOW).unwrap().unwrap();
        let tok = LegacyToken::from_claims(&c, &["user_id"], "django").unwrap();
        assert_eq!(tok.user_id, UserId(1));
        assert_eq!(tok.jti.simple().to_string(), "73578a194f1f411a8399ca96273605bc");
    }

    #[test]
    fn a_token_with_a_kid_is_not_legacy() {
        let key = LegacyKey::hmac(b"s3cret", Algorithm::HS256, "django").unwrap();
        let h = Header { kid: Some("k1".into()), ..Header::default() };
        assert!(key.claims(&mint(b"s3cret", h, claims(NOW.unix_timestamp() + 60)), NOW).is_none());
        assert!(key.claims("not a jwt", NOW).is_none());
    }

    #[test]
    fn another_secret_another_algorithm_and_expired_tokens_are_refused() {
        let key = LegacyKey::hmac(b"s3cret", Algorithm::HS256, "django").unwrap();
        let live = claims(NOW.unix_timestamp() + 60);
        assert_eq!(key.claims(&mint(b"other", Header::default(), live.clone()), NOW).unwrap().unwrap_err(), AuthError::TokenInvalid);
        let h512 = Header::new(jsonwebtoken::Algorithm::HS512);
        assert_eq!(key.claims(&mint(b"s3cret", h512, live), NOW).unwrap().unwrap_err(), AuthError::TokenInvalid);
        let dead = mint(b"s3cret", Header::default(), claims(NOW.unix_timestamp()));
        assert_eq!(key.claims(&dead, NOW).unwrap().unwrap_err(), AuthError::TokenExpired);
    }

    #[test]
    fn alg_none_is_refused() {
        let key = LegacyKey::hmac(b"s3cret", Algorithm::HS256, "django").unwrap();
        let b64 = |v: &Value| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, v.to_string());
        let t = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims(NOW.unix_timestamp() + 60)));
        assert!(!matches!(key.claims(&t, NOW), Some(Ok(_))));
    }

    #[test]
    fn only_hmac_algorithms_make_a_legacy_key() {
        assert!(LegacyKey::hmac(b"s", Algorithm::ES256, "django").is_none());
    }
}
