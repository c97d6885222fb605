//! Request metrics for every API: a count and a latency histogram per method, matched route and
//! status, recorded by [`middleware`] into the [`HttpMetrics`] the app holds as data. The labels
//! come from fixed sets, so no client can add series.

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::web;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    /// One of RFC 9110's methods and PATCH, or `other`: never what the client invented.
    method: &'static str,
    /// The matched route pattern (`/oauth/token`), never the raw path, or `unmatched`: a set
    /// fixed by the configuration.
    route: String,
    status: u16,
}

/// The request counters, registered in an application's registry.
#[derive(Debug, Clone)]
pub struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    latency: Family<HttpLabels, Histogram>,
}

impl HttpMetrics {
    /// Registers `http_requests` and `http_request_duration_seconds` in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let requests = Family::<HttpLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests, by method, route and status", requests.clone());
        // 0.5 ms to about 16 s
        let latency = Family::<HttpLabels, Histogram>::new_with_constructor(|| Histogram::new(exponential_buckets(0.0005, 2.0, 16)));
        registry.register("http_request_duration_seconds", "HTTP request latency, by method, route and status", latency.clone());
        Self { requests, latency }
    }
}

/// A method's label: every value comes from a fixed set, so no client can add series.
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

/// Counts every request and its latency under its method and matched route, into the app's
/// `web::Data<HttpMetrics>` (nothing is counted without one).
pub async fn middleware(req: ServiceRequest, next: Next<impl MessageBody>) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let metrics = req.app_data::<web::Data<HttpMetrics>>().cloned();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invented_method_is_labelled_other() {
        let invented = actix_web::http::Method::from_bytes(b"BREW").unwrap_or(actix_web::http::Method::GET);
        assert_eq!(method_label(&invented), "other");
        assert_eq!(method_label(&actix_web::http::Method::PATCH), "PATCH");
    }
}
