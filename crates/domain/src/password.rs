//! Passwords: a length-capped newtype and Argon2id hashing with configurable parameters.
//!
//! Hashing is CPU-heavy and synchronous here; the API crate runs it on a bounded blocking pool.
//! Verifying a login for an unknown e-mail runs the same work against a dummy hash, so the
//! response time does not tell whether an account exists.

use argon2::password_hash::PasswordVerifier as _;
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use serde::Deserialize;
use subtle::ConstantTimeEq;

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
            return Err(DomainError::too_short("password", self.min_chars));
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

    /// Whether this is a hash Tessera can check a password against: its own Argon2 PHC strings,
    /// or an imported format (Django's, Werkzeug's; see [`Argon2Hasher::verify`]).
    pub fn is_verifiable(&self) -> bool {
        match imported::Scheme::of(&self.0) {
            Some(imported::Scheme::Never) => false,
            Some(_) => true,
            None => argon2::PasswordHash::new(&self.0).is_ok(),
        }
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

/// Beyond this size glibc's malloc always maps an allocation on its own (its dynamic mmap
/// threshold never rises past 32 MiB), and unmaps it when it is freed.
const ALWAYS_MAPPED_BYTES: usize = 32 * 1024 * 1024 + 4096;

/// Argon2's working memory, `blocks` blocks, as an allocation the system takes back when it is
/// freed. A 19 MiB buffer freed to glibc's malloc raises its mmap threshold past 19 MiB, so the
/// next one comes from a thread's arena and stays resident for the life of the process, and the
/// arenas stop trimming (the trim threshold follows at twice the mmap threshold). Reserving
/// more than the threshold's ceiling keeps every such buffer mapped on its own; only the pages
/// Argon2 touches are ever resident.
fn working_memory(blocks: usize) -> Vec<Block> {
    let mut buf = Vec::with_capacity(blocks.max(ALWAYS_MAPPED_BYTES / std::mem::size_of::<Block>()));
    buf.resize(blocks, Block::default());
    buf
}

/// Synchronous Argon2id hashing and verification.
#[derive(Clone)]
pub struct Argon2Hasher {
    argon: Argon2<'static>,
    dummy: PasswordHash,
    /// Argon2's working memory (19 MiB at the default parameters), reused from hash to hash:
    /// at most one buffer per hash running at once, so the pool is as large as the hash
    /// concurrency and the process's memory comes back to its steady level after a flood,
    /// instead of each thread's allocator arena keeping buffers of its own.
    pool: std::sync::Arc<std::sync::Mutex<Vec<Vec<Block>>>>,
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
        let mut me = Self { argon, dummy: PasswordHash(String::new()), pool: Default::default() };
        // A real hash with the same parameters, so verifying against it costs what a real one does.
        me.dummy = me.hash(&Password("tessera-dummy-password".into()))?;
        Ok(me)
    }

    /// A fresh Argon2id hash in PHC form: a random 16-byte salt, a 32-byte output.
    pub fn hash(&self, password: &Password) -> Result<PasswordHash, DomainError> {
        let salt: [u8; 16] = crate::secret::random_bytes()?;
        let mut out = [0u8; 32];
        self.with_memory(|m| self.argon.hash_password_into_with_memory(password.0.as_bytes(), &salt, &mut out, m))
            .map_err(|e| DomainError::Internal(format!("argon2 hashing failed: {e}")))?;
        let p = self.argon.params();
        Ok(PasswordHash(format!(
            "$argon2id$v=19$m={},t={},p={}${}${}",
            p.m_cost(),
            p.t_cost(),
            p.p_cost(),
            STANDARD_NO_PAD.encode(salt),
            STANDARD_NO_PAD.encode(out)
        )))
    }

    /// Runs `f` with a working-memory buffer from the pool (a new one when every pooled buffer
    /// is in use), and returns the buffer to the pool.
    fn with_memory<T>(&self, f: impl FnOnce(&mut [Block]) -> T) -> T {
        let taken = self.pool.lock().ok().and_then(|mut p| p.pop());
        let mut buf = taken.unwrap_or_else(|| working_memory(self.argon.params().block_count()));
        let out = f(&mut buf);
        if let Ok(mut p) = self.pool.lock() {
            p.push(buf);
        }
        out
    }

    /// Gives the pooled buffers back to the system (those of hashes running now stay theirs).
    /// Each is one allocation far above the allocator's mmap threshold, so freeing it unmaps it.
    pub fn release_memory(&self) {
        let released = self.pool.lock().map(|mut p| std::mem::take(&mut *p)).unwrap_or_default();
        drop(released);
    }

    /// Buffers in the pool now (for the metrics and the tests).
    pub fn pooled_buffers(&self) -> usize {
        self.pool.lock().map(|p| p.len()).unwrap_or(0)
    }

    /// Verifies `password` against `hash`, or against the dummy hash when there is none (unknown
    /// user, or one without a password), in which case the answer is always `false`.
    ///
    /// Besides Tessera's own PHC strings, the formats of imported users are checked: Django's
    /// `argon2$…`, `pbkdf2_sha256$…`, `bcrypt_sha256$…` and `bcrypt$…`, and Werkzeug's (what a
    /// flask deployment stores) `pbkdf2:sha256:<iterations>$…` and `scrypt:<n>:<r>:<p>$…`
    /// (see [`Self::needs_rehash`]).
    pub fn verify(&self, password: &Password, hash: Option<&PasswordHash>) -> bool {
        let target = hash.unwrap_or(&self.dummy);
        let ok = match imported::Scheme::of(target.as_str()) {
            Some(scheme) => scheme.verify(password.0.as_bytes()),
            None => self.verify_phc(password.0.as_bytes(), target.as_str()),
        };
        ok && hash.is_some()
    }

    fn verify_phc(&self, password: &[u8], phc: &str) -> bool {
        let Ok(parsed) = argon2::PasswordHash::new(phc) else { return false };
        // Tessera's own parameters: in pooled memory. Anything else (an imported or older hash)
        // is rare, and re-hashed after it verifies.
        if let (false, Some(salt), Some(expected)) = (self.needs_rehash_parsed(&parsed), parsed.salt, parsed.hash) {
            let mut out = vec![0u8; expected.len()];
            return self.with_memory(|m| self.argon.hash_password_into_with_memory(password, &salt, &mut out, m)).is_ok()
                && bool::from(out.ct_eq(expected.as_bytes()));
        }
        self.argon.verify_password(password, &parsed).is_ok()
    }

    /// Whether a hash that has just verified should be replaced by a fresh Argon2id hash at
    /// Tessera's parameters: an imported format, or Argon2 at other parameters.
    pub fn needs_rehash(&self, hash: &PasswordHash) -> bool {
        argon2::PasswordHash::new(hash.as_str()).map_or(true, |parsed| self.needs_rehash_parsed(&parsed))
    }

    /// What every hash at Tessera's current parameters starts with: the stored hashes that do
    /// not are the ones still to be re-hashed (see [`cost_class`]).
    pub fn current_prefix(&self) -> String {
        let p = self.argon.params();
        format!("$argon2id$v=19$m={},t={},p={}$", p.m_cost(), p.t_cost(), p.p_cost())
    }

    fn needs_rehash_parsed(&self, parsed: &argon2::PasswordHash) -> bool {
        let current = self.argon.params();
        parsed.algorithm.as_str() != "argon2id"
            || parsed.version != Some(19)
            || Params::try_from(parsed)
                .map_or(true, |p| (p.m_cost(), p.t_cost(), p.p_cost()) != (current.m_cost(), current.t_cost(), current.p_cost()))
    }
}

