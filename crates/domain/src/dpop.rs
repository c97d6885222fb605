//! DPoP proofs (RFC 9449): checking one against the request it came with, and the key thumbprint
//! (RFC 7638) a bound token carries in `cnf.jkt`. Pure: the replay check (a `jti` never seen
//! before, on any instance) is the store's, and the instant is a parameter.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::jwk::{Jwk, ThumbprintHash};
use jsonwebtoken::{DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

/// The signature algorithms a proof may use: asymmetric ones only (RFC 9449 §4.2).
pub const ALGORITHMS: &[&str] = &["ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "EdDSA"];

/// How far a proof's `iat` may lie from now, either way.
pub const IAT_WINDOW_SECONDS: i64 = 60;

/// What a proof is checked against: the request, and the server's state.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's method (`htm`).
    pub method: &'a str,
    /// The request's URL without query and fragment (`htu`).
    pub url: &'a str,
    /// The access token presented with it, whose hash the proof must carry (`ath`); `None` at
    /// the token endpoint.
    pub access_token: Option<&'a str>,
    /// The nonces the server accepts now; empty when it asks for none.
    pub nonces: &'a [String],
    pub now: OffsetDateTime,
}

/// A proof that passed: the key it was signed with, and its `jti` for the replay check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    /// The key's RFC 7638 SHA-256 thumbprint, base64url.
    pub jkt: String,
    pub jti: String,
    pub iat: i64,
}

/// Why a proof is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// `invalid_dpop_proof`, with what is wrong.
    #[error("invalid DPoP proof: {0}")]
    Invalid(&'static str),
    /// `use_dpop_nonce`: the server asks for its nonce.
    #[error("the DPoP proof must carry the server's nonce")]
    UseNonce,
}

#[derive(Deserialize)]
struct Claims {
    jti: String,
    htm: String,
    htu: String,
    iat: i64,
    #[serde(default)]
    ath: Option<String>,
    #[serde(default)]
    nonce: Option<String>,
}

/// Checks a proof (the `DPoP` header's value) against `expected`.
pub fn check(proof: &str, expected: &Expected<'_>) -> Result<Proof, ProofError> {
    let invalid = ProofError::Invalid;
    if proof.len() > 8192 {
        return Err(invalid("too long"));
    }
    let header = jsonwebtoken::decode_header(proof).map_err(|_| invalid("not a JWS"))?;
    if header.typ.as_deref() != Some("dpop+jwt") {
        return Err(invalid("typ must be dpop+jwt"));
    }
    let alg = format!("{:?}", header.alg);
    if !ALGORITHMS.contains(&alg.as_str()) {
        return Err(invalid("alg must be an asymmetric algorithm"));
    }
    let jwk = header.jwk.as_ref().ok_or(invalid("no jwk in the header"))?;
    if has_private_parts(proof) {
        return Err(invalid("the jwk must be a public key"));
    }
    let key = DecodingKey::from_jwk(jwk).map_err(|_| invalid("the jwk is not a usable public key"))?;
    let mut validation = Validation::new(header.alg);
    validation.required_spec_claims.clear();
    validation.validate_exp = false;
    validation.validate_aud = false;
    let claims =
        jsonwebtoken::decode::<Claims>(proof, &key, &validation).map_err(|_| invalid("the signature does not verify with its jwk"))?.claims;
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(invalid("jti must be 1-256 characters"));
    }
    if claims.htm != expected.method {
        return Err(invalid("htm is not the request's method"));
    }
    if !same_url(&claims.htu, expected.url) {
        return Err(invalid("htu is not the request's URL"));
    }
    if (claims.iat - expected.now.unix_timestamp()).abs() > IAT_WINDOW_SECONDS {
        return Err(invalid("iat is too far from now"));
    }
    match (expected.access_token, claims.ath.as_deref()) {
        (Some(token), Some(ath)) if ath == access_token_hash(token) => {}
        (Some(_), _) => return Err(invalid("ath is not the access token's hash")),
        (None, _) => {}
    }
    if !expected.nonces.is_empty() && !claims.nonce.as_ref().is_some_and(|n| expected.nonces.contains(n)) {
        return Err(ProofError::UseNonce);
    }
    Ok(Proof { jkt: thumbprint(jwk)?, jti: claims.jti, iat: claims.iat })
}

/// Whether the header's `jwk` carries a private member (`d`, or RSA's primes): a proof's key is
/// public, and one that is not says its holder does not know what it is doing.
fn has_private_parts(proof: &str) -> bool {
    let Some(raw) = proof.split('.').next().and_then(|h| URL_SAFE_NO_PAD.decode(h).ok()) else { return true };
    let Ok(header) = serde_json::from_slice::<serde_json::Value>(&raw) else { return true };
    ["d", "p", "q", "dp", "dq", "qi", "k"].iter().any(|m| header["jwk"].get(m).is_some())
}

/// The key's RFC 7638 SHA-256 thumbprint, base64url without padding.
pub fn thumbprint(jwk: &Jwk) -> Result<String, ProofError> {
    jwk.thumbprint(ThumbprintHash::SHA256).map_err(|_| ProofError::Invalid("the jwk has no thumbprint"))
}

