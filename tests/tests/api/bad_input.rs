//! Bad input on every route gets a 4xx with a JSON body in the route's own error shape: never a
//! 5xx, never a panic.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::{TestApp, now_unix, sign_hs256, spawn_app};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Shape {
    Problem,
    OAuth,
}

struct Case {
    name: String,
    method: Method,
    path: &'static str,
    content_type: Option<&'static str>,
    auth: Option<String>,
    body: Vec<u8>,
    expect: u16,
    shape: Shape,
}

fn case(
    name: &str,
    method: Method,
    path: &'static str,
    ct: Option<&'static str>,
    body: impl Into<Vec<u8>>,
    expect: u16,
    shape: Shape,
) -> Case {
    Case { name: name.into(), method, path, content_type: ct, auth: None, body: body.into(), expect, shape }
}

async fn run(app: &TestApp, c: &Case) {
    let mut req = app.http.request(c.method.clone(), app.url(c.path)).body(c.body.clone());
    if let Some(ct) = c.content_type {
        req = req.header("content-type", ct);
    }
    if let Some(a) = &c.auth {
        req = req.header("authorization", a.as_str());
    }
    let res = req.send().await.unwrap_or_else(|e| panic!("{}: request failed: {e}", c.name));
    let status = res.status().as_u16();
    let ct = res.headers().get("content-type").map(|v| v.to_str().unwrap().to_owned()).unwrap_or_default();
    let text = res.text().await.unwrap();
    assert_eq!(status, c.expect, "{}: status (body {text})", c.name);
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{}: body is not JSON: {text}", c.name));
    match c.shape {
        Shape::Problem => {
            assert_eq!(ct, "application/problem+json", "{}", c.name);
            assert!(body["code"].is_string() && body["status"] == status, "{}: problem body {body}", c.name);
        }
        Shape::OAuth => {
            assert!(ct.starts_with("application/json"), "{}: {ct}", c.name);
            assert!(body["error"].is_string(), "{}: oauth body {body}", c.name);
        }
    }
}

