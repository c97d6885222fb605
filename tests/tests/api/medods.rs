//! The Medods dialect (seed 000): trusted callers mint pairs; refresh needs both tokens of one
//! pair; single use with reuse detection; delete and delete-all; the later generations' routes.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use serde_json::{Value, json};

use crate::helpers::{TestApp, spawn_with};

const KEY: &str = "a-trusted-caller-key-0123";

async fn app() -> TestApp {
    spawn_with(|s| s.dialects.medods.caller_key = Some(KEY.into())).await
}

async fn call(app: &TestApp, path: &str, body: Value, key: Option<&str>, ua: &str) -> (u16, Value) {
    let mut r = app.http.post(app.url(path)).header("user-agent", ua).json(&body);
    if let Some(k) = key {
        r = r.header("x-caller-key", k);
    }
    let res = r.send().await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap_or(Value::Null))
}

async fn generate(app: &TestApp, user_id: i64) -> (String, String) {
    let (status, body) =
        call(app, "/generate", json!({"user_id": user_id, "GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}), Some(KEY), "client/1").await;
    assert_eq!(status, 200, "{body}");
    (body["access"].as_str().unwrap().to_owned(), body["refresh"].as_str().unwrap().to_owned())
}

fn claims(jwt: &str) -> (Value, Value) {
    let p: Vec<&str> = jwt.split('.').collect();
    let decode = |s: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(s).unwrap()).unwrap();
    (decode(p[0]), decode(p[1]))
}

async fn the_seed_flow_generate_refresh_delete_deleteall() {
    let app = app().await;
    let (access, refresh) = generate(&app, 64842).await;
    let (header, c) = claims(&access);
    assert_eq!(header["alg"], "HS512", "RFC 7519 JWT, HS512");
    assert_eq!((c["user_id"].as_i64(), c["GUID"].as_str()), (Some(64842), Some("FF4vjiQAU8e6KYq/edxsrQ==")));
    assert_eq!(c["ip"], "127.0.0.1");
    assert!(c["pair_id"].is_string());
    assert_eq!(STANDARD.decode(&refresh).unwrap().len(), 32, "refresh: standard base64 of 256 bits");

    let (status, next) = call(&app, "/refresh", json!({"access": access, "refresh": refresh}), None, "client/1").await;
    assert_eq!(status, 200, "{next}");
    let (a2, r2) = (next["access"].as_str().unwrap().to_owned(), next["refresh"].as_str().unwrap().to_owned());
    assert_ne!(r2, refresh);
    // the old refresh token again: reuse; the whole family goes
    let (status, body) = call(&app, "/refresh", json!({"access": access, "refresh": refresh}), None, "client/1").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_reused")));
    let (status, body) = call(&app, "/refresh", json!({"access": a2, "refresh": r2}), None, "client/1").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("token_revoked")));

    // delete: one session; deleteall: every session of the user
    let (a3, r3) = generate(&app, 64842).await;
    assert_eq!(call(&app, "/delete", json!({"refresh": r3}), None, "client/1").await, (200, json!({})));
    let me = app.http.get(app.url("/me")).bearer_auth(&a3).send().await.unwrap();
    assert_eq!(me.status(), 401);
    let (a4, _) = generate(&app, 64842).await;
    let (a5, _) = generate(&app, 64842).await;
    let (other, _) = generate(&app, 7).await;
    assert_eq!(call(&app, "/deleteall", json!({"user_id": 64842}), Some(KEY), "caller").await, (200, json!({})));
    for t in [&a4, &a5] {
        assert_eq!(app.http.get(app.url("/me")).bearer_auth(t).send().await.unwrap().status(), 401);
    }
    let me = app.http.get(app.url("/me")).bearer_auth(&other).send().await.unwrap();
    assert_eq!(me.json::<Value>().await.unwrap(), json!({"GUID": "FF4vjiQAU8e6KYq/edxsrQ=="}));
}

async fn refresh_needs_the_access_token_of_its_own_pair() {
    let app = app().await;
    let (a1, r1) = generate(&app, 1).await;
    let (a2, _) = generate(&app, 1).await;
    let (status, body) = call(&app, "/refresh", json!({"access": a2, "refresh": r1}), None, "client/1").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("pair_mismatch")));
    // the mismatch consumed nothing
    assert_eq!(call(&app, "/refresh", json!({"access": a1, "refresh": r1}), None, "client/1").await.0, 200);
}

async fn trusted_caller_routes_need_the_key() {
    let app = app().await;
    for (path, body) in [("/generate", json!({"user_id": 1, "GUID": "x"})), ("/deleteall", json!({"user_id": 1}))] {
        for key in [None, Some("wrong-key-wrong-key")] {
            let (status, b) = call(&app, path, body.clone(), key, "c").await;
            assert_eq!((status, b["code"].as_str()), (401, Some("unauthorized_caller")), "{path}");
        }
    }
}

