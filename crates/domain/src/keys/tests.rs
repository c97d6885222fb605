use super::*;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use time::macros::datetime;

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
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
fn an_es256_token_signed_with_ring_is_jsonwebtokens_jws_and_verifies_with_the_published_key() {
    let k = SigningKey::generate(Algorithm::ES256, NOW).unwrap();
    let r = Keyring::new(std::slice::from_ref(&k), 0);
    let c = claims(60);
    let ours = r.sign(Algorithm::ES256, "at+jwt", &c).unwrap();
    let mut header = Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some(k.kid.clone());
    let theirs = jsonwebtoken::encode(&header, &c, &EncodingKey::from_ec_der(&k.secret)).unwrap();
    let signed = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
    assert_eq!(signed(&ours), signed(&theirs), "the same header and payload, byte for byte");
    // a resource server holding only the JWKS: jsonwebtoken with the published key
    let jwk = r.jwks().keys.into_iter().next().unwrap();
    let mut v = Validation::new(jsonwebtoken::Algorithm::ES256);
    v.validate_exp = false;
    v.required_spec_claims.clear();
    let seen = jsonwebtoken::decode::<C>(&ours, &DecodingKey::from_jwk(&jwk).unwrap(), &v).unwrap();
    assert_eq!(seen.claims, c);
    assert_eq!(r.verify::<C>(&ours, &[Algorithm::ES256], NOW).unwrap(), c);
    // randomized: a second signature differs, and verifies as well
    let again = r.sign(Algorithm::ES256, "at+jwt", &c).unwrap();
    assert_ne!(again, ours);
    assert_eq!(r.verify::<C>(&again, &[Algorithm::ES256], NOW).unwrap(), c);
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

/// Found with the `tokens` fuzz target (fuzz/): a signed `exp` of `i64::MAX` overflowed when
/// the leeway was added.
#[test]
fn the_largest_exp_with_a_leeway_is_live_not_an_overflow() {
    let k = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
    let r = Keyring::new(&[k], 30);
    let t = r.sign(Algorithm::HS256, "JWT", &C { sub: "1".into(), exp: i64::MAX }).unwrap();
    assert_eq!(r.verify::<C>(&t, &[Algorithm::HS256], NOW).unwrap().exp, i64::MAX);
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
fn a_public_key_token_verified_once_is_still_checked_for_times_face_and_key_on_every_use() {
    for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::RS256, Algorithm::HS256] {
        let k = SigningKey::generate(alg, NOW).unwrap();
        let r = Keyring::new(std::slice::from_ref(&k), 0);
        let t = r.sign(alg, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[alg], NOW).unwrap(), claims(60));
        // taken from the claims remembered by the token's text: the same claims
        assert_eq!(r.verify::<C>(&t, &[alg], NOW).unwrap(), claims(60));
        // but never past its expiry, nor at a face of another algorithm
        assert_eq!(r.verify::<C>(&t, &[alg], NOW + time::Duration::seconds(60)), Err(AuthError::TokenExpired));
        let other = if alg == Algorithm::HS256 { Algorithm::ES256 } else { Algorithm::HS256 };
        assert_eq!(r.verify::<C>(&t, &[other], NOW), Err(AuthError::TokenInvalid));
        // a near copy is not the token that verified
        let parts: Vec<&str> = t.split('.').collect();
        let evil = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"2","exp":{}}}"#, NOW.unix_timestamp() + 60));
        assert_eq!(r.verify::<C>(&format!("{}.{evil}.{}", parts[0], parts[2]), &[alg], NOW), Err(AuthError::TokenInvalid));
        // once its key leaves the ring, the token is forgotten with it
        let other = SigningKey::generate(alg, NOW).unwrap();
        r.reload(&[other]);
        assert_eq!(r.verify::<C>(&t, &[alg], NOW), Err(AuthError::TokenInvalid), "{alg:?}");
    }
}

