//! The keyring: signing keys with a `kid`, an algorithm pinned per key, and verification that
//! accepts a token only if its header names a known key and the algorithm that key was made for.
//! `alg: none` and algorithm confusion are impossible by construction: the algorithm used to
//! verify comes from our key, never from the token.

use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::{AuthError, DomainError};

/// Tokens longer than this are refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Signing algorithms. Only HMAC for now; the keyring is written so asymmetric keys (whose
/// public halves a JWKS endpoint can publish) slot in beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
}

impl Algorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "HS256" => Some(Algorithm::HS256),
            "HS384" => Some(Algorithm::HS384),
            "HS512" => Some(Algorithm::HS512),
            _ => None,
        }
    }

    /// Bytes of fresh key material: at least the hash output size (RFC 7518 §3.2).
    pub fn secret_len(self) -> usize {
        match self {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
        }
    }

    fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
        }
    }
}

/// `next` keys are published but not yet used to sign; `active` ones sign; `retired` ones only
/// verify tokens issued before they were retired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyState {
    Next,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Active => "active",
            KeyState::Retired => "retired",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "next" => Some(KeyState::Next),
            "active" => Some(KeyState::Active),
            "retired" => Some(KeyState::Retired),
            _ => None,
        }
    }
}

/// A signing key with its material in the clear: it lives only in memory; storage seals it.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub alg: Algorithm,
    pub state: KeyState,
    pub secret: Vec<u8>,
    pub created_at: OffsetDateTime,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).field("state", &self.state).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key; its `kid` is random too, so it reveals nothing about the material.
    pub fn generate(alg: Algorithm, now: OffsetDateTime) -> Result<Self, DomainError> {
        let mut secret = vec![0u8; alg.secret_len()];
        getrandom::fill(&mut secret).map_err(|e| DomainError::Internal(format!("the OS random generator failed: {e}")))?;
        let kid_bytes = crate::secret::random_bytes::<12>()?;
        let kid = kid_bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Ok(Self { kid, alg, state: KeyState::Active, secret, created_at: now })
    }
}

impl SigningKey {
    /// The stored form: material sealed under the server key, bound to its `kid`.
    pub fn seal(&self, sealer: &crate::Sealer) -> Result<crate::ports::StoredKey, DomainError> {
        Ok(crate::ports::StoredKey {
            kid: self.kid.clone(),
            alg: self.alg.as_str().to_owned(),
            state: self.state,
            sealed_secret: sealer.seal(&self.secret, self.kid.as_bytes())?,
            created_at: self.created_at,
        })
    }

    pub fn unseal(stored: &crate::ports::StoredKey, sealer: &crate::Sealer) -> Result<Self, DomainError> {
        let alg = Algorithm::parse(&stored.alg)
            .ok_or_else(|| DomainError::Internal(format!("key {}: unknown algorithm {}", stored.kid, stored.alg)))?;
        let secret = sealer.open(&stored.sealed_secret, stored.kid.as_bytes())?;
        Ok(Self { kid: stored.kid.clone(), alg, state: stored.state, secret, created_at: stored.created_at })
    }
}

struct LoadedKey {
    alg: Algorithm,
    state: KeyState,
    encoding: EncodingKey,
    decoding: DecodingKey,
}

/// Claims whose times the keyring checks against `now` itself (jsonwebtoken's own clock checks
/// are off, so that time stays a parameter).
pub trait TimedClaims {
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64> {
        None
    }
}

/// The set of keys of one deployment, cheap to clone and share.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: Arc<HashMap<String, LoadedKey>>,
    active: Arc<HashMap<Algorithm, String>>,
    leeway_seconds: i64,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("kids", &self.keys.keys().collect::<Vec<_>>()).finish()
    }
}