fn tokens(app: &TestApp, good: &str) -> Vec<(&'static str, String, &'static str)> {
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    let header = json!({"alg": "ES256", "typ": "at+jwt", "kid": app.native_kid});
    let none_header = URL_SAFE_NO_PAD.encode(json!({"alg": "none", "typ": "at+jwt", "kid": app.native_kid}).to_string());
    let mut expired = claims.clone();
    expired["exp"] = json!(now_unix() - 1);
    let mut unknown_kid = header.clone();
    unknown_kid["kid"] = json!("nobody");
    vec![
        ("garbage", "garbage".to_owned(), "invalid_token"),
        ("truncated", good[..good.len() - 10].to_owned(), "invalid_token"),
        (
            "other key",
            sign_hs256(&json!({"alg": "HS256", "kid": app.native_kid}), &claims, b"another key entirely, 32 bytes!!"),
            "invalid_token",
        ),
        ("unknown kid", app.sign_native(&unknown_kid, &claims), "invalid_token"),
        ("alg none", format!("{none_header}.{}.", parts[1]), "invalid_token"),
        ("expired", app.sign_native(&header, &expired), "token_expired"),
        ("huge", "a".repeat(20_000), "invalid_token"),
        ("opaque refresh as bearer", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".to_owned(), "invalid_token"),
    ]
}

async fn every_route_answers_bad_input_with_its_own_4xx() {
    let app = spawn_app().await;
    let good = app.user_with_pair("ann@example.com").await;
    let mib = vec![b'a'; 1024 * 1024];
    let json_mib = format!("{{\"email\":\"{}\"}}", "a".repeat(1024 * 1024));
    let (get, post) = (Method::GET, Method::POST);
    let j = Some("application/json");
    let f = Some("application/x-www-form-urlencoded");
    let mut cases = vec![
        // POST /v1/users
        case("users: malformed JSON", post.clone(), "/v1/users", j, "{\"email\":", 400, Shape::Problem),
        case("users: text/plain", post.clone(), "/v1/users", Some("text/plain"), "{}", 415, Shape::Problem),
        case("users: no content type", post.clone(), "/v1/users", None, "{}", 415, Shape::Problem),
        case("users: missing password", post.clone(), "/v1/users", j, r#"{"email":"a@b.co"}"#, 400, Shape::Problem),
        case(
            "users: extra field",
            post.clone(),
            "/v1/users",
            j,
            r#"{"email":"a@b.co","password":"long enough","admin":true}"#,
            400,
            Shape::Problem,
        ),
        case("users: wrong types", post.clone(), "/v1/users", j, r#"{"email":1,"password":[]}"#, 400, Shape::Problem),
        case("users: an array", post.clone(), "/v1/users", j, "[]", 400, Shape::Problem),
        case("users: 1 MiB", post.clone(), "/v1/users", j, json_mib.clone(), 413, Shape::Problem),
        // changed on purpose: an unserved method is 405 with Allow (RFC 9110), no longer 404
        case("users: GET", get.clone(), "/v1/users", None, "", 405, Shape::Problem),
        // POST /oauth/token
        case("token: malformed JSON", post.clone(), "/oauth/token", j, "{\"grant_type\":", 400, Shape::OAuth),
        case("token: text/plain", post.clone(), "/oauth/token", Some("text/plain"), "grant_type=password", 400, Shape::OAuth),
        case("token: nested JSON", post.clone(), "/oauth/token", j, r#"{"grant_type":{"a":1}}"#, 400, Shape::OAuth),
        case("token: JSON array", post.clone(), "/oauth/token", j, "[1]", 400, Shape::OAuth),
        case("token: empty", post.clone(), "/oauth/token", f, "", 400, Shape::OAuth),
        case("token: extra field, no grant", post.clone(), "/oauth/token", f, "foo=bar", 400, Shape::OAuth),
        case("token: invalid UTF-8", post.clone(), "/oauth/token", f, vec![0xff, 0xfe, b'=', 0xff], 400, Shape::OAuth),
        case("token: 1 MiB", post.clone(), "/oauth/token", f, mib.clone(), 413, Shape::OAuth),
        case(
            "token: overlong password",
            post.clone(),
            "/oauth/token",
            f,
            format!("grant_type=password&username=a%40b.co&password={}", "x".repeat(2000)),
            400,
            Shape::OAuth,
        ),
        case("token: bad basic", post.clone(), "/oauth/token", f, "grant_type=password&username=a&password=b", 401, Shape::OAuth),
        // POST /oauth/revoke
        case("revoke: missing token", post.clone(), "/oauth/revoke", f, "", 400, Shape::OAuth),
        case("revoke: malformed JSON", post.clone(), "/oauth/revoke", j, "{", 400, Shape::OAuth),
        case("revoke: 1 MiB", post.clone(), "/oauth/revoke", f, mib.clone(), 413, Shape::OAuth),
        case("revoke: unknown client", post.clone(), "/oauth/revoke", f, "token=x&client_id=nobody", 401, Shape::OAuth),
    ];
    cases.iter_mut().filter(|c| c.name == "token: bad basic").for_each(|c| c.auth = Some("Basic !!!notbase64".into()));

    // GET /v1/me and POST /v1/logout with bad credentials
    for (name, token, code) in tokens(&app, &good.access) {
        for (method, path) in [(get.clone(), "/v1/me"), (post.clone(), "/v1/logout")] {
            let mut c = case(&format!("{path}: {name}"), method, path, None, "", 401, Shape::Problem);
            c.auth = Some(format!("Bearer {token}"));
            cases.push(c);
            let _ = code;
        }
    }
    for (name, header) in [
        ("basic scheme", "Basic YTpi".to_owned()),
        ("bearer alone", "Bearer".to_owned()),
        ("three parts", format!("Bearer {} x", good.access)),
    ] {
        let mut c = case(&format!("me: {name}"), get.clone(), "/v1/me", None, "", 401, Shape::Problem);
        c.auth = Some(header);
        cases.push(c);
    }
    // POST /v1/logout with a good token and a bad body
    for (name, ct, body, status) in [
        ("malformed JSON", j, "{\"scope\":", 400),
        ("unknown scope", j, r#"{"scope":"everything"}"#, 400),
        ("extra field", j, r#"{"scope":"local","x":1}"#, 400),
        ("text/plain", Some("text/plain"), "scope=local", 415),
    ] {
        let mut c = case(&format!("logout: {name}"), post.clone(), "/v1/logout", ct, body, status, Shape::Problem);
        c.auth = Some(format!("Bearer {}", good.access));
        cases.push(c);
    }
    let mut big = case("logout: 1 MiB", post.clone(), "/v1/logout", j, mib.clone(), 413, Shape::Problem);
    big.auth = Some(format!("Bearer {}", good.access));
    cases.push(big);

    for c in &cases {
        run(&app, c).await;
    }
    // after all that, the service is healthy and the good token still works
    assert_eq!(app.me(&good.access).await.status(), 200);
}

async fn bad_tokens_get_the_documented_problem_codes() {
    let app = spawn_app().await;
    let good = app.user_with_pair("ann@example.com").await;
    for (name, token, code) in tokens(&app, &good.access) {
        let res = app.me(&token).await;
        assert_eq!(res.status(), 401, "{name}");
        assert!(
            res.headers()["www-authenticate"].to_str().unwrap().starts_with("Bearer realm=\"tessera\", error=\"invalid_token\""),
            "{name}"
        );
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{name}");
    }
}

crate::both_backends!(every_route_answers_bad_input_with_its_own_4xx, bad_tokens_get_the_documented_problem_codes,);
