//! drf-social-oauth2 (seed 002): OAuth clients, oauthlib's errors, both revocation forms,
//! session invalidation, and convert-token against a fake identity provider (a local server
//! publishing its own key set); nothing off the machine is called.

use std::net::TcpListener;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};
use tessera_domain::{ClientId, OAuthClient, OffsetDateTime};

use crate::helpers::{TestApp, now_unix, sign_hs256, spawn_with};

const IDP_KEY: &[u8] = b"the identity provider's own key, 32+ bytes";
/// A P-256 key pair made for this test only (PKCS#8 DER, and the public point for the JWKS),
/// so the asymmetric path real providers use is exercised too.
const ES_PRIVATE_PKCS8: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg4cZC7pW7mK0Xnqs4Gjg90qcT2RZyzESmM+zgCgFfk2ChRANCAARs1NJs7lKqok4xLPs0vBG3FUYGE/vtgRbnAYiE9Y4qlaJ97iliPWzmHmHLEvfT0luW1U0Fag4QzhJA54gOdArA";
const ES_X: &str = "bNTSbO5SqqJOMSz7NLwRtxVGBhP77YEW5wGIhPWOKpU";
const ES_Y: &str = "on3uKWI9bOYeYcsS99PSW5bVTQVqDhDOEkDniA50CsA";

fn es256_token(sub: &str, exp_in: i64) -> String {
    use base64::engine::general_purpose::STANDARD;
    let der = STANDARD.decode(ES_PRIVATE_PKCS8).unwrap();
    let key = jsonwebtoken::EncodingKey::from_ec_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.kid = Some("es-1".into());
    jsonwebtoken::encode(&header, &json!({"iss": ISSUER, "aud": APP, "sub": sub, "exp": now_unix() + exp_in}), &key).unwrap()
}
const ISSUER: &str = "https://idp.example.test";
/// The client id the fake provider issued to this application: the `aud` its tokens for us carry.
const APP: &str = "tessera-app.idp.example.test";

