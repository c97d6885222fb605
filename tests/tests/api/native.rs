//! The native API over real HTTP.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;
use tessera_domain::{ClientId, Email, OAuthClient, OffsetDateTime, UserStatus};

use crate::helpers::{now_unix, pair, spawn_app, spawn_with};

async fn problem(res: reqwest::Response) -> (u16, Value) {
    let status = res.status().as_u16();
    assert_eq!(res.headers()["content-type"], "application/problem+json");
    (status, res.json().await.unwrap())
}

async fn register_returns_201_and_refuses_a_taken_email_case_insensitively() {
    let app = spawn_app().await;
    let res = app.register("Ann@Example.com", "correct horse battery").await;
    assert_eq!(res.status(), 201);
    let body: Value = res.json().await.unwrap();
    assert!(body["id"].as_i64().unwrap() > 0);
    assert_eq!(body["email"], "Ann@Example.com");

    let (status, body) = problem(app.register("ann@EXAMPLE.com", "another password").await).await;
    assert_eq!(status, 409);
    assert_eq!(body["code"], "email_taken");
}

async fn register_refuses_weak_passwords_and_bad_emails_with_a_problem() {
    let app = spawn_app().await;
    let (status, body) = problem(app.register("ann@example.com", "short").await).await;
    assert_eq!((status, body["code"].as_str(), body["field"].as_str()), (400, Some("validation_failed"), Some("password")));
    let (status, body) = problem(app.register("not-an-email", "long enough password").await).await;
    assert_eq!((status, body["field"].as_str()), (400, Some("email")));
    let (status, _) = problem(app.register("ann@example.com", &"x".repeat(1025)).await).await;
    assert_eq!(status, 400);
}

async fn password_grant_issues_a_pair_whose_access_token_verifies_independently() {
    let app = spawn_app().await;
    let res = app.register("ann@example.com", "correct horse battery").await;
    let user_id = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let before = now_unix();
    let res = app.login("ANN@example.com", "correct horse battery").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 300);
    let refresh = body["refresh_token"].as_str().unwrap();
    assert_eq!(refresh.len(), 43, "256 bits, base64url");

    let claims = app.verify_independently(body["access_token"].as_str().unwrap()).await;
    assert_eq!(claims["sub"], user_id.to_string());
    assert_eq!(claims["token_type"], "access");
    assert_eq!(claims["iss"], "tessera");
    assert_eq!(claims["client_id"], "tessera");
    assert!(claims["sid"].as_str().unwrap().len() == 36 && claims["jti"].as_str().unwrap().len() == 36);
    let iat = claims["iat"].as_i64().unwrap();
    assert!(iat >= before && iat <= now_unix());
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 300);
}

async fn wrong_password_and_unknown_user_get_the_same_invalid_grant() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    for res in [app.login("ann@example.com", "wrong horse battery").await, app.login("bob@example.com", "correct horse battery").await] {
        assert_eq!(res.status(), 400);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"error": "invalid_grant", "error_description": "Invalid credentials given."}));
    }
}

async fn me_returns_the_caller_and_requires_a_bearer_token() {
    let app = spawn_app().await;
    let p = app.user_with_pair("ann@example.com").await;
    let res = app.me(&p.access).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["email"], "ann@example.com");

    let res = app.http.get(app.url("/v1/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer realm=\"tessera\"");
    let (_, body) = problem(res).await;
    assert_eq!(body["code"], "missing_token");
}

async fn refresh_rotates_and_the_parent_within_grace_gets_the_identical_pair() {
    let app = spawn_app().await;
    let p0 = app.user_with_pair("ann@example.com").await;
    let p1 = pair(app.refresh(&p0.refresh).await).await;
    assert_ne!(p1.refresh, p0.refresh);
    assert_eq!(app.verify_independently(&p1.access).await["sid"], app.verify_independently(&p0.access).await["sid"]);
    // a lost response: the client retries with the parent and gets the same pair back
    let again = pair(app.refresh(&p0.refresh).await).await;
    assert_eq!((again.access.as_str(), again.refresh.as_str()), (p1.access.as_str(), p1.refresh.as_str()));
    let p2 = pair(app.refresh(&p1.refresh).await).await;
    assert_eq!(app.me(&p2.access).await.status(), 200);
}

