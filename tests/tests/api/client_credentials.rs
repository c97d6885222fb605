//! The client_credentials grant (RFC 6749 §4.4): a confidential client's own access token, in
//! RFC 9068's profile, for one audience it may ask for, with the scopes it may have. Used by real
//! clients (the `oauth2` crate, Python's authlib), verified by a resource server holding only the
//! JWKS, introspected, and refused to every client and request the client's policy does not allow.

use std::process::Command;

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{ClientId as OClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use serde_json::{Value, json};
use tessera_domain::{ClientId, OAuthClient, OffsetDateTime};

use crate::helpers::{TestApp, spawn_app};

const SECRET: &str = "reports-secret-of-32-characters!!";

async fn client(app: &TestApp, id: &str, secret: Option<&str>, scopes: &[&str], audiences: &[&str]) {
    let client = OAuthClient {
        client_id: ClientId::parse(id).unwrap(),
        name: id.into(),
        secret_hash: secret.map(|s| app.secrets.refresh_hasher.hash(s.as_bytes())),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        audiences: audiences.iter().map(|s| (*s).to_owned()).collect(),
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
}

async fn token(app: &TestApp, id: &str, secret: &str, params: &[(&str, &str)]) -> (u16, Value) {
    let form = [&[("grant_type", "client_credentials")][..], params].concat();
    let res = app.http.post(app.url("/oauth/token")).basic_auth(id, Some(secret)).form(&form).send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn introspect(app: &TestApp, token: &str) -> Value {
    let res =
        app.http.post(app.url("/oauth/introspect")).basic_auth("reports", Some(SECRET)).form(&[("token", token)]).send().await.unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn a_confidential_client_gets_a_token_of_its_own_that_a_resource_server_verifies() {
    let app = spawn_app().await;
    client(&app, "reports", Some(SECRET), &["reports:read", "reports:write"], &["reports-api"]).await;

    let (status, body) = token(&app, "reports", SECRET, &[("scope", "reports:read")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body.as_object().unwrap().keys().collect::<Vec<_>>(), ["access_token", "token_type", "expires_in", "scope"]);
    assert_eq!(
        (body["token_type"].as_str(), body["expires_in"].as_i64(), body["scope"].as_str()),
        (Some("Bearer"), Some(300), Some("reports:read"))
    );
    let access = body["access_token"].as_str().unwrap();

    // a resource server holding only the public keys: RFC 9068's header and claims
    let header = jsonwebtoken::decode_header(access).unwrap();
    assert_eq!(header.typ.as_deref(), Some("at+jwt"));
    let claims = app.verify_independently(access).await;
    let mut names: Vec<&str> = claims.as_object().unwrap().keys().map(String::as_str).collect();
    names.sort_unstable();
    assert_eq!(names, ["aud", "client_id", "exp", "iat", "iss", "jti", "scope", "sub"]);
    assert_eq!(
        (&claims["sub"], &claims["client_id"], &claims["aud"], &claims["iss"]),
        (&json!("reports"), &json!("reports"), &json!("reports-api"), &json!("tessera"))
    );
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 300);

    // no scope asked: every scope the client may have
    let (_, all) = token(&app, "reports", SECRET, &[]).await;
    assert_eq!(all["scope"], "reports:read reports:write");

    // introspection knows it, and a user's route does not take it
    let seen = introspect(&app, access).await;
    assert_eq!(
        (&seen["active"], &seen["sub"], &seen["client_id"], &seen["aud"], &seen["scope"]),
        (&json!(true), &json!("reports"), &json!("reports"), &json!("reports-api"), &json!("reports:read"))
    );
    assert!(seen.get("sid").is_none(), "{seen}");
    assert_eq!(app.me(access).await.status(), 401);

    // deleted, the client's tokens are inactive to introspection at once
    app.store.delete_client("reports", OffsetDateTime::now_utc()).await.unwrap();
    client(&app, "auditor", Some(SECRET), &[], &["reports-api"]).await;
    let res =
        app.http.post(app.url("/oauth/introspect")).basic_auth("auditor", Some(SECRET)).form(&[("token", access)]).send().await.unwrap();
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"active": false}));

    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(
        meta["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"])
    );
}

