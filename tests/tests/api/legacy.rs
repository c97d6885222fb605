//! Migration without logging anyone out: tokens minted by the real simplejwt and
//! flask-jwt-extended with a known secret (`tests/fixtures/legacy/`, see its README) are accepted
//! where the originals accepted them, a refresh answers with Tessera's tokens, and from its first
//! use on a legacy refresh token lives by Tessera's rules.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_dialects::config::LegacySecret;
use tessera_domain::{Email, OffsetDateTime, RefreshPolicy, User, UserId, UserStatus};

use crate::helpers::{TestApp, sign_hs256, spawn_with};

fn fixtures() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/legacy/tokens.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap()
}

fn header(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap()
}

/// The original's users, with their original ids: what `tessera import django` (or `flask`)
/// does, the import then finished.
async fn import(app: &TestApp, origin: &str, users: &[(i64, &str, UserStatus)]) {
    for (id, email, status) in users {
        let user = User {
            id: UserId(*id),
            email: Email::parse(email).unwrap(),
            password_hash: None,
            status: *status,
            created_at: OffsetDateTime::now_utc(),
            password_changed_at: None,
        };
        assert!(app.store.import_user(&user, origin).await.unwrap());
    }
    app.store.finish_import(origin, OffsetDateTime::now_utc()).await.unwrap();
}

async fn post(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn with_auth(app: &TestApp, method: reqwest::Method, path: &str, auth: &str) -> (u16, Value) {
    let res = app.http.request(method, app.url(path)).header("authorization", auth).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn simplejwt_app() -> (TestApp, Value) {
    let f = fixtures();
    let secret = s(&f["django"]["secret"]).to_owned();
    let app = spawn_with(|st| {
        st.dialects.simplejwt.legacy_secret = Some(LegacySecret::new(secret.clone()));
        st.dialects.simplejwt.refresh_policy = RefreshPolicy::Rotate;
        st.dialects.djoser.legacy_secret = Some(LegacySecret::new(secret));
    })
    .await;
    import(
        &app,
        "django",
        &[
            (1, "alice@example.com", UserStatus::Active),
            (2, "bob@example.com", UserStatus::Active),
            (5, "erin@example.com", UserStatus::Blocked),
        ],
    )
    .await;
    (app, f["django"].clone())
}

async fn simplejwt_tokens_verify_and_reach_users_me_after_the_switch() {
    let (app, d) = simplejwt_app().await;
    let alice = &d["alice"];
    assert!(header(s(&alice["access"])).get("kid").is_none(), "minted by the library: no kid");
    for token in [&alice["access"], &alice["refresh"]] {
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": token})).await;
        assert_eq!((status, body), (200, json!({})));
    }
    let (status, me) = with_auth(&app, reqwest::Method::GET, "/users/me/", &format!("JWT {}", s(&alice["access"]))).await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["email"], "alice@example.com");
    assert_eq!(me["id"], 1);

    // what the library refuses, Tessera refuses
    for (token, why) in [
        (&d["alice_expired"]["access"], "expired"),
        (&d["alice_wrong_secret"]["access"], "signed with another secret"),
        (&d["alice"]["refresh"], "a refresh token at /users/me/"),
    ] {
        let (status, body) = with_auth(&app, reqwest::Method::GET, "/users/me/", &format!("JWT {}", s(token))).await;
        assert_eq!(status, 401, "{why}: {body}");
        assert_eq!(body["code"], "token_not_valid", "{why}");
    }
    let (status, _) = with_auth(&app, reqwest::Method::GET, "/users/me/", &format!("JWT {}", s(&d["erin_inactive"]["access"]))).await;
    assert_ne!(status, 200, "an inactive Django user is blocked here");
}

async fn a_simplejwt_refresh_token_is_adopted_then_rotated_and_its_reuse_caught() {
    let (app, d) = simplejwt_app().await;
    let legacy = s(&d["alice"]["refresh"]);
    let (status, pair) = post(&app, "/api/token/refresh/", json!({"refresh": legacy})).await;
    assert_eq!(status, 200, "{pair}");
    for t in ["access", "refresh"] {
        assert!(header(s(&pair[t])).get("kid").is_some(), "Tessera's own {t} token: {pair}");
    }
    let (status, me) = with_auth(&app, reqwest::Method::GET, "/users/me/", &format!("JWT {}", s(&pair["access"]))).await;
    assert_eq!((status, me["id"].clone()), (200, json!(1)));

    // the legacy token was used once: a second use is reuse, and the family ends
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": legacy})).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["code"], "token_not_valid");
    let (status, _) = post(&app, "/api/token/refresh/", json!({"refresh": pair["refresh"]})).await;
    assert_eq!(status, 401, "the child of a reused token is revoked with its family");

    // blacklisting a legacy token (simplejwt's own endpoint) holds
    let bob = s(&d["bob"]["refresh"]);
    let (status, _) = post(&app, "/api/token/blacklist/", json!({"refresh": bob})).await;
    assert_eq!(status, 200);
    let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": bob})).await;
    assert_eq!(status, 401, "{body}");

    for (token, why) in [
        (&d["alice_expired"]["refresh"], "expired"),
        (&d["alice_wrong_secret"]["refresh"], "another secret"),
        (&d["erin_inactive"]["refresh"], "an inactive user"),
        (&d["alice"]["access"], "an access token"),
    ] {
        let (status, body) = post(&app, "/api/token/refresh/", json!({"refresh": token})).await;
        assert_eq!(status, 401, "{why}: {body}");
    }
}

/// RFC 7662 for a migrated deployment's tokens: an access token is active while its user is, a
/// refresh token once adopted; a blocked user's are not.
async fn a_resource_server_introspects_legacy_tokens() {
    let (app, d) = simplejwt_app().await;
    let client = tessera_domain::OAuthClient {
        client_id: tessera_domain::ClientId::parse("resource-server").unwrap(),
        name: "resource server".into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(b"rs-secret-rs-secret")),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
    let introspect = |token: Value| {
        let token = token.as_str().unwrap().to_owned();
        let req = app.http.post(app.url("/oauth/introspect")).basic_auth("resource-server", Some("rs-secret-rs-secret"));
        async move { req.form(&[("token", token)]).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let access = introspect(d["alice"]["access"].clone()).await;
    assert_eq!(
        (access["active"].as_bool(), access["token_type"].as_str(), access["sub"].as_str()),
        (Some(true), Some("access_token"), Some("1")),
        "{access}"
    );
    // simplejwt and djoser share the Django secret and the audience: either face may answer
    assert_eq!(access["aud"], "django", "{access}");
    let refresh = introspect(d["bob"]["refresh"].clone()).await;
    assert_eq!((refresh["active"].as_bool(), refresh["token_type"].as_str()), (Some(true), Some("refresh_token")), "{refresh}");
    for dead in [&d["alice_expired"]["access"], &d["alice_wrong_secret"]["access"], &d["erin_inactive"]["access"]] {
        assert_eq!(introspect(dead.clone()).await["active"], false, "{dead}");
    }
}

async fn forged_legacy_tokens_are_refused() {
    let (app, d) = simplejwt_app().await;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(s(&d["alice"]["access"]).split('.').nth(1).unwrap()).unwrap()).unwrap();
    let jwks = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().text().await.unwrap();
    let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
    let forged = [
        // alg none
        format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims)),
        // the published public keys used as the HMAC secret
        sign_hs256(&json!({"alg": "HS256", "typ": "JWT"}), &claims, jwks.as_bytes()),
        // the right secret, another HMAC algorithm than the deployment's
        {
            let key = jsonwebtoken::EncodingKey::from_secret(s(&d["secret"]).as_bytes());
            jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512), &claims, &key).unwrap()
        },
        // a user id changed
        {
            let parts: Vec<&str> = s(&d["alice"]["access"]).split('.').collect();
            let mut c = claims.clone();
            c["user_id"] = json!(2);
            format!("{}.{}.{}", parts[0], b64(&c), parts[2])
        },
    ];
    for token in &forged {
        let (status, body) = post(&app, "/api/token/verify/", json!({"token": token})).await;
        assert_eq!(status, 401, "{token}: {body}");
    }
    // a legacy token of one face is nothing at a face without that secret
    let (status, _) = with_auth(&app, reqwest::Method::GET, "/api/v1/protected", &format!("Bearer {}", s(&d["alice"]["access"]))).await;
    assert_ne!(status, 200);
}