/// `ath`: the base64url SHA-256 of the access token.
pub fn access_token_hash(token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(token.as_bytes()))
}

/// Two URLs the same for `htu`: scheme and host compared without case, a default port the same
/// as none, the path exactly, query and fragment ignored (RFC 9449 §4.3).
pub fn same_url(a: &str, b: &str) -> bool {
    match (normal_url(a), normal_url(b)) {
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

fn normal_url(u: &str) -> Option<(String, String, String)> {
    let u = u.split(['?', '#']).next()?;
    let (scheme, rest) = u.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let authority = authority.to_ascii_lowercase();
    let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
        ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_owned(),
        _ => authority,
    };
    if authority.is_empty() || authority.contains('@') {
        return None;
    }
    Some((scheme, authority, path.to_owned()))
}

/// A key algorithm by its JOSE name, for the metadata and challenges.
pub fn algorithms() -> String {
    ALGORITHMS.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 9449 §4.1's example proof, its key's thumbprint (§6.1), and §7.1's proof with `ath`.
    const RFC_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
    const RFC_JKT: &str = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    const RFC_RESOURCE_PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiJlMWozVl9iS2ljOC1MQUVCIiwiaHRtIjoiR0VUIiwiaHR1IjoiaHR0cHM6Ly9yZXNvdXJjZS5leGFtcGxlLm9yZy9wcm90ZWN0ZWRyZXNvdXJjZSIsImlhdCI6MTU2MjI2MjYxOCwiYXRoIjoiZlVIeU8ycjJaM0RaNTNFc05yV0JiMHhXWG9hTnk1OUlpS0NBcWtzbVFFbyJ9.2oW9RP35yRqzhrtNP86L-Ey71EOptxRimPPToA1plemAgR6pxHF8y6-yqyVnmcw6Fy1dqd-jfxSYoMxhAJpLjA";
    const RFC_ACCESS_TOKEN: &str = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";

    fn at(unix: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(unix).unwrap()
    }

    fn token_request(now: OffsetDateTime) -> Expected<'static> {
        Expected { method: "POST", url: "https://server.example.com/token", access_token: None, nonces: &[], now }
    }

    #[test]
    fn the_rfcs_example_proofs_pass_at_their_time_with_the_rfcs_thumbprint() {
        let p = check(RFC_PROOF, &token_request(at(1_562_262_616))).unwrap();
        assert_eq!((p.jkt.as_str(), p.jti.as_str()), (RFC_JKT, "-BwC3ESc6acc2lTc"));
        let resource = Expected {
            method: "GET",
            url: "https://resource.example.org/protectedresource",
            access_token: Some(RFC_ACCESS_TOKEN),
            nonces: &[],
            now: at(1_562_262_618),
        };
        assert_eq!(check(RFC_RESOURCE_PROOF, &resource).unwrap().jkt, RFC_JKT);
        assert_eq!(access_token_hash(RFC_ACCESS_TOKEN), "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo");
    }

    #[test]
    fn every_mismatch_is_refused() {
        let now = at(1_562_262_616);
        let stale = Expected { now: at(1_562_262_616 + 61), ..token_request(now) };
        assert_eq!(check(RFC_PROOF, &stale), Err(ProofError::Invalid("iat is too far from now")));
        let early = Expected { now: at(1_562_262_616 - 61), ..token_request(now) };
        assert!(check(RFC_PROOF, &early).is_err());
        let get = Expected { method: "GET", ..token_request(now) };
        assert_eq!(check(RFC_PROOF, &get), Err(ProofError::Invalid("htm is not the request's method")));
        let other = Expected { url: "https://server.example.com/other", ..token_request(now) };
        assert_eq!(check(RFC_PROOF, &other), Err(ProofError::Invalid("htu is not the request's URL")));
        let nonce = ["n-0S6_WzA2Mj".to_owned()];
        assert_eq!(check(RFC_PROOF, &Expected { nonces: &nonce, ..token_request(now) }), Err(ProofError::UseNonce));
        // the resource proof with another token
        let resource = Expected {
            method: "GET",
            url: "https://resource.example.org/protectedresource",
            access_token: Some("another token"),
            nonces: &[],
            now: at(1_562_262_618),
        };
        assert_eq!(check(RFC_RESOURCE_PROOF, &resource), Err(ProofError::Invalid("ath is not the access token's hash")));
        // a signature that does not verify: one character of the payload changed
        let mut forged = RFC_PROOF.to_owned();
        let dot = forged.find('.').unwrap() + 5;
        forged.replace_range(dot..dot + 1, if &forged[dot..dot + 1] == "A" { "B" } else { "A" });
        assert!(check(&forged, &token_request(now)).is_err());
        assert!(check("not a proof", &token_request(now)).is_err());
    }

    #[test]
    fn urls_compare_as_rfc_9449_says() {
        assert!(same_url("https://Server.Example.com:443/token?x=1#f", "https://server.example.com/token"));
        assert!(same_url("http://h:80/a", "http://h/a"));
        assert!(!same_url("https://h/token", "http://h/token"));
        assert!(!same_url("https://h/token", "https://h/Token"));
        assert!(!same_url("https://h:8443/token", "https://h/token"));
        assert!(!same_url("https://user@h/token", "https://h/token"));
    }
}