async fn refresh_token_reuse_outside_grace_revokes_the_family() {
    let app = spawn_with(|s| s.tokens.refresh_grace_seconds = 0).await;
    let p0 = app.user_with_pair("ann@example.com").await;
    let p1 = pair(app.refresh(&p0.refresh).await).await;
    let res = app.refresh(&p0.refresh).await;
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_grant");
    // the thief's replay killed the legitimate child and the family's access tokens
    assert_eq!(app.refresh(&p1.refresh).await.status(), 400);
    let (status, body) = problem(app.me(&p1.access).await).await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_revoked")));
}

async fn revoking_a_refresh_token_ends_the_session_at_once() {
    let app = spawn_app().await;
    let p = app.user_with_pair("ann@example.com").await;
    let res = app.revoke(&p.refresh).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(app.me(&p.access).await.status(), 401);
    assert_eq!(app.refresh(&p.refresh).await.status(), 400);
    // unknown and garbage tokens: 200, nothing to say
    assert_eq!(app.revoke("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").await.status(), 200);
    assert_eq!(app.revoke("garbage").await.status(), 200);
}

async fn revoking_an_access_token_ends_its_session() {
    let app = spawn_app().await;
    let p = app.user_with_pair("ann@example.com").await;
    assert_eq!(app.revoke(&p.access).await.status(), 200);
    assert_eq!(app.me(&p.access).await.status(), 401);
    assert_eq!(app.refresh(&p.refresh).await.status(), 400);
}

async fn logout_scopes_end_the_right_sessions() {
    let app = spawn_app().await;
    let a = app.user_with_pair("ann@example.com").await;
    let b = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let c = pair(app.login("ann@example.com", "correct horse battery").await).await;
    assert_eq!(app.logout(&a.access, "others").await.status(), 204);
    assert_eq!(app.me(&a.access).await.status(), 200);
    assert_eq!(app.me(&b.access).await.status(), 401);
    assert_eq!(app.me(&c.access).await.status(), 401);
    // no body: local
    let res = app.http.post(app.url("/v1/logout")).bearer_auth(&a.access).send().await.unwrap();
    assert_eq!(res.status(), 204);
    assert_eq!(app.me(&a.access).await.status(), 401);
    let d = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let e = pair(app.login("ann@example.com", "correct horse battery").await).await;
    assert_eq!(app.logout(&d.access, "global").await.status(), 204);
    assert_eq!(app.me(&d.access).await.status(), 401);
    assert_eq!(app.me(&e.access).await.status(), 401);
    assert_eq!(app.refresh(&e.refresh).await.status(), 400);
}

