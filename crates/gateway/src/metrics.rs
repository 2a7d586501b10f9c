//! Prometheus metrics: per-route request counts and latency histograms (recorded by a
//! middleware). Read on the ops listener (`rpc::ops`), never on the public port.
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::PrometheusHandle;

pub use rpc::ops::GaugeFn;

/// The process-wide Prometheus recorder (installed on first use; shared with the gRPC layers).
pub fn handle() -> Option<PrometheusHandle> {
    rpc::ops::recorder()
}

/// The `method` label: the standard methods by name, anything else `OTHER`, so a client
/// inventing methods cannot create series (each lives as long as the process).
pub fn method_label(m: &Method) -> &'static str {
    match *m {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// The `route` label: the matched route template, or one label for everything unmatched.
pub const UNMATCHED: &str = "unmatched";

pub async fn track(req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |p| p.as_str().to_owned());
    let resp = next.run(req).await;
    let status = resp.status().as_u16().to_string();
    let labels = [
        ("method", method.to_owned()),
        ("route", route),
        ("status", status),
    ];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels[..2])
        .record(start.elapsed().as_secs_f64());
    resp
}