impl Keyring {
    /// Builds the ring; per algorithm the newest `active` key signs.
    pub fn new(keys: &[SigningKey], leeway_seconds: i64) -> Self {
        let mut map = HashMap::new();
        let mut active: HashMap<Algorithm, (OffsetDateTime, String)> = HashMap::new();
        for k in keys {
            map.insert(
                k.kid.clone(),
                LoadedKey {
                    alg: k.alg,
                    state: k.state,
                    encoding: EncodingKey::from_secret(&k.secret),
                    decoding: DecodingKey::from_secret(&k.secret),
                },
            );
            if k.state == KeyState::Active {
                let newer = active.get(&k.alg).is_none_or(|(at, _)| *at < k.created_at);
                if newer {
                    active.insert(k.alg, (k.created_at, k.kid.clone()));
                }
            }
        }
        Self {
            keys: Arc::new(map),
            active: Arc::new(active.into_iter().map(|(a, (_, kid))| (a, kid)).collect()),
            leeway_seconds: leeway_seconds.max(0),
        }
    }

    pub fn can_sign(&self, alg: Algorithm) -> bool {
        self.active.contains_key(&alg)
    }

    /// Signs `claims` with the active key for `alg`; the header carries `kid` and `typ`.
    pub fn sign<T: Serialize>(&self, alg: Algorithm, typ: &str, claims: &T) -> Result<String, DomainError> {
        let kid = self.active.get(&alg).ok_or(DomainError::NoSigningKey(alg.as_str()))?;
        let key = self.keys.get(kid).ok_or(DomainError::NoSigningKey(alg.as_str()))?;
        let mut header = Header::new(alg.jwt());
        header.typ = Some(typ.to_owned());
        header.kid = Some(kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding).map_err(|e| DomainError::Internal(format!("signing failed: {e}")))
    }

    /// Verifies signature, algorithm and times. `allowed` lists the algorithms the calling face
    /// accepts; a token signed by a key of another algorithm is invalid there.
    pub fn verify<T: DeserializeOwned + TimedClaims>(
        &self,
        token: &str,
        allowed: &[Algorithm],
        now: OffsetDateTime,
    ) -> Result<T, AuthError> {
        self.verify_inner(token, allowed, Some(now))
    }

    /// Signature and algorithm only, whatever the token's times: for a face that takes an
    /// expired access token as proof of which pair a refresh belongs to (Medods).
    pub fn verify_signature<T: DeserializeOwned + TimedClaims>(&self, token: &str, allowed: &[Algorithm]) -> Result<T, AuthError> {
        self.verify_inner(token, allowed, None)
    }

    fn verify_inner<T: DeserializeOwned + TimedClaims>(
        &self,
        token: &str,
        allowed: &[Algorithm],
        now: Option<OffsetDateTime>,
    ) -> Result<T, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
        let kid = header.kid.as_deref().ok_or(AuthError::TokenInvalid)?;
        let key = self.keys.get(kid).ok_or(AuthError::TokenInvalid)?;
        if header.alg != key.alg.jwt() || !allowed.contains(&key.alg) || key.state == KeyState::Next {
            return Err(AuthError::TokenInvalid);
        }
        let mut validation = Validation::new(key.alg.jwt());
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<T>(token, &key.decoding, &validation).map_err(|_| AuthError::TokenInvalid)?;
        let claims = data.claims;
        let Some(now) = now else { return Ok(claims) };
        let now = now.unix_timestamp();
        // No leeway by default: a token whose `exp` is now is expired.
        if claims.exp() + self.leeway_seconds <= now {
            return Err(AuthError::TokenExpired);
        }
        if let Some(nbf) = claims.nbf()
            && nbf > now + self.leeway_seconds
        {
            return Err(AuthError::TokenInvalid);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use time::macros::datetime;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct C {
        sub: String,
        exp: i64,
    }
    impl TimedClaims for C {
        fn exp(&self) -> i64 {
            self.exp
        }
    }

    const NOW: OffsetDateTime = datetime!(2026-01-01 00:00 UTC);

    fn ring() -> (Keyring, SigningKey) {
        let k = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
        (Keyring::new(std::slice::from_ref(&k), 0), k)
    }

    fn claims(exp_in: i64) -> C {
        C { sub: "1".into(), exp: NOW.unix_timestamp() + exp_in }
    }

    #[test]
    fn signed_tokens_carry_kid_and_verify() {
        let (r, k) = ring();
        let t = r.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        let h = jsonwebtoken::decode_header(&t).unwrap();
        assert_eq!(h.kid.as_deref(), Some(k.kid.as_str()));
        assert_eq!(r.verify::<C>(&t, &[Algorithm::HS256], NOW).unwrap(), claims(60));
    }

    #[test]
    fn exp_equal_to_now_is_expired_without_leeway() {
        let (r, _) = ring();
        let t = r.sign(Algorithm::HS256, "JWT", &claims(0)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[Algorithm::HS256], NOW), Err(AuthError::TokenExpired));
        let t = r.sign(Algorithm::HS256, "JWT", &claims(1)).unwrap();
        assert!(r.verify::<C>(&t, &[Algorithm::HS256], NOW).is_ok());
    }