#[tokio::test]
async fn a_revocation_by_another_instance_reaches_this_one_through_notify() {
    let app = spawn_app().await;
    let p = app.user_with_pair("ann@example.com").await;
    let user = app.store.user_by_email(&Email::parse("ann@example.com").unwrap()).await.unwrap().unwrap();
    // another instance (here: the store directly) blocks the user
    app.store.set_user_status(user.id, UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();
    let mut refused = false;
    for _ in 0..50 {
        if app.me(&p.access).await.status() == 401 {
            refused = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(refused, "the access token of a blocked user's session is refused");
    let res = app.login("ann@example.com", "correct horse battery").await;
    assert_eq!(res.json::<Value>().await.unwrap()["error_description"], "The account is blocked.");
}

async fn confidential(app: &crate::helpers::TestApp, id: &str, secret: &str, profile: &str) {
    let client = OAuthClient {
        client_id: ClientId::parse(id).unwrap(),
        name: id.into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(secret.as_bytes())),
        profile: profile.into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
}

async fn confidential_clients_must_authenticate_by_exactly_one_method() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    confidential(&app, "backend", "s3cret-s3cret", "extended").await;
    let grant = [("grant_type", "password"), ("username", "ann@example.com"), ("password", "correct horse battery")];

    let res = app.http.post(app.url("/oauth/token")).form(&[&grant[..], &[("client_id", "backend")]].concat()).send().await.unwrap();
    assert_eq!(res.status(), 401);
    // RFC 6749 §5.2: the Basic challenge only to a client that tried Basic; a browser would
    // otherwise open its own sign-in dialog over the page
    assert!(res.headers().get("www-authenticate").is_none(), "no challenge to a client that sent its id in the body");
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");

    let wrong = app.http.post(app.url("/oauth/token")).basic_auth("backend", Some("nope")).form(&grant).send().await.unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(wrong.headers()["www-authenticate"], "Basic realm=\"tessera\"");
    let empty = app.http.post(app.url("/oauth/token")).basic_auth("backend", Some("")).form(&grant).send().await.unwrap();
    assert_eq!(empty.status(), 401, "an empty secret is no secret for a confidential client");

    // a public client with an empty Basic password, as Swagger UI's Authorize dialog sends it
    let public = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", format!("Basic {}", STANDARD.encode("tessera:")))
        .form(&grant)
        .send()
        .await
        .unwrap();
    assert_eq!(public.status(), 200, "a public client presents nothing, in Basic too");

    let basic = app.http.post(app.url("/oauth/token")).basic_auth("backend", Some("s3cret-s3cret")).form(&grant).send().await.unwrap();
    let p = pair(basic).await;
    assert_eq!(p.expires_in, 7200, "the client's profile (extended) applies");

    let in_body = app.token(&[&grant[..], &[("client_id", "backend"), ("client_secret", "s3cret-s3cret")]].concat()).await;
    assert_eq!(in_body.status(), 200);

    let both = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("backend", Some("s3cret-s3cret"))
        .form(&[&grant[..], &[("client_secret", "s3cret-s3cret")]].concat())
        .send()
        .await
        .unwrap();
    assert_eq!(both.status(), 400);
    assert_eq!(both.json::<Value>().await.unwrap()["error"], "invalid_request");

    // its refresh token is refused to another client
    let res = app.refresh(&p.refresh).await;
    assert_eq!(res.json::<Value>().await.unwrap()["error_description"], "The refresh token was issued to another client.");
    let own = app
        .http
        .post(app.url("/oauth/token"))
        .header("authorization", format!("Basic {}", STANDARD.encode("backend:s3cret-s3cret")))
        .form(&[("grant_type", "refresh_token"), ("refresh_token", p.refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 200);
}

async fn token_endpoint_speaks_rfc_6749_errors() {
    let app = spawn_app().await;
    type Form<'a> = Vec<(&'a str, &'a str)>;
    let cases: Vec<(Form, u16, &str)> = vec![
        (vec![], 400, "invalid_request"),
        (vec![("grant_type", "authorization_code")], 400, "unsupported_grant_type"),
        // the default client is public: the grant exists, but not for it
        (vec![("grant_type", "client_credentials")], 400, "unauthorized_client"),
        (vec![("grant_type", "password"), ("username", "a@b.c")], 400, "invalid_request"),
        (vec![("grant_type", "refresh_token")], 400, "invalid_request"),
        (vec![("grant_type", "refresh_token"), ("refresh_token", "nope")], 400, "invalid_grant"),
        (vec![("grant_type", "password"), ("username", "a@b.c"), ("password", "x"), ("client_id", "nobody")], 401, "invalid_client"),
    ];
    for (form, status, error) in cases {
        let res = app.token(&form).await;
        assert_eq!(res.status(), status, "{form:?}");
        assert_eq!(res.headers()["cache-control"], "no-store");
        assert_eq!(res.json::<Value>().await.unwrap()["error"], error, "{form:?}");
    }
    let dup = app
        .http
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&grant_type=password")
        .send()
        .await
        .unwrap();
    assert_eq!(dup.json::<Value>().await.unwrap()["error_description"], "Duplicate grant_type parameter.");
}

async fn the_token_endpoint_accepts_json_too() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .json(&serde_json::json!({"grant_type": "password", "username": "ann@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn health_probes_answer() {
    let app = spawn_app().await;
    for path in ["/health/live", "/health/ready"] {
        let res = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        assert_eq!(res.json::<Value>().await.unwrap()["status"], "ok");
    }
}

async fn unknown_routes_get_a_problem_404() {
    let app = spawn_app().await;
    let (status, body) = problem(app.http.get(app.url("/nope")).send().await.unwrap()).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
}

async fn nothing_secret_is_stored_in_the_clear() {
    let app = spawn_app().await;
    let p = app.user_with_pair("ann@example.com").await;
    // read the tables raw, as someone with a copy of the database would
    type Rows = (String, Vec<(Vec<u8>, Option<Vec<u8>>)>, Vec<Vec<u8>>);
    let (hash, rows, keys): Rows = match &app.backend {
        tessera_server::startup::Backend::Postgres(pg) => (
            sqlx::query_scalar("select password_hash from users").fetch_one(pg.pool()).await.unwrap(),
            sqlx::query_as("select hash, sealed_secret from refresh_tokens").fetch_all(pg.pool()).await.unwrap(),
            sqlx::query_scalar("select sealed_secret from signing_keys").fetch_all(pg.pool()).await.unwrap(),
        ),
        tessera_server::startup::Backend::Sqlite(lite) => (
            sqlx::query_scalar("select password_hash from users").fetch_one(lite.pool()).await.unwrap(),
            sqlx::query_as("select hash, sealed_secret from refresh_tokens").fetch_all(lite.pool()).await.unwrap(),
            sqlx::query_scalar("select sealed_secret from signing_keys").fetch_all(lite.pool()).await.unwrap(),
        ),
    };
    assert!(hash.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(&p.refresh).unwrap();
    assert!(!rows.is_empty());
    for (hash, sealed) in rows {
        assert_ne!(hash, raw, "the stored hash is not the token");
        let sealed = sealed.unwrap_or_default();
        assert!(!sealed.windows(raw.len()).any(|w| w == raw.as_slice()), "the sealed secret is not the token");
    }
    assert!(keys.iter().all(|k| !k.windows(app.key_secret.len()).any(|w| w == app.key_secret.as_slice())));
}

/// Every response names its request: the caller's `X-Request-Id` when it is a sane token, a new
/// one otherwise.
async fn every_response_carries_a_request_id() {
    let app = spawn_app().await;
    let id = |res: &reqwest::Response| res.headers()["x-request-id"].to_str().unwrap().to_owned();
    let res = app.http.get(app.url("/health/live")).header("x-request-id", "lb-7f3a.42").send().await.unwrap();
    assert_eq!(id(&res), "lb-7f3a.42");
    let (a, b) = (app.http.get(app.url("/v1/me")).send().await.unwrap(), app.http.get(app.url("/nowhere")).send().await.unwrap());
    assert_eq!((a.status().as_u16(), b.status().as_u16()), (401, 404));
    assert_ne!(id(&a), id(&b), "made when absent, one per request");
    assert_eq!(id(&a).len(), 36);
    for forged in ["two words", "x\"y", &"a".repeat(200)] {
        let res = app.http.get(app.url("/health/live")).header("x-request-id", forged).send().await.unwrap();
        assert_ne!(id(&res), forged, "replaced: {forged:?}");
    }
}

crate::both_backends!(
    every_response_carries_a_request_id,
    register_returns_201_and_refuses_a_taken_email_case_insensitively,
    register_refuses_weak_passwords_and_bad_emails_with_a_problem,
    password_grant_issues_a_pair_whose_access_token_verifies_independently,
    wrong_password_and_unknown_user_get_the_same_invalid_grant,
    me_returns_the_caller_and_requires_a_bearer_token,
    refresh_rotates_and_the_parent_within_grace_gets_the_identical_pair,
    refresh_token_reuse_outside_grace_revokes_the_family,
    revoking_a_refresh_token_ends_the_session_at_once,
    revoking_an_access_token_ends_its_session,
    logout_scopes_end_the_right_sessions,
    confidential_clients_must_authenticate_by_exactly_one_method,
    token_endpoint_speaks_rfc_6749_errors,
    the_token_endpoint_accepts_json_too,
    health_probes_answer,
    unknown_routes_get_a_problem_404,
    nothing_secret_is_stored_in_the_clear,
);