async fn what_the_clients_policy_does_not_allow_is_refused() {
    let app = spawn_app().await;
    client(&app, "reports", Some(SECRET), &["reports:read"], &["reports-api", "billing-api"]).await;
    client(&app, "no-audience", Some(SECRET), &[], &[]).await;
    client(&app, "public-app", None, &[], &[]).await;

    // a public client: it proves nothing, so it gets nothing of its own
    let res = app
        .http
        .post(app.url("/oauth/token"))
        .form(&[("grant_type", "client_credentials"), ("client_id", "public-app")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert_eq!(res.json::<Value>().await.unwrap()["error"], "unauthorized_client");
    // a confidential client that names no audience may not use the grant either
    assert_eq!(token(&app, "no-audience", SECRET, &[]).await.1["error"], "unauthorized_client");
    // a wrong secret is the client's failure, as for every grant
    assert_eq!(
        token(&app, "reports", "wrong", &[("audience", "reports-api")]).await,
        (401, json!({"error": "invalid_client", "error_description": "Client authentication failed."}))
    );

    // an unlisted audience, or none when the client may ask for several
    let (status, body) = token(&app, "reports", SECRET, &[("audience", "payroll-api")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_target")));
    assert_eq!(token(&app, "reports", SECRET, &[]).await.1["error"], "invalid_target");
    // a scope beyond the client's
    let (status, body) = token(&app, "reports", SECRET, &[("audience", "reports-api"), ("scope", "reports:read reports:delete")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_scope")));
    // what it may: one of its audiences, named
    let (status, body) = token(&app, "reports", SECRET, &[("audience", "billing-api")]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(app.verify_independently(body["access_token"].as_str().unwrap()).await["aud"], "billing-api");

    // a user's access token is no client token, and a client token no user's
    assert_eq!(app.register("ann@example.com", "correct horse battery").await.status(), 201);
    let user = crate::helpers::pair(app.login("ann@example.com", "correct horse battery").await).await;
    let seen = introspect_as(&app, "reports", &user.access).await;
    assert_eq!((&seen["sub"], &seen["sid"].is_string()), (&json!("1"), &true));
}

async fn introspect_as(app: &TestApp, id: &str, token: &str) -> Value {
    let res = app.http.post(app.url("/oauth/introspect")).basic_auth(id, Some(SECRET)).form(&[("token", token)]).send().await.unwrap();
    res.json().await.unwrap()
}

async fn the_oauth2_crate_and_authlib_use_the_grant_unchanged() {
    // the venv first: installing it may take a while, and the server's idle connections close
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-venv.sh");
    let out = Command::new(script).output().expect("scripts/test-venv.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let app = spawn_app().await;
    client(&app, "reports", Some(SECRET), &["reports:read", "reports:write"], &["reports-api"]).await;
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();

    let oauth = BasicClient::new(OClientId::new("reports".into()))
        .set_client_secret(ClientSecret::new(SECRET.into()))
        .set_token_uri(TokenUrl::new(app.url("/oauth/token")).unwrap());
    let tokens = oauth
        .exchange_client_credentials()
        .add_scope(Scope::new("reports:write".into()))
        .request_async(&http)
        .await
        .expect("the client_credentials grant succeeds");
    assert!(tokens.refresh_token().is_none());
    assert_eq!(tokens.scopes().map(|s| s.iter().map(|s| s.to_string()).collect::<Vec<_>>()), Some(vec!["reports:write".to_owned()]));
    assert_eq!(app.verify_independently(tokens.access_token().secret()).await["scope"], "reports:write");
    let refused = oauth.exchange_client_credentials().add_scope(Scope::new("admin".into())).request_async(&http).await.unwrap_err();
    match refused {
        RequestTokenError::ServerResponse(r) => assert_eq!(r.error(), &BasicErrorResponseType::InvalidScope),
        other => panic!("expected an RFC 6749 error, got {other:?}"),
    }

    // Python's authlib, with HTTP Basic (its default) and with the secret in the body
    let code = r#"
import json, sys
from authlib.integrations.requests_client import OAuth2Session
url, secret = sys.argv[1], sys.argv[2]
out = []
for method in ("client_secret_basic", "client_secret_post"):
    s = OAuth2Session("reports", secret, token_endpoint_auth_method=method, scope="reports:read")
    out.append(dict(s.fetch_token(url, grant_type="client_credentials")))
print(json.dumps(out))
"#;
    let out = Command::new(python).args(["-c", code, &app.url("/oauth/token"), SECRET]).output().unwrap();
    assert!(out.status.success(), "authlib: {}", String::from_utf8_lossy(&out.stderr));
    let fetched: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(fetched.len(), 2);
    for t in fetched {
        assert_eq!((t["token_type"].as_str(), t["scope"].as_str()), (Some("Bearer"), Some("reports:read")), "{t}");
        assert_eq!(app.verify_independently(t["access_token"].as_str().unwrap()).await["sub"], "reports");
    }
}

crate::both_backends!(
    a_confidential_client_gets_a_token_of_its_own_that_a_resource_server_verifies,
    what_the_clients_policy_does_not_allow_is_refused,
    the_oauth2_crate_and_authlib_use_the_grant_unchanged,
);
