//! Every token is bound to the face that issued it: each face refuses the others' tokens, in its
//! own words, except within a configured group (simplejwt and djoser by default).

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_app, spawn_with};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

async fn post_json(app: &TestApp, path: &str, body: Value, auth: Option<&str>) -> (u16, Value) {
    let mut r = app.http.post(app.url(path)).json(&body);
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let res = r.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, path: &str, auth: &str) -> (u16, Value) {
    let res = app.http.get(app.url(path)).header("authorization", auth).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// One pair from every face, for one user.
struct Pairs {
    native: (String, String),
    drf: (String, String),
    sj: (String, String),
    flask: (String, String),
    medods: (String, String),
}

async fn pairs(app: &TestApp) -> Pairs {
    let n = app.user_with_pair(EMAIL).await;
    let res = app
        .http
        .post(app.url("/auth/token"))
        .form(&[("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD), ("client_id", "tessera")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let drf: Value = res.json().await.unwrap();
    let (_, sj) = post_json(app, "/api/token/", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    let (_, fl) = post_json(app, "/api/v1/login", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    let generate = json!({"user_id": 42, "GUID": "FF4vjiQAU8e6KYq/edxsrQ=="});
    let res = app.http.post(app.url("/generate")).header("x-caller-key", crate::helpers::CALLER_KEY).json(&generate).send().await.unwrap();
    let md: Value = res.json().await.unwrap();
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    Pairs {
        native: (n.access, n.refresh),
        drf: (s(&drf, "access_token"), s(&drf, "refresh_token")),
        sj: (s(&sj, "access"), s(&sj, "refresh")),
        flask: (s(&fl, "access_token"), s(&fl, "refresh_token")),
        medods: (s(&md, "access"), s(&md, "refresh")),
    }
}

async fn every_face_refuses_the_access_tokens_of_every_other_face() {
    let app = spawn_app().await;
    let p = pairs(&app).await;
    let foreign = |own: &str| {
        [&p.native.0, &p.drf.0, &p.sj.0, &p.flask.0, &p.medods.0].into_iter().filter(|t| *t != own).cloned().collect::<Vec<_>>()
    };
    // native /v1/me: its own, and nothing else (drf-social's tokens are the same JWT format)
    assert_eq!(app.me(&p.native.0).await.status(), 200);
    for t in foreign(&p.native.0) {
        let res = app.me(&t).await;
        assert_eq!(res.status(), 401, "{t}");
        assert_eq!(res.headers()["content-type"], "application/problem+json");
    }
    // drf-social's invalidate-sessions: its own words for a token it does not accept
    for t in foreign(&p.drf.0) {
        let (status, body) =
            post_json(&app, "/auth/invalidate-sessions", json!({"client_id": "tessera"}), Some(&format!("Bearer {t}"))).await;
        assert_eq!((status, body), (401, json!({"detail": "Authentication credentials were not provided."})));
    }
    // simplejwt's verify
    for t in foreign(&p.sj.0) {
        let (status, body) = post_json(&app, "/api/token/verify/", json!({"token": t}), None).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("token_not_valid")), "{t}");
    }
    // flask's protected route
    assert_eq!(get(&app, "/api/v1/protected", &format!("Bearer {}", p.flask.0)).await.0, 200);
    for t in foreign(&p.flask.0) {
        let (status, body) = get(&app, "/api/v1/protected", &format!("Bearer {t}")).await;
        assert_eq!(status, 422, "{t}: {body}");
    }
    // Medods' /me
    assert_eq!(get(&app, "/me", &format!("Bearer {}", p.medods.0)).await.0, 200);
    for t in foreign(&p.medods.0) {
        let (status, body) = get(&app, "/me", &format!("Bearer {t}")).await;
        assert_eq!((status, body["code"].as_str()), (401, Some("invalid_token")), "{t}");
    }
    // djoser and simplejwt are one group by default: djoser accepts simplejwt's access token
    let (status, me) = get(&app, "/users/me/", &format!("JWT {}", p.sj.0)).await;
    assert_eq!((status, me["email"].as_str()), (200, Some(EMAIL)));
}

async fn every_face_refuses_the_refresh_tokens_of_every_other_face() {
    let app = spawn_app().await;
    let p = pairs(&app).await;
    // native refresh at drf-social, and drf-social's at native: invalid_grant, nothing consumed
    let drf_refresh = |t: &str| {
        app.http
            .post(app.url("/auth/token"))
            .form(&[("grant_type", "refresh_token"), ("refresh_token", t), ("client_id", "tessera")])
            .send()
    };
    let res = drf_refresh(&p.native.1).await.unwrap();
    assert_eq!((res.status().as_u16(), res.json::<Value>().await.unwrap()), (400, json!({"error": "invalid_grant"})));
    let res = app.refresh(&p.drf.1).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // simplejwt's refresh token at flask, and flask's at simplejwt
    let (status, body) = post_json(&app, "/api/v1/refresh/token", json!({}), Some(&format!("Bearer {}", p.sj.1))).await;
    assert_eq!(status, 422, "{body}");
    let (status, _) = post_json(&app, "/api/token/refresh/", json!({"refresh": p.flask.1}), None).await;
    assert_eq!(status, 401);
    // a native refresh token, re-encoded as Medods writes them, ends nothing through /delete
    let reencoded = STANDARD.encode(URL_SAFE_NO_PAD.decode(&p.native.1).unwrap());
    assert_eq!(post_json(&app, "/delete", json!({"refresh": reencoded}), None).await.0, 200);
    assert_eq!(app.me(&p.native.0).await.status(), 200, "the native session is alive");
    // Medods' refresh token at native: refused
    let medods_as_native = URL_SAFE_NO_PAD.encode(STANDARD.decode(&p.medods.1).unwrap());
    assert_eq!(app.refresh(&medods_as_native).await.status(), 400);
    // every token still works at its own face
    assert_eq!(app.refresh(&p.native.1).await.status(), 200);
    assert_eq!(drf_refresh(&p.drf.1).await.unwrap().status(), 200);
    assert_eq!(post_json(&app, "/api/token/refresh/", json!({"refresh": p.sj.1}), None).await.0, 200);
    // djoser shares simplejwt's group
    assert_eq!(post_json(&app, "/auth/jwt/refresh/", json!({"refresh": p.sj.1}), None).await.0, 200);
}

async fn groups_are_configuration() {
    let app = spawn_with(|s| s.dialects.djoser.audience = "zonesmart".into()).await;
    app.register(EMAIL, PASSWORD).await;
    let (_, sj) = post_json(&app, "/api/token/", json!({"email": EMAIL, "password": PASSWORD}), None).await;
    let (status, _) = get(&app, "/users/me/", &format!("JWT {}", sj["access"].as_str().unwrap())).await;
    assert_eq!(status, 401, "djoser alone refuses simplejwt's tokens");
    let (status, body) = post_json(&app, "/auth/jwt/refresh/", json!({"refresh": sj["refresh"]}), None).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_not_valid")));
}

async fn a_revoked_long_lived_access_token_is_refused() {
    let app = spawn_app().await;
    let p = pairs(&app).await;
    let res =
        app.http.post(app.url("/auth/revoke-token")).form(&[("token", p.drf.0.as_str()), ("client_id", "tessera")]).send().await.unwrap();
    assert_eq!(res.status(), 204);
    let (status, _) =
        post_json(&app, "/auth/invalidate-sessions", json!({"client_id": "tessera"}), Some(&format!("Bearer {}", p.drf.0))).await;
    assert_eq!(status, 401);
}

/// Token responses are never cached, at any face.
async fn every_token_response_says_no_store() {
    let app = spawn_app().await;
    app.register(EMAIL, PASSWORD).await;
    let requests = [
        app.http.post(app.url("/api/token/")).json(&json!({"email": EMAIL, "password": PASSWORD})),
        app.http.post(app.url("/auth/jwt/create/")).json(&json!({"email": EMAIL, "password": PASSWORD})),
        app.http.post(app.url("/api/v1/login")).json(&json!({"email": EMAIL, "password": PASSWORD})),
        app.http.post(app.url("/generate")).header("x-caller-key", crate::helpers::CALLER_KEY).json(&json!({"user_id": 5, "GUID": "g"})),
        app.http.post(app.url("/auth/token")).form(&[
            ("grant_type", "password"),
            ("username", EMAIL),
            ("password", PASSWORD),
            ("client_id", "tessera"),
        ]),
        app.http.post(app.url("/oauth/token")).form(&[("grant_type", "password"), ("username", EMAIL), ("password", PASSWORD)]),
        app.http.post(app.url("/api/token/")).json(&json!({"email": EMAIL, "password": "wrong"})),
    ];
    for r in requests {
        let res = r.send().await.unwrap();
        let url = res.url().to_string();
        assert!(res.status().as_u16() == 200 || res.status().as_u16() == 401, "{url}: {}", res.status());
        assert_eq!(res.headers()["cache-control"], "no-store", "{url}");
    }
}

crate::both_backends!(
    every_token_response_says_no_store,
    every_face_refuses_the_access_tokens_of_every_other_face,
    every_face_refuses_the_refresh_tokens_of_every_other_face,
    groups_are_configuration,
    a_revoked_long_lived_access_token_is_refused,
);
