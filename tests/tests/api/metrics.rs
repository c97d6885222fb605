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

    let res = app.http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.headers()["content-type"].to_str().unwrap().starts_with("application/openmetrics-text"));
    let (types, samples) = parse(&res.text().await.unwrap());

    assert_eq!(types["tessera_logins"], "counter");
    assert_eq!(types["tessera_http_request_duration_seconds"], "histogram");
    assert_eq!(types["tessera_hash_queue_depth"], "gauge");
    let native = ("face", "native");
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

crate::both_backends!(metrics_tell_logins_refreshes_reuse_and_requests_apart);
