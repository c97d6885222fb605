//! The routing key on the wire: every refresh token Tessera issues names its user's route (the
//! user's id modulo 65,536) in the first two bytes of its secret, whatever the API, and a client
//! sees nothing else change: same lengths, same alphabets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::{TestApp, pair, spawn_app};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

/// A user whose id is past 65,536, so that the route is not the id itself.
async fn high_user(app: &TestApp) -> i64 {
    app.store.reserve_user_ids(70_000).await.unwrap();
    assert_eq!(app.register(EMAIL, PASSWORD).await.status(), 201);
    let p = pair(app.login(EMAIL, PASSWORD).await).await;
    let me: Value = app.me(&p.access).await.json().await.unwrap();
    me["id"].as_i64().unwrap()
}

fn route_of(bytes: &[u8]) -> i64 {
    i64::from(u16::from_be_bytes([bytes[0], bytes[1]]))
}

async fn every_api_s_refresh_token_names_its_users_route() {
    let app = spawn_app().await;
    let id = high_user(&app).await;
    assert!(id > 70_000, "{id}");
    let route = id % 65_536;

    // native: 43 characters of base64url, 32 bytes; the rotated child names it too
    let p = pair(app.login(EMAIL, PASSWORD).await).await;
    assert_eq!(p.refresh.len(), 43);
    assert_eq!(route_of(&URL_SAFE_NO_PAD.decode(&p.refresh).unwrap()), route);
    let child = pair(app.refresh(&p.refresh).await).await;
    assert_eq!(route_of(&URL_SAFE_NO_PAD.decode(&child.refresh).unwrap()), route);

    // simplejwt: the refresh JWT's jti, 32 hex digits
    let res = app.http.post(app.url("/api/token/")).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await.unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(body["refresh"].as_str().unwrap().split('.').nth(1).unwrap()).unwrap()).unwrap();
    let jti = claims["jti"].as_str().unwrap();
    assert_eq!(jti.len(), 32);
    assert_eq!(i64::from_str_radix(&jti[..4], 16).unwrap(), route);
    // and it refreshes
    let res = app.http.post(app.url("/api/token/refresh/")).json(&json!({"refresh": body["refresh"]})).send().await.unwrap();
    assert_eq!(res.status(), 200);
}

crate::both_backends!(every_api_s_refresh_token_names_its_users_route);
