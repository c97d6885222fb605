//! A NUL byte (`%00`) in a login or client field: Postgres refuses it in text, so it must never
//! reach the store. Every face answers it as the bad or unknown input it is, in its own error
//! shape, on both databases: never the 503 (and ERROR log line) of a store that refused a query.

use serde_json::{Value, json};

use crate::helpers::{CALLER_KEY, TestApp};

struct Case {
    path: &'static str,
    form: Option<Vec<(&'static str, &'static str)>>,
    json: Option<Value>,
    headers: Vec<(&'static str, &'static str)>,
}

fn form(path: &'static str, fields: &[(&'static str, &'static str)]) -> Case {
    Case { path, form: Some(fields.to_vec()), json: None, headers: vec![] }
}

fn json_case(path: &'static str, body: Value) -> Case {
    Case { path, form: None, json: Some(body), headers: vec![] }
}

const NUL_USER: &str = "ann\0@example.com";
const NUL_CLIENT: &str = "tessera\0";

async fn send(app: &TestApp, c: &Case, request_id: &str) -> (u16, Value) {
    let mut req = app.http.post(app.url(c.path)).header("x-request-id", request_id);
    for (k, v) in &c.headers {
        req = req.header(*k, *v);
    }
    if let Some(f) = &c.form {
        req = req.form(f);
    }
    if let Some(j) = &c.json {
        req = req.json(j);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

async fn a_nul_byte_in_a_login_or_client_field_is_a_4xx_in_each_faces_shape() {
    // each failure audited on its own (not aggregated per address and minute), so that the one
    // with the NUL is there to be checked
    let app = crate::helpers::spawn_with(|st| st.password.failed_login_window_seconds = 0).await;
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    let pair = app.user_with_pair("bob@example.com").await;
    let pw = "correct horse battery";
    let refresh: &'static str = Box::leak(pair.refresh.clone().into_boxed_str());
    let basic: &'static str = Box::leak(format!("Basic {}", base64_std("tessera%00:x")).into_boxed_str());
    let mut cases = vec![
        // native OAuth
        form("/oauth/token", &[("grant_type", "password"), ("username", NUL_USER), ("password", pw)]),
        form("/oauth/token", &[("grant_type", "password"), ("username", "\0"), ("password", pw)]),
        form("/oauth/token", &[("grant_type", "password"), ("username", "ann@example.com"), ("password", pw), ("client_id", NUL_CLIENT)]),
        form("/oauth/token", &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", NUL_CLIENT)]),
        form("/oauth/introspect", &[("token", refresh), ("client_id", NUL_CLIENT), ("client_secret", "x")]),
        form("/oauth/revoke", &[("token", refresh), ("client_id", NUL_CLIENT)]),
        // drf-social-oauth2
        form("/auth/token/", &[("grant_type", "password"), ("username", NUL_USER), ("password", pw), ("client_id", "tessera")]),
        form("/auth/token/", &[("grant_type", "password"), ("username", "ann@example.com"), ("password", pw), ("client_id", NUL_CLIENT)]),
        form("/auth/convert-token/", &[("grant_type", "convert_token"), ("client_id", NUL_CLIENT), ("backend", "google"), ("token", "x")]),
        form("/auth/revoke-token/", &[("token", refresh), ("client_id", NUL_CLIENT), ("client_secret", "x")]),
        // simplejwt, djoser, flask, native registration
        json_case("/api/token/", json!({"email": NUL_USER, "password": pw})),
        json_case("/auth/jwt/create/", json!({"email": NUL_USER, "password": pw})),
        json_case("/users/", json!({"email": NUL_USER, "password": pw})),
        json_case("/api/v1/login", json!({"email": NUL_USER, "password": pw})),
        json_case("/v1/users", json!({"email": NUL_USER, "password": pw})),
        // Medods: the trusted caller names the user's device
        json_case("/generate", json!({"user_id": 7, "GUID": "g\0uid", "user_agent": "Mozilla\0"})),
        json_case("/generate", json!({"user_id": 7, "GUID": "guid", "email": NUL_USER})),
    ];
    let mut with_basic = form("/oauth/introspect", &[("token", refresh)]);
    with_basic.headers = vec![("authorization", basic)];
    cases.push(with_basic);
    for c in cases.iter_mut().filter(|c| c.path == "/generate") {
        c.headers.push(("x-caller-key", CALLER_KEY));
    }
    let mut failed = vec![];
    for (i, c) in cases.iter().enumerate() {
        let id = format!("nul-{}-{i}", uuid::Uuid::new_v4().simple());
        let (status, body) = send(&app, c, &id).await;
        let shape_ok = match c.path {
            "/oauth/token" | "/oauth/introspect" | "/oauth/revoke" => body["error"].is_string(),
            "/v1/users" => body["code"].is_string(),
            "/generate" => body["code"].is_string() && body["message"].is_string(),
            "/api/v1/login" => body["msg"].is_string() || body["errors"].is_array(),
            _ => body.is_object(),
        };
        if !(400..500).contains(&status) || !shape_ok {
            failed.push(format!("{} {:?}{:?}: {status} {body}", c.path, c.form, c.json));
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
    // the failed logins were audited (a NUL in the audit's JSON would have failed its write and
    // logged an ERROR behind the 400), as typed but with the NUL replaced
    let core = app.admin().await;
    let events = core.state.service.audit_events(None, None, 100).await.unwrap();
    assert!(
        events.iter().any(|e| e.kind == "login_failed" && e.detail.contains("ann\u{fffd}@example.com")),
        "{:?}",
        events.iter().map(|e| &e.detail).collect::<Vec<_>>()
    );
    // and the real accounts still work
    assert_eq!(app.login("ann@example.com", pw).await.status(), 200);
}

fn base64_std(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

crate::both_backends!(a_nul_byte_in_a_login_or_client_field_is_a_4xx_in_each_faces_shape);