async fn trusted_caller_routes_are_open_only_when_configured_so() {
    let app = spawn_with(|s| {
        s.dialects.medods.caller_key = None;
        s.dialects.medods.open_to_anyone = true;
    })
    .await;
    let (status, body) = call(&app, "/generate", json!({"user_id": 1, "GUID": "x"}), None, "c").await;
    assert_eq!(status, 200, "{body}");
    let app = spawn_with(|s| s.dialects.medods.open_to_anyone = true).await;
    let (status, _) = call(&app, "/generate", json!({"user_id": 1, "GUID": "x"}), None, "c").await;
    assert_eq!(status, 200, "open_to_anyone wins over a key");
}

async fn a_changed_user_agent_refuses_and_logs_out_everywhere() {
    let app = app().await;
    let (a1, r1) = generate(&app, 5).await;
    let (a2, _) = generate(&app, 5).await;
    let (status, body) = call(&app, "/refresh", json!({"access": a1, "refresh": r1}), None, "another-browser/9").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("user_agent_changed")));
    assert_eq!(app.http.get(app.url("/me")).bearer_auth(&a2).send().await.unwrap().status(), 401);
}

async fn logout_ends_the_callers_session() {
    let app = app().await;
    let (a, _) = generate(&app, 9).await;
    let res = app.http.post(app.url("/logout")).bearer_auth(&a).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.http.get(app.url("/me")).bearer_auth(&a).send().await.unwrap().status(), 401);
}

