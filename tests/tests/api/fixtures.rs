//! Replays the captured exchanges of the original Python libraries (`tests/fixtures/`) against
//! Tessera's dialects. The peers' tokens are replaced by tokens of ours of the same kind (valid,
//! expired, tampered, rotated, ...); status, the headers that matter and the JSON body are
//! compared exactly, JWTs by shape (same claims, same JSON types; our extra `sid` aside).
//! Left out: the peers' HTML 404 pages for unknown paths (Tessera answers every unknown path
//! with one RFC 9457 problem) and Werkzeug's HTML 405 page for `GET /login`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, now_unix, sign_hs256, spawn_with};

fn fixtures_dir() -> PathBuf {
    // committed with the tests, so a clone of the repository alone runs them
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

fn load(peer: &str) -> BTreeMap<String, Value> {
    let dir = fixtures_dir().join(peer);
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = entry.unwrap().path();
        let v: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        out.insert(v["case"].as_str().unwrap().to_owned(), v);
    }
    out
}

fn is_jwt(s: &str) -> bool {
    s.split('.').count() == 3 && s.starts_with("eyJ")
}

fn payload(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Claim names and JSON types, and the shape of `jti`.
fn claim_shape(claims: &Value) -> BTreeMap<String, String> {
    claims
        .as_object()
        .unwrap()
        .iter()
        // ours: `sid` (revocation) and `aud` (the face's audience, the libraries' own setting)
        .filter(|(k, _)| *k != "sid" && *k != "aud" && *k != "email")
        .map(|(k, v)| {
            let mut t = json_type(v).to_owned();
            if k == "jti" {
                let s = v.as_str().unwrap();
                t = if s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
                    "hex32".into()
                } else if uuid::Uuid::parse_str(s).is_ok() {
                    "uuid".into()
                } else {
                    "other".into()
                };
            }
            (k.clone(), t)
        })
        .collect()
}

/// Bodies equal, with JWTs compared by claim shape.
fn assert_body_matches(case: &str, expected: &Value, actual: &Value) {
    match (expected, actual) {
        (Value::String(e), Value::String(a)) if is_jwt(e) => {
            assert!(is_jwt(a), "{case}: expected a JWT, got {a}");
            assert_eq!(claim_shape(&payload(e)), claim_shape(&payload(a)), "{case}: claims of {a}");
        }
        (Value::Object(e), Value::Object(a)) => {
            assert_eq!(e.keys().collect::<Vec<_>>(), a.keys().collect::<Vec<_>>(), "{case}: keys (and their order)");
            for (k, v) in e {
                assert_body_matches(case, v, &a[k]);
            }
        }
        (Value::Array(e), Value::Array(a)) => {
            assert_eq!(e.len(), a.len(), "{case}");
            for (x, y) in e.iter().zip(a) {
                assert_body_matches(case, x, y);
            }
        }
        _ => assert_eq!(expected, actual, "{case}"),
    }
}

/// What a replayed request carries.
enum Body<'a> {
    Json(Value),
    Raw(&'a str, &'a str),
    Empty,
}

/// Sends `request` and compares the response with the fixture's.
async fn replay(app: &TestApp, case: &str, fixture: &Value, path: &str, auth: Option<String>, body: Body<'_>, headers: &[&str]) {
    let req = &fixture["request"];
    let method = reqwest::Method::from_bytes(req["method"].as_str().unwrap().as_bytes()).unwrap();
    let mut r = app.http.request(method, app.url(path));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    match body {
        Body::Json(b) => r = r.header("content-type", "application/json").body(b.to_string()),
        Body::Raw(ct, raw) => r = r.header("content-type", ct).body(raw.to_owned()),
        Body::Empty => {}
    }
    let res = r.send().await.unwrap();
    let expected = &fixture["response"];
    assert_eq!(res.status().as_u16(), expected["status"].as_u64().unwrap() as u16, "{case}: status");
    for h in headers {
        let want = expected["headers"].get(*h).and_then(Value::as_str);
        let got = res.headers().get(*h).map(|v| v.to_str().unwrap().to_owned());
        assert_eq!(got.as_deref(), want, "{case}: header {h}");
    }
    let text = res.text().await.unwrap();
    let raw_expected = expected["body_raw"].as_str().unwrap();
    assert_eq!(text.ends_with('\n'), raw_expected.ends_with('\n'), "{case}: trailing newline");
    let actual: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{case}: not JSON: {text}"));
    assert_body_matches(case, &expected["body"], &actual);
}

