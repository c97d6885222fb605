//! Secrets that must never be stored or shown in the clear: opaque refresh tokens and client
//! secrets (stored as keyed hashes), and material sealed at rest (AEAD under a server key).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::DomainError;

/// Fills `buf` from the operating system's CSPRNG.
pub fn random_bytes<const N: usize>() -> Result<[u8; N], DomainError> {
    let mut buf = [0u8; N];
    getrandom::fill(&mut buf).map_err(|e| DomainError::Internal(format!("the OS random generator failed: {e}")))?;
    Ok(buf)
}

/// A user's routing key: the user's id modulo 65,536. Every session and refresh token row holds
/// it, every refresh token Tessera issues carries it in the first two bytes of its secret, and
/// every statement on the login, refresh and revocation paths names it, so that a store split by
/// user (hash partitions, Citus shards) reads and writes one part only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Route(pub u16);

impl Route {
    /// How many routes there are.
    pub const COUNT: i64 = 65_536;

    /// As the database stores it.
    pub fn as_i32(self) -> i32 {
        i32::from(self.0)
    }
}

/// The secret of a refresh token, from the CSPRNG: 256 bits for opaque tokens; 128 bits where a
/// face wraps it as the `jti` of a signed JWT (simplejwt, flask-jwt-extended), whose signature
/// adds the rest. Its `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshSecret(Vec<u8>, Option<Route>);

impl std::fmt::Debug for RefreshSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshSecret(..)")
    }
}

/// How a face writes its opaque secrets on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretEncoding {
    /// base64url without padding (43 characters): the native API.
    UrlSafe,
    /// Standard base64 with padding (44 characters): Medods.
    Standard,
}

impl RefreshSecret {
    /// Bytes of an opaque refresh token.
    pub const OPAQUE_LEN: usize = 32;
    /// Bytes of a refresh token's `jti` inside a signed JWT.
    pub const JTI_LEN: usize = 16;

    pub fn generate() -> Result<Self, DomainError> {
        Self::generate_len(Self::OPAQUE_LEN)
    }

    pub fn generate_len(len: usize) -> Result<Self, DomainError> {
        let mut buf = vec![0u8; len];
        getrandom::fill(&mut buf).map_err(|e| DomainError::Internal(format!("the OS random generator failed: {e}")))?;
        Ok(Self(buf, None))
    }

    /// A new secret of `len` bytes whose first two name `route` (big-endian); the rest come from
    /// the CSPRNG (at least 112 bits of them).
    pub fn generate_routed(len: usize, route: Route) -> Result<Self, DomainError> {
        let mut s = Self::generate_len(len.max(Self::JTI_LEN))?;
        s.0[..2].copy_from_slice(&route.0.to_be_bytes());
        Ok(s)
    }

    /// The route the secret names. A secret issued before routing keys names an arbitrary one:
    /// its token is found by its hash alone (see `TokenService::find_refresh`).
    pub fn route(&self) -> Route {
        self.1.unwrap_or_else(|| Route(u16::from_be_bytes([self.0.first().copied().unwrap_or(0), self.0.get(1).copied().unwrap_or(0)])))
    }

    /// The secret of a token whose route is known otherwise than from its bytes: a legacy
    /// token's `jti`, whose token names its user.
    pub fn on_route(self, route: Route) -> Self {
        Self(self.0, Some(route))
    }

    /// Secrets shorter than 128 bits are refused.
    pub fn from_bytes(bytes: Vec<u8>) -> Option<Self> {
        (bytes.len() >= Self::JTI_LEN && bytes.len() <= 64).then_some(Self(bytes, None))
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn encode(&self, enc: SecretEncoding) -> String {
        match enc {
            SecretEncoding::UrlSafe => URL_SAFE_NO_PAD.encode(&self.0),
            SecretEncoding::Standard => STANDARD.encode(&self.0),
        }
    }

    /// Parses a token as a client presents it; anything that is not exactly 32 bytes in the
    /// expected alphabet is refused before any look-up.
    pub fn parse(raw: &str, enc: SecretEncoding) -> Option<Self> {
        if raw.len() > 64 {
            return None;
        }
        let bytes = match enc {
            SecretEncoding::UrlSafe => URL_SAFE_NO_PAD.decode(raw).ok()?,
            SecretEncoding::Standard => STANDARD.decode(raw).ok()?,
        };
        (bytes.len() == Self::OPAQUE_LEN).then_some(Self(bytes, None))
    }

    /// Lowercase hex, as simplejwt writes a `jti`.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn from_hex(raw: &str) -> Option<Self> {
        if raw.len() != 2 * Self::JTI_LEN || !raw.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let bytes = (0..raw.len()).step_by(2).map(|i| u8::from_str_radix(&raw[i..i + 2], 16).ok()).collect::<Option<Vec<u8>>>()?;
        Some(Self(bytes, None))
    }
}

/// The keyed hash of a secret, as stored.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash(pub [u8; 32]);

impl std::fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A prefix is enough to correlate log lines and useless to an attacker.
        write!(f, "TokenHash({:02x}{:02x}{:02x}{:02x}..)", self.0[0], self.0[1], self.0[2], self.0[3])
    }
}

