//! The keyring: signing keys with a `kid`, an algorithm pinned per key, and verification that
//! accepts a token only if its header names a known key and the algorithm that key was made for.
//! `alg: none` and algorithm confusion are impossible by construction: the algorithm used to
//! verify comes from our key, never from the token.

use std::any::Any;
use std::collections::HashMap;
use std::sync::Arc;

use jsonwebtoken::{DecodingKey, EncodingKey, Header, Validation};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use crate::{AuthError, DomainError};

mod hmac;
mod jws;
use hmac::HmacKey;

/// Tokens longer than this are refused unparsed.
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// Signing algorithms: HMAC, whose keys never leave Tessera, and the asymmetric ones, whose
/// public halves the JWKS endpoint publishes so that anyone can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Algorithm {
    HS256,
    HS384,
    HS512,
    /// Ed25519.
    EdDSA,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// RSASSA-PKCS1-v1_5 with SHA-256, 2048-bit keys.
    RS256,
}

impl Algorithm {
    pub const ALL: [Algorithm; 6] =
        [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512, Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256];

    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::HS256 => "HS256",
            Algorithm::HS384 => "HS384",
            Algorithm::HS512 => "HS512",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::ES256 => "ES256",
            Algorithm::RS256 => "RS256",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// Whether the key is a private/public pair (published in the JWKS) rather than a secret.
    pub fn is_asymmetric(self) -> bool {
        matches!(self, Algorithm::EdDSA | Algorithm::ES256 | Algorithm::RS256)
    }

    /// Bytes of fresh HMAC key material: at least the hash output size (RFC 7518 §3.2).
    pub fn secret_len(self) -> usize {
        match self {
            Algorithm::HS256 => 32,
            Algorithm::HS384 => 48,
            Algorithm::HS512 => 64,
            _ => 0,
        }
    }

    pub(crate) fn jwt(self) -> jsonwebtoken::Algorithm {
        match self {
            Algorithm::HS256 => jsonwebtoken::Algorithm::HS256,
            Algorithm::HS384 => jsonwebtoken::Algorithm::HS384,
            Algorithm::HS512 => jsonwebtoken::Algorithm::HS512,
            Algorithm::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Algorithm::ES256 => jsonwebtoken::Algorithm::ES256,
            Algorithm::RS256 => jsonwebtoken::Algorithm::RS256,
        }
    }
}

/// Fresh private key material for an asymmetric algorithm, in the DER form jsonwebtoken signs
/// with: PKCS#8 for Ed25519 and P-256, PKCS#1 for RSA.
fn generate_private_der(alg: Algorithm) -> Result<Vec<u8>, DomainError> {
    use rand_core::OsRng;
    let fail = |e: &dyn std::fmt::Display| DomainError::Internal(format!("generating a {} key failed: {e}", alg.as_str()));
    match alg {
        Algorithm::EdDSA => {
            // An Ed25519 private key is 32 random bytes; RFC 8410's PKCS#8 (v1) wraps them.
            const PREFIX: [u8; 16] = [0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
            let seed = crate::secret::random_bytes::<32>()?;
            Ok([&PREFIX[..], &seed[..]].concat())
        }
        Algorithm::ES256 => {
            use p256::pkcs8::EncodePrivateKey;
            let key = p256::SecretKey::random(&mut OsRng);
            Ok(key.to_pkcs8_der().map_err(|e| fail(&e))?.as_bytes().to_vec())
        }
        Algorithm::RS256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            let key = rsa::RsaPrivateKey::new(&mut OsRng, 2048).map_err(|e| fail(&e))?;
            Ok(key.to_pkcs1_der().map_err(|e| fail(&e))?.as_bytes().to_vec())
        }
        _ => Err(DomainError::Internal(format!("{} keys are secrets, not pairs", alg.as_str()))),
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
/// `secret` is the HMAC secret, or the private key's DER for an asymmetric algorithm.
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
        let secret = if alg.is_asymmetric() {
            generate_private_der(alg)?
        } else {
            let mut secret = vec![0u8; alg.secret_len()];
            getrandom::fill(&mut secret).map_err(|e| DomainError::Internal(format!("the OS random generator failed: {e}")))?;
            secret
        };
        let kid_bytes = crate::secret::random_bytes::<12>()?;
        let kid = kid_bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        Ok(Self { kid, alg, state: KeyState::Active, secret, created_at: now })
    }
}

