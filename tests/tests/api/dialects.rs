//! The seeds' own request/response pairs against the dialects, and what every dialect shares:
//! one set of users, sessions and revocations; blocks and logouts hold everywhere; each dialect
//! can be switched off and re-prefixed.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_domain::{OffsetDateTime, UserStatus};

use crate::helpers::{TestApp, now_unix, sign_hs256, spawn_app, spawn_with};

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

/// Keys in order, without Tessera's two additions: `sid` (revocation) and `aud` (the face's
/// audience; both libraries have an audience setting of their own).
fn keys(v: &Value) -> Vec<String> {
    v.as_object().unwrap().keys().filter(|k| *k != "sid" && *k != "aud").cloned().collect()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn send(app: &TestApp, method: reqwest::Method, path: &str, auth: Option<&str>) -> (u16, Value) {
    let mut r = app.http.request(method, app.url(path));
    if let Some(a) = auth {
        r = r.header("authorization", a);
    }
    let res = r.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn simplejwt_seed_001_exchanges_work_unchanged() {
    let app = spawn_app().await;
    app.register("user@example.com", "string-long-enough").await;
    // POST http://127.0.0.1:8000/api/token {"email","password"} -> {"refresh","access"}
    let (status, body) = post_json(&app, "/api/token", json!({"email": "user@example.com", "password": "string-long-enough"})).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["refresh", "access"]);
    let (access, refresh) = (body["access"].as_str().unwrap(), body["refresh"].as_str().unwrap());
    // the seed's token payloads: {"token_type","exp","iat","jti","user_id":2}, HS256, 5 min / 24 h
    let a = claims(access);
    assert_eq!(keys(&a), ["token_type", "exp", "iat", "jti", "user_id"]);
    assert_eq!((a["token_type"].as_str(), a["user_id"].is_number()), (Some("access"), true));
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 300);
    let r = claims(refresh);
    assert_eq!(keys(&r), ["token_type", "exp", "iat", "jti", "user_id"]);
    assert_eq!(r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(), 86_400);
    // verify -> 200 {}
    assert_eq!(post_json(&app, "/api/token/verify", json!({"token": access})).await, (200, json!({})));
    // refresh -> {"access"} only: the seed's deployment does not rotate (changed on purpose:
    // this answered a new pair and blacklisted the old token, logging seed clients out)
    let (status, body) = post_json(&app, "/api/token/refresh", json!({"refresh": refresh})).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["access"]);
    // blacklisting is the logout: the session's access tokens fail verification from then on
    assert_eq!(post_json(&app, "/api/token/blacklist", json!({"refresh": refresh})).await, (200, json!({})));
    assert_eq!(post_json(&app, "/api/token/verify", json!({"token": body["access"]})).await.0, 401);
}