    #[test]
    fn signature_only_verification_ignores_expiry_but_not_tampering() {
        let (r, _) = ring();
        let t = r.sign(Algorithm::HS256, "JWT", &claims(-100)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[Algorithm::HS256], NOW), Err(AuthError::TokenExpired));
        assert!(r.verify_signature::<C>(&t, &[Algorithm::HS256]).is_ok());
        let (other, _) = ring();
        let foreign = other.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify_signature::<C>(&foreign, &[Algorithm::HS256]).unwrap_err(), AuthError::TokenInvalid);
    }

    #[test]
    fn leeway_is_honoured_when_configured() {
        let k = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
        let r = Keyring::new(&[k], 30);
        let t = r.sign(Algorithm::HS256, "JWT", &claims(-10)).unwrap();
        assert!(r.verify::<C>(&t, &[Algorithm::HS256], NOW).is_ok());
    }

    #[test]
    fn alg_none_and_foreign_keys_and_tampering_are_refused() {
        let (r, k) = ring();
        let good = r.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        // alg: none with our kid
        let none_header = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","typ":"JWT","kid":"{}"}}"#, k.kid));
        let none = format!("{none_header}.{}.", parts[1]);
        assert_eq!(r.verify::<C>(&none, &[Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
        // another key's signature
        let (other, _) = ring();
        let foreign = other.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify::<C>(&foreign, &[Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
        // tampered payload
        let evil = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"2","exp":{}}}"#, NOW.unix_timestamp() + 60));
        let tampered = format!("{}.{evil}.{}", parts[0], parts[2]);
        assert_eq!(r.verify::<C>(&tampered, &[Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
        // garbage and truncation
        for bad in ["", "garbage", "a.b.c", &good[..good.len() - 5], &"a".repeat(MAX_TOKEN_BYTES + 1)] {
            assert_eq!(r.verify::<C>(bad, &[Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
        }
    }

    #[test]
    fn a_key_verifies_only_for_faces_that_accept_its_algorithm() {
        let k = SigningKey::generate(Algorithm::HS512, NOW).unwrap();
        let r = Keyring::new(&[k], 0);
        let t = r.sign(Algorithm::HS512, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
        assert!(r.verify::<C>(&t, &[Algorithm::HS512], NOW).is_ok());
    }

    #[test]
    fn retired_keys_verify_but_do_not_sign() {
        let mut old = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
        let old_ring = Keyring::new(std::slice::from_ref(&old), 0);
        let t = old_ring.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        old.state = KeyState::Retired;
        let new = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
        let r = Keyring::new(&[old, new.clone()], 0);
        assert!(r.verify::<C>(&t, &[Algorithm::HS256], NOW).is_ok());
        let fresh = r.sign(Algorithm::HS256, "JWT", &claims(60)).unwrap();
        assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(), Some(new.kid.as_str()));
    }
}
