//! Token exchange (RFC 8693): a confidential client trades a user's token of any API for a
//! native access token for one of its audiences, with at most the subject's rights and an
//! actor when one acts for the user; revoking the subject's session revokes what was exchanged.

use serde_json::{Value, json};
use tessera_domain::{ClientId, OAuthClient, OffsetDateTime};

use crate::helpers::{TestApp, pair, spawn_app};

const SECRET: &str = "gateway-secret-of-32-characters!!";
const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS: &str = "urn:ietf:params:oauth:token-type:access_token";
const REFRESH: &str = "urn:ietf:params:oauth:token-type:refresh_token";

async fn gateway(app: &TestApp, id: &str, exchange: &[&str], audiences: &[&str]) {
    let client = OAuthClient {
        client_id: ClientId::parse(id).unwrap(),
        name: id.into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(SECRET.as_bytes())),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec!["orders:read".into(), "orders:write".into()],
        audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
        require_dpop: false,
        exchange_types: exchange.iter().map(|s| (*s).to_owned()).collect(),
    };
    app.store.create_client(&client).await.unwrap();
}

async fn exchange(app: &TestApp, id: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let form = [&[("grant_type", EXCHANGE)][..], form].concat();
    let res = app.http.post(app.url("/oauth/token")).basic_auth(id, Some(SECRET)).form(&form).send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let res =
        app.http.post(app.url("/oauth/introspect")).basic_auth("gateway", Some(SECRET)).form(&[("token", token)]).send().await.unwrap();
    res.json().await.unwrap()
}

