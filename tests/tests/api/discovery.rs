//! Tokens anyone can verify: a resource server holding only the JWKS URL verifies native access
//! tokens; the RFC 8414 metadata leads a standard OAuth 2 client to every endpoint; RFC 7662
//! introspection follows revocation, for every face's tokens.

use oauth2::basic::BasicClient;
use oauth2::{
    AccessToken, ClientId, ClientSecret, IntrospectionUrl, ResourceOwnerPassword, ResourceOwnerUsername, TokenIntrospectionResponse,
    TokenResponse, TokenUrl,
};
use serde_json::{Value, json};
use tessera_domain::{ClientId as Cid, OAuthClient, OffsetDateTime};

use crate::helpers::{TestApp, sign_hs256, spawn_app, verify_hs256, verify_with_jwks};

const EMAIL: &str = "ann@example.com";
const PASSWORD: &str = "correct horse battery";

async fn backend_client(app: &TestApp) {
    let client = OAuthClient {
        client_id: Cid::parse("resource-server").unwrap(),
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

async fn a_resource_server_verifies_native_tokens_with_the_jwks_alone() {
    let app = spawn_app().await;
    let pair = app.user_with_pair(EMAIL).await;
    let res = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["cache-control"], "public, max-age=900");
    let doc: Value = res.json().await.unwrap();
    for key in doc["keys"].as_array().unwrap() {
        assert_ne!(key["kty"], "oct", "no HMAC secret is ever published");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(key.get(private).is_none(), "no private material: {private}");
        }
    }
    let jwks: jsonwebtoken::jwk::JwkSet = serde_json::from_value(doc).unwrap();
    let header = jsonwebtoken::decode_header(&pair.access).unwrap();
    assert_eq!((header.alg, header.typ.as_deref()), (jsonwebtoken::Algorithm::ES256, Some("at+jwt")), "native tokens are ES256 by default");
    let claims = verify_with_jwks(&pair.access, &jwks);
    assert_eq!((claims["iss"].as_str(), claims["aud"].as_str()), (Some("tessera"), Some("native")));
    // a refreshed token verifies with the same document, nothing refetched
    let next = crate::helpers::pair(app.refresh(&pair.refresh).await).await;
    verify_with_jwks(&next.access, &jwks);
}

async fn dialects_keep_their_seeds_hmac_algorithm() {
    let app = spawn_app().await;
    app.register(EMAIL, PASSWORD).await;
    let res = app.http.post(app.url("/api/token/")).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await.unwrap();
    let body: Value = res.json().await.unwrap();
    let claims = verify_hs256(body["access"].as_str().unwrap(), &app.key_secret, &app.kid);
    assert_eq!(claims["token_type"], "access");
}

/// The attacks a published key invites: the public key as an HMAC secret, `alg: none`, a kid
/// nobody published.
async fn forged_tokens_are_refused() {
    let app = spawn_app().await;
    let pair = app.user_with_pair(EMAIL).await;
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let key = jwks["keys"].as_array().unwrap().iter().find(|k| k["kid"] == app.native_kid.as_str()).unwrap().clone();
    let claims = verify_with_jwks(&pair.access, &serde_json::from_value(jwks.clone()).unwrap());
    let hs = json!({"alg": "HS256", "typ": "at+jwt", "kid": app.native_kid});
    for secret in [key["x"].as_str().unwrap().as_bytes().to_vec(), key.to_string().into_bytes()] {
        let forged = sign_hs256(&hs, &claims, &secret);
        assert_eq!(app.me(&forged).await.status(), 401, "the public key is no HMAC secret");
    }
    let none =
        format!("{}.{}.", base64_url(&json!({"alg": "none", "kid": app.native_kid}).to_string()), pair.access.split('.').nth(1).unwrap());
    assert_eq!(app.me(&none).await.status(), 401);
    let unknown = app.sign_native(&json!({"kid": "nobody", "typ": "at+jwt"}), &claims);
    assert_eq!(app.me(&unknown).await.status(), 401);
    assert_eq!(app.me(&pair.access).await.status(), 200);
}

/// RFC 8414 §2: the issuer is the https URL clients reach, and tokens carry it; a token of the
/// issuer before (`tessera`) is still accepted until it expires, another issuer's is not.
async fn the_issuer_is_the_public_https_url_and_the_previous_one_still_verifies() {
    let app = crate::helpers::spawn_with(|s| s.server.public_url = "https://auth.example.test/".into()).await;
    let pair = app.user_with_pair(EMAIL).await;
    let (_, meta) = metadata(&app, &[]).await;
    assert_eq!(
        (meta["issuer"].as_str(), meta["token_endpoint"].as_str()),
        (Some("https://auth.example.test"), Some("https://auth.example.test/oauth/token"))
    );
    let claims = app.verify_independently(&pair.access).await;
    assert_eq!(claims["iss"], "https://auth.example.test");
    let header = json!({"kid": app.native_kid, "typ": "at+jwt"});
    let mut earlier = claims.clone();
    earlier["iss"] = json!("tessera");
    assert_eq!(app.me(&app.sign_native(&header, &earlier)).await.status(), 200, "the issuer before");
    let mut other = claims;
    other["iss"] = json!("https://someone-else.example");
    assert_eq!(app.me(&app.sign_native(&header, &other)).await.status(), 401, "another issuer");
}

