//! DPoP (RFC 9449) on the native API, with a client built by the RFC's rules: proofs signed by
//! a P-256 key the client holds, carrying its public key, the request's method and URL, a fresh
//! `jti`, `iat`, and for a protected route the access token's hash. Every refusal the RFC names
//! is replayed: a used `jti`, another `htu` or `htm`, a stale `iat`, a bound token sent as
//! Bearer, a proof by another key, a missing nonce.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tessera_domain::{ClientId, OAuthClient, OffsetDateTime};

use crate::helpers::{TestApp, now_unix, spawn_app, spawn_with};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

/// A client's key pair: PKCS#8 DER of the private key, and the public point.
struct Key {
    der: &'static str,
    x: &'static str,
    y: &'static str,
}

const KEY: Key = Key {
    der: "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg5yxxUM89/URx759bQvK9aTLiF5r1hnejYxjrp5DI6nmhRANCAAQ+s6RDgwl9ZTJ5q5QpdI7kWwvNf9pPxBWLumCNdQGBc0XMh8gV7r72UEa3P4a1Fr4ULCWyMCOPN/NNMXnplWRf",
    x: "PrOkQ4MJfWUyeauUKXSO5FsLzX_aT8QVi7pgjXUBgXM",
    y: "RcyHyBXuvvZQRrc_hrUWvhQsJbIwI483800xeemVZF8",
};
const OTHER_KEY: Key = Key {
    der: "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg93EWjcFfxden13RuAOoiKGedMEkaYgyEFdWXzPVloBKhRANCAARH0XaRlQv+N5dICtBSr8X8xsYRhRvctLsfpuu1j+qz0cqQxyVLtZ2OSuE8jsE+j1pmUQ418Q17nZa37AlWieMy",
    x: "R9F2kZUL_jeXSArQUq_F_MbGEYUb3LS7H6brtY_qs9E",
    y: "ypDHJUu1nY5K4TyOwT6PWmZRDjXxDXudlrfsCVaJ4zI",
};

impl Key {
    fn jwk(&self) -> Value {
        json!({"kty": "EC", "crv": "P-256", "x": self.x, "y": self.y})
    }

    /// RFC 7638: SHA-256 of the required members in lexicographic order, base64url.
    fn thumbprint(&self) -> String {
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#, self.x, self.y);
        URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
    }
}

/// What a proof says, beside its key.
struct Claims<'a> {
    htm: &'a str,
    htu: String,
    access_token: Option<&'a str>,
    nonce: Option<&'a str>,
    iat_offset: i64,
    jti: Option<&'a str>,
}

fn proof(key: &Key, c: Claims<'_>) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("dpop+jwt".into());
    header.jwk = Some(serde_json::from_value(key.jwk()).unwrap());
    let mut claims = json!({
        "jti": c.jti.map(str::to_owned).unwrap_or_else(|| uuid::Uuid::new_v4().to_string()),
        "htm": c.htm,
        "htu": c.htu,
        "iat": now_unix() + c.iat_offset,
    });
    if let Some(t) = c.access_token {
        claims["ath"] = json!(URL_SAFE_NO_PAD.encode(Sha256::digest(t.as_bytes())));
    }
    if let Some(n) = c.nonce {
        claims["nonce"] = json!(n);
    }
    let der = STANDARD.decode(key.der).unwrap();
    jsonwebtoken::encode(&header, &claims, &jsonwebtoken::EncodingKey::from_ec_der(&der)).unwrap()
}

fn at_token(app: &TestApp) -> Claims<'static> {
    Claims { htm: "POST", htu: app.url("/oauth/token"), access_token: None, nonce: None, iat_offset: 0, jti: None }
}

fn at_me<'a>(app: &TestApp, access: &'a str) -> Claims<'a> {
    Claims { htm: "GET", htu: app.url("/v1/me"), access_token: Some(access), nonce: None, iat_offset: 0, jti: None }
}

async fn token_with(app: &TestApp, form: &[(&str, &str)], proof: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut req = app.http.post(app.url("/oauth/token")).form(form);
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    let res = req.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.json().await.unwrap(), headers)
}