impl SigningKey {
    /// The stored form: material sealed under the server key, bound to its `kid`.
    pub fn seal(&self, sealer: &crate::Sealer) -> Result<StoredKey, DomainError> {
        Ok(StoredKey {
            kid: self.kid.clone(),
            alg: self.alg.as_str().to_owned(),
            state: self.state,
            sealed_secret: sealer.seal(&self.secret, self.kid.as_bytes())?,
            created_at: self.created_at,
            activated_at: (self.state != KeyState::Next).then_some(self.created_at),
            retired_at: None,
        })
    }

    pub fn unseal(stored: &StoredKey, sealer: &crate::Sealer) -> Result<Self, DomainError> {
        let alg = Algorithm::parse(&stored.alg)
            .ok_or_else(|| DomainError::Internal(format!("key {}: unknown algorithm {}", stored.kid, stored.alg)))?;
        let secret = sealer.open(&stored.sealed_secret, stored.kid.as_bytes())?;
        Ok(Self { kid: stored.kid.clone(), alg, state: stored.state, secret, created_at: stored.created_at })
    }
}

struct LoadedKey {
    alg: Algorithm,
    state: KeyState,
    /// The public key as a JWK, for asymmetric keys.
    public: Option<jsonwebtoken::jwk::Jwk>,
    material: Material,
}

/// What a key signs and verifies with.
enum Material {
    /// An HMAC key (HS256, HS384, HS512), loaded once into ring ([`hmac`]): both ways.
    Hmac(HmacKey),
    /// An ES256 key: signs in ring, where it is loaded once. jsonwebtoken's RustCrypto backend
    /// parses the PKCS#8 DER on every signature, which derives the public key (a scalar
    /// multiplication as dear as the signature), and signs with portable field arithmetic; ring
    /// signs with BoringSSL's P-256 assembly. Its signatures are randomized, which nothing here
    /// depends on: a retry within the grace window gets the rotation's sealed answer back, not a
    /// new signature. Verifies with jsonwebtoken, once per token ([`Ring`]'s digests).
    Es256 { signer: Es256, decoding: DecodingKey },
    /// Any other asymmetric key (RS256, EdDSA): jsonwebtoken both ways.
    Jwt { encoding: EncodingKey, decoding: DecodingKey },
}

impl LoadedKey {
    fn load(k: &SigningKey) -> Result<Self, DomainError> {
        let bad = |e: String| DomainError::Internal(format!("key {}: {e}", k.kid));
        if let Some(hmac) = HmacKey::load(k.alg, &k.secret) {
            return Ok(Self { alg: k.alg, state: k.state, public: None, material: Material::Hmac(hmac) });
        }
        let encoding = match k.alg {
            Algorithm::EdDSA => EncodingKey::from_ed_der(&k.secret),
            Algorithm::ES256 => EncodingKey::from_ec_der(&k.secret),
            _ => EncodingKey::from_rsa_der(&k.secret),
        };
        let mut jwk = jsonwebtoken::jwk::Jwk::from_encoding_key(&encoding, k.alg.jwt()).map_err(|e| bad(e.to_string()))?;
        jwk.common.key_id = Some(k.kid.clone());
        jwk.common.public_key_use = Some(jsonwebtoken::jwk::PublicKeyUse::Signature);
        let decoding = DecodingKey::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
        let material = match k.alg {
            Algorithm::ES256 => Material::Es256 { signer: Es256::load(&k.secret).map_err(bad)?, decoding },
            _ => Material::Jwt { encoding, decoding },
        };
        Ok(Self { alg: k.alg, state: k.state, public: Some(jwk), material })
    }
}

/// An ES256 key pair in ring, with the randomness its signatures take.
struct Es256 {
    pair: ring::signature::EcdsaKeyPair,
    rng: ring::rand::SystemRandom,
}

impl Es256 {
    /// From the stored PKCS#8 DER: the private scalar and its public point, as p256 reads them
    /// (ring's own PKCS#8 reader wants the public key inside the document, which not every
    /// encoder writes).
    fn load(der: &[u8]) -> Result<Self, String> {
        use p256::pkcs8::DecodePrivateKey;
        let key = p256::ecdsa::SigningKey::from_pkcs8_der(der).map_err(|e| e.to_string())?;
        let public = key.verifying_key().to_encoded_point(false);
        let rng = ring::rand::SystemRandom::new();
        let pair = ring::signature::EcdsaKeyPair::from_private_key_and_public_key(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &key.to_bytes(),
            public.as_bytes(),
            &rng,
        )
        .map_err(|e| e.to_string())?;
        Ok(Self { pair, rng })
    }