async fn a_service_exchanges_a_users_token_for_one_for_its_audience() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    gateway(&app, "gateway", &["access_token", "refresh_token"], &["orders-api"]).await;
    let user = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let user_sid = app.verify_independently(&user.access).await["sid"].clone();

    let (status, body) =
        exchange(&app, "gateway", &[("subject_token", &user.access), ("subject_token_type", ACCESS), ("scope", "orders:read")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["issued_token_type"].as_str(), body["token_type"].as_str(), body["scope"].as_str()),
        (Some(ACCESS), Some("Bearer"), Some("orders:read"))
    );
    assert!(body.get("refresh_token").is_none());
    let exchanged = body["access_token"].as_str().unwrap().to_owned();
    let claims = app.verify_independently(&exchanged).await;
    assert_eq!(
        (&claims["sub"], &claims["aud"], &claims["client_id"], &claims["sid"], &claims["scope"]),
        (&json!("1"), &json!("orders-api"), &json!("gateway"), &user_sid, &json!("orders:read"))
    );
    // never past the subject's own expiry, and for its audience only: not the native API's
    assert!(claims["exp"].as_i64() <= app.verify_independently(&user.access).await["exp"].as_i64());
    assert_eq!(app.me(&exchanged).await.status(), 401);
    let seen = introspect(&app, &exchanged).await;
    assert_eq!((&seen["active"], &seen["aud"], &seen["sid"]), (&json!(true), &json!("orders-api"), &user_sid), "{seen}");

    // a refresh token of the native API, and a simplejwt access token, are subjects too
    let (status, _) = exchange(&app, "gateway", &[("subject_token", &user.refresh), ("subject_token_type", REFRESH)]).await;
    assert_eq!(status, 200);
    let sj: Value = app
        .http
        .post(app.url("/api/token/"))
        .json(&json!({"email": "ann@example.com", "password": "correct horse battery"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let (status, from_django) =
        exchange(&app, "gateway", &[("subject_token", sj["access"].as_str().unwrap()), ("subject_token_type", ACCESS)]).await;
    assert_eq!(status, 200, "{from_django}");
    assert_eq!(app.verify_independently(from_django["access_token"].as_str().unwrap()).await["sub"], "1");

    // an actor: the gateway's own token names who acts for the user
    let cc: Value = app
        .http
        .post(app.url("/oauth/token"))
        .basic_auth("gateway", Some(SECRET))
        .form(&[("grant_type", "client_credentials")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let actor = cc["access_token"].as_str().expect("the gateway's own token");
    let (status, delegated) = exchange(
        &app,
        "gateway",
        &[("subject_token", &user.access), ("subject_token_type", ACCESS), ("actor_token", actor), ("actor_token_type", ACCESS)],
    )
    .await;
    assert_eq!(status, 200, "{delegated}");
    let delegated = delegated["access_token"].as_str().unwrap().to_owned();
    assert_eq!(app.verify_independently(&delegated).await["act"], json!({"sub": "gateway"}));
    assert_eq!(introspect(&app, &delegated).await["act"], json!({"sub": "gateway"}));

    // the subject's session revoked: what was exchanged from it is revoked, and no more is given
    let res =
        app.http.post(app.url("/oauth/revoke")).form(&[("token", user.refresh.as_str()), ("client_id", "tessera")]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&app, &exchanged).await, json!({"active": false}));
    assert_eq!(introspect(&app, &delegated).await, json!({"active": false}));
    let (status, body) = exchange(&app, "gateway", &[("subject_token", &user.access), ("subject_token_type", ACCESS)]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");

    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert!(meta["grant_types_supported"].as_array().unwrap().contains(&json!(EXCHANGE)));
}

async fn what_the_clients_policy_does_not_allow_is_refused() {
    let app = spawn_app().await;
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    gateway(&app, "gateway", &["access_token"], &["orders-api", "billing-api"]).await;
    gateway(&app, "no-exchange", &[], &["orders-api"]).await;
    let user = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let subject = [("subject_token", user.access.as_str()), ("subject_token_type", ACCESS)];
    let with = |extra: &[(&'static str, &'static str)]| [&subject[..], extra].concat();
    let error = |(status, body): (u16, Value)| (status, body["error"].as_str().unwrap_or_default().to_owned());

    // an audience it does not name, or none when it names several
    assert_eq!(error(exchange(&app, "gateway", &with(&[("audience", "payroll-api")])).await), (400, "invalid_target".into()));
    assert_eq!(error(exchange(&app, "gateway", &subject).await), (400, "invalid_target".into()));
    // beyond the rights it may pass on
    assert_eq!(
        error(exchange(&app, "gateway", &with(&[("audience", "orders-api"), ("scope", "orders:read admin")])).await),
        (400, "invalid_scope".into())
    );
    // a token type it may not exchange, and a client that exchanges nothing
    let refresh = [("subject_token", user.refresh.as_str()), ("subject_token_type", REFRESH), ("audience", "orders-api")];
    assert_eq!(error(exchange(&app, "gateway", &refresh).await), (400, "unauthorized_client".into()));
    assert_eq!(error(exchange(&app, "no-exchange", &with(&[("audience", "orders-api")])).await), (400, "unauthorized_client".into()));
    // a public client
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", EXCHANGE), ("subject_token", user.access.as_str()), ("subject_token_type", ACCESS)])
        .send()
        .await
        .unwrap();
    assert_eq!((res.status().as_u16(), res.json::<Value>().await.unwrap()["error"].clone()), (400, json!("unauthorized_client")));
    // a subject that is no token, or not of the type it is said to be
    let garbage = [("subject_token", "not-a-token"), ("subject_token_type", ACCESS), ("audience", "orders-api")];
    assert_eq!(error(exchange(&app, "gateway", &garbage).await), (400, "invalid_grant".into()));
    let misnamed = [("subject_token", user.refresh.as_str()), ("subject_token_type", ACCESS), ("audience", "orders-api")];
    assert_eq!(error(exchange(&app, "gateway", &misnamed).await), (400, "invalid_grant".into()));
    assert_eq!(error(exchange(&app, "gateway", &with(&[("audience", "orders-api"), ("requested_token_type", REFRESH)])).await).0, 400);
    assert_eq!(error(exchange(&app, "gateway", &[("subject_token_type", ACCESS)]).await), (400, "invalid_request".into()));
    // and what it may
    assert_eq!(exchange(&app, "gateway", &with(&[("audience", "billing-api")])).await.0, 200);
}

crate::both_backends!(a_service_exchanges_a_users_token_for_one_for_its_audience, what_the_clients_policy_does_not_allow_is_refused,);