fn tamper(jwt: &str) -> String {
    let (head, sig) = jwt.rsplit_once('.').unwrap();
    let flipped = if sig.starts_with('A') { "B" } else { "A" };
    format!("{head}.{flipped}{}", &sig[1..])
}

// ---------------------------------------------------------------- simplejwt and djoser

async fn django_app(era: &str) -> TestApp {
    let era = era.to_owned();
    spawn_with(move |s| {
        s.dialects.simplejwt.era = era.clone();
        s.dialects.simplejwt.username_field = "username".into();
        // the peers were captured with ROTATE_REFRESH_TOKENS and BLACKLIST_AFTER_ROTATION on
        s.dialects.simplejwt.refresh_policy = tessera_domain::RefreshPolicy::Rotate;
        s.dialects.djoser.refresh_policy = tessera_domain::RefreshPolicy::Rotate;
        s.dialects.djoser.era = era;
    })
    .await
}

async fn replay_django(peer: &str, era: &str) {
    let fx = load(peer);
    let app = django_app(era).await;
    let (email, password) = ("user0001@example.com", "pw-user0001-long");
    assert_eq!(app.register(email, password).await.status(), 201);
    let login = |u: &str, p: &str| json!({"username": u, "password": p});
    let token_headers = ["content-type", "www-authenticate", "allow"];
    let me_headers = ["content-type"];
    let expired = |kind: &str| {
        let claims = json!({"token_type": kind, "exp": now_unix() - 3600, "iat": now_unix() - 7200, "jti": "0123456789abcdef0123456789abcdef", "user_id": if era == "5.5" { json!("1") } else { json!(1) }});
        sign_hs256(&json!({"alg": "HS256", "typ": "JWT", "kid": app.kid}), &claims, &app.key_secret)
    };

    // login
    for (case, body) in [
        ("login_ok", login(email, password)),
        ("login_ok_email", login(email, password)),
        ("login_bad_password", login(email, "wrong")),
        ("login_unknown_user", login("nobody", "wrong")),
        ("login_blank_password", login(email, "")),
        ("login_missing_fields", json!({})),
    ] {
        replay(&app, case, &fx[case], "/api/token/", None, Body::Json(body), &token_headers).await;
    }
    replay(
        &app,
        "login_malformed_json",
        &fx["login_malformed_json"],
        "/api/token/",
        None,
        Body::Raw("application/json", "{not json"),
        &token_headers,
    )
    .await;
    replay(
        &app,
        "login_form_encoded",
        &fx["login_form_encoded"],
        "/api/token/",
        None,
        Body::Raw("application/x-www-form-urlencoded", "username=a&password=b"),
        &token_headers,
    )
    .await;
    replay(&app, "login_method_get", &fx["login_method_get"], "/api/token/", None, Body::Empty, &token_headers).await;

    // tokens of ours for the token cases
    let tokens = |res: reqwest::Response| async { res.json::<Value>().await.unwrap() };
    let first = tokens(app.http.post(app.url("/api/token/")).json(&login(email, password)).send().await.unwrap()).await;
    let (access, refresh) = (first["access"].as_str().unwrap().to_owned(), first["refresh"].as_str().unwrap().to_owned());

    for (case, token) in [
        ("verify_ok_access", access.clone()),
        ("verify_ok_refresh", refresh.clone()),
        ("verify_bad_signature", tamper(&access)),
        ("verify_expired", expired("access")),
        ("verify_invalid", "not-a-jwt".to_owned()),
    ] {
        replay(&app, case, &fx[case], "/api/token/verify/", None, Body::Json(json!({"token": token})), &token_headers).await;
    }
    replay(&app, "verify_missing_field", &fx["verify_missing_field"], "/api/token/verify/", None, Body::Json(json!({})), &token_headers)
        .await;

    // djoser's /users/me/ (the peer's scheme was Bearer; djoser's is JWT)
    let jwt = |t: &str| Some(format!("JWT {t}"));
    for (case, auth) in [
        ("me_ok", jwt(&access)),
        ("me_bad_signature", jwt(&tamper(&access))),
        ("me_expired_token", jwt(&expired("access"))),
        ("me_invalid_token", jwt("not-a-jwt")),
        ("me_refresh_token", jwt(&refresh)),
        ("me_bearer_extra_part", Some(format!("JWT {access} extra"))),
        ("me_bearer_without_token", Some("JWT".to_owned())),
        ("me_missing_header", None),
        ("me_wrong_scheme", Some(format!("Token {access}"))),
    ] {
        let mut fixture = fx[case].clone();
        if case == "me_ok" {
            // the peer's user had a username of its own; ours is the e-mail
            fixture["response"]["body"] = json!({"email": email, "id": 1, "username": email});
        }
        replay(&app, case, &fixture, "/users/me/", auth, Body::Empty, &me_headers).await;
        if case != "me_ok" {
            let res = app.http.get(app.url("/users/me/")).send().await.unwrap();
            assert_eq!(res.headers()["www-authenticate"], "JWT realm=\"api\"", "{case}: djoser's realm");
        }
    }

    // refresh: rotate, the new token works, the old one is blacklisted
    for (case, token) in [
        ("refresh_bad_signature", tamper(&refresh)),
        ("refresh_expired", expired("refresh")),
        ("refresh_invalid", "not-a-jwt".to_owned()),
        ("refresh_with_access_token", access.clone()),
    ] {
        replay(&app, case, &fx[case], "/api/token/refresh/", None, Body::Json(json!({"refresh": token})), &token_headers).await;
    }
    replay(&app, "refresh_missing_field", &fx["refresh_missing_field"], "/api/token/refresh/", None, Body::Json(json!({})), &token_headers)
        .await;
    let second = tokens(app.http.post(app.url("/api/token/")).json(&login(email, password)).send().await.unwrap()).await;
    let old = second["refresh"].as_str().unwrap().to_owned();
    let rotated = tokens(app.http.post(app.url("/api/token/refresh/")).json(&json!({"refresh": old})).send().await.unwrap()).await;
    let newer = rotated["refresh"].as_str().unwrap().to_owned();
    let third = tokens(app.http.post(app.url("/api/token/")).json(&login(email, password)).send().await.unwrap()).await;
    replay(
        &app,
        "refresh_ok",
        &fx["refresh_ok"],
        "/api/token/refresh/",
        None,
        Body::Json(json!({"refresh": third["refresh"]})),
        &token_headers,
    )
    .await;
    replay(
        &app,
        "refresh_new_token_ok",
        &fx["refresh_new_token_ok"],
        "/api/token/refresh/",
        None,
        Body::Json(json!({"refresh": newer})),
        &token_headers,
    )
    .await;
    replay(
        &app,
        "refresh_reused_after_rotation",
        &fx["refresh_reused_after_rotation"],
        "/api/token/refresh/",
        None,
        Body::Json(json!({"refresh": old})),
        &token_headers,
    )
    .await;
    replay(
        &app,
        "verify_blacklisted_refresh",
        &fx["verify_blacklisted_refresh"],
        "/api/token/verify/",
        None,
        Body::Json(json!({"token": old})),
        &token_headers,
    )
    .await;
}