async fn a_seed_001_client_refreshes_again_and_again_with_one_refresh_token() {
    let app = spawn_app().await;
    app.register("user@example.com", "string-long-enough").await;
    let (_, body) = post_json(&app, "/api/token", json!({"email": "user@example.com", "password": "string-long-enough"})).await;
    let refresh = body["refresh"].as_str().unwrap().to_owned();
    let mut seen = std::collections::HashSet::new();
    for _ in 0..5 {
        let (status, body) = post_json(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        assert_eq!((status, keys(&body)), (200, vec!["access".to_owned()]), "{body}");
        let access = body["access"].as_str().unwrap().to_owned();
        assert_eq!(post_json(&app, "/api/token/verify/", json!({"token": access})).await, (200, json!({})));
        assert!(seen.insert(access), "every refresh gives a new access token");
    }
    assert_eq!(post_json(&app, "/api/token/verify/", json!({"token": refresh})).await, (200, json!({})));
}

async fn simplejwt_with_rotation_answers_a_pair_and_blacklists_the_old_token() {
    let app = spawn_with(|s| s.dialects.simplejwt.refresh_policy = tessera_domain::RefreshPolicy::Rotate).await;
    app.register("user@example.com", "string-long-enough").await;
    let (_, body) = post_json(&app, "/api/token", json!({"email": "user@example.com", "password": "string-long-enough"})).await;
    let refresh = body["refresh"].as_str().unwrap().to_owned();
    let (status, body) = post_json(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!((status, keys(&body)), (200, vec!["access".to_owned(), "refresh".to_owned()]));
    let (status, again) = post_json(&app, "/api/token/refresh/", json!({"refresh": refresh})).await;
    assert_eq!((status, again), (401, json!({"detail": "Token is blacklisted", "code": "token_not_valid"})));
}

async fn a_seed_003_client_refreshes_at_both_paths_with_one_refresh_token_for_its_life() {
    let app = spawn_with(|s| {
        s.dialects.djoser.prefix = "/v1/zonesmart".into();
        s.dialects.djoser.prefixes = vec![String::new()];
    })
    .await;
    let (status, _) = post_json(&app, "/v1/zonesmart/users/", json!({"email": "admin@zonesmart.ru", "password": "4815162342"})).await;
    assert_eq!(status, 201);
    // the seed: create under /v1/zonesmart ...
    let (_, body) =
        post_json(&app, "/v1/zonesmart/auth/jwt/create/", json!({"email": "admin@zonesmart.ru", "password": "4815162342"})).await;
    let refresh = body["refresh"].as_str().unwrap().to_owned();
    for _ in 0..3 {
        // ... refresh at the root, as a GET with a JSON body, and as a POST under the prefix
        let res = app.http.get(app.url("/auth/jwt/refresh/")).json(&json!({"refresh": refresh})).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(keys(&body), ["access"]);
        let access = body["access"].as_str().unwrap().to_owned();
        // ... and /users/me/ at the root
        let (status, me) = send(&app, reqwest::Method::GET, "/users/me/", Some(&format!("JWT {access}"))).await;
        assert_eq!((status, me["email"].as_str()), (200, Some("admin@zonesmart.ru")));
        let (status, body) = post_json(&app, "/v1/zonesmart/auth/jwt/refresh", json!({"refresh": refresh})).await;
        assert_eq!((status, keys(&body)), (200, vec!["access".to_owned()]));
    }
    // the refresh token lives 90 days
    let r = claims(&refresh);
    assert_eq!(r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(), 90 * 86_400);
}

async fn djoser_seed_003_exchanges_work_under_the_zonesmart_prefix() {
    let app = spawn_with(|s| s.dialects.djoser.prefix = "/v1/zonesmart".into()).await;
    let (status, body) = post_json(&app, "/v1/zonesmart/users/", json!({"email": "admin@zonesmart.ru", "password": "4815162342"})).await;
    assert_eq!(status, 201);
    assert_eq!(body["email"], "admin@zonesmart.ru");
    let (status, body) =
        post_json(&app, "/v1/zonesmart/auth/jwt/create/", json!({"email": "admin@zonesmart.ru", "password": "4815162342"})).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["refresh", "access"]);
    let access = body["access"].as_str().unwrap().to_owned();
    let a = claims(&access);
    assert_eq!(a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(), 7200, "access 2 hours");
    let r = claims(body["refresh"].as_str().unwrap());
    assert_eq!(r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(), 90 * 86_400, "refresh 90 days");
    // GET /users/me/ with Authorization: JWT <access> -> {"id": 1, "email": "..."}
    let (status, me) = send(&app, reqwest::Method::GET, "/v1/zonesmart/users/me/", Some(&format!("JWT {access}"))).await;
    assert_eq!(status, 200);
    assert_eq!((me["id"].as_i64(), me["email"].as_str()), (Some(1), Some("admin@zonesmart.ru")));
    // a Bearer header is ignored by djoser
    let (status, body) = send(&app, reqwest::Method::GET, "/v1/zonesmart/users/me/", Some(&format!("Bearer {access}"))).await;
    assert_eq!((status, body), (401, json!({"detail": "Authentication credentials were not provided."})));
    let refresh = body_refresh(&app).await;
    let (status, body) = post_json(&app, "/v1/zonesmart/auth/jwt/refresh/", json!({"refresh": refresh})).await;
    assert_eq!(status, 200, "{body}");
    assert!(body["access"].is_string());
    // unprefixed, djoser is not there
    assert_eq!(send(&app, reqwest::Method::GET, "/users/me/", Some(&format!("JWT {access}"))).await.0, 404);
}

async fn body_refresh(app: &TestApp) -> String {
    let (_, body) =
        post_json(app, "/v1/zonesmart/auth/jwt/create/", json!({"email": "admin@zonesmart.ru", "password": "4815162342"})).await;
    body["refresh"].as_str().unwrap().to_owned()
}

async fn flask_seed_004_exchanges_and_envelopes() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    let (status, body) = post_json(&app, "/api/v1/login", json!({"email": "ann@example.com", "password": "correct horse battery"})).await;
    assert_eq!(status, 200);
    let (access, refresh) = (body["access_token"].as_str().unwrap().to_owned(), body["refresh_token"].as_str().unwrap().to_owned());
    // POST /api/v1/refresh/token, Bearer <refresh> -> 200 {"access_token"} with the seed's claims
    let (status, body) = send(&app, reqwest::Method::POST, "/api/v1/refresh/token", Some(&format!("Bearer {refresh}"))).await;
    assert_eq!(status, 200);
    assert_eq!(keys(&body), ["access_token"]);
    let c = claims(body["access_token"].as_str().unwrap());
    assert_eq!(keys(&c), ["iat", "nbf", "jti", "exp", "identity", "fresh", "type"]);
    assert_eq!((c["fresh"].as_bool(), c["type"].as_str(), c["identity"].is_string()), (Some(false), Some("access"), true));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 7200);
    // the seed's error examples
    let cases: Vec<(Option<String>, u16, Value)> = vec![
        (Some(format!("Bearer {access}")), 422, json!({"msg": "Only refresh tokens are allowed"})),
        (None, 401, json!({"msg": "Missing Authorization Header", "code": "401"})),
        (Some(format!("Token {refresh}")), 422, json!({"msg": "Bad Authorization header. Expected value 'Bearer <JWT>'", "code": "422"})),
    ];
    for (auth, status, body) in cases {
        assert_eq!(send(&app, reqwest::Method::POST, "/api/v1/refresh/token", auth.as_deref()).await, (status, body));
    }
    let mut expired = claims(&refresh);
    expired["exp"] = json!(now_unix() - 10);
    let expired = sign_hs256(&json!({"typ": "JWT", "alg": "HS256", "kid": app.kid}), &expired, &app.key_secret);
    assert_eq!(
        send(&app, reqwest::Method::POST, "/api/v1/refresh/token", Some(&format!("Bearer {expired}"))).await,
        (401, json!({"code": 401, "errors": [{"msg": "Token has expired", "code": 401}]}))
    );
}

