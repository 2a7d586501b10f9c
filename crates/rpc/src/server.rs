//! Serving gRPC without tonic's axum-based router, so layers that must not link axum (the
//! repository and service layers) can still serve several services on one port.
//!
//! [`GrpcRouter`] dispatches on the `/package.Service/` path prefix; every port also gets the
//! standard `grpc.health.v1.Health` and server reflection (both open: probes carry no credential,
//! and they reveal nothing but the schema and a serving flag).
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use std::future::Future;
use tonic::body::Body;
use tonic::metadata::MetadataValue;
use tonic::server::NamedService;
use tracing::Instrument;

use crate::context;
use crate::raw::RawServer;
use tower::util::BoxCloneSyncService;
use tower::{Service, ServiceExt};

type Svc = BoxCloneSyncService<http::Request<Body>, http::Response<Body>, Infallible>;

/// What one connection and one call may take from a gRPC port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerLimits {
    /// Concurrent streams (calls) per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// A unary call that has not answered within this time (including a request whose body
    /// never arrives) ends with DEADLINE_EXCEEDED.
    pub rpc_timeout: Duration,
    /// HTTP/2 PING every `keepalive_interval`; a connection whose peer does not answer within
    /// `keepalive_timeout` is closed (dead peers, half-open connections).
    pub keepalive_interval: Duration,
    pub keepalive_timeout: Duration,
}

impl ServerLimits {
    /// Internal ports: one gateway multiplexes all its traffic over few connections.
    pub const INTERNAL: ServerLimits = ServerLimits {
        max_concurrent_streams: 1024,
        rpc_timeout: Duration::from_secs(30),
        keepalive_interval: Duration::from_secs(30),
        keepalive_timeout: Duration::from_secs(10),
    };
}

impl Default for ServerLimits {
    fn default() -> Self {
        Self::INTERNAL
    }
}

/// Path-prefix router over gRPC services.
#[derive(Clone, Default)]
pub struct GrpcRouter {
    routes: Arc<HashMap<&'static str, Svc>>,
    limits: ServerLimits,
}

impl GrpcRouter {
    pub fn new() -> Self {
        Self::default()
    }

    /// Serve with these limits instead of [`ServerLimits::INTERNAL`].
    pub fn with_limits(mut self, limits: ServerLimits) -> Self {
        self.limits = limits;
        self
    }

    /// Add a generated service (`FooServer::new(..)`, e.g. health and reflection).
    #[allow(clippy::should_implement_trait)] // a builder step, not `Add`
    pub fn add<S, B>(self, svc: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        self.add_named(S::NAME, svc)
    }

    /// Add one of our services (`foo_service_rpcs::server(..)`, see [`crate::raw`]).
    pub fn add_raw(self, svc: RawServer) -> Self {
        self.add_named(svc.name(), svc)
    }

    /// Add `svc` as the service `name` (possibly wrapped in an interceptor, which answers with
    /// its own body type, boxed here).
    fn add_named<S, B>(mut self, name: &'static str, svc: S) -> Self
    where
        S: Service<http::Request<Body>, Response = http::Response<B>, Error = Infallible>
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
        B: tonic::codegen::Body<Data = tonic::codegen::Bytes> + Send + 'static,
        B::Error: Into<tonic::codegen::StdError>,
    {
        let svc = svc.map_response(|r: http::Response<B>| r.map(Body::new));
        let routes = Arc::make_mut(&mut self.routes);
        routes.insert(name, BoxCloneSyncService::new(svc));
        self
    }

    /// Add `grpc.health.v1.Health` and server reflection v1 + v1alpha (over everything in `proto/`). The
    /// reporter sets each service's serving status (the layer's readiness task drives it).
    pub fn with_health_and_reflection(self) -> (Self, tonic_health::server::HealthReporter) {
        let (reporter, health) = tonic_health::server::health_reporter();
        let mut me = self.add(health);
        // Advertise only what this port serves (the descriptor set holds every contract).
        let names: Vec<String> = me.routes.keys().map(|n| (*n).to_owned()).collect();
        let served = served_descriptors(&names);
        let reflection = || {
            let mut b = tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(&served)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET);
            for n in &names {
                b = b.with_service_name(n.clone());
            }
            b
        };
        // v1 and v1alpha: grpcurl and many other clients still speak only v1alpha.
        match (reflection().build_v1(), reflection().build_v1alpha()) {
            (Ok(v1), Ok(v1alpha)) => me = me.add(v1).add(v1alpha),
            (Err(e), _) | (_, Err(e)) => tracing::warn!(error = %e, "gRPC reflection unavailable"),
        }
        (me, reporter)
    }

