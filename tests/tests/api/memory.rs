//! What is answered from memory (a refresh that does not rotate, the introspection of an access
//! token) keeps the guarantees of what is read from the store: a block or a revocation made by
//! another process (here: the store written directly, as an admin command or another instance
//! writes it) is refused within the revocation list's bound, after the token was answered from
//! memory; and a session's last use still reaches the database, behind the answers.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_domain::{Email, OAuthClient, OffsetDateTime, SessionId, UserStatus};
use uuid::Uuid;

use crate::helpers::{TestApp, spawn_app, spawn_with};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

fn claims(jwt: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap()
}

async fn post_json(app: &TestApp, path: &str, body: Value) -> (u16, Value) {
    let res = app.http.post(app.url(path)).json(&body).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

/// simplejwt's pair for a registered user, its refresh token used once (answered, so kept).
async fn simplejwt_pair_used_once(app: &TestApp) -> (Value, SessionId) {
    app.register(EMAIL, PASSWORD).await;
    let (status, pair) = post_json(app, "/api/token/", json!({"email": EMAIL, "password": PASSWORD})).await;
    assert_eq!(status, 200);
    let (status, first) = post_json(app, "/api/token/refresh/", json!({"refresh": pair["refresh"]})).await;
    assert_eq!(status, 200, "{first}");
    let sid = SessionId(Uuid::parse_str(claims(first["access"].as_str().unwrap())["sid"].as_str().unwrap()).unwrap());
    (pair, sid)
}

/// Refreshes until the answer is not 200 (within 5 s), and returns it.
async fn refused_refresh(app: &TestApp, refresh: &Value) -> (u16, Value) {
    for _ in 0..100 {
        let answer = post_json(app, "/api/token/refresh/", json!({"refresh": refresh})).await;
        if answer.0 != 200 {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the refresh token was still honoured 5 s later");
}

async fn a_refresh_from_memory_hears_a_block_by_another_process() {
    let app = spawn_app().await;
    let (pair, _) = simplejwt_pair_used_once(&app).await;
    let user = app.store.user_by_email(&Email::parse(EMAIL).unwrap()).await.unwrap().unwrap();
    app.store.set_user_status(user.id, UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();
    // the face's own words for a blocked user, as when the token is read from the store
    assert_eq!(
        refused_refresh(&app, &pair["refresh"]).await,
        (401, json!({"detail": "No active account found for the given token.", "code": "no_active_account"}))
    );
}

async fn a_refresh_from_memory_hears_a_revocation_by_another_process() {
    let app = spawn_app().await;
    let (pair, sid) = simplejwt_pair_used_once(&app).await;
    assert!(app.store.revoke_session(sid, route_of(&app, sid).await, "revoked", OffsetDateTime::now_utc()).await.unwrap());
    assert_eq!(refused_refresh(&app, &pair["refresh"]).await, (401, json!({"detail": "Token is blacklisted", "code": "token_not_valid"})));
}

/// simplejwt rotating beside djoser, which reuses (make bench runs so): a djoser token lives by
/// djoser's policy wherever it is presented, is kept in memory, and still hears a revocation; a
/// simplejwt token, rotated, is never kept, and its reuse is still caught.
async fn under_mixed_policies_a_reused_token_is_kept_and_a_rotated_one_is_not() {
    let app = spawn_with(|s| s.dialects.simplejwt.refresh_policy = tessera_domain::RefreshPolicy::Rotate).await;
    app.register(EMAIL, PASSWORD).await;
    let creds = json!({"email": EMAIL, "password": PASSWORD});
    let (_, dj) = post_json(&app, "/auth/jwt/create/", creds.clone()).await;
    for _ in 0..2 {
        let (status, body) = post_json(&app, "/auth/jwt/refresh/", json!({"refresh": dj["refresh"]})).await;
        assert_eq!((status, body.get("refresh")), (200, None), "{body}");
    }
    // presented at simplejwt, which rotates: djoser's token is still only reused
    let (status, body) = post_json(&app, "/api/token/refresh/", json!({"refresh": dj["refresh"]})).await;
    assert_eq!((status, body.get("refresh")), (200, None), "{body}");
    let sid = SessionId(Uuid::parse_str(claims(body["access"].as_str().unwrap())["sid"].as_str().unwrap()).unwrap());
    assert!(app.store.revoke_session(sid, route_of(&app, sid).await, "revoked", OffsetDateTime::now_utc()).await.unwrap());
    let mut refused = None;
    for _ in 0..100 {
        let answer = post_json(&app, "/auth/jwt/refresh/", json!({"refresh": dj["refresh"]})).await;
        if answer.0 != 200 {
            refused = Some(answer);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(refused.map(|r| r.0), Some(401), "the revoked djoser token is refused within 5 s");
    let refused = post_json(&app, "/api/token/refresh/", json!({"refresh": dj["refresh"]})).await;
    assert_eq!(refused, (401, json!({"detail": "Token is blacklisted", "code": "token_not_valid"})), "and at simplejwt");
    // a djoser token simplejwt sees first (not yet kept): its rotation reads the session, learns
    // whose token it is and changes nothing; the token is then reused as djoser reuses it
    let (_, fresh) = post_json(&app, "/auth/jwt/create/", creds.clone()).await;
    for path in ["/api/token/refresh/", "/api/token/refresh/", "/auth/jwt/refresh/"] {
        let (status, body) = post_json(&app, path, json!({"refresh": fresh["refresh"]})).await;
        assert_eq!((status, body.get("refresh")), (200, None), "{path}: {body}");
    }
    // simplejwt's own token rotates, and its reuse after the rotation revokes the session
    let (_, sj) = post_json(&app, "/api/token/", creds).await;
    let (status, next) = post_json(&app, "/api/token/refresh/", json!({"refresh": sj["refresh"]})).await;
    assert!(status == 200 && next.get("refresh").is_some(), "{next}");
    let (status, _) = post_json(&app, "/api/token/refresh/", json!({"refresh": sj["refresh"]})).await;
    assert_eq!(status, 401, "the rotated parent is refused");
    let (status, _) = post_json(&app, "/api/token/refresh/", json!({"refresh": next["refresh"]})).await;
    assert_eq!(status, 401, "and its reuse revoked the session");
}

async fn a_session_used_without_rotation_records_its_last_use() {
    // the maintenance that writes the held uses runs every second here (every minute by default)
    let app = spawn_with(|s| s.tokens.key_check_seconds = 1).await;
    let (pair, sid) = simplejwt_pair_used_once(&app).await;
    let (status, _) = post_json(&app, "/api/token/refresh/", json!({"refresh": pair["refresh"]})).await;
    assert_eq!(status, 200);
    let before = OffsetDateTime::now_utc();
    let mut last = None;
    for _ in 0..100 {
        last = app.store.session(sid, None).await.unwrap().unwrap().last_refresh_at;
        if last.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let last = last.expect("the session's last use reaches the database within 5 s");
    assert!(last <= before && last >= before - time::Duration::seconds(10), "{last} is the refresh's instant");
}

async fn resource_server(app: &TestApp) {
    let client = OAuthClient {
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
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let res = app
        .http
        .post(app.url("/oauth/introspect"))
        .basic_auth("resource-server", Some("rs-secret-rs-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn introspection_from_memory_hears_a_block_by_another_process() {
    let app = spawn_app().await;
    resource_server(&app).await;
    let pair = app.user_with_pair(EMAIL).await;
    let first = introspect(&app, &pair.access).await;
    assert_eq!(
        (first["active"].as_bool(), first["api"].as_str(), first["client_id"].as_str()),
        (Some(true), Some("native"), Some("tessera"))
    );
    let user = app.store.user_by_email(&Email::parse(EMAIL).unwrap()).await.unwrap().unwrap();
    app.store.set_user_status(user.id, UserStatus::Blocked, OffsetDateTime::now_utc()).await.unwrap();
    for _ in 0..100 {
        if introspect(&app, &pair.access).await == json!({"active": false}) {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the blocked user's access token was still active 5 s later");
}

crate::both_backends!(
    a_refresh_from_memory_hears_a_block_by_another_process,
    a_refresh_from_memory_hears_a_revocation_by_another_process,
    a_session_used_without_rotation_records_its_last_use,
    under_mixed_policies_a_reused_token_is_kept_and_a_rotated_one_is_not,
    introspection_from_memory_hears_a_block_by_another_process,
);

/// The route a session is on (its user's).
async fn route_of(app: &TestApp, sid: SessionId) -> tessera_domain::Route {
    app.store.session(sid, None).await.unwrap().unwrap().user_id.route()
}