async fn login(app: &TestApp, proof: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    token_with(app, &[("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD)], proof).await
}

async fn me(app: &TestApp, scheme: &str, access: &str, proof: Option<&str>) -> reqwest::Response {
    let mut req = app.http.get(app.url("/v1/me")).header("Authorization", format!("{scheme} {access}"));
    if let Some(p) = proof {
        req = req.header("DPoP", p);
    }
    req.send().await.unwrap()
}

fn challenge(res: &reqwest::Response) -> String {
    res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default()
}

async fn a_dpop_client_logs_in_refreshes_and_calls_the_api_with_its_key() {
    let app = spawn_app().await;
    assert_eq!(app.register(EMAIL, PASSWORD).await.status(), 201);

    let (status, body, _) = login(&app, Some(&proof(&KEY, at_token(&app)))).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "DPoP");
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    // a resource server holding only the JWKS sees the binding
    let claims = app.verify_independently(&access).await;
    assert_eq!(claims["cnf"], json!({"jkt": KEY.thumbprint()}));

    let res = me(&app, "DPoP", &access, Some(&proof(&KEY, at_me(&app, &access)))).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap()["email"], EMAIL);

    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    let (status, refreshed, _) = token_with(&app, &form, Some(&proof(&KEY, at_token(&app)))).await;
    assert_eq!((status, refreshed["token_type"].as_str()), (200, Some("DPoP")), "{refreshed}");
    let access2 = refreshed["access_token"].as_str().unwrap();
    assert_eq!(app.verify_independently(access2).await["cnf"]["jkt"], KEY.thumbprint());

    // introspection reports the binding
    let hash = app.secrets.refresh_hasher.hash(b"rs-secret");
    app.store
        .create_client(&OAuthClient {
            client_id: ClientId::parse("rs").unwrap(),
            name: "rs".into(),
            secret_hash: Some(hash),
            profile: "standard".into(),
            created_at: OffsetDateTime::now_utc(),
            scopes: vec![],
            audiences: vec![],
            require_dpop: false,
            exchange_types: vec![],
        })
        .await
        .unwrap();
    let seen: Value = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("rs", Some("rs-secret"))
        .form(&[("token", access2)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((&seen["active"], &seen["cnf"]), (&json!(true), &json!({"jkt": KEY.thumbprint()})));

    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert!(meta["dpop_signing_alg_values_supported"].as_array().unwrap().contains(&json!("ES256")), "{meta}");
    // a client without DPoP goes on as before
    let (status, plain, _) = login(&app, None).await;
    assert_eq!((status, plain["token_type"].as_str()), (200, Some("Bearer")));
    assert!(app.verify_independently(plain["access_token"].as_str().unwrap()).await.get("cnf").is_none());
}

async fn every_refusal_of_rfc_9449_is_answered_with_its_code() {
    let app = spawn_app().await;
    assert_eq!(app.register(EMAIL, PASSWORD).await.status(), 201);
    let (_, body, _) = login(&app, Some(&proof(&KEY, at_token(&app)))).await;
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let refused = |(status, body, _): (u16, Value, reqwest::header::HeaderMap), code: &str| {
        assert_eq!((status, body["error"].as_str()), (400, Some(code)), "{body}");
    };

    // at the token endpoint: a used jti, another URL, another method, a stale iat, a bad alg
    let once = proof(&KEY, Claims { jti: Some("used-once"), ..at_token(&app) });
    assert_eq!(login(&app, Some(&once)).await.0, 200);
    refused(login(&app, Some(&once)).await, "invalid_dpop_proof");
    refused(login(&app, Some(&proof(&KEY, Claims { htu: app.url("/oauth/revoke"), ..at_token(&app) }))).await, "invalid_dpop_proof");
    refused(login(&app, Some(&proof(&KEY, Claims { htm: "GET", ..at_token(&app) }))).await, "invalid_dpop_proof");
    refused(login(&app, Some(&proof(&KEY, Claims { iat_offset: -600, ..at_token(&app) }))).await, "invalid_dpop_proof");
    let hs = jsonwebtoken::encode(
        &jsonwebtoken::Header { typ: Some("dpop+jwt".into()), ..jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256) },
        &json!({"jti": "x", "htm": "POST", "htu": app.url("/oauth/token"), "iat": now_unix()}),
        &jsonwebtoken::EncodingKey::from_secret(b"a shared secret proves nothing"),
    )
    .unwrap();
    refused(login(&app, Some(&hs)).await, "invalid_dpop_proof");

    // the refresh token is bound: another key's proof, or none, gets nothing
    let form = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str())];
    refused(token_with(&app, &form, Some(&proof(&OTHER_KEY, at_token(&app)))).await, "invalid_grant");
    refused(token_with(&app, &form, None).await, "invalid_dpop_proof");

    // at a protected route
    let bearer = me(&app, "Bearer", &access, None).await;
    assert_eq!(bearer.status(), 401);
    assert!(challenge(&bearer).starts_with("DPoP ") && challenge(&bearer).contains("error=\"invalid_token\""), "{}", challenge(&bearer));
    let other = me(&app, "DPoP", &access, Some(&proof(&OTHER_KEY, at_me(&app, &access)))).await;
    assert_eq!(other.status(), 401);
    assert!(challenge(&other).contains("error=\"invalid_dpop_proof\""), "{}", challenge(&other));
    assert_eq!(me(&app, "DPoP", &access, None).await.status(), 401, "no proof");
    assert_eq!(
        me(&app, "DPoP", &access, Some(&proof(&KEY, Claims { access_token: Some("another"), ..at_me(&app, &access) }))).await.status(),
        401,
        "wrong ath"
    );
    assert_eq!(
        me(&app, "DPoP", &access, Some(&proof(&KEY, Claims { htm: "POST", ..at_me(&app, &access) }))).await.status(),
        401,
        "wrong htm"
    );
    let replayed = proof(&KEY, at_me(&app, &access));
    assert_eq!(me(&app, "DPoP", &access, Some(&replayed)).await.status(), 200);
    let again = me(&app, "DPoP", &access, Some(&replayed)).await;
    assert_eq!(again.status(), 401, "a proof is used once");
    assert!(challenge(&again).contains("invalid_dpop_proof"));
    // an unbound token sent as DPoP
    let (_, plain, _) = login(&app, None).await;
    let plain = plain["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&app, "DPoP", &plain, Some(&proof(&KEY, at_me(&app, &plain)))).await.status(), 401);
    assert_eq!(me(&app, "Bearer", &plain, None).await.status(), 200);
}

async fn the_server_nonce_and_required_dpop() {
    let app = spawn_with(|s| s.oauth.dpop_nonce = true).await;
    assert_eq!(app.register(EMAIL, PASSWORD).await.status(), 201);
    let (status, body, headers) = login(&app, Some(&proof(&KEY, at_token(&app)))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("use_dpop_nonce")), "{body}");
    let nonce = headers["dpop-nonce"].to_str().unwrap().to_owned();
    let (status, body, headers) = login(&app, Some(&proof(&KEY, Claims { nonce: Some(&nonce), ..at_token(&app) }))).await;
    assert_eq!(status, 200, "{body}");
    assert!(headers.contains_key("dpop-nonce"));
    let access = body["access_token"].as_str().unwrap().to_owned();
    let res = me(&app, "DPoP", &access, Some(&proof(&KEY, at_me(&app, &access)))).await;
    assert_eq!(res.status(), 401);
    assert!(challenge(&res).contains("use_dpop_nonce"));
    let fresh = res.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(me(&app, "DPoP", &access, Some(&proof(&KEY, Claims { nonce: Some(&fresh), ..at_me(&app, &access) }))).await.status(), 200);
    assert_eq!(
        me(&app, "DPoP", &access, Some(&proof(&KEY, Claims { nonce: Some("made-up"), ..at_me(&app, &access) }))).await.status(),
        401
    );

    // a deployment that requires DPoP: a token request without a proof is refused
    let strict = spawn_with(|s| s.oauth.require_dpop = true).await;
    assert_eq!(strict.register(EMAIL, PASSWORD).await.status(), 201);
    let (status, body, _) = login(&strict, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    assert_eq!(login(&strict, Some(&proof(&KEY, at_token(&strict)))).await.0, 200);
}

async fn a_client_that_requires_dpop_gets_no_bearer_token() {
    let app = spawn_app().await;
    assert_eq!(app.register(EMAIL, PASSWORD).await.status(), 201);
    app.store
        .create_client(&OAuthClient {
            client_id: ClientId::parse("mobile").unwrap(),
            name: "mobile".into(),
            secret_hash: None,
            profile: "standard".into(),
            created_at: OffsetDateTime::now_utc(),
            scopes: vec![],
            audiences: vec![],
            require_dpop: true,
            exchange_types: vec![],
        })
        .await
        .unwrap();
    let form = [("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD), ("client_id", "mobile")];
    let (status, body, _) = token_with(&app, &form, None).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_dpop_proof")), "{body}");
    let (status, body, _) = token_with(&app, &form, Some(&proof(&KEY, at_token(&app)))).await;
    assert_eq!((status, body["token_type"].as_str()), (200, Some("DPoP")), "{body}");
}

crate::both_backends!(
    a_dpop_client_logs_in_refreshes_and_calls_the_api_with_its_key,
    every_refusal_of_rfc_9449_is_answered_with_its_code,
    the_server_nonce_and_required_dpop,
    a_client_that_requires_dpop_gets_no_bearer_token,
);