async fn django_legacy_fixtures_replay_against_simplejwt_and_djoser() {
    replay_django("django-legacy", "5.4").await;
}

async fn django_current_fixtures_replay_against_simplejwt_and_djoser() {
    replay_django("django", "5.5").await;
}

// ---------------------------------------------------------------- flask-jwt-extended

async fn replay_flask(peer: &str, era: &str) {
    let fx = load(peer);
    let era_owned = era.to_owned();
    let app = spawn_with(move |s| {
        s.dialects.flask.era = era_owned;
        s.dialects.flask.envelope = "library".into();
    })
    .await;
    let (email, password) = ("user0001@example.com", "pw-user0001-long");
    assert_eq!(app.register(email, password).await.status(), 201);
    let headers = ["content-type"];
    let login = |u: &str, p: &str| json!({"username": u, "password": p});
    for (case, body) in [
        ("login_ok", login(email, password)),
        ("login_ok_email", login(email, password)),
        ("login_bad_password", login(email, "wrong")),
        ("login_unknown_user", login("nobody", "wrong")),
        ("login_missing_fields", json!({})),
    ] {
        replay(&app, case, &fx[case], "/api/v1/login", None, Body::Json(body), &headers).await;
    }
    replay(
        &app,
        "login_malformed_json",
        &fx["login_malformed_json"],
        "/api/v1/login",
        None,
        Body::Raw("application/json", "{not json"),
        &headers,
    )
    .await;

    let res = app.http.post(app.url("/api/v1/login")).json(&login(email, password)).send().await.unwrap();
    let t: Value = res.json().await.unwrap();
    let (access, refresh) = (t["access_token"].as_str().unwrap().to_owned(), t["refresh_token"].as_str().unwrap().to_owned());
    let expired = |kind: &str| {
        let mut claims = payload(if kind == "access" { &access } else { &refresh });
        claims["exp"] = json!(now_unix() - 3600);
        sign_hs256(&json!({"typ": "JWT", "alg": "HS256", "kid": app.kid}), &claims, &app.key_secret)
    };
    let bearer = |t: &str| Some(format!("Bearer {t}"));
    for (case, auth) in [
        ("protected_ok", bearer(&access)),
        ("protected_bad_signature", bearer(&tamper(&access))),
        ("protected_bearer_extra_part", Some(format!("Bearer {access} extra"))),
        ("protected_bearer_without_token", Some("Bearer".to_owned())),
        ("protected_expired_token", bearer(&expired("access"))),
        ("protected_invalid_token", bearer("not-a-jwt")),
        ("protected_missing_header", None),
        ("protected_refresh_token", bearer(&refresh)),
        ("protected_wrong_scheme", Some(format!("Token {access}"))),
    ] {
        replay(&app, case, &fx[case], "/api/v1/protected", auth, Body::Empty, &headers).await;
    }
    for (case, auth) in [
        ("refresh_bad_signature", bearer(&tamper(&refresh))),
        ("refresh_bearer_extra_part", Some(format!("Bearer {refresh} extra"))),
        ("refresh_expired", bearer(&expired("refresh"))),
        ("refresh_invalid", bearer("not-a-jwt")),
        ("refresh_missing_header", None),
        ("refresh_with_access_token", bearer(&access)),
        ("refresh_wrong_scheme", Some("Basic x".to_owned())),
        ("refresh_ok", bearer(&refresh)),
        ("refresh_reused_no_rotation", bearer(&refresh)),
        ("logout_ok", bearer(&refresh)),
        ("refresh_revoked", bearer(&refresh)),
    ] {
        let path = if case == "logout_ok" { "/api/v1/logout" } else { "/api/v1/refresh/token" };
        replay(&app, case, &fx[case], path, auth, Body::Empty, &headers).await;
    }
}

async fn flask_legacy_fixtures_replay_against_the_flask_dialect() {
    replay_flask("flask-legacy", "3").await;
}

async fn flask_current_fixtures_replay_against_the_flask_dialect() {
    replay_flask("flask", "4").await;
}

crate::both_backends!(
    django_legacy_fixtures_replay_against_simplejwt_and_djoser,
    django_current_fixtures_replay_against_simplejwt_and_djoser,
    flask_legacy_fixtures_replay_against_the_flask_dialect,
    flask_current_fixtures_replay_against_the_flask_dialect,
);