    /// Serve on `listener` until `shutdown` resolves (in-flight calls finish).
    pub async fn serve(
        self,
        listener: tokio::net::TcpListener,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        self.serve_tls(listener, None, shutdown).await
    }

    /// As [`GrpcRouter::serve`], with mutual TLS when `tls` is given.
    pub async fn serve_tls(
        self,
        listener: tokio::net::TcpListener,
        tls: Option<tonic::transport::ServerTlsConfig>,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) -> Result<(), tonic::transport::Error> {
        let incoming =
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
        let limits = self.limits;
        let mut builder = tonic::transport::Server::builder()
            .max_concurrent_streams(limits.max_concurrent_streams)
            .http2_keepalive_interval(Some(limits.keepalive_interval))
            .http2_keepalive_timeout(Some(limits.keepalive_timeout));
        if let Some(tls) = tls {
            builder = builder.tls_config(tls)?;
        }
        builder
            .serve_with_incoming_shutdown(self, incoming, shutdown)
            .await
    }
}

impl Service<http::Request<Body>> for GrpcRouter {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let name = req
            .uri()
            .path()
            .trim_start_matches('/')
            .split('/')
            .next()
            .unwrap_or("")
            .to_owned();
        match self.routes.get(name.as_str()) {
            Some(svc) => {
                let svc = svc.clone();
                let timeout = self.limits.rpc_timeout;
                Box::pin(async move {
                    match tokio::time::timeout(timeout, svc.oneshot(req)).await {
                        Ok(answer) => answer,
                        Err(_) => Ok(tonic::Status::deadline_exceeded(
                            "the call took longer than the server allows",
                        )
                        .into_http()),
                    }
                })
            }
            None => Box::pin(async move {
                Ok(tonic::Status::new(
                    tonic::Code::Unimplemented,
                    format!("unknown service {name:?}"),
                )
                .into_http())
            }),
        }
    }
}

/// Answer one call: `body` runs with the caller's request id in scope (the one task-local of
/// [`crate::context`]) and on a span (in the caller's trace, `parent`); its domain error becomes
/// the one `Status` mapping (internal causes logged, never sent); the request id is echoed in
/// `x-request-id`.
pub async fn answer<R: Send>(
    rpc: &'static str,
    request_id: Option<String>,
    parent: crate::trace::Parent,
    body: impl Future<Output = domain::Result<R>> + Send,
) -> Result<tonic::Response<R>, tonic::Status> {
    // Only this part depends on the call's types; `observe` is compiled once, not once per rpc.
    let mut value = None;
    let body = async {
        value = Some(body.await?);
        Ok(())
    };
    let (outcome, echo) = observe(rpc, request_id, parent, Box::pin(body)).await;
    outcome?;
    let mut response = tonic::Response::new(value.ok_or_else(|| {
        tonic::Status::internal(format!("{rpc}: an answered call left no answer"))
    })?);
    if let Some(v) = echo {
        response.metadata_mut().insert(context::REQUEST_ID, v);
    }
    Ok(response)
}

/// The call-independent part of [`answer`]: span, request id, metrics and the error's `Status`
/// (carrying the echoed request id); the request id to echo on a success.
async fn observe(
    rpc: &'static str,
    request_id: Option<String>,
    parent: crate::trace::Parent,
    body: std::pin::Pin<Box<dyn Future<Output = domain::Result<()>> + Send + '_>>,
) -> (
    Result<(), tonic::Status>,
    Option<MetadataValue<tonic::metadata::Ascii>>,
) {
    let span = tracing::info_span!(
        "grpc",
        rpc,
        request_id = request_id.as_deref().unwrap_or_default(),
        otel.name = rpc,
        otel.kind = "server",
        rpc.system = "grpc",
    );
    parent.adopt(&span);
    let started = std::time::Instant::now();
    let outcome = context::with_request_id(request_id.clone(), body.instrument(span.clone())).await;
    let code = match &outcome {
        Ok(()) => "Ok",
        Err(e) => e.code(),
    };
    metrics::counter!("grpc_server_requests_total", "rpc" => rpc, "code" => code).increment(1);
    metrics::histogram!("grpc_server_request_duration_seconds", "rpc" => rpc)
        .record(started.elapsed().as_secs_f64());
    let echo = request_id.and_then(|id| MetadataValue::try_from(id).ok());
    let outcome = outcome.map_err(|e| {
        let mut status = span.in_scope(|| crate::status::to_status(e));
        if let Some(v) = &echo {
            status.metadata_mut().insert(context::REQUEST_ID, v.clone());
        }
        status
    });
    (outcome, echo)
}

