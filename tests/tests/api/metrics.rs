//! `/metrics`, scraped as Prometheus would and parsed by the official Prometheus client's
//! OpenMetrics parser (Python `prometheus_client`, from `scripts/test-venv.sh`).

use std::collections::HashMap;
use std::io::Write;
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::helpers::{pair, spawn_app};

/// Samples by name: each with its labels and value.
type Samples = HashMap<String, Vec<(HashMap<String, String>, f64)>>;

/// Parses an exposition with `prometheus_client.openmetrics.parser`: metric types by family, and
/// samples by name with their labels and values. Panics when the parser refuses the text.
fn parse(exposition: &str) -> (HashMap<String, String>, Samples) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/test-venv.sh");
    let out = Command::new(script).output().expect("scripts/test-venv.sh runs");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let python = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let code = r#"
import json, sys
from prometheus_client.openmetrics.parser import text_string_to_metric_families
types, samples = {}, {}
for f in text_string_to_metric_families(sys.stdin.read()):
    types[f.name] = f.type
    for s in f.samples:
        samples.setdefault(s.name, []).append([s.labels, s.value])
print(json.dumps({"types": types, "samples": samples}))
"#;
    let mut child =
        Command::new(python).args(["-c", code]).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "the parser refuses the exposition: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    let types = serde_json::from_value(v["types"].clone()).unwrap();
    let samples = v["samples"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(name, list)| {
            let list =
                list.as_array().unwrap().iter().map(|s| (serde_json::from_value(s[0].clone()).unwrap(), s[1].as_f64().unwrap())).collect();
            (name.clone(), list)
        })
        .collect();
    (types, samples)
}

fn value(samples: &Samples, name: &str, labels: &[(&str, &str)]) -> f64 {
    samples
        .get(name)
        .into_iter()
        .flatten()
        .filter(|(l, _)| labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| v)
        .sum()
}

