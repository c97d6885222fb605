//! HMAC keys (HS256, HS384, HS512) loaded once, in ring: the key's inner and outer pads are
//! hashed when the key loads, not on every token. jsonwebtoken builds its HMAC from the raw
//! secret on every call, twice per verification; with the header read once per distinct header
//! ([`super::Ring`]'s memo), verifying an HS256 token took a quarter of the instructions it did
//! (callgrind, `/api/token/verify/`). The tokens are the same to the byte: an HMAC is
//! deterministic, and the header and claims are serialised as `jsonwebtoken::encode` does (a test
//! compares the two).

use base64::Engine;
use jsonwebtoken::Header;
use serde::Serialize;

use super::Algorithm;
use super::jws::{B64, finish, signing_input};
use crate::DomainError;

pub(super) struct HmacKey {
    key: ring::hmac::Key,
}

impl HmacKey {
    /// `None` for an algorithm that is not an HMAC.
    pub(super) fn load(alg: Algorithm, secret: &[u8]) -> Option<Self> {
        let algorithm = match alg {
            Algorithm::HS256 => ring::hmac::HMAC_SHA256,
            Algorithm::HS384 => ring::hmac::HMAC_SHA384,
            Algorithm::HS512 => ring::hmac::HMAC_SHA512,
            _ => return None,
        };
        Some(Self { key: ring::hmac::Key::new(algorithm, secret) })
    }

    pub(super) fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, DomainError> {
        let input = signing_input(header, claims)?;
        let tag = ring::hmac::sign(&self.key, input.as_bytes());
        Ok(finish(input, tag.as_ref()))
    }

    /// Whether `token` (exactly three segments) carries this key's HMAC of its first two,
    /// compared in constant time.
    pub(super) fn verifies(&self, token: &str) -> bool {
        let Some((input, signature)) = token.rsplit_once('.') else { return false };
        if input.bytes().filter(|b| *b == b'.').count() != 1 {
            return false;
        }
        let Ok(signature) = B64.decode(signature) else { return false };
        ring::hmac::verify(&self.key, input.as_bytes(), &signature).is_ok()
    }
}
