//! Passwords: a length-capped newtype and Argon2id hashing with configurable parameters.
//!
//! Hashing is CPU-heavy and synchronous here; the API crate runs it on a bounded blocking pool.
//! Verifying a login for an unknown e-mail runs the same work against a dummy hash, so the
//! response time does not tell whether an account exists.

use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::Deserialize;

use crate::DomainError;

/// Longer inputs are refused before any hashing: Argon2 cost grows with input length, so an
/// unbounded password is a denial-of-service lever.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// A password as presented. Its `Debug` never prints it.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

impl Password {
    /// A password presented at log-in: only the length cap applies.
    pub fn presented(raw: String) -> Result<Self, DomainError> {
        if raw.len() > MAX_PASSWORD_BYTES {
            return Err(DomainError::invalid("password", format!("is longer than {MAX_PASSWORD_BYTES} bytes")));
        }
        Ok(Self(raw))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Rules for new passwords.
#[derive(Debug, Clone, Copy)]
pub struct PasswordPolicy {
    pub min_chars: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        // NIST SP 800-63B: at least 8 characters, no composition rules.
        Self { min_chars: 8 }
    }
}

impl PasswordPolicy {
    pub fn new_password(&self, raw: String) -> Result<Password, DomainError> {
        let p = Password::presented(raw)?;
        if p.0.chars().count() < self.min_chars {
            return Err(DomainError::invalid("password", format!("must be at least {} characters", self.min_chars)));
        }
        Ok(p)
    }
}

/// A PHC-format Argon2id hash string.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(String);

impl std::fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordHash(..)")
    }
}

impl PasswordHash {
    pub fn from_phc(s: String) -> Self {
        Self(s)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Argon2id cost parameters; defaults are OWASP's (19 MiB, 2 passes, 1 lane).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Argon2Params {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for Argon2Params {
    fn default() -> Self {
        Self { memory_kib: 19_456, iterations: 2, parallelism: 1 }
    }
}

/// Synchronous Argon2id hashing and verification.
#[derive(Clone)]
pub struct Argon2Hasher {
    argon: Argon2<'static>,
    dummy: PasswordHash,
}

impl std::fmt::Debug for Argon2Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Argon2Hasher")
    }
}

impl Argon2Hasher {
    pub fn new(p: Argon2Params) -> Result<Self, DomainError> {
        let params = Params::new(p.memory_kib, p.iterations, p.parallelism, None)
            .map_err(|e| DomainError::invalid("password.argon2", format!("invalid Argon2 parameters: {e}")))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let mut me = Self { argon, dummy: PasswordHash(String::new()) };
        // A real hash with the same parameters, so verifying against it costs what a real one does.
        me.dummy = me.hash(&Password("tessera-dummy-password".into()))?;
        Ok(me)
    }

    pub fn hash(&self, password: &Password) -> Result<PasswordHash, DomainError> {
        let phc =
            self.argon.hash_password(password.0.as_bytes()).map_err(|e| DomainError::Internal(format!("argon2 hashing failed: {e}")))?;
        Ok(PasswordHash(phc.to_string()))
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none (unknown
    /// user, or one without a password), in which case the answer is always `false`.
    pub fn verify(&self, password: &Password, hash: Option<&PasswordHash>) -> bool {
        let target = hash.unwrap_or(&self.dummy);
        let ok = match argon2::PasswordHash::new(target.as_str()) {
            Ok(parsed) => self.argon.verify_password(password.0.as_bytes(), &parsed).is_ok(),
            Err(_) => false,
        };
        ok && hash.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::new(Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()
    }

    #[test]
    fn hashes_are_argon2id_and_verify() {
        let h = cheap();
        let pw = Password::presented("correct horse".into()).unwrap();
        let hash = h.hash(&pw).unwrap();
        assert!(hash.as_str().starts_with("$argon2id$v=19$"));
        assert!(h.verify(&pw, Some(&hash)));
        assert!(!h.verify(&Password::presented("wrong horse".into()).unwrap(), Some(&hash)));
    }

    #[test]
    fn the_dummy_hash_never_verifies() {
        let h = cheap();
        assert!(!h.verify(&Password::presented("tessera-dummy-password".into()).unwrap(), None));
    }

    #[test]
    fn default_parameters_are_owasp() {
        assert_eq!(Argon2Params::default(), Argon2Params { memory_kib: 19_456, iterations: 2, parallelism: 1 });
    }

    #[test]
    fn passwords_over_one_kib_are_refused_and_short_new_ones_too() {
        assert!(Password::presented("x".repeat(1025)).is_err());
        assert!(Password::presented("x".repeat(1024)).is_ok());
        let policy = PasswordPolicy::default();
        assert!(policy.new_password("short".into()).is_err());
        assert!(policy.new_password("long enough".into()).is_ok());
    }

    #[test]
    fn debug_never_prints_the_password() {
        let p = Password::presented("hunter22".into()).unwrap();
        assert!(!format!("{p:?}").contains("hunter22"));
    }
}
