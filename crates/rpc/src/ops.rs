//! The operations side of every process: the one Prometheus recorder, and the ops HTTP listener
//! of every binary (`ARCANA_METRICS_ADDR`, loopback by default; never the public ports):
//! `GET /metrics` (Prometheus text; with a scrape token, only for `Authorization: Bearer
//! <token>`), `GET /health/live` and `GET /health/ready` (200 or 503, JSON; readiness answered
//! from a cache at most [`READY_CACHE`] old, so probes cannot hammer the database). Served with
//! hyper alone, so the repository and service binaries link no web framework.
//!
//! What the port shows, beyond what the process records itself: gRPC RED per call, server side
//! ([`crate::server::answer`]: `grpc_server_requests_total{rpc,code}`,
//! `grpc_server_request_duration_seconds{rpc}`) and client side ([`crate::client::Upstream::call`]:
//! `grpc_client_requests_total{rpc,code}`, `grpc_client_request_duration_seconds{rpc}`),
//! `arcana_build_info{binary,version}`, and the gauges the composition root refreshes before each
//! scrape (DB pool, hash queue, mail outbox).
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;

/// A gauge refresher run before each scrape.
pub type GaugeFn = Arc<dyn Fn() + Send + Sync>;

/// Whether the process and the layer below answer (the readiness of `/health/ready`).
pub type ReadyFn = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = bool> + Send>> + Send + Sync>;

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// Latency buckets of every `*_duration_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// The process-wide Prometheus recorder (installed on first use).
pub fn recorder() -> Option<PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)
                .ok()?;
            match builder.install_recorder() {
                Ok(h) => {
                    spawn_upkeep(h.clone());
                    Some(h)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "metrics recorder not installed");
                    None
                }
            }
        })
        .clone()
}

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The recorder keeps every histogram sample until upkeep folds it into the buckets; without it
/// a process nobody scrapes grows by every request it serves. One small thread does it.
fn spawn_upkeep(handle: PrometheusHandle) {
    let started = std::thread::Builder::new()
        .name("metrics-upkeep".into())
        .spawn(move || {
            loop {
                std::thread::sleep(UPKEEP_EVERY);
                handle.run_upkeep();
            }
        });
    if let Err(e) = started {
        tracing::warn!(error = %e, "metrics upkeep thread not started");
    }
}

/// `arcana_build_info{binary, version} 1`.
pub fn record_build_info(binary: &'static str) {
    let _ = recorder();
    metrics::gauge!("arcana_build_info", "binary" => binary, "version" => env!("CARGO_PKG_VERSION"))
        .set(1.0);
}

/// The Prometheus text of this process, after running `gauges`.
pub fn render(gauges: &[GaugeFn]) -> Option<String> {
    let handle = recorder()?;
    for g in gauges {
        g();
    }
    Some(handle.render())
}

/// How long a readiness answer is reused.
pub const READY_CACHE: Duration = Duration::from_secs(1);

/// `ready`, asked at most once per `ttl`: later callers within it get the last answer.
pub fn cached_ready(ready: ReadyFn, ttl: Duration) -> ReadyFn {
    let last: Arc<tokio::sync::Mutex<Option<(std::time::Instant, bool)>>> = Arc::default();
    Arc::new(move || {
        let (ready, last) = (ready.clone(), last.clone());
        Box::pin(async move {
            // Held across the check: concurrent probes wait for one answer instead of each
            // asking the database.
            let mut last = last.lock().await;
            if let Some((at, answer)) = *last
                && at.elapsed() < ttl
            {
                return answer;
            }
            let answer = ready().await;
            *last = Some((std::time::Instant::now(), answer));
            answer
        })
    })
}

/// Who may read `/metrics`: anyone who reaches the listener, or only the holder of a token.
#[derive(Clone, Default)]
pub struct ScrapeToken(Option<Arc<str>>);

impl ScrapeToken {
    pub fn new(token: Option<&str>) -> Self {
        Self(token.map(Arc::from))
    }