static DRAINING: std::sync::OnceLock<tokio::sync::watch::Sender<bool>> = std::sync::OnceLock::new();

fn draining_flag() -> &'static tokio::sync::watch::Sender<bool> {
    DRAINING.get_or_init(|| tokio::sync::watch::channel(false).0)
}

/// The process is going away (SIGTERM): from now on every health answer of the process —
/// `grpc.health.v1` on each port, `/health/ready` — says NOT_SERVING, while the servers still
/// serve, so callers move to other replicas before the connections close.
pub fn start_draining() {
    draining_flag().send_replace(true);
}

pub fn is_draining() -> bool {
    *draining_flag().borrow()
}

/// Resolves once the process drains.
pub async fn draining() {
    let mut rx = draining_flag().subscribe();
    let _ = rx.wait_for(|d| *d).await;
}

/// Keep a port's `grpc.health.v1` answers in step with `check` (readiness of the layer below):
/// `""` and every name in `services` are NOT_SERVING until the first check passes, then follow
/// it. Re-checks every `every` while serving and every 500 ms while not. Runs until dropped.
pub async fn track_health<F, Fut>(
    reporter: tonic_health::server::HealthReporter,
    services: Vec<&'static str>,
    every: std::time::Duration,
    check: F,
) where
    F: Fn() -> Fut + Send,
    Fut: std::future::Future<Output = domain::Result<()>> + Send,
{
    use tonic_health::ServingStatus;
    let names: Vec<&'static str> = std::iter::once("").chain(services).collect();
    // The reporter starts out SERVING; nothing is ready until the layer below has answered.
    for name in &names {
        reporter
            .set_service_status(*name, ServingStatus::NotServing)
            .await;
    }
    let mut last = None;
    loop {
        let drain = is_draining();
        let ready = !drain && check().await.is_ok();
        if last != Some(ready) {
            let status = if ready {
                ServingStatus::Serving
            } else {
                ServingStatus::NotServing
            };
            if ready {
                tracing::info!("ready: reporting SERVING");
            } else if drain {
                tracing::info!("draining: reporting NOT_SERVING");
            } else {
                tracing::warn!("layer below unavailable: reporting NOT_SERVING");
            }
            for name in &names {
                reporter.set_service_status(*name, status).await;
            }
            last = Some(ready);
        }
        let pause = if ready {
            every
        } else {
            every.min(std::time::Duration::from_millis(500))
        };
        if drain {
            // NOT_SERVING until the process exits.
            return std::future::pending().await;
        }
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = draining() => {}
        }
    }
}

/// The descriptors of the services named (by full name) and every file they depend on, from the
/// set of every contract: a port describes what it serves and nothing else (the public port never
/// the internal contracts).
fn served_descriptors(names: &[String]) -> Vec<u8> {
    use prost::Message;
    let Ok(all) = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET) else {
        return Vec::new();
    };
    let defines = |f: &prost_types::FileDescriptorProto| {
        f.service.iter().any(|s| {
            let full = format!("{}.{}", f.package(), s.name());
            names.contains(&full)
        })
    };
    let mut wanted: std::collections::BTreeSet<String> = all
        .file
        .iter()
        .filter(|f| defines(f))
        .map(|f| f.name().to_owned())
        .collect();
    // Close over dependencies (a handful of files: a fixed point is cheap).
    loop {
        let before = wanted.len();
        let deps: Vec<String> = all
            .file
            .iter()
            .filter(|f| wanted.contains(f.name()))
            .flat_map(|f| f.dependency.iter().cloned())
            .collect();
        wanted.extend(deps);
        if wanted.len() == before {
            break;
        }
    }
    prost_types::FileDescriptorSet {
        file: all
            .file
            .into_iter()
            .filter(|f| wanted.contains(f.name()))
            .collect(),
    }
    .encode_to_vec()
}