    /// A compact JWS of `header` and `claims`: the header and payload exactly as
    /// `jsonwebtoken::encode` writes them, the signature in JWS form (r ‖ s, 64 bytes).
    fn sign<T: Serialize>(&self, header: &Header, claims: &T) -> Result<String, DomainError> {
        let input = jws::signing_input(header, claims)?;
        let signature = self.pair.sign(&self.rng, input.as_bytes()).map_err(|e| DomainError::Internal(format!("signing failed: {e}")))?;
        Ok(jws::finish(input, signature.as_ref()))
    }
}

/// Claims whose times the keyring checks against `now` itself (jsonwebtoken's own clock checks
/// are off, so that time stays a parameter).
pub trait TimedClaims {
    fn exp(&self) -> i64;
    fn nbf(&self) -> Option<i64> {
        None
    }
}

/// What the keyring reads a token's claims into: timed, and cloneable, since the claims of a
/// verified token are remembered (see `Ring::claims`).
pub trait Claims: DeserializeOwned + TimedClaims + Clone + Send + Sync + 'static {}

impl<T: DeserializeOwned + TimedClaims + Clone + Send + Sync + 'static> Claims for T {}

/// The set of keys of one deployment, cheap to clone and share. Every clone sees a
/// [`Keyring::reload`]: keys rotate while the process runs.
#[derive(Clone, Default)]
pub struct Keyring {
    current: Arc<std::sync::RwLock<Arc<Ring>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring").field("kids", &self.kids()).finish()
    }
}

impl Keyring {
    /// Builds the ring; per algorithm the newest `active` key signs. A key whose material does
    /// not load is left out, with a log line.
    pub fn new(keys: &[SigningKey], leeway_seconds: i64) -> Self {
        Self { current: Arc::new(std::sync::RwLock::new(Arc::new(Ring::new(keys, leeway_seconds)))) }
    }

    /// Replaces the keys, for every clone at once.
    /// Keys the same as the ring's (a periodic reload that found no change: every second on
    /// SQLite) leave it as it is, with what it remembers: loading a key derives its public half
    /// again, and a new ring would check every token's signature again.
    pub fn reload(&self, keys: &[SigningKey]) {
        let current = self.ring();
        if current.fingerprint == fingerprint(keys) {
            return;
        }
        let leeway = current.leeway_seconds;
        let fresh = Arc::new(Ring::new(keys, leeway));
        match self.current.write() {
            Ok(mut g) => *g = fresh,
            Err(poisoned) => *poisoned.into_inner() = fresh,
        }
    }

    fn ring(&self) -> Arc<Ring> {
        match self.current.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The `kid`s the ring holds, sorted.
    pub fn kids(&self) -> Vec<String> {
        let mut kids: Vec<String> = self.ring().keys.keys().cloned().collect();
        kids.sort();
        kids
    }

    pub fn can_sign(&self, alg: Algorithm) -> bool {
        self.ring().active.contains_key(&alg)
    }

    /// The public keys that may have signed a live token or soon will (`next`, `active` and
    /// `retired` asymmetric keys), as a JWKS document. Never an HMAC secret, never private
    /// material. Sorted by `kid`, so the document is stable.
    pub fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        self.ring().jwks()
    }

    /// Signs `claims` with the active key for `alg`; the header carries `kid` and `typ`.
    pub fn sign<T: Serialize>(&self, alg: Algorithm, typ: &str, claims: &T) -> Result<String, DomainError> {
        self.ring().sign(alg, typ, claims)
    }

    /// Verifies signature, algorithm and times. `allowed` lists the algorithms the calling face
    /// accepts; a token signed by a key of another algorithm is invalid there.
    pub fn verify<T: Claims>(&self, token: &str, allowed: &[Algorithm], now: OffsetDateTime) -> Result<T, AuthError> {
        self.ring().verify_inner(token, allowed, Some(now))
    }