/// A fake identity provider: serves its JWKS on a local port.
fn start_idp() -> String {
    let jwks = json!({"keys": [{"kty": "oct", "kid": "idp-1", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(IDP_KEY)}]});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = actix_web::HttpServer::new(move || {
        let jwks = jwks.clone();
        actix_web::App::new().route(
            "/jwks.json",
            actix_web::web::get().to(move || {
                let jwks = jwks.clone();
                async move { actix_web::HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    format!("http://127.0.0.1:{port}/jwks.json")
}

fn idp_token(sub: &str, email: &str, exp_in: i64, key: &[u8], iss: &str) -> String {
    idp_token_with(sub, key, iss, json!({"email": email, "email_verified": true, "exp": now_unix() + exp_in}))
}

/// A token of the fake provider with the given claims beside `iss`, `sub` and `iat`.
fn idp_token_with(sub: &str, key: &[u8], iss: &str, extra: Value) -> String {
    let mut claims = json!({"iss": iss, "aud": APP, "sub": sub, "iat": now_unix()});
    for (k, v) in extra.as_object().unwrap() {
        claims[k] = v.clone();
    }
    sign_hs256(&json!({"alg": "HS256", "typ": "JWT", "kid": "idp-1"}), &claims, key)
}

async fn app() -> TestApp {
    let jwks_url = start_idp();
    let inline = json!({"keys": [{"kty": "oct", "kid": "idp-1", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(IDP_KEY)}]}).to_string();
    let app = spawn_with(move |s| {
        // One audience with the native face, so that these tests can ask the native /v1/me who a
        // drf-social-oauth2 token speaks for (faces stand alone by default; see faces.rs).
        s.dialects.drf_social_oauth2.audience = s.tokens.audience.clone();
        s.dialects.drf_social_oauth2.algorithm = s.tokens.algorithm.clone();
        let p = &mut s.dialects.drf_social_oauth2.providers;
        p.insert(
            "idp".into(),
            tessera_server::config::ProviderSettings {
                issuer: ISSUER.into(),
                jwks_url: Some(jwks_url),
                jwks: None,
                audience: Some(APP.into()),
            },
        );
        p.insert(
            "inline".into(),
            tessera_server::config::ProviderSettings {
                issuer: ISSUER.into(),
                jwks_url: None,
                jwks: Some(inline),
                audience: Some(APP.into()),
            },
        );
        let es = json!({"keys": [{"kty": "EC", "crv": "P-256", "kid": "es-1", "alg": "ES256", "x": ES_X, "y": ES_Y}]}).to_string();
        p.insert(
            "es".into(),
            tessera_server::config::ProviderSettings { issuer: ISSUER.into(), jwks_url: None, jwks: Some(es), audience: Some(APP.into()) },
        );
    })
    .await;
    let client = OAuthClient {
        client_id: ClientId::parse("web").unwrap(),
        name: "web".into(),
        secret_hash: Some(app.secrets.refresh_hasher.hash(b"web-secret")),
        profile: "standard".into(),
        created_at: OffsetDateTime::now_utc(),
        scopes: vec![],
        audiences: vec![],
        require_dpop: false,
        exchange_types: vec![],
    };
    app.store.create_client(&client).await.unwrap();
    app.register("ann@example.com", "correct horse battery").await;
    app
}

async fn form(app: &TestApp, path: &str, body: &[(&str, &str)], bearer: Option<&str>) -> (u16, Value, reqwest::header::HeaderMap) {
    let mut r = app.http.post(app.url(path)).form(body);
    if let Some(b) = bearer {
        r = r.bearer_auth(b);
    }
    let res = r.send().await.unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    (status, res.json().await.unwrap_or(Value::Null), headers)
}

const CLIENT: [(&str, &str); 2] = [("client_id", "web"), ("client_secret", "web-secret")];

async fn login(app: &TestApp) -> Value {
    let body =
        [&CLIENT[..], &[("grant_type", "password"), ("username", "ann@example.com"), ("password", "correct horse battery")]].concat();
    let (status, body, _) = form(app, "/auth/token", &body, None).await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn token_endpoint_speaks_oauthlib() {
    let app = app().await;
    let t = login(&app).await;
    assert_eq!(t.as_object().unwrap().keys().collect::<Vec<_>>(), ["access_token", "expires_in", "token_type", "scope", "refresh_token"]);
    assert_eq!(
        (t["expires_in"].as_i64(), t["token_type"].as_str(), t["scope"].as_str()),
        (Some(36000), Some("Bearer"), Some("read write"))
    );
    // HTTP Basic works too
    let res = app
        .http
        .post(app.url("/auth/token/"))
        .basic_auth("web", Some("web-secret"))
        .form(&[("grant_type", "password"), ("username", "ann@example.com"), ("password", "correct horse battery")])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    let pw = |u: &'static str, p: &'static str| [&CLIENT[..], &[("grant_type", "password"), ("username", u), ("password", p)]].concat();
    assert_eq!(
        form(&app, "/auth/token", &pw("ann@example.com", "wrong"), None).await.1,
        json!({"error": "invalid_grant", "error_description": "Invalid credentials given."})
    );
    let (status, body, headers) =
        form(&app, "/auth/token", &[("client_id", "web"), ("client_secret", "nope"), ("grant_type", "password")], None).await;
    assert_eq!((status, body), (401, json!({"error": "invalid_client"})));
    assert_eq!(headers["www-authenticate"], "Bearer error=\"invalid_client\"");
    assert_eq!(
        form(&app, "/auth/token", &[&CLIENT[..], &[("grant_type", "magic")]].concat(), None).await.1,
        json!({"error": "unsupported_grant_type"})
    );
    assert_eq!(
        form(&app, "/auth/token", &[&CLIENT[..], &[("grant_type", "refresh_token")]].concat(), None).await.1,
        json!({"error": "invalid_request", "error_description": "Missing refresh token parameter."})
    );
    let dup = app
        .http
        .post(app.url("/auth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=password&username=a&username=b")
        .send()
        .await
        .unwrap();
    assert_eq!(
        dup.json::<Value>().await.unwrap(),
        json!({"error": "invalid_request", "error_description": "Duplicate username parameter."})
    );

    // refresh rotates; garbage is invalid_grant
    let r = [&CLIENT[..], &[("grant_type", "refresh_token"), ("refresh_token", t["refresh_token"].as_str().unwrap())]].concat();
    let (status, next, _) = form(&app, "/auth/token", &r, None).await;
    assert_eq!(status, 200);
    assert_ne!(next["refresh_token"], t["refresh_token"]);
    let bad = [&CLIENT[..], &[("grant_type", "refresh_token"), ("refresh_token", "garbage")]].concat();
    assert_eq!(form(&app, "/auth/token", &bad, None).await.1, json!({"error": "invalid_grant"}));
}

async fn convert_token_exchanges_a_providers_jwt_for_a_local_pair() {
    let app = app().await;
    let convert = |backend: &'static str, token: String| {
        let mut v: Vec<(&str, String)> = CLIENT.iter().map(|(k, v)| (*k, v.to_string())).collect();
        v.extend([("grant_type", "convert_token".to_owned()), ("backend", backend.to_owned()), ("token", token)]);
        v
    };
    let send = |body: Vec<(&'static str, String)>| {
        let app = &app;
        async move {
            let res = app.http.post(app.url("/auth/convert-token")).form(&body).send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    let (status, t) = send(convert("idp", idp_token("sub-42", "bob@idp.example", 300, IDP_KEY, ISSUER))).await;
    assert_eq!(status, 200, "{t}");
    let me: Value = app.me(t["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me["email"], "bob@idp.example", "created on first sight with the provider's e-mail");
    // the same subject again: the same local user; a provider whose keys are configured inline works too
    let (_, again) = send(convert("idp", idp_token("sub-42", "bob@idp.example", 300, IDP_KEY, ISSUER))).await;
    let me2: Value = app.me(again["access_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_eq!(me2["id"], me["id"], "linked: the same local user");
    assert_eq!(send(convert("inline", idp_token("sub-7", "eve@idp.example", 300, IDP_KEY, ISSUER))).await.0, 200);

    // an asymmetric provider (ES256), as real identity providers sign
    let (status, es) = send(convert("es", es256_token("es-sub", 300))).await;
    assert_eq!(status, 200, "{es}");
    let tampered = {
        let t = es256_token("es-sub", 300);
        let (head, sig) = t.rsplit_once('.').unwrap();
        format!("{head}.{}{}", if sig.starts_with('A') { "B" } else { "A" }, &sig[1..])
    };
    // algorithm confusion: an HMAC token under the EC key's public coordinates
    let confused = sign_hs256(
        &json!({"alg": "HS256", "typ": "JWT", "kid": "es-1"}),
        &json!({"iss": ISSUER, "sub": "x", "exp": now_unix() + 300}),
        ES_X.as_bytes(),
    );
    let denied = json!({"access_denied": "The token you provided is invalid or expired."});
    for bad in [tampered, confused, es256_token("es-sub", -5)] {
        assert_eq!(send(convert("es", bad)).await, (400, denied.clone()));
    }
    for bad in [
        idp_token("sub-42", "x@y.z", -10, IDP_KEY, ISSUER),
        idp_token("sub-42", "x@y.z", 300, b"somebody else's key entirely, 32 bytes", ISSUER),
        idp_token("sub-42", "x@y.z", 300, IDP_KEY, "https://evil.example"),
        "not-a-jwt".to_owned(),
        // minted by the same provider for another application, or for none
        idp_token_with("sub-42", IDP_KEY, ISSUER, json!({"aud": "another-app", "exp": now_unix() + 300})),
        idp_token_with("sub-42", IDP_KEY, ISSUER, json!({"aud": null, "exp": now_unix() + 300})),
    ] {
        assert_eq!(send(convert("idp", bad)).await, (400, denied.clone()));
    }
    let (status, body) = send(convert("nope", idp_token("s", "a@b.c", 300, IDP_KEY, ISSUER))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
    let mut unknown = convert("idp", idp_token("s", "a@b.c", 300, IDP_KEY, ISSUER));
    unknown[0].1 = "ghost".into();
    assert_eq!(send(unknown).await, (400, json!({"detail": "The application for this client_id does not exist."})));

    // an address the provider did not verify is not adopted: nobody squats it before its owner
    for verified in [json!(false), json!("false"), Value::Null] {
        let claims = json!({"email": "victim@example.com", "email_verified": verified, "exp": now_unix() + 300});
        let (status, t) = send(convert("idp", idp_token_with(&format!("squatter-{verified}"), IDP_KEY, ISSUER, claims))).await;
        assert_eq!(status, 200, "{t}");
        let me: Value = app.me(t["access_token"].as_str().unwrap()).await.json().await.unwrap();
        assert_ne!(me["email"], "victim@example.com", "email_verified = {verified}");
    }
    assert_eq!(app.register("victim@example.com", "correct horse battery").await.status(), 201, "the owner still registers");
    // a token not valid yet (nbf) is refused
    let early = json!({"email": "e@idp.example", "email_verified": true, "exp": now_unix() + 600, "nbf": now_unix() + 300});
    assert_eq!(send(convert("idp", idp_token_with("early", IDP_KEY, ISSUER, early))).await, (400, denied.clone()));
}

/// A stream of tokens with made-up `kid`s refetches the provider's keys at most once per
/// `jwks_refetch_seconds`.
async fn unknown_kids_do_not_hammer_the_provider() {
    let fetches = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let jwks = json!({"keys": [{"kty": "oct", "kid": "idp-1", "alg": "HS256", "k": URL_SAFE_NO_PAD.encode(IDP_KEY)}]});
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://127.0.0.1:{}/jwks.json", listener.local_addr().unwrap().port());
    let counter = fetches.clone();
    let server = actix_web::HttpServer::new(move || {
        let (jwks, counter) = (jwks.clone(), counter.clone());
        actix_web::App::new().route(
            "/jwks.json",
            actix_web::web::get().to(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let jwks = jwks.clone();
                async move { actix_web::HttpResponse::Ok().json(jwks) }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    let app = spawn_with(move |s| {
        s.dialects.drf_social_oauth2.providers.insert(
            "idp".into(),
            tessera_server::config::ProviderSettings { issuer: ISSUER.into(), jwks_url: Some(url), jwks: None, audience: Some(APP.into()) },
        );
    })
    .await;
    for i in 0..10 {
        let forged = sign_hs256(
            &json!({"alg": "HS256", "typ": "JWT", "kid": format!("made-up-{i}")}),
            &json!({"iss": ISSUER, "sub": "x", "exp": now_unix() + 300}),
            IDP_KEY,
        );
        let body = [("grant_type", "convert_token"), ("client_id", "tessera"), ("backend", "idp"), ("token", forged.as_str())];
        let res = app.http.post(app.url("/auth/convert-token")).form(&body).send().await.unwrap();
        assert_eq!(res.status(), 400);
    }
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "one fetch, then the cached keys until the interval passes");
}

async fn revocation_in_both_forms_and_invalidation() {
    let app = app().await;
    // older form: token + client credentials
    let t = login(&app).await;
    let (status, _, _) =
        form(&app, "/auth/revoke-token", &[&CLIENT[..], &[("token", t["refresh_token"].as_str().unwrap())]].concat(), None).await;
    assert_eq!(status, 204);
    assert_eq!(app.me(t["access_token"].as_str().unwrap()).await.status(), 401);
    // newer form: Bearer + client_id
    let t = login(&app).await;
    let (status, _, _) = form(&app, "/auth/revoke-token", &[("client_id", "web")], Some(t["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    assert_eq!(app.me(t["access_token"].as_str().unwrap()).await.status(), 401);

    // invalidate-refresh-tokens: access tokens live on, refresh tokens end
    let a = login(&app).await;
    let (status, _, _) =
        form(&app, "/auth/invalidate-refresh-tokens", &[("client_id", "web")], Some(a["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    assert_eq!(app.me(a["access_token"].as_str().unwrap()).await.status(), 200);
    let r = [&CLIENT[..], &[("grant_type", "refresh_token"), ("refresh_token", a["refresh_token"].as_str().unwrap())]].concat();
    assert_eq!(form(&app, "/auth/token", &r, None).await.1, json!({"error": "invalid_grant"}));

    // invalidate-sessions: everything of that client ends
    let b = login(&app).await;
    let c = login(&app).await;
    let (status, _, _) = form(&app, "/auth/invalidate-sessions", &[("client_id", "web")], Some(b["access_token"].as_str().unwrap())).await;
    assert_eq!(status, 204);
    assert_eq!(app.me(c["access_token"].as_str().unwrap()).await.status(), 401);

    // a bad bearer on the protected routes
    let (status, body, headers) = form(&app, "/auth/invalidate-sessions", &[("client_id", "web")], Some("garbage")).await;
    assert_eq!((status, body), (401, json!({"detail": "Authentication credentials were not provided."})));
    assert_eq!(
        headers["www-authenticate"],
        "Bearer realm=\"api\",error=\"invalid_token\",error_description=\"The access token is invalid.\""
    );
}

crate::both_backends!(
    unknown_kids_do_not_hammer_the_provider,
    token_endpoint_speaks_oauthlib,
    convert_token_exchanges_a_providers_jwt_for_a_local_pair,
    revocation_in_both_forms_and_invalidation,
);