async fn a_flask_users_tokens_of_either_era_survive_the_switch() {
    let f = fixtures();
    let secret = s(&f["flask_legacy"]["secret"]).to_owned();
    let app = spawn_with(|st| st.dialects.flask.legacy_secret = Some(LegacySecret::new(secret))).await;
    import(&app, "flask", &[(1, "one@example.com", UserStatus::Active), (2, "two@example.com", UserStatus::Active)]).await;
    let old = &f["flask_legacy"];
    let bearer = |t: &Value| format!("Bearer {}", s(t));

    for access in [&old["user1"]["access"], &f["flask"]["user1"]["access"]] {
        let (status, body) = with_auth(&app, reqwest::Method::GET, "/api/v1/protected", &bearer(access)).await;
        assert_eq!(status, 200, "{body}");
    }
    let (status, body) = with_auth(&app, reqwest::Method::GET, "/api/v1/protected", &bearer(&old["user1_expired"]["access"])).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.to_string().contains("Token has expired"), "{body}");

    // a refresh answers with Tessera's access token; flask does not rotate, so the legacy
    // refresh token goes on working, now as a Tessera session
    for _ in 0..2 {
        let (status, body) = with_auth(&app, reqwest::Method::POST, "/api/v1/refresh/token", &bearer(&old["user1"]["refresh"])).await;
        assert_eq!(status, 200, "{body}");
        let access = s(&body["access_token"]);
        assert!(header(access).get("kid").is_some());
        let (status, _) = with_auth(&app, reqwest::Method::GET, "/api/v1/protected", &format!("Bearer {access}")).await;
        assert_eq!(status, 200);
    }
    // 4.x refresh tokens too
    let (status, body) = with_auth(&app, reqwest::Method::POST, "/api/v1/refresh/token", &bearer(&f["flask"]["user1"]["refresh"])).await;
    assert_eq!(status, 200, "{body}");

    // logout with a legacy refresh token ends it
    let user2 = &old["user2"]["refresh"];
    let (status, body) = with_auth(&app, reqwest::Method::POST, "/api/v1/logout", &bearer(user2)).await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = with_auth(&app, reqwest::Method::POST, "/api/v1/refresh/token", &bearer(user2)).await;
    assert_eq!(status, 401);
    let (status, _) = with_auth(&app, reqwest::Method::POST, "/api/v1/refresh/token", &bearer(&old["user1_expired"]["refresh"])).await;
    assert_eq!(status, 401);
}

crate::both_backends!(
    simplejwt_tokens_verify_and_reach_users_me_after_the_switch,
    a_resource_server_introspects_legacy_tokens,
    a_simplejwt_refresh_token_is_adopted_then_rotated_and_its_reuse_caught,
    forged_legacy_tokens_are_refused,
    a_flask_users_tokens_of_either_era_survive_the_switch,
);