fn base64_url(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn a_standard_client_finds_every_endpoint_in_the_metadata_and_introspects() {
    let app = spawn_app().await;
    app.register(EMAIL, PASSWORD).await;
    backend_client(&app).await;
    let meta: Value = app.http.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(meta["issuer"], "tessera");
    assert_eq!(
        meta["grant_types_supported"],
        json!(["password", "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:token-exchange"])
    );
    assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json"));
    let url = |k: &str| meta[k].as_str().unwrap().to_owned();
    assert_eq!(app.http.get(url("jwks_uri")).send().await.unwrap().status(), 200);

    let client = BasicClient::new(ClientId::new("resource-server".into()))
        .set_client_secret(ClientSecret::new("rs-secret-rs-secret".into()))
        .set_token_uri(TokenUrl::new(url("token_endpoint")).unwrap())
        .set_introspection_url(IntrospectionUrl::new(url("introspection_endpoint")).unwrap());
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let tokens = client
        .exchange_password(&ResourceOwnerUsername::new(EMAIL.into()), &ResourceOwnerPassword::new(PASSWORD.into()))
        .request_async(&http)
        .await
        .expect("the password grant at the advertised token endpoint");
    let info = client.introspect(tokens.access_token()).request_async(&http).await.expect("introspection answers");
    assert!(info.active());
    assert_eq!(info.client_id().map(|c| c.as_str()), Some("resource-server"));
    assert!(info.exp().is_some() && info.sub().is_some());
    let refresh = tokens.refresh_token().unwrap().clone();
    let r = client.introspect(&AccessToken::new(refresh.secret().clone())).request_async(&http).await.unwrap();
    assert!(r.active(), "refresh tokens introspect too");

    // revocation at the advertised endpoint (the oauth2 crate revokes over https only, so by
    // hand here): introspection follows at once
    let res = http
        .post(url("revocation_endpoint"))
        .basic_auth("resource-server", Some("rs-secret-rs-secret"))
        .form(&[("token", refresh.secret().as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(!client.introspect(tokens.access_token()).request_async(&http).await.unwrap().active());
    let r = client.introspect(&AccessToken::new(refresh.secret().clone())).request_async(&http).await.unwrap();
    assert!(!r.active());
    let garbage = client.introspect(&AccessToken::new("garbage".into())).request_async(&http).await.unwrap();
    assert!(!garbage.active());
}

async fn introspect(app: &TestApp, token: &str, auth: Option<(&str, &str)>) -> (u16, Value) {
    let mut r = app.http.post(app.url("/oauth/introspect")).form(&[("token", token)]);
    if let Some((id, secret)) = auth {
        r = r.basic_auth(id, Some(secret));
    }
    let res = r.send().await.unwrap();
    assert_eq!(res.headers()["cache-control"], "no-store");
    (res.status().as_u16(), res.json().await.unwrap())
}

async fn introspection_covers_every_face_and_only_confidential_clients_may_ask() {
    let app = spawn_app().await;
    app.register(EMAIL, PASSWORD).await;
    backend_client(&app).await;
    let auth = Some(("resource-server", "rs-secret-rs-secret"));
    let (_, fl) = {
        let res = app.http.post(app.url("/api/v1/login")).json(&json!({"email": EMAIL, "password": PASSWORD})).send().await.unwrap();
        (res.status(), res.json::<Value>().await.unwrap())
    };
    let (status, body) = introspect(&app, fl["access_token"].as_str().unwrap(), auth).await;
    assert_eq!(
        (status, body["active"].as_bool(), body["api"].as_str(), body["aud"].as_str()),
        (200, Some(true), Some("flask"), Some("flask"))
    );
    let (_, body) = introspect(&app, fl["refresh_token"].as_str().unwrap(), auth).await;
    assert_eq!((body["active"].as_bool(), body["token_type"].as_str()), (Some(true), Some("refresh_token")));
    // a logout at the face: both are inactive
    let res = app.http.post(app.url("/api/v1/logout")).bearer_auth(fl["refresh_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(introspect(&app, fl["access_token"].as_str().unwrap(), auth).await.1, json!({"active": false}));
    assert_eq!(introspect(&app, fl["refresh_token"].as_str().unwrap(), auth).await.1, json!({"active": false}));
    // the public default client, a wrong secret, nobody: invalid_client
    let pair = app.user_with_pair("bob@example.com").await;
    let res = app
        .http
        .post(app.url("/oauth/introspect"))
        .form(&[("token", pair.access.as_str()), ("client_id", "tessera")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    assert_eq!(introspect(&app, &pair.access, Some(("resource-server", "wrong"))).await.0, 401);
    assert_eq!(introspect(&app, &pair.access, None).await.0, 401);
}

fn kid(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

/// Polls until `done` holds (the running server reloads its keys within a few seconds).
async fn eventually<F: AsyncFnMut() -> bool>(what: &str, mut done: F) {
    for _ in 0..100 {
        if done().await {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within 10 s");
}

async fn after_a_rotation_old_and_new_tokens_verify_through_the_jwks_with_nothing_restarted() {
    let app = crate::helpers::spawn_with(|s| s.tokens.key_check_seconds = 1).await;
    let before = app.user_with_pair(EMAIL).await;
    assert_eq!(kid(&before.access), app.native_kid);
    // `tessera key rotate --now`, from another process
    let ops = app.admin().await;
    let new_kid = ops.keys.rotate(tessera_domain::Algorithm::ES256, true, OffsetDateTime::now_utc()).await.unwrap();
    let mut after = None;
    eventually("signing with the new key", async || {
        let p = crate::helpers::pair(app.login(EMAIL, PASSWORD).await).await;
        let new = kid(&p.access) == new_kid;
        after = Some(p);
        new
    })
    .await;
    let after = after.unwrap();
    let jwks: jsonwebtoken::jwk::JwkSet = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    verify_with_jwks(&before.access, &jwks);
    verify_with_jwks(&after.access, &jwks);
    assert_eq!(app.me(&before.access).await.status(), 200, "the retired key's tokens live out their life");
    let listed: Vec<_> = ops.keys.list().await.unwrap().into_iter().filter(|k| k.alg == "ES256").map(|k| (k.kid, k.state)).collect();
    assert!(listed.contains(&(app.native_kid.clone(), tessera_domain::KeyState::Retired)), "{listed:?}");

    // an emergency: the old key is compromised; its tokens are refused at once
    assert!(ops.keys.revoke(&app.native_kid, OffsetDateTime::now_utc()).await.unwrap());
    eventually("refusing the revoked key's tokens", async || app.me(&before.access).await.status() == 401).await;
    assert_eq!(app.me(&after.access).await.status(), 200);
    let jwks: Value = app.http.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert!(!jwks.to_string().contains(&app.native_kid), "a revoked key is no longer published");
}

async fn metadata(app: &TestApp, headers: &[(&str, &str)]) -> (Option<String>, Value) {
    let mut req = app.http.get(app.url("/.well-known/oauth-authorization-server"));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    assert_eq!(res.status(), 200);
    let cache = res.headers().get("cache-control").map(|v| v.to_str().unwrap().to_owned());
    (cache, res.json().await.unwrap())
}

const FOREIGN: [(&str, &str); 3] =
    [("x-forwarded-host", "evil.example"), ("forwarded", "host=evil.example;proto=https"), ("x-forwarded-proto", "https")];

/// A shared cache keeps the metadata for an hour: an untrusted client's forwarding headers must
/// not choose the endpoints it names.
async fn an_untrusted_clients_forwarded_host_never_reaches_the_metadata() {
    let app = spawn_app().await;
    for header in FOREIGN.iter().take(2) {
        let (_, meta) = metadata(&app, &[*header]).await;
        assert!(!meta.to_string().contains("evil.example"), "{header:?}: {meta}");
        assert_eq!(meta["token_endpoint"], app.url("/oauth/token"), "{header:?}");
        assert_eq!(meta["jwks_uri"], app.url("/.well-known/jwks.json"));
    }
    // a configured public URL is what every answer names, and only then may a cache share it
    let app = crate::helpers::spawn_with(|s| s.server.public_url = "https://auth.example.com/".into()).await;
    let (cache, meta) = metadata(&app, &FOREIGN).await;
    assert_eq!(meta["token_endpoint"], "https://auth.example.com/oauth/token");
    assert_eq!(meta["jwks_uri"], "https://auth.example.com/.well-known/jwks.json");
    assert_eq!(cache.as_deref(), Some("public, max-age=3600"));
    // a trusted proxy's forwarding headers are believed; the answer is then not for sharing
    let app = crate::helpers::spawn_with(|s| s.server.trusted_proxies = vec!["127.0.0.1/32".into()]).await;
    let (cache, meta) = metadata(&app, &[FOREIGN[0], FOREIGN[2]]).await;
    assert_eq!(meta["token_endpoint"], "https://evil.example/oauth/token");
    assert!(cache.is_some_and(|c| !c.contains("public")), "a request-derived document is not shared");
}

crate::both_backends!(
    after_a_rotation_old_and_new_tokens_verify_through_the_jwks_with_nothing_restarted,
    a_resource_server_verifies_native_tokens_with_the_jwks_alone,
    dialects_keep_their_seeds_hmac_algorithm,
    forged_tokens_are_refused,
    a_standard_client_finds_every_endpoint_in_the_metadata_and_introspects,
    introspection_covers_every_face_and_only_confidential_clients_may_ask,
    an_untrusted_clients_forwarded_host_never_reaches_the_metadata,
    the_issuer_is_the_public_https_url_and_the_previous_one_still_verifies,
);