async fn one_set_of_users_and_a_block_holds_in_every_dialect() {
    let app = spawn_app().await;
    // registered natively, logs in through every dialect
    app.register("ann@example.com", "correct horse battery").await;
    let creds = json!({"email": "ann@example.com", "password": "correct horse battery"});
    let (s1, sj) = post_json(&app, "/api/token/", creds.clone()).await;
    let (s2, dj) = post_json(&app, "/auth/jwt/create/", creds.clone()).await;
    let (s3, fl) = post_json(&app, "/api/v1/login", creds.clone()).await;
    assert_eq!((s1, s2, s3), (200, 200, 200));

    // `tessera user block` (the same use-case)
    let user = app.store.user_by_email(&tessera_domain::Email::parse("ann@example.com").unwrap()).await.unwrap().unwrap();
    app.store.set_user_status(user.id, UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();

    assert_eq!(
        post_json(&app, "/api/token/", creds.clone()).await,
        (401, json!({"detail": "No active account found with the given credentials"}))
    );
    assert_eq!(
        post_json(&app, "/api/token/refresh/", json!({"refresh": sj["refresh"]})).await,
        (401, json!({"detail": "No active account found for the given token.", "code": "no_active_account"}))
    );
    assert_eq!(post_json(&app, "/auth/jwt/create/", creds.clone()).await.0, 401);
    let blocked = json!({"code": 403, "errors": [{"message": "your account is blocked", "code": 403}]});
    assert_eq!(post_json(&app, "/api/v1/login", creds.clone()).await, (403, blocked.clone()));
    let fl_refresh = format!("Bearer {}", fl["refresh_token"].as_str().unwrap());
    assert_eq!(send(&app, reqwest::Method::POST, "/api/v1/refresh/token", Some(&fl_refresh)).await, (403, blocked));
    let res = app.login("ann@example.com", "correct horse battery").await;
    assert_eq!(res.json::<Value>().await.unwrap()["error_description"], "The account is blocked.");
    assert_eq!(send(&app, reqwest::Method::GET, "/users/me/", Some(&format!("JWT {}", dj["access"].as_str().unwrap()))).await.0, 401);
    // drf-social-oauth2 with the default public client
    let res = app.token(&[("grant_type", "password"), ("username", "ann@example.com"), ("password", "correct horse battery")]).await;
    assert_eq!(res.status(), 400);
    let drf = app
        .http
        .post(app.url("/auth/token"))
        .form(&[
            ("grant_type", "password"),
            ("client_id", "tessera"),
            ("username", "ann@example.com"),
            ("password", "correct horse battery"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(drf.json::<Value>().await.unwrap(), json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}));
}

/// `tessera user block`, run as the operator runs it: another process on the same database.
async fn the_block_command_reaches_a_running_server() {
    let app = spawn_app().await;
    app.user_with_pair("ann@example.com").await;
    let (_, sj) = post_json(&app, "/api/token/", json!({"email": "ann@example.com", "password": "correct horse battery"})).await;
    let user = app.store.user_by_email(&tessera_domain::Email::parse("ann@example.com").unwrap()).await.unwrap().unwrap();
    let core = app.admin().await;
    core.state.service.set_user_status(user.id, UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();
    let mut refused = false;
    for _ in 0..60 {
        // simplejwt's verify consults only the signature and the revocation list
        if post_json(&app, "/api/token/verify/", json!({"token": sj["access"]})).await.0 == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the running server refuses the blocked user's access tokens");
}

async fn a_global_logout_holds_in_every_dialect() {
    let app = spawn_app().await;
    let native = app.user_with_pair("ann@example.com").await;
    let creds = json!({"email": "ann@example.com", "password": "correct horse battery"});
    let (_, sj) = post_json(&app, "/api/token/", creds.clone()).await;
    let (_, dj) = post_json(&app, "/auth/jwt/create/", creds.clone()).await;
    let (_, fl) = post_json(&app, "/api/v1/login", creds.clone()).await;
    assert_eq!(app.logout(&native.access, "global").await.status(), 204);

    assert_eq!(post_json(&app, "/api/token/verify/", json!({"token": sj["access"]})).await.0, 401);
    assert_eq!(post_json(&app, "/api/token/refresh/", json!({"refresh": sj["refresh"]})).await.0, 401);
    assert_eq!(send(&app, reqwest::Method::GET, "/users/me/", Some(&format!("JWT {}", dj["access"].as_str().unwrap()))).await.0, 401);
    let (status, body) =
        send(&app, reqwest::Method::GET, "/api/v1/protected", Some(&format!("Bearer {}", fl["access_token"].as_str().unwrap()))).await;
    assert_eq!((status, body), (401, json!({"msg": "Token has been revoked"})));
    let (status, body) =
        send(&app, reqwest::Method::POST, "/api/v1/refresh/token", Some(&format!("Bearer {}", fl["refresh_token"].as_str().unwrap())))
            .await;
    assert_eq!((status, body), (401, json!({"msg": "Token has been revoked"})));
}

async fn dialects_can_be_switched_off_and_moved() {
    let app = spawn_with(|s| {
        s.dialects.simplejwt.enabled = false;
        s.dialects.flask.prefix = "/legacy".into();
    })
    .await;
    app.register("ann@example.com", "correct horse battery").await;
    let creds = json!({"email": "ann@example.com", "password": "correct horse battery"});
    assert_eq!(post_json(&app, "/api/token/", creds.clone()).await.0, 404);
    assert_eq!(post_json(&app, "/api/v1/login", creds.clone()).await.0, 404);
    assert_eq!(post_json(&app, "/legacy/api/v1/login", creds.clone()).await.0, 200);
    assert_eq!(post_json(&app, "/auth/jwt/create/", creds).await.0, 200, "djoser stays on");
}

async fn simplejwt_5_5_writes_user_id_as_a_string_and_splits_its_texts() {
    let app = spawn_with(|s| s.dialects.simplejwt.era = "5.5".into()).await;
    app.register("ann@example.com", "correct horse battery").await;
    let (_, body) = post_json(&app, "/api/token/", json!({"email": "ann@example.com", "password": "correct horse battery"})).await;
    assert_eq!(claims(body["access"].as_str().unwrap())["user_id"], json!("1"));
    assert_eq!(
        post_json(&app, "/api/token/verify/", json!({"token": "x.y.z"})).await,
        (401, json!({"detail": "Token is invalid", "code": "token_not_valid"}))
    );
}

crate::both_backends!(
    the_block_command_reaches_a_running_server,
    simplejwt_seed_001_exchanges_work_unchanged,
    djoser_seed_003_exchanges_work_under_the_zonesmart_prefix,
    flask_seed_004_exchanges_and_envelopes,
    one_set_of_users_and_a_block_holds_in_every_dialect,
    a_global_logout_holds_in_every_dialect,
    dialects_can_be_switched_off_and_moved,
    simplejwt_5_5_writes_user_id_as_a_string_and_splits_its_texts,
    a_seed_001_client_refreshes_again_and_again_with_one_refresh_token,
    simplejwt_with_rotation_answers_a_pair_and_blacklists_the_old_token,
    a_seed_003_client_refreshes_at_both_paths_with_one_refresh_token_for_its_life,
);