/// The part of a stored hash that sets what verifying it costs: its scheme and parameters, the
/// text before its salt (`pbkdf2_sha256$600000`, `scrypt:32768:8:1`, `bcrypt$$2b$12`,
/// `$argon2id$v=19$m=19456,t=2,p=1`). Hashes of one class cost the same to verify, so one of
/// each tells what the costliest hash still stored costs.
pub fn cost_class(hash: &str) -> &str {
    // how many `$`-separated fields come before the salt
    let fields = if hash.starts_with('$') || hash.starts_with("argon2$") || hash.starts_with("bcrypt") {
        4
    } else if hash.starts_with("pbkdf2_sha256$") {
        2
    } else {
        1
    };
    match hash.match_indices('$').nth(fields - 1) {
        Some((at, _)) => &hash[..at],
        None => hash,
    }
}

/// Imported password hash formats: Django's (`django.contrib.auth.hashers`) and Werkzeug's
/// (`werkzeug.security`, what flask deployments use), checked as their libraries check them,
/// then re-hashed at the first login.
mod imported {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;
    use sha2::{Digest, Sha256};
    use subtle::ConstantTimeEq;

    /// More PBKDF2 iterations than this is not a hash Django made: refused rather than run.
    const MAX_PBKDF2_ITERATIONS: u32 = 10_000_000;
    /// Werkzeug's scrypt costs above these are not a hash it made (its default is n = 2^15,
    /// r = 8, p = 1): refused rather than run.
    const MAX_SCRYPT_LOG_N: u8 = 20;
    const MAX_SCRYPT_R: u32 = 32;
    const MAX_SCRYPT_P: u32 = 16;
    const MAX_SCRYPT_MEMORY: u64 = 256 << 20;