/// Claims are remembered with their type: a reader of another claims type reads the token
/// itself, and each reader gets what its own type says.
#[test]
fn remembered_claims_answer_only_a_reader_of_their_own_type() {
    #[derive(Debug, Clone, Deserialize, PartialEq)]
    struct Only {
        exp: i64,
    }
    impl TimedClaims for Only {
        fn exp(&self) -> i64 {
            self.exp
        }
    }
    for alg in [Algorithm::HS256, Algorithm::ES256] {
        let k = SigningKey::generate(alg, NOW).unwrap();
        let r = Keyring::new(std::slice::from_ref(&k), 0);
        let t = r.sign(alg, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[alg], NOW).unwrap(), claims(60));
        assert_eq!(r.verify::<Only>(&t, &[alg], NOW).unwrap(), Only { exp: NOW.unix_timestamp() + 60 });
        assert_eq!(r.verify::<C>(&t, &[alg], NOW).unwrap(), claims(60));
        assert_eq!(r.verify_signature::<C>(&t, &[alg]).unwrap(), claims(60));
        // a refused token is not remembered: it stays refused
        let (input, sig) = t.rsplit_once('.').unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(sig).unwrap();
        flipped[0] ^= 1;
        let bad = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&flipped));
        for _ in 0..2 {
            assert_eq!(r.verify::<C>(&bad, &[alg], NOW), Err(AuthError::TokenInvalid), "{alg:?}");
        }
    }
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

#[test]
fn asymmetric_keys_sign_verify_and_publish_only_their_public_half() {
    for alg in [Algorithm::EdDSA, Algorithm::ES256, Algorithm::RS256] {
        let k = SigningKey::generate(alg, NOW).unwrap();
        let hmac = SigningKey::generate(Algorithm::HS256, NOW).unwrap();
        let r = Keyring::new(&[k.clone(), hmac], 0);
        let t = r.sign(alg, "JWT", &claims(60)).unwrap();
        assert_eq!(r.verify::<C>(&t, &[alg], NOW).unwrap(), claims(60), "{alg:?}");
        let jwks = serde_json::to_value(r.jwks()).unwrap();
        let keys = jwks["keys"].as_array().unwrap();
        assert_eq!(keys.len(), 1, "{alg:?}: only the pair is published, never the HMAC secret");
        assert_eq!(keys[0]["kid"], k.kid.as_str());
        assert_eq!(keys[0]["alg"], alg.as_str());
        assert_eq!(keys[0]["use"], "sig");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(keys[0].get(private).is_none(), "{alg:?} publishes no {private}");
        }
        // a resource server holding only the JWKS verifies the token
        let set: jsonwebtoken::jwk::JwkSet = serde_json::from_value(jwks).unwrap();
        let key = DecodingKey::from_jwk(set.find(&k.kid).unwrap()).unwrap();
        let mut v = Validation::new(alg.jwt());
        v.required_spec_claims.clear();
        v.validate_exp = false; // NOW is a fixed instant in the past
        assert!(jsonwebtoken::decode::<C>(&t, &key, &v).is_ok(), "{alg:?}");
    }
}