    /// Signature and algorithm only, whatever the token's times: for a face that takes an
    /// expired access token as proof of which pair a refresh belongs to (Medods).
    pub fn verify_signature<T: Claims>(&self, token: &str, allowed: &[Algorithm]) -> Result<T, AuthError> {
        self.ring().verify_inner(token, allowed, None)
    }

    /// [`Self::verify`] at `now`, or [`Self::verify_signature`] when there is no `now`: what a
    /// token format's reader calls.
    pub fn verify_at<T: Claims>(&self, token: &str, allowed: &[Algorithm], now: Option<OffsetDateTime>) -> Result<T, AuthError> {
        self.ring().verify_inner(token, allowed, now)
    }

    /// Forgets what was remembered of `token` (its claims, see `Ring::claims`): for a refresh
    /// token spent by a rotation, presented once and never again, whose text (a simplejwt
    /// refresh token's `jti` is its refresh secret) need not stay in memory until evicted.
    pub fn forget(&self, token: &str) {
        self.ring().claims.remove(token);
    }

    /// Whether the claims of `token` are remembered.
    #[cfg(test)]
    pub(crate) fn remembers(&self, token: &str) -> bool {
        self.ring().claims.get(token).is_some()
    }
}

/// Checks the signature with `decoding` (a key of `alg`) and reads the claims.
fn decode<T: DeserializeOwned>(token: &str, alg: Algorithm, decoding: &DecodingKey) -> Result<T, AuthError> {
    jsonwebtoken::decode::<T>(token, decoding, &signature_only(alg)).map(|d| d.claims).map_err(|_| AuthError::TokenInvalid)
}

/// The claims of a token whose signature is already known to be good.
fn claims_of<T: DeserializeOwned>(token: &str) -> Result<T, AuthError> {
    use base64::Engine;
    let payload = token.split('.').nth(1).ok_or(AuthError::TokenInvalid)?;
    let json = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).map_err(|_| AuthError::TokenInvalid)?;
    serde_json::from_slice(&json).map_err(|_| AuthError::TokenInvalid)
}

/// A validation that checks the signature with `alg` and nothing else: times, audience and type
/// are checked by the caller, against an instant it is given.
pub(crate) fn signature_only(alg: Algorithm) -> Validation {
    let mut validation = Validation::new(alg.jwt());
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    validation.leeway = 0;
    validation
}

/// What a ring was built from: each key's id, algorithm, state, creation and a digest of its
/// material, in the order given.
type Fingerprint = Vec<(String, Algorithm, KeyState, OffsetDateTime, [u8; 32])>;

fn fingerprint(keys: &[SigningKey]) -> Fingerprint {
    keys.iter().map(|k| (k.kid.clone(), k.alg, k.state, k.created_at, Sha256::digest(&k.secret).into())).collect()
}

/// One generation of the keys.
struct Ring {
    fingerprint: Fingerprint,
    keys: HashMap<String, LoadedKey>,
    active: HashMap<Algorithm, String>,
    leeway_seconds: i64,
    /// SHA-256 digests of tokens whose public-key signature verified under this ring. A client
    /// presents the same access token for its whole life; checking an ECDSA or RSA signature
    /// costs tens of microseconds, comparing a digest well under one. Only a token identical to
    /// the byte to one already verified is taken from here (a collision would need a SHA-256
    /// collision), its header is still checked against the calling face, and its times are still
    /// checked on every call. A reload builds a new ring, so a removed key forgets its tokens at
    /// once. Bounded: an entry is 32 bytes, evicted by quick_cache's S3-FIFO when full.
    verified: quick_cache::sync::Cache<[u8; 32], ()>,
    /// What a token's header segment says, by the segment: a client's tokens share a handful of
    /// headers (one per key and type), and reading one is two allocations, a base64 decode and
    /// a JSON parse, a tenth of an HMAC token's verification. A segment that does not parse is
    /// not kept. Bounded like `verified`.
    headers: quick_cache::sync::Cache<String, Arc<ReadHeader>>,
    /// What tokens read under this ring say, by the token's text: a client presents the same
    /// token for its whole life, and reading its claims (a base64 decode and a JSON parse, and
    /// for an HMAC token the HMAC) was most of a token check's work: 23,700 of its 26,000
    /// instructions (callgrind, `/api/token/verify/`). Only a token identical to the byte to one
    /// whose signature verified under this ring is taken from here; its header is still checked
    /// against the calling face and its times on every call, as for `verified`. Bounded by
    /// weight (the token's length and a claims set's), so it holds a few hundred tokens at most;
    /// one that falls out still finds its public-key signature in `verified`. A refresh token
    /// spent by a rotation is dropped at once ([`Keyring::forget`]).
    claims: quick_cache::sync::Cache<Box<str>, Arc<dyn Any + Send + Sync>, ClaimsWeight>,
}

