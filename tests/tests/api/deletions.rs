//! Deleting users and clients, as an attacker would get in the way (issue 21, item 8): a
//! deleted user's placeholder address cannot be taken beforehand, and a deleted client stops
//! authenticating at once on the running server.

use serde_json::{Value, json};
use tessera_domain::{ClientId, Email, OAuthClient, OffsetDateTime, UserId};

use crate::helpers::{BACKEND, Backend, TestApp, spawn_app};

/// Registering `deleted-<id>@deleted.invalid` before the user `<id>` is deleted made the
/// deletion fail on the address's uniqueness.
async fn a_deleted_users_placeholder_address_cannot_be_taken_beforehand() {
    let app = spawn_app().await;
    // an id without a 1 (the skeleton makes it an l, so the old deletion's key differed)
    assert_eq!(app.register("filler@example.com", "correct horse battery").await.status(), 201);
    let res = app.register("victim@example.com", "correct horse battery").await;
    assert_eq!(res.status(), 201);
    let victim = res.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    let placeholder = format!("deleted-{victim}@deleted.invalid");

    // both registrations refuse the reserved domain, look-alikes of it too
    for squat in [placeholder.clone(), format!("deleted-{}@deleted.invalid", victim + 1), "x@identities.\u{456}nvalid".into()] {
        let res = app.register(&squat, "correct horse battery").await;
        let (status, body) = (res.status().as_u16(), res.json::<Value>().await.unwrap());
        assert_eq!((status, body["field"].as_str()), (400, Some("email")), "{squat}: {body}");
        let res =
            app.http.post(app.url("/users/")).json(&json!({"email": squat, "password": "correct horse battery"})).send().await.unwrap();
        assert_eq!(res.status(), 400);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"email": ["Enter a valid email address."]}), "djoser: {squat}");
    }

    // an address squatted before registration refused it still does not stop the deletion
    let squatter = app.store.create_user(&Email::parse(&placeholder).unwrap(), None, OffsetDateTime::now_utc()).await.unwrap();
    let operator = app.admin().await; // what `tessera user delete` runs
    assert_eq!(operator.state.service.delete_user(UserId(victim), OffsetDateTime::now_utc()).await.unwrap(), 0);
    let tomb = app.store.user_by_id(UserId(victim)).await.unwrap().unwrap();
    assert_eq!(tomb.email.as_str(), placeholder);
    assert_eq!(app.store.user_by_email(&Email::parse(&placeholder).unwrap()).await.unwrap().unwrap().id, squatter.id);
    assert_eq!(app.register("victim@example.com", "correct horse battery").await.status(), 201, "the address is free again");
}

async fn grant(app: &TestApp, client: &str) -> reqwest::Response {
    let form = [("grant_type", "password"), ("username", "ann@example.com"), ("password", "correct horse battery")];
    app.http.post(app.url("/oauth/token")).basic_auth(client, Some("billing-secret")).form(&form).send().await.unwrap()
}

async fn introspect(app: &TestApp, token: &str) -> reqwest::Response {
    app.http
        .post(app.url("/oauth/introspect"))
        .basic_auth("billing", Some("billing-secret"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap()
}

/// A client deleted by another process (an operator, another instance) authenticated for about
/// 10 s more from the running server's cache, and a login with it then failed with 503.
async fn a_client_deleted_elsewhere_is_refused_at_once_by_the_running_server() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    let client = OAuthClient {
        client_id: ClientId::parse("billing").unwrap(),
        name: "billing".into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(b"billing-secret")),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
    let first = grant(&app, "billing").await;
    assert_eq!(first.status(), 200);
    let access = first.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(introspect(&app, &access).await.status(), 200, "the running server keeps the client");

    let operator = app.admin().await; // what `tessera client delete` runs
    assert_eq!(operator.state.service.delete_client("billing", OffsetDateTime::now_utc()).await.unwrap(), 1);

    if BACKEND.try_with(|b| *b).unwrap_or(Backend::Postgres) == Backend::Postgres {
        // every instance hears of the deletion: the client is refused without any login first
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while introspect(&app, &access).await.status() == 200 && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        assert_eq!(introspect(&app, &access).await.status(), 401, "forgotten within 2 s of the deletion");
    }
    // at once on both databases: the login meets the client's absence
    let res = grant(&app, "billing").await;
    assert_eq!(res.status(), 401);
    assert!(res.headers().contains_key("www-authenticate"), "the Basic challenge to a client that tried Basic");
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "invalid_client");
    assert_eq!(grant(&app, "billing").await.status(), 401, "and forgotten");
    assert_eq!(introspect(&app, &access).await.status(), 401);
}

crate::both_backends!(
    a_deleted_users_placeholder_address_cannot_be_taken_beforehand,
    a_client_deleted_elsewhere_is_refused_at_once_by_the_running_server,
);
