//! Prometheus metrics at `GET /metrics` (OpenMetrics text, the official `prometheus-client`
//! crate): requests and latency per route and status, logins, refreshes and revocations by
//! outcome, the password-hash queue, and the database pool. Served on a listener of its own
//! (`metrics.host`, `metrics.port`), never on the API's port.

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tessera_domain::events::{Event, EventSink};
use tessera_http::metrics::HttpMetrics;

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
    /// Requests and their latency, counted by `tessera_http::metrics::middleware`.
    pub http: Arc<HttpMetrics>,
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
        let http = Arc::new(HttpMetrics::register(&mut registry));
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
        Self { registry, http, logins, refreshes, revocations, hash_queue, hash_running, hash_wait, hash_refused, pool }
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

/// The shared handle the service and the hasher report into.
pub type SharedMetrics = Arc<Metrics>;
