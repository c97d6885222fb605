//! Every dialect route against the same hostile inputs: each answers a 4xx with a JSON body of
//! its own shape, never a 5xx.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::spawn_with;

async fn every_dialect_route_answers_hostile_input_with_a_json_4xx() {
    let app = spawn_with(|s| s.dialects.medods.caller_key = Some("a-trusted-caller-key-0123".into())).await;
    let routes = [
        "/generate",
        "/refresh",
        "/delete",
        "/deleteall",
        "/logout",
        "/api/token/",
        "/api/token/refresh/",
        "/api/token/verify/",
        "/api/token/blacklist/",
        "/auth/jwt/create/",
        "/auth/jwt/refresh/",
        "/auth/jwt/verify/",
        "/users/",
        "/auth/token",
        "/auth/convert-token",
        "/auth/revoke-token",
        "/auth/invalidate-sessions",
        "/auth/invalidate-refresh-tokens",
        "/api/v1/login",
        "/api/v1/refresh/token",
        "/api/v1/logout",
    ];
    let mib = vec![b'{'; 1024 * 1024];
    let bodies: Vec<(&str, Option<&str>, Vec<u8>)> = vec![
        ("malformed JSON", Some("application/json"), b"{\"a\":".to_vec()),
        ("wrong content type", Some("text/plain"), b"hello".to_vec()),
        ("JSON array", Some("application/json"), b"[1,2,3]".to_vec()),
        ("nested values", Some("application/json"), br#"{"refresh":{"a":[1]},"token":null,"email":5}"#.to_vec()),
        ("1 MiB", Some("application/json"), mib),
        ("invalid UTF-8", Some("application/x-www-form-urlencoded"), vec![0xff, 0xfe, b'=', 0x80]),
    ];
    let auths = [None, Some("Bearer garbage"), Some("Bearer a.b.c"), Some("JWT x"), Some("Basic !!!")];
    for path in routes {
        for (name, ct, body) in &bodies {
            for auth in auths {
                let mut r = app.http.request(Method::POST, app.url(path)).body(body.clone());
                if let Some(ct) = ct {
                    r = r.header("content-type", *ct);
                }
                if let Some(a) = auth {
                    r = r.header("authorization", a);
                }
                let res = r.send().await.unwrap();
                let status = res.status().as_u16();
                let text = res.text().await.unwrap();
                assert!((400..500).contains(&status), "{path} {name} {auth:?}: {status} {text}");
                assert!(serde_json::from_str::<Value>(&text).is_ok(), "{path} {name} {auth:?}: not JSON: {text}");
            }
        }
    }
    // still healthy
    assert_eq!(app.http.get(app.url("/health/ready")).send().await.unwrap().status(), 200);
}

crate::both_backends!(every_dialect_route_answers_hostile_input_with_a_json_4xx);