/// What a remembered token weighs: its text and about what a claims set holds.
#[derive(Clone)]
struct ClaimsWeight;

impl quick_cache::Weighter<Box<str>, Arc<dyn Any + Send + Sync>> for ClaimsWeight {
    fn weight(&self, token: &Box<str>, _: &Arc<dyn Any + Send + Sync>) -> u64 {
        (token.len() + CLAIMS_SET_BYTES) as u64
    }
}

/// About what a claims set takes on the heap, with the cache's own entry.
const CLAIMS_SET_BYTES: usize = 256;
/// The weight of the claims remembered per ring: a quarter of a megabyte, about 400 tokens.
/// A refresh token spent by a rotation is forgotten at once ([`Keyring::forget`]); before that,
/// with a megabyte, 10 s of simplejwt rotations left RSS 1.7 MiB higher than without remembering.
const CLAIMS_KEPT_BYTES: u64 = 256 * 1024;
/// The longest token whose claims are remembered (Tessera's are under 1 KiB).
const CLAIMS_KEPT_TOKEN_BYTES: usize = 2048;

/// The two members of a token's header that verification reads.
struct ReadHeader {
    kid: String,
    alg: jsonwebtoken::Algorithm,
}

/// Header segments kept per ring.
const HEADERS_KEPT: usize = 256;
/// The longest header segment kept (Tessera's are under 100 bytes).
const HEADER_KEPT_BYTES: usize = 256;

/// Verified-signature digests kept per ring: about a megabyte at most.
const VERIFIED_KEPT: usize = 16_384;

impl Default for Ring {
    fn default() -> Self {
        Self::new(&[], 0)
    }
}

impl Ring {
    /// Builds the ring; per algorithm the newest `active` key signs. A key whose material does
    /// not load is left out, with a log line.
    pub fn new(keys: &[SigningKey], leeway_seconds: i64) -> Self {
        let mut map = HashMap::new();
        let mut active: HashMap<Algorithm, (OffsetDateTime, String)> = HashMap::new();
        for k in keys {
            match LoadedKey::load(k) {
                Ok(loaded) => {
                    map.insert(k.kid.clone(), loaded);
                }
                Err(e) => {
                    tracing::error!(kid = %k.kid, error = %e, "a signing key does not load; it is left out");
                    continue;
                }
            }
            if k.state == KeyState::Active {
                let newer = active.get(&k.alg).is_none_or(|(at, _)| *at < k.created_at);
                if newer {
                    active.insert(k.alg, (k.created_at, k.kid.clone()));
                }
            }
        }
        Self {
            fingerprint: fingerprint(keys),
            keys: map,
            active: active.into_iter().map(|(a, (_, kid))| (a, kid)).collect(),
            leeway_seconds: leeway_seconds.max(0),
            verified: quick_cache::sync::Cache::new(VERIFIED_KEPT),
            headers: quick_cache::sync::Cache::new(HEADERS_KEPT),
            claims: quick_cache::sync::Cache::with_weighter(
                CLAIMS_KEPT_BYTES as usize / (512 + CLAIMS_SET_BYTES),
                CLAIMS_KEPT_BYTES,
                ClaimsWeight,
            ),
        }
    }

    fn jwks(&self) -> jsonwebtoken::jwk::JwkSet {
        let mut keys: Vec<_> = self.keys.values().filter_map(|k| k.public.clone()).collect();
        keys.sort_by(|a, b| a.common.key_id.cmp(&b.common.key_id));
        jsonwebtoken::jwk::JwkSet { keys }
    }