#[test]
fn a_published_public_key_used_as_an_hmac_secret_is_refused() {
    let k = SigningKey::generate(Algorithm::ES256, NOW).unwrap();
    let r = Keyring::new(std::slice::from_ref(&k), 0);
    let jwks = serde_json::to_value(r.jwks()).unwrap();
    let published = serde_json::to_vec(&jwks["keys"][0]).unwrap();
    for secret in [published.clone(), jwks["keys"][0]["x"].as_str().unwrap().as_bytes().to_vec()] {
        let mut header = Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(k.kid.clone());
        let forged = jsonwebtoken::encode(&header, &claims(60), &EncodingKey::from_secret(&secret)).unwrap();
        assert_eq!(r.verify::<C>(&forged, &[Algorithm::ES256, Algorithm::HS256], NOW), Err(AuthError::TokenInvalid));
    }
    let parts: Vec<String> = r.sign(Algorithm::ES256, "JWT", &claims(60)).unwrap().split('.').map(str::to_owned).collect();
    let none = URL_SAFE_NO_PAD.encode(format!(r#"{{"alg":"none","kid":"{}"}}"#, k.kid));
    assert_eq!(r.verify::<C>(&format!("{none}.{}.", parts[1]), &[Algorithm::ES256], NOW), Err(AuthError::TokenInvalid));
}

#[test]
fn a_reload_reaches_every_clone_and_drops_removed_keys() {
    let old = SigningKey::generate(Algorithm::ES256, NOW).unwrap();
    let ring = Keyring::new(std::slice::from_ref(&old), 0);
    let held_by_a_face = ring.clone();
    let t = ring.sign(Algorithm::ES256, "JWT", &claims(60)).unwrap();
    let new = SigningKey::generate(Algorithm::ES256, NOW + time::Duration::seconds(1)).unwrap();
    ring.reload(std::slice::from_ref(&new));
    assert_eq!(held_by_a_face.verify::<C>(&t, &[Algorithm::ES256], NOW), Err(AuthError::TokenInvalid), "a removed key verifies nothing");
    let fresh = held_by_a_face.sign(Algorithm::ES256, "JWT", &claims(60)).unwrap();
    assert_eq!(jsonwebtoken::decode_header(&fresh).unwrap().kid.as_deref(), Some(new.kid.as_str()));
}

/// HMAC tokens signed and checked with ring's precomputed keys are jsonwebtoken's to the byte:
/// what it signs verifies here, what is signed here verifies with it, and a token whose header
/// was read before is still checked in full.
#[test]
fn hmac_tokens_signed_with_ring_are_jsonwebtokens_to_the_byte_and_checked_in_full() {
    for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
        let k = SigningKey::generate(alg, NOW).unwrap();
        let r = Keyring::new(std::slice::from_ref(&k), 0);
        let c = claims(60);
        let ours = r.sign(alg, "JWT", &c).unwrap();
        let mut header = Header::new(alg.jwt());
        header.typ = Some("JWT".into());
        header.kid = Some(k.kid.clone());
        let theirs = jsonwebtoken::encode(&header, &c, &EncodingKey::from_secret(&k.secret)).unwrap();
        assert_eq!(ours, theirs, "{alg:?}: the same token");
        let v = signature_only(alg);
        assert_eq!(jsonwebtoken::decode::<C>(&ours, &DecodingKey::from_secret(&k.secret), &v).unwrap().claims, c);
        // twice: the second read takes the header from the memo
        for _ in 0..2 {
            assert_eq!(r.verify::<C>(&ours, &[alg], NOW).unwrap(), c);
        }
        // the same header, with another signature, payload or segment count: refused
        let (input, sig) = ours.rsplit_once('.').unwrap();
        let mut flipped = URL_SAFE_NO_PAD.decode(sig).unwrap();
        flipped[0] ^= 1;
        let other = claims(3600);
        let (_, forged_payload, _) = {
            let t = r.sign(alg, "JWT", &other).unwrap();
            let mut p = t.split('.').map(str::to_owned).collect::<Vec<_>>().into_iter();
            (p.next().unwrap(), p.next().unwrap(), p.next().unwrap())
        };
        let head = input.split('.').next().unwrap();
        for bad in [
            format!("{input}.{}", URL_SAFE_NO_PAD.encode(&flipped)),
            format!("{input}.{}", &sig[..sig.len() - 2]),
            format!("{head}.{forged_payload}.{sig}"),
            input.to_owned(),
            format!("{input}.{sig}.{sig}"),
            format!("{head}.{input}.{sig}"),
            format!("{input}.{sig}="),
        ] {
            assert_eq!(r.verify::<C>(&bad, &[alg], NOW), Err(AuthError::TokenInvalid), "{alg:?}: {bad}");
        }
        // a key of another algorithm's ring does not take it
        let (other_ring, _) = ring();
        assert_eq!(other_ring.verify::<C>(&ours, &[alg], NOW), Err(AuthError::TokenInvalid));
    }
}

/// A reload that finds the same keys keeps the ring and what it remembers; a changed key set
/// builds a new one at once.
#[test]
fn a_reload_with_the_same_keys_keeps_the_ring_and_a_changed_one_replaces_it() {
    let a = SigningKey::generate(Algorithm::ES256, NOW).unwrap();
    let r = Keyring::new(std::slice::from_ref(&a), 0);
    let before = r.ring();
    r.reload(std::slice::from_ref(&a));
    assert!(Arc::ptr_eq(&before, &r.ring()), "unchanged keys: the same ring");
    let mut retired = a.clone();
    retired.state = KeyState::Retired;
    r.reload(std::slice::from_ref(&retired));
    assert!(!Arc::ptr_eq(&before, &r.ring()), "a key's state changed: a new ring");
    let b = SigningKey::generate(Algorithm::ES256, NOW).unwrap();
    let now = r.ring();
    r.reload(&[retired.clone(), b]);
    assert!(!Arc::ptr_eq(&now, &r.ring()), "a key added: a new ring");
    let t = Keyring::new(std::slice::from_ref(&a), 0).sign(Algorithm::ES256, "JWT", &claims(60)).unwrap();
    r.reload(&[]);
    assert_eq!(r.verify::<C>(&t, &[Algorithm::ES256], NOW), Err(AuthError::TokenInvalid), "a removed key verifies nothing");
}
