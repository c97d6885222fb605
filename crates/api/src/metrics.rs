//! Prometheus metrics at `GET /metrics` (OpenMetrics text, the official `prometheus-client`
//! crate): requests and latency per route and status, logins, refreshes and revocations by
//! outcome, the password-hash queue, and the database pool. Served on a listener of its own
//! (`metrics.host`, `metrics.port`), never on the API's port.

use std::sync::Arc;
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tessera_domain::events::{Event, EventSink};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// One of RFC 9110's methods and PATCH, or `other`: never what the client invented.
    method: &'static str,
    /// The matched route pattern (`/oauth/token`), never the raw path, or `unmatched`: a set
    /// fixed by the configuration.
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaceOutcome {
    /// The API the login or refresh came to (`native` or a dialect).
    api: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolState {
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
    logins: Family<FaceOutcome, Counter>,
    refreshes: Family<FaceOutcome, Counter>,
    revocations: Family<Reason, Counter>,
    hash_queue: Gauge,
    hash_running: Gauge,
    pub(crate) hash_wait: Histogram,
    pub(crate) hash_refused: Counter,
    pool: Family<PoolState, Gauge>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tessera");
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests, by method, route and status", requests.clone());
        // 0.5 ms to about 16 s
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("http_request_duration_seconds", "HTTP request latency, by method, route and status", latency.clone());
        let logins = Family::<FaceOutcome, Counter>::default();
        registry.register("logins", "Password logins, by API and outcome (ok, failed, throttled, locked)", logins.clone());
        let refreshes = Family::<FaceOutcome, Counter>::default();
        registry.register(
            "refreshes",
            "Refreshes, by API and outcome (rotated, reissued_in_grace, access_only, reuse_detected, refused)",
            refreshes.clone(),
        );
        let revocations = Family::<Reason, Counter>::default();
        registry.register("revoked_sessions", "Sessions revoked, by reason", revocations.clone());
        let hash_queue = Gauge::default();
        registry.register("hash_queue_depth", "Password hashes waiting for a turn", hash_queue.clone());
        let hash_running = Gauge::default();
        registry.register("hash_running", "Password hashes running", hash_running.clone());
        let hash_wait = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register("hash_wait_seconds", "Time a password hash waited for its turn", hash_wait.clone());
        let hash_refused = Counter::default();
        registry.register("hash_refused", "Password hashes refused with 503: the queue was full", hash_refused.clone());
        let pool = Family::<PoolState, Gauge>::default();
        registry.register("db_pool_connections", "Database pool connections: in use, idle, and the maximum", pool.clone());
        Self { registry, requests, latency, logins, refreshes, revocations, hash_queue, hash_running, hash_wait, hash_refused, pool }
    }
}

impl EventSink for Metrics {
    fn record(&self, event: Event<'_>) {
        match event {
            Event::Login { face, outcome } => {
                self.logins.get_or_create(&FaceOutcome { api: face.to_owned(), outcome: outcome.as_str() }).inc();
            }
            Event::Refresh { face, outcome } => {
                self.refreshes.get_or_create(&FaceOutcome { api: face.to_owned(), outcome: outcome.as_str() }).inc();
            }
            Event::Revoked { reason, sessions } => {
                self.revocations.get_or_create(&Reason { reason: reason.to_owned() }).inc_by(sessions);
            }
        }
    }
}

impl Metrics {
    /// The exposition, with the gauges read now.
    pub fn render(&self, hash: (usize, usize), pool: Option<(u32, u32, u32)>) -> Result<String, std::fmt::Error> {
        let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
        self.hash_queue.set(gauge(hash.0));
        self.hash_running.set(gauge(hash.1));
        if let Some((open, idle, max)) = pool {
            self.pool.get_or_create(&PoolState { state: "in_use" }).set(i64::from(open.saturating_sub(idle)));
            self.pool.get_or_create(&PoolState { state: "idle" }).set(i64::from(idle));
            self.pool.get_or_create(&PoolState { state: "max" }).set(i64::from(max));
        }
        let mut out = String::new();
        encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// A method's label: every value comes from a fixed set, so no client can add series (issue 22).
fn method_label(method: &actix_web::http::Method) -> &'static str {
    use actix_web::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::CONNECT => "CONNECT",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

/// Counts every request and its latency under its method and matched route.
pub async fn middleware(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<Metrics>>().cloned();
    let method = method_label(req.method());
    let started = Instant::now();
    let res = next.call(req).await?;
    if let Some(m) = metrics {
        let route = res.request().match_pattern().unwrap_or_else(|| "unmatched".to_owned());
        let labels = HttpLabels { method, route, status: res.status().as_u16() };
        m.requests.get_or_create(&labels).inc();
        m.latency.get_or_create(&labels).observe(started.elapsed().as_secs_f64());
    }
    Ok(res)
}

/// The shared handle the service and the hasher report into.
pub type SharedMetrics = Arc<Metrics>;