    fn sign<T: Serialize>(&self, alg: Algorithm, typ: &str, claims: &T) -> Result<String, DomainError> {
        let kid = self.active.get(&alg).ok_or(DomainError::NoSigningKey(alg.as_str()))?;
        let key = self.keys.get(kid).ok_or(DomainError::NoSigningKey(alg.as_str()))?;
        let mut header = Header::new(alg.jwt());
        header.typ = Some(typ.to_owned());
        header.kid = Some(kid.clone());
        match &key.material {
            Material::Hmac(hmac) => hmac.sign(&header, claims),
            Material::Es256 { signer, .. } => signer.sign(&header, claims),
            Material::Jwt { encoding, .. } => {
                jsonwebtoken::encode(&header, claims, encoding).map_err(|e| DomainError::Internal(format!("signing failed: {e}")))
            }
        }
    }

    /// The token's header, read as `jsonwebtoken::decode_header` reads it, once per segment.
    fn header(&self, token: &str) -> Result<Arc<ReadHeader>, AuthError> {
        let segment = token.split('.').next().unwrap_or_default();
        if let Some(read) = self.headers.get(segment) {
            return Ok(read);
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| AuthError::TokenInvalid)?;
        let read = Arc::new(ReadHeader { kid: header.kid.ok_or(AuthError::TokenInvalid)?, alg: header.alg });
        // only a header naming a key of this ring, and of a header's usual size, is kept: what
        // anyone may send cannot fill the memo with large entries
        if segment.len() <= HEADER_KEPT_BYTES && self.keys.contains_key(&read.kid) {
            self.headers.insert(segment.to_owned(), read.clone());
        }
        Ok(read)
    }

    /// A token's claims, once its signature verifies under `key`: an HMAC is checked in full; a
    /// public-key signature once per token (see `verified`).
    fn read_claims<T: DeserializeOwned>(&self, token: &str, key: &LoadedKey) -> Result<T, AuthError> {
        Ok(match &key.material {
            Material::Hmac(hmac) => {
                // no digest remembered: an HMAC costs about what the digest would (verify
                // measured the same either way, A/B on one machine)
                if !hmac.verifies(token) {
                    return Err(AuthError::TokenInvalid);
                }
                claims_of(token)?
            }
            Material::Es256 { decoding, .. } | Material::Jwt { decoding, .. } => {
                let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
                if self.verified.get(&digest).is_some() {
                    claims_of(token)?
                } else {
                    let claims = decode::<T>(token, key.alg, decoding)?;
                    self.verified.insert(digest, ());
                    claims
                }
            }
        })
    }

    fn verify_inner<T: Claims>(&self, token: &str, allowed: &[Algorithm], now: Option<OffsetDateTime>) -> Result<T, AuthError> {
        if token.is_empty() || token.len() > MAX_TOKEN_BYTES {
            return Err(AuthError::TokenInvalid);
        }
        let header = self.header(token)?;
        let key = self.keys.get(&header.kid).ok_or(AuthError::TokenInvalid)?;
        if header.alg != key.alg.jwt() || !allowed.contains(&key.alg) || key.state == KeyState::Next {
            return Err(AuthError::TokenInvalid);
        }
        let remembered = self.claims.get(token).and_then(|c| c.downcast::<T>().ok());
        let claims = match remembered {
            Some(claims) => T::clone(&claims),
            None => {
                let claims: T = self.read_claims(token, key)?;
                if token.len() <= CLAIMS_KEPT_TOKEN_BYTES {
                    self.claims.insert(token.into(), Arc::new(claims.clone()));
                }
                claims
            }
        };
        let Some(now) = now else { return Ok(claims) };
        let now = now.unix_timestamp();
        // No leeway by default: a token whose `exp` is now is expired. Saturating: `exp` is the
        // token's, and any i64 signs (`i64::MAX` with a leeway overflowed: the `tokens` fuzz target).
        if claims.exp().saturating_add(self.leeway_seconds) <= now {
            return Err(AuthError::TokenExpired);
        }
        if let Some(nbf) = claims.nbf()
            && nbf > now.saturating_add(self.leeway_seconds)
        {
            return Err(AuthError::TokenInvalid);
        }
        Ok(claims)
    }
}

/// A signing key as stored: material sealed under the server key.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub kid: String,
    pub alg: String,
    pub state: KeyState,
    pub sealed_secret: Vec<u8>,
    /// When it was created: for a `next` key, when it was published.
    pub created_at: OffsetDateTime,
    /// When it started signing.
    pub activated_at: Option<OffsetDateTime>,
    /// When it stopped signing.
    pub retired_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests;