async fn metrics_tell_logins_refreshes_reuse_and_requests_apart() {
    let app = spawn_app().await;
    app.register("ann@example.com", "correct horse battery").await;
    assert_eq!(app.login("ann@example.com", "wrong horse battery").await.status(), 400);
    let first = pair(app.login("ann@example.com", "correct horse battery").await).await;
    let second = pair(app.refresh(&first.refresh).await).await;
    assert_eq!(app.refresh(&first.refresh).await.status(), 200, "again within the grace window: the same child");
    let third = pair(app.refresh(&second.refresh).await).await;
    assert_eq!(app.refresh(&first.refresh).await.status(), 400, "reuse");
    assert_eq!(app.refresh(&third.refresh).await.status(), 400, "revoked with its family");

    let res = app.http.get(app.metrics_url()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let (types, samples) = parse(&res.text().await.unwrap());

    assert_eq!(types["tessera_logins"], "counter");
    assert_eq!(types["tessera_http_request_duration_seconds"], "histogram");
    assert_eq!(types["tessera_hash_queue_depth"], "gauge");
    let native = ("api", "native");
    assert_eq!(value(&samples, "tessera_logins_total", &[native, ("outcome", "ok")]), 1.0);
    assert_eq!(value(&samples, "tessera_logins_total", &[native, ("outcome", "failed")]), 1.0);
    assert_eq!(value(&samples, "tessera_refreshes_total", &[native, ("outcome", "rotated")]), 2.0);
    assert_eq!(value(&samples, "tessera_refreshes_total", &[native, ("outcome", "reissued_in_grace")]), 1.0);
    assert_eq!(value(&samples, "tessera_refreshes_total", &[native, ("outcome", "reuse_detected")]), 1.0);
    assert_eq!(value(&samples, "tessera_refreshes_total", &[native, ("outcome", "refused")]), 1.0);
    assert_eq!(value(&samples, "tessera_revoked_sessions_total", &[("reason", "reuse_detected")]), 1.0);
    // per route and status, the route as matched, not the raw path
    assert_eq!(value(&samples, "tessera_http_requests_total", &[("route", "/oauth/token"), ("status", "200")]), 4.0);
    assert_eq!(value(&samples, "tessera_http_requests_total", &[("route", "/oauth/token"), ("status", "400")]), 3.0);
    assert_eq!(value(&samples, "tessera_http_request_duration_seconds_count", &[("route", "/oauth/token"), ("status", "200")]), 4.0);
    assert_eq!(value(&samples, "tessera_http_request_duration_seconds_bucket", &[("route", "/v1/users"), ("le", "+Inf")]), 1.0);
    assert!(value(&samples, "tessera_hash_wait_seconds_count", &[]) >= 3.0, "register and two logins hashed");
    assert!(value(&samples, "tessera_db_pool_connections", &[("state", "max")]) >= 1.0);
    assert_eq!(value(&samples, "tessera_hash_queue_depth", &[]), 0.0);
}

/// The `tessera_http_requests_total` series of an exposition: each one's labels, as written.
fn request_series(exposition: &str) -> Vec<String> {
    exposition
        .lines()
        .filter_map(|l| l.strip_prefix("tessera_http_requests_total{"))
        .filter_map(|l| l.split_once('}').map(|(labels, _)| labels.to_owned()))
        .collect()
}

/// The attack of issue 22 (item 1): every made-up HTTP method used to become a `method` label
/// value, so a client could add series without bound. Methods come from a fixed set plus
/// `other`, and a path no route matches is `unmatched`, whatever it is.
async fn invented_methods_and_unknown_paths_add_no_series() {
    let app = spawn_app().await;
    let scrape = || async { app.http.get(app.metrics_url()).send().await.unwrap().text().await.unwrap() };
    let send = |method: &str, path: &str| {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        app.http.request(method, app.url(path)).send()
    };
    // one of each kind first, so the series they fall under exist
    assert_eq!(send("FOO123", "/v1/me").await.unwrap().status(), 405);
    assert_eq!(send("FOO123", "/no/such/path").await.unwrap().status(), 404);
    assert_eq!(send("GET", "/no/such/path").await.unwrap().status(), 404);
    let before = request_series(&scrape().await);
    for i in 0..50 {
        send(&format!("FOO{i}X"), "/v1/me").await.unwrap();
        send(&format!("BAR{i}"), &format!("/no/such/path/{i}")).await.unwrap();
        send("GET", &format!("/invented-{i}")).await.unwrap();
    }
    let after = request_series(&scrape().await);
    let added: Vec<&String> = after.iter().filter(|s| !before.contains(s)).collect();
    assert!(added.is_empty(), "invented methods and paths added series: {added:#?}");
    let known = ["GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "other"];
    for s in &after {
        let method = s.split("method=\"").nth(1).and_then(|m| m.split('"').next()).unwrap_or("");
        assert!(known.contains(&method), "a method label outside the fixed set: {s}");
        assert!(!s.contains("/no/such/path") && !s.contains("/invented-"), "a raw path as a route label: {s}");
    }
    assert!(after.iter().any(|s| s.contains("method=\"other\"") && s.contains("route=\"unmatched\"")), "{after:#?}");
    assert!(after.iter().any(|s| s.contains("method=\"GET\"") && s.contains("route=\"unmatched\"") && s.contains("status=\"404\"")));
    assert!(after.iter().any(|s| s.contains("method=\"other\"") && s.contains("route=\"/v1/me\"") && s.contains("status=\"405\"")));
}

/// `/metrics` is served on a listener of its own (loopback by default), not on the API's port:
/// the public routes do not expose it.
async fn metrics_are_served_on_their_own_listener_only() {
    let app = spawn_app().await;
    assert_ne!(app.metrics_address, app.address);
    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 404, "not on the API's port");
    let res = app.http.get(app.metrics_url()).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("# TYPE tessera_http_requests counter"));
    let res = app.http.get(format!("{}/v1/me", app.metrics_address)).send().await.unwrap();
    assert_eq!(res.status(), 404, "the metrics listener serves /metrics only");
    let spec = app.http.get(app.url("/openapi.json")).send().await.unwrap().text().await.unwrap();
    assert!(!spec.contains("\"/metrics\""), "the public API's document does not list it");
}

crate::both_backends!(
    metrics_are_served_on_their_own_listener_only,
    metrics_tell_logins_refreshes_reuse_and_requests_apart,
    invented_methods_and_unknown_paths_add_no_series
);