async fn bad_input_gets_medods_json_errors() {
    let app = app().await;
    let cases: Vec<(&str, Option<&str>, Vec<u8>, u16)> = vec![
        ("/generate", Some("application/json"), b"{\"user_id\":".to_vec(), 400),
        ("/generate", Some("text/plain"), b"{}".to_vec(), 415),
        ("/generate", Some("application/json"), br#"{"user_id":1}"#.to_vec(), 400),
        ("/generate", Some("application/json"), br#"{"user_id":1,"GUID":"g","admin":true}"#.to_vec(), 400),
        ("/generate", Some("application/json"), br#"{"user_id":"one","GUID":"g"}"#.to_vec(), 400),
        ("/generate", Some("application/json"), vec![b' '; 1024 * 1024], 413),
        ("/refresh", Some("application/json"), br#"{"access":"garbage","refresh":"garbage"}"#.to_vec(), 401),
        ("/refresh", Some("application/json"), br#"{"access":"a.b.c"}"#.to_vec(), 400),
        ("/delete", Some("application/json"), br#"{"refresh":"not base64!"}"#.to_vec(), 400),
        ("/deleteall", Some("application/json"), br#"[]"#.to_vec(), 400),
    ];
    for (path, ct, body, status) in cases {
        let mut r = app.http.post(app.url(path)).header("x-caller-key", KEY).body(body);
        if let Some(ct) = ct {
            r = r.header("content-type", ct);
        }
        let res = r.send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
        let b: Value = res.json().await.unwrap();
        assert!(b["code"].is_string() && b["message"].is_string(), "{path}: {b}");
    }
    let res = app.http.get(app.url("/me")).send().await.unwrap();
    assert_eq!(res.status(), 401);
    let res = app.http.get(app.url("/generate")).send().await.unwrap();
    assert_eq!(res.status(), 405);
}

async fn a_blocked_user_gets_medods_403() {
    let app = app().await;
    let (access, refresh) = generate(&app, 77).await;
    let user = app.store.user_by_identity("medods", "77").await.unwrap().unwrap();
    app.store.set_user_status(user.id, tessera_domain::UserStatus::Blocked, tessera_domain::OffsetDateTime::now_utc()).await.unwrap();
    let (status, body) = call(&app, "/refresh", json!({"access": access, "refresh": refresh}), None, "client/1").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("user_blocked")));
    let (status, body) = call(&app, "/generate", json!({"user_id": 77, "GUID": "g"}), Some(KEY), "client/1").await;
    assert_eq!((status, body["code"].as_str()), (403, Some("user_blocked")));
}

/// A local receiver for the new-IP webhook: the events it got.
fn start_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let sink = got.clone();
    let server = actix_web::HttpServer::new(move || {
        let sink = sink.clone();
        actix_web::App::new().route(
            "/hook",
            actix_web::web::post().to(move |body: actix_web::web::Json<Value>| {
                let sink = sink.clone();
                async move {
                    sink.lock().unwrap().push(body.into_inner());
                    actix_web::HttpResponse::NoContent().finish()
                }
            }),
        )
    })
    .workers(1)
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);
    (format!("http://127.0.0.1:{port}/hook"), got)
}

async fn a_refresh_from_a_new_ip_goes_ahead_and_is_reported() {
    let (hook, got) = start_receiver();
    let app = spawn_with(move |s| {
        s.dialects.medods.caller_key = Some(KEY.into());
        s.dialects.medods.new_ip_webhook = Some(hook);
    })
    .await;
    let (access, refresh) = generate(&app, 3).await;
    // the same client, now from another address
    let moved = reqwest::Client::builder().local_address(std::net::IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let res = moved
        .post(app.url("/refresh"))
        .header("user-agent", "client/1")
        .json(&json!({"access": access, "refresh": refresh}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "refresh still allowed");
    let mut events = vec![];
    for _ in 0..100 {
        events = got.lock().unwrap().clone();
        if !events.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(events.len(), 1, "one report");
    let e = &events[0];
    assert_eq!(
        (e["event"].as_str(), e["user_id"].as_i64(), e["previous_ip"].as_str(), e["ip"].as_str()),
        (Some("refresh_from_new_ip"), Some(3), Some("127.0.0.1"), Some("127.0.0.2"))
    );
    assert_eq!(e["GUID"], "FF4vjiQAU8e6KYq/edxsrQ==");
}

/// A backend that calls `/generate` for a device names the device's address and User-Agent:
/// they, not the backend's own, are what the refresh-time rules compare against.
async fn a_backend_names_the_devices_address_and_user_agent_at_generate() {
    let app = app().await;
    let body = json!({"user_id": 11, "GUID": "g", "ip": "203.0.113.7", "user_agent": "device/1"});
    let (status, pair) = call(&app, "/generate", body, Some(KEY), "backend/1").await;
    assert_eq!(status, 200, "{pair}");
    let (_, c) = claims(pair["access"].as_str().unwrap());
    assert_eq!(c["ip"], "203.0.113.7");
    // the device refreshes: same User-Agent, so it goes ahead (the address changed: reported only)
    let (status, next) = call(&app, "/refresh", json!({"access": pair["access"], "refresh": pair["refresh"]}), None, "device/1").await;
    assert_eq!(status, 200, "{next}");
    // the session now remembers the address it was refreshed from
    let (_, c) = claims(next["access"].as_str().unwrap());
    assert_eq!(c["ip"], "127.0.0.1");
    // the backend's own User-Agent is not the device's: refused, and the user is logged out
    let (status, body) = call(&app, "/refresh", json!({"access": next["access"], "refresh": next["refresh"]}), None, "backend/1").await;
    assert_eq!((status, body["code"].as_str()), (401, Some("user_agent_changed")));
    // a device field that is not what it says is refused
    let (status, body) = call(&app, "/generate", json!({"user_id": 11, "GUID": "g", "ip": "not-an-ip"}), Some(KEY), "backend/1").await;
    assert_eq!((status, body["code"].as_str()), (400, Some("invalid_request")));
}

/// The client's address behind a proxy: the forwarding header is believed from a configured
/// proxy only, and read from the right.
async fn a_forwarded_address_counts_only_from_a_trusted_proxy() {
    let ip_of = |app: &TestApp, forwarded: &'static [(&'static str, &'static str)]| {
        let req = app.http.post(app.url("/generate")).header("x-caller-key", KEY).json(&json!({"user_id": 1, "GUID": "g"}));
        let req = forwarded.iter().fold(req, |r, (k, v)| r.header(*k, *v));
        async move {
            let body: Value = req.send().await.unwrap().json().await.unwrap();
            claims(body["access"].as_str().unwrap()).1["ip"].as_str().unwrap().to_owned()
        }
    };
    let open = app().await;
    assert_eq!(ip_of(&open, &[("x-forwarded-for", "203.0.113.9")]).await, "127.0.0.1", "an untrusted peer's header is ignored");
    let behind = spawn_with(|s| {
        s.dialects.medods.caller_key = Some(KEY.into());
        s.server.trusted_proxies = vec!["127.0.0.1/32".into()];
    })
    .await;
    assert_eq!(ip_of(&behind, &[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]).await, "203.0.113.9");
    assert_eq!(ip_of(&behind, &[("forwarded", "for=198.51.100.17;proto=https")]).await, "198.51.100.17");
    assert_eq!(ip_of(&behind, &[]).await, "127.0.0.1");
}

crate::both_backends!(
    a_forwarded_address_counts_only_from_a_trusted_proxy,
    a_backend_names_the_devices_address_and_user_agent_at_generate,
    a_refresh_from_a_new_ip_goes_ahead_and_is_reported,
    a_blocked_user_gets_medods_403,
    the_seed_flow_generate_refresh_delete_deleteall,
    refresh_needs_the_access_token_of_its_own_pair,
    trusted_caller_routes_need_the_key,
    trusted_caller_routes_are_open_only_when_configured_so,
    a_changed_user_agent_refuses_and_logs_out_everywhere,
    logout_ends_the_callers_session,
    bad_input_gets_medods_json_errors,
);