impl TokenHash {
    pub fn from_slice(s: &[u8]) -> Option<Self> {
        Some(Self(s.try_into().ok()?))
    }
    pub fn ct_eq(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

/// HMAC-SHA-256 under a server secret: a stolen table of hashes is useless without the key, and
/// hashing stays cheap enough for the refresh hot path (the inputs are 256-bit random values, so
/// a slow password hash would add nothing).
///
/// The key is loaded once into ring, which hashes its inner and outer pads then: a token's hash is
/// then the HMAC of the token alone, in ring's SHA-256 (the CPU's SHA instructions where there are
/// some). The digests are HMAC-SHA-256's, the same as before.
#[derive(Clone)]
pub struct KeyedHasher {
    key: ring::hmac::Key,
}

impl std::fmt::Debug for KeyedHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyedHasher(..)")
    }
}

impl KeyedHasher {
    pub fn new(key: [u8; 32]) -> Self {
        Self { key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key) }
    }

    /// Derives independent keys for independent uses from one master secret.
    pub fn derive(master: &[u8], purpose: &str) -> [u8; 32] {
        hmac_sha256(master, purpose.as_bytes())
    }

    pub fn hash(&self, data: &[u8]) -> TokenHash {
        let mut digest = [0u8; 32];
        digest.copy_from_slice(ring::hmac::sign(&self.key, data).as_ref());
        TokenHash(digest)
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of every length"),
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

/// XChaCha20-Poly1305 under a server key, for material that must be recoverable but never sits
/// in the database in the clear (signing keys; a rotated family's newest refresh secret during the
/// grace window). The associated data binds a ciphertext to its row.
#[derive(Clone)]
pub struct Sealer {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    pub fn new(key: [u8; 32]) -> Self {
        Self { cipher: XChaCha20Poly1305::new((&key).into()) }
    }

    /// `nonce || ciphertext`.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> Result<Vec<u8>, DomainError> {
        let nonce_bytes = random_bytes::<24>()?;
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = self.cipher.encrypt(nonce, Payload { msg: plaintext, aad }).map_err(|_| DomainError::Internal("sealing failed".into()))?;
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Ok(out)
    }

    pub fn open(&self, sealed: &[u8], aad: &[u8]) -> Result<Vec<u8>, DomainError> {
        if sealed.len() < 24 {
            return Err(DomainError::Internal("sealed value too short".into()));
        }
        let (nonce, ct) = sealed.split_at(24);
        self.cipher
            .decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad })
            .map_err(|_| DomainError::Internal("a sealed value does not open under the configured master key".into()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_secrets_are_random_and_round_trip_in_both_encodings() {
        let a = RefreshSecret::generate().unwrap();
        let b = RefreshSecret::generate().unwrap();
        assert_ne!(a, b);
        let url = a.encode(SecretEncoding::UrlSafe);
        assert_eq!(url.len(), 43);
        assert_eq!(RefreshSecret::parse(&url, SecretEncoding::UrlSafe), Some(a.clone()));
        let std = a.encode(SecretEncoding::Standard);
        assert_eq!(std.len(), 44);
        assert_eq!(RefreshSecret::parse(&std, SecretEncoding::Standard), Some(a.clone()));
        assert!(!format!("{a:?}").contains(&url));
    }

    #[test]
    fn jti_secrets_round_trip_as_hex() {
        let s = RefreshSecret::generate_len(RefreshSecret::JTI_LEN).unwrap();
        let hex = s.to_hex();
        assert_eq!(hex.len(), 32);
        assert_eq!(RefreshSecret::from_hex(&hex), Some(s));
        assert!(RefreshSecret::from_hex("zz").is_none());
        assert!(RefreshSecret::from_hex(&"g".repeat(32)).is_none());
        assert!(RefreshSecret::from_bytes(vec![1; 8]).is_none());
    }

    #[test]
    fn malformed_refresh_secrets_are_refused() {
        for bad in ["", "abc", "!!!!", &"A".repeat(42), &"A".repeat(44), &"A".repeat(5000)] {
            assert!(RefreshSecret::parse(bad, SecretEncoding::UrlSafe).is_none(), "{bad}");
        }
    }

    #[test]
    fn keyed_hash_depends_on_the_key() {
        let s = b"secret";
        let h1 = KeyedHasher::new([1; 32]).hash(s);
        let h2 = KeyedHasher::new([2; 32]).hash(s);
        assert_ne!(h1, h2);
        assert!(h1.ct_eq(&KeyedHasher::new([1; 32]).hash(s)));
    }

    /// The hashes in every database were made with the `hmac` crate: ring's must be the same bytes,
    /// or no stored token would be found again.
    #[test]
    fn keyed_hash_is_the_hmac_sha256_every_stored_hash_was_made_with() {
        for (key, data) in [([0u8; 32], &b""[..]), ([7; 32], b"a refresh secret"), ([255; 32], &[0xAB; 200][..])] {
            assert_eq!(KeyedHasher::new(key).hash(data).0, hmac_sha256(&key, data));
        }
        // RFC 4231, test case 1 (a 20-byte key), through the function the hashes are checked against
        let key = [0x0b; 20];
        let expected = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
        let got: String = hmac_sha256(&key, b"Hi There").iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn derived_keys_differ_by_purpose() {
        assert_ne!(KeyedHasher::derive(b"m", "a"), KeyedHasher::derive(b"m", "b"));
    }

    #[test]
    fn sealed_values_open_only_with_the_same_key_and_aad() {
        let s = Sealer::new([7; 32]);
        let sealed = s.seal(b"hello", b"row-1").unwrap();
        assert_eq!(s.open(&sealed, b"row-1").unwrap(), b"hello");
        assert!(s.open(&sealed, b"row-2").is_err());
        assert!(Sealer::new([8; 32]).open(&sealed, b"row-1").is_err());
        assert!(s.open(&sealed[..10], b"row-1").is_err());
    }
}