    pub enum Scheme<'a> {
        /// `argon2$<PHC string without its leading $>`
        Argon2(String),
        /// `pbkdf2_sha256$<iterations>$<salt>$<base64 hash>`
        Pbkdf2Sha256 { iterations: u32, salt: &'a str, hash: &'a str },
        /// `bcrypt_sha256$<bcrypt hash>`: bcrypt of the hex SHA-256 of the password.
        BcryptSha256(&'a str),
        /// `bcrypt$<bcrypt hash>`
        Bcrypt(&'a str),
        /// Werkzeug: `pbkdf2:sha256:<iterations>$<salt>$<hex hash>`
        WerkzeugPbkdf2 { iterations: u32, salt: &'a str, hash: &'a str },
        /// Werkzeug: `scrypt:<n>:<r>:<p>$<salt>$<hex hash>` (64 bytes)
        WerkzeugScrypt { log_n: u8, r: u32, p: u32, salt: &'a str, hash: &'a str },
        /// Django's unusable password (`!…`), or a format nothing here knows.
        Never,
    }

    impl<'a> Scheme<'a> {
        /// `None` for a hash that is not in a Django format (Tessera's own PHC strings).
        pub fn of(encoded: &'a str) -> Option<Self> {
            if encoded.starts_with('$') {
                return None;
            }
            if encoded.starts_with('!') {
                return Some(Scheme::Never);
            }
            let (algorithm, rest) = encoded.split_once('$')?;
            Some(match algorithm {
                "argon2" => Scheme::Argon2(format!("${rest}")),
                "pbkdf2_sha256" => {
                    let mut parts = rest.splitn(3, '$');
                    match (parts.next().and_then(|i| i.parse().ok()), parts.next(), parts.next()) {
                        (Some(iterations), Some(salt), Some(hash)) if iterations <= MAX_PBKDF2_ITERATIONS => {
                            Scheme::Pbkdf2Sha256 { iterations, salt, hash }
                        }
                        _ => Scheme::Never,
                    }
                }
                "bcrypt_sha256" => Scheme::BcryptSha256(rest),
                "bcrypt" => Scheme::Bcrypt(rest),
                method if method.starts_with("pbkdf2:") || method.starts_with("scrypt:") => werkzeug(method, rest),
                _ => Scheme::Never,
            })
        }

        pub fn verify(&self, password: &[u8]) -> bool {
            match self {
                Scheme::Argon2(phc) => match argon2::PasswordHash::new(phc) {
                    // The hash's own algorithm, version and parameters.
                    Ok(parsed) => {
                        use argon2::PasswordVerifier;
                        argon2::Argon2::default().verify_password(password, &parsed).is_ok()
                    }
                    Err(_) => false,
                },
                Scheme::Pbkdf2Sha256 { iterations, salt, hash } => {
                    let Ok(expected) = STANDARD.decode(hash) else { return false };
                    if expected.is_empty() || expected.len() > 64 {
                        return false;
                    }
                    let mut out = vec![0u8; expected.len()];
                    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), *iterations, &mut out);
                    out.ct_eq(&expected).into()
                }
                Scheme::BcryptSha256(h) => {
                    let digest = hex(&Sha256::digest(password));
                    bcrypt::verify(digest.as_bytes(), h).unwrap_or(false)
                }
                Scheme::Bcrypt(h) => bcrypt::verify(password, h).unwrap_or(false),
                Scheme::WerkzeugPbkdf2 { iterations, salt, hash } => {
                    let Some(expected) = unhex(hash).filter(|e| e.len() == 32) else { return false };
                    let mut out = [0u8; 32];
                    pbkdf2::pbkdf2_hmac::<Sha256>(password, salt.as_bytes(), *iterations, &mut out);
                    out.ct_eq(&expected[..]).into()
                }
                Scheme::WerkzeugScrypt { log_n, r, p, salt, hash } => {
                    let Some(expected) = unhex(hash).filter(|e| e.len() == 64) else { return false };
                    let Ok(params) = scrypt::Params::new(*log_n, *r, *p, 64) else { return false };
                    let mut out = [0u8; 64];
                    scrypt::scrypt(password, salt.as_bytes(), &params, &mut out).is_ok() && bool::from(out.ct_eq(&expected[..]))
                }
                Scheme::Never => false,
            }
        }
    }

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn unhex(s: &str) -> Option<Vec<u8>> {
        if !s.len().is_multiple_of(2) {
            return None;
        }
        (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
    }

    /// Werkzeug's `method$salt$hash`, `method` being `pbkdf2:sha256:<iterations>` or
    /// `scrypt:<n>:<r>:<p>`. Only the forms Werkzeug writes: SHA-256, explicit costs.
    fn werkzeug<'a>(method: &'a str, rest: &'a str) -> Scheme<'a> {
        let Some((salt, hash)) = rest.split_once('$') else { return Scheme::Never };
        let args: Vec<&str> = method.split(':').collect();
        match args.as_slice() {
            ["pbkdf2", "sha256", iterations] => match iterations.parse() {
                Ok(iterations) if (1..=MAX_PBKDF2_ITERATIONS).contains(&iterations) => Scheme::WerkzeugPbkdf2 { iterations, salt, hash },
                _ => Scheme::Never,
            },
            ["scrypt", n, r, p] => {
                let (Ok(n), Ok(r), Ok(p)) = (n.parse::<u64>(), r.parse::<u32>(), p.parse::<u32>()) else { return Scheme::Never };
                if !n.is_power_of_two() || n < 2 || r == 0 || p == 0 || r > MAX_SCRYPT_R || p > MAX_SCRYPT_P {
                    return Scheme::Never;
                }
                let log_n = n.trailing_zeros() as u8;
                // scrypt's memory is 128 * r * n bytes: at most 256 MiB (Werkzeug's default: 32)
                if log_n > MAX_SCRYPT_LOG_N || 128 * u64::from(r) * n > MAX_SCRYPT_MEMORY {
                    return Scheme::Never;
                }
                Scheme::WerkzeugScrypt { log_n, r, p, salt, hash }
            }
            _ => Scheme::Never,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use argon2::password_hash::PasswordHasher as _;

    fn cheap() -> Argon2Hasher {
        Argon2Hasher::new(Argon2Params { memory_kib: 64, iterations: 1, parallelism: 1 }).unwrap()
    }

    #[test]
    fn a_cost_class_is_the_scheme_and_parameters_without_salt_or_hash() {
        let h = cheap();
        let ours = h.hash(&Password::presented("pw".into()).unwrap()).unwrap();
        assert_eq!(cost_class(ours.as_str()), "$argon2id$v=19$m=64,t=1,p=1");
        assert!(ours.as_str().starts_with(&h.current_prefix()));
        for (hash, class) in [
            ("pbkdf2_sha256$600000$NaCl$CWSNiMVTuHI9yCPRXhcWPTEQ=", "pbkdf2_sha256$600000"),
            ("argon2$argon2id$v=19$m=102400,t=2,p=8$c2FsdA$aGFzaA", "argon2$argon2id$v=19$m=102400,t=2,p=8"),
            ("bcrypt$$2b$12$abcdefghijklmnopqrstuv", "bcrypt$$2b$12"),
            ("bcrypt_sha256$$2b$12$abcdefghijklmnopqrstuv", "bcrypt_sha256$$2b$12"),
            ("pbkdf2:sha256:1000$NaCl1234$0964", "pbkdf2:sha256:1000"),
            ("scrypt:32768:8:1$salt$00", "scrypt:32768:8:1"),
            ("!unusable", "!unusable"),
        ] {
            assert_eq!(cost_class(hash), class, "{hash}");
        }
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
    fn werkzeug_hashes_verify_and_ask_to_be_rehashed() {
        let h = cheap();
        let (pw, wrong) = (Password("correct horse".into()), Password("wrong horse".into()));
        // werkzeug.security.check_password_hash accepts both for "correct horse"
        let pbkdf2 = "pbkdf2:sha256:1000$NaCl1234$09648d88c553b8723dc823d15e17163d3110a5d75b040381a3557783e98e82ef";
        let scrypt = "scrypt:1024:8:1$NaCl1234$e33270b4b868e50458f021cac93822a44f75d4647344d21ee037a2366bae4ea8a826013d4a4ab597d504b89f5a69f5d383eb027862d8e911c8425addc827f90f";
        for hash in [pbkdf2, scrypt] {
            let hash = PasswordHash::from_phc(hash.into());
            assert!(hash.is_verifiable());
            assert!(h.verify(&pw, Some(&hash)));
            assert!(!h.verify(&wrong, Some(&hash)));
            assert!(h.needs_rehash(&hash));
        }
        for bad in [
            "pbkdf2:sha1:1000$NaCl1234$00",
            "scrypt:1000:8:1$s$00",
            "scrypt:2097152:8:1$s$00",
            "scrypt:1048576:32:1$s$00",
            "md5$x$y",
            "!unusable",
            "plain",
        ] {
            assert!(!PasswordHash::from_phc(bad.into()).is_verifiable(), "{bad}");
        }
        assert!(h.hash(&pw).unwrap().is_verifiable());
    }

    #[test]
    fn django_hashes_verify_and_ask_to_be_rehashed() {
        let h = cheap();
        let pw = Password::presented("correct horse".into()).unwrap();
        let wrong = Password::presented("wrong horse".into()).unwrap();
        // hashlib.pbkdf2_hmac('sha256', b'correct horse', b'NaCl1234', 1000), as Django writes it
        let pbkdf2 = PasswordHash::from_phc("pbkdf2_sha256$1000$NaCl1234$CWSNiMVTuHI9yCPRXhcWPTEQpddbBAOBo1V3g+mOgu8=".into());
        assert!(h.verify(&pw, Some(&pbkdf2)));
        assert!(!h.verify(&wrong, Some(&pbkdf2)));
        assert!(h.needs_rehash(&pbkdf2));
        let bcrypt = PasswordHash::from_phc(format!("bcrypt${}", bcrypt::hash("correct horse", 4).unwrap()));
        assert!(h.verify(&pw, Some(&bcrypt)));
        assert!(!h.verify(&wrong, Some(&bcrypt)));
        let ours = h.hash(&pw).unwrap();
        let django_argon2 = PasswordHash::from_phc(format!("argon2{}", ours.as_str()));
        assert!(h.verify(&pw, Some(&django_argon2)));
        assert!(h.needs_rehash(&django_argon2));
        assert!(!h.needs_rehash(&ours));
        for never in ["!unusable", "md5$salt$hash", "pbkdf2_sha256$99999999999$s$h", "pbkdf2_sha256$1000$NaCl1234$"] {
            assert!(!h.verify(&pw, Some(&PasswordHash::from_phc(never.into()))), "{never}");
        }
    }

    #[test]
    fn argon2_at_other_parameters_is_rehashed() {
        let other = Argon2Hasher::new(Argon2Params { memory_kib: 128, iterations: 1, parallelism: 1 }).unwrap();
        let pw = Password::presented("correct horse".into()).unwrap();
        let theirs = other.hash(&pw).unwrap();
        assert!(cheap().verify(&pw, Some(&theirs)));
        assert!(cheap().needs_rehash(&theirs));
    }

    #[test]
    fn pooled_hashes_are_standard_phc_strings() {
        let h = cheap();
        let pw = Password::presented("correct horse".into()).unwrap();
        let ours = h.hash(&pw).unwrap();
        // the reference implementation's verifier agrees
        let reference = Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::new(64, 1, 1, None).unwrap());
        assert!(reference.verify_password(b"correct horse", &argon2::PasswordHash::new(ours.as_str()).unwrap()).is_ok());
        // and hashes made by it verify here, in pooled memory
        let theirs = reference.hash_password(b"correct horse").unwrap().to_string();
        assert!(h.verify(&pw, Some(&PasswordHash(theirs.clone()))));
        assert!(!h.verify(&Password::presented("wrong".into()).unwrap(), Some(&PasswordHash(theirs))));
        assert_eq!(h.pooled_buffers(), 1, "one hash at a time keeps one buffer");
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