    fn admits(&self, req: &Request<Incoming>) -> bool {
        let Some(want) = &self.0 else {
            return true;
        };
        let given = req
            .headers()
            .get(hyper::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| crate::service::parse_bearer(Some(v)).ok())
            .unwrap_or_default();
        subtle::ConstantTimeEq::ct_eq(given.as_bytes(), want.as_bytes()).into()
    }
}

impl std::fmt::Debug for ScrapeToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "ScrapeToken(<set>)"
        } else {
            "ScrapeToken(none)"
        })
    }
}

/// Serve the ops listener on `listener` until `shutdown` resolves; readiness is cached for
/// [`READY_CACHE`].
pub async fn serve(
    listener: TcpListener,
    gauges: Vec<GaugeFn>,
    ready: ReadyFn,
    token: ScrapeToken,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let gauges = Arc::new(gauges);
    let ready = cached_ready(ready, READY_CACHE);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            a = listener.accept() => a,
        };
        let Ok((stream, _)) = accepted else {
            continue;
        };
        let (gauges, ready, token) = (gauges.clone(), ready.clone(), token.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let (gauges, ready, token) = (gauges.clone(), ready.clone(), token.clone());
                async move { Ok::<_, Infallible>(answer(&req, &gauges, &ready, &token).await) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "ops connection ended");
            }
        });
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    if let Ok(v) = hyper::header::HeaderValue::from_str(content_type) {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

async fn answer(
    req: &Request<Incoming>,
    gauges: &[GaugeFn],
    ready: &ReadyFn,
    token: &ScrapeToken,
) -> Response<Full<Bytes>> {
    const JSON: &str = "application/json";
    if req.method() != Method::GET {
        return reply(
            StatusCode::METHOD_NOT_ALLOWED,
            JSON,
            r#"{"status":"method not allowed"}"#.into(),
        );
    }
    match req.uri().path() {
        "/metrics" if !token.admits(req) => {
            let mut r = reply(
                StatusCode::UNAUTHORIZED,
                JSON,
                r#"{"status":"a scrape token is required"}"#.into(),
            );
            r.headers_mut().insert(
                hyper::header::WWW_AUTHENTICATE,
                hyper::header::HeaderValue::from_static("Bearer"),
            );
            r
        }
        "/metrics" => match render(gauges) {
            Some(text) => reply(StatusCode::OK, "text/plain; version=0.0.4", text),
            None => reply(
                StatusCode::SERVICE_UNAVAILABLE,
                JSON,
                r#"{"status":"no recorder"}"#.into(),
            ),
        },
        "/health/live" => reply(StatusCode::OK, JSON, r#"{"status":"ok"}"#.into()),
        "/health/ready" => {
            if !crate::server::is_draining() && ready().await {
                reply(StatusCode::OK, JSON, r#"{"status":"ready"}"#.into())
            } else {
                reply(
                    StatusCode::SERVICE_UNAVAILABLE,
                    JSON,
                    r#"{"status":"unavailable"}"#.into(),
                )
            }
        }
        _ => reply(
            StatusCode::NOT_FOUND,
            JSON,
            r#"{"status":"not found"}"#.into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn readiness_is_asked_at_most_once_per_ttl() {
        let asked = Arc::new(AtomicUsize::new(0));
        let counted = asked.clone();
        let ready: ReadyFn = Arc::new(move || {
            let counted = counted.clone();
            Box::pin(async move {
                counted.fetch_add(1, Ordering::SeqCst);
                true
            })
        });
        let cached = cached_ready(ready, Duration::from_millis(300));
        let answers = futures_util::future::join_all((0..20).map(|_| cached())).await;
        assert!(answers.iter().all(|a| *a));
        assert_eq!(asked.load(Ordering::SeqCst), 1, "20 probes, one check");
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert!(cached().await);
        assert_eq!(asked.load(Ordering::SeqCst), 2, "asked again after the ttl");
    }
}
