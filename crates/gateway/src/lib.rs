//! arcana gateway: the REST edge, and the public gRPC API ([`grpc`]) under the same rules.
//!
//! Owns the edge only: routing, extraction and validation of wire input, caller authentication
//! (bearer token + session liveness), per-IP rate limits, the error envelope, OpenAPI/Swagger UI,
//! health and metrics. Business rules live behind the `AuthService`/`UserService` ports; this crate
//! never sees a database.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented
    )
)]

pub mod authn;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod metrics;
pub mod ratelimit;
pub mod routes;

use std::net::{IpAddr, SocketAddr};
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use domain::{AuthService, Error, UserService};
use ipnet::IpNet;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::authn::Authenticator;
use crate::error::ApiError;
use crate::metrics::GaugeFn;
use crate::ratelimit::AuthRateLimit;

/// Request bodies above this answer 413.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Origins allowed by CORS; empty disables CORS headers entirely.
    pub cors_origins: Vec<String>,
    /// Requests per minute per client IP on login, register and refresh; 0 disables.
    pub auth_rate_limit: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Whole-request deadline.
    pub request_timeout: Duration,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            auth_rate_limit: 60,
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(30),
        }
    }
}

pub struct Inner {
    pub auth: Arc<dyn AuthService>,
    pub users: Arc<dyn UserService>,
    pub authn: Authenticator,
    pub rate_limit: Option<AuthRateLimit>,
    pub config: GatewayConfig,
    pub gauges: Vec<GaugeFn>,
}

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

impl Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    pub fn new(
        auth: Arc<dyn AuthService>,
        users: Arc<dyn UserService>,
        verifier: Arc<crypto::jwt::TokenVerifier>,
        config: GatewayConfig,
        gauges: Vec<GaugeFn>,
    ) -> Self {
        let authn = Authenticator::new(verifier, auth.clone());
        let rate_limit = AuthRateLimit::new(config.auth_rate_limit);
        Self(Arc::new(Inner {
            auth,
            users,
            authn,
            rate_limit,
            config,
            gauges,
        }))
    }

    /// The client's address: the peer, unless the peer is a trusted proxy, in which case the
    /// right-most `X-Forwarded-For` entry that is not itself a trusted proxy.
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl Iterator<Item = &'a HeaderValue>,
    ) -> IpAddr {
        let trusted = |ip: &IpAddr| self.config.trusted_proxies.iter().any(|n| n.contains(ip));
        if !trusted(&peer) {
            return peer;
        }
        let hops: Vec<IpAddr> = forwarded
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse().ok())
            .collect();
        hops.into_iter()
            .rev()
            .find(|ip| !trusted(ip))
            .unwrap_or(peer)
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "arcana", description = "User management and authentication platform. Every JSON answer is wrapped in the success or error envelope."),
    modifiers(&BearerScheme),
    tags(
        (name = "auth", description = "Registration, login, tokens and sessions"),
        (name = "users", description = "User administration and self-service"),
        (name = "operations", description = "Health, metrics and keys"),
    )
)]
struct ApiDoc;

struct BearerScheme;

impl utoipa::Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
    }
}

/// Every documented route, and the OpenAPI document generated from the same handlers.
pub fn api() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::users::router())
        .merge(routes::ops::router())
        .split_for_parts()
}

/// The OpenAPI document as served at `/api-docs/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api().1
}

/// The complete HTTP application with its middleware stack.
pub fn router(state: AppState) -> Router {
    // Install the recorder before the first request is counted.
    let _ = metrics::handle();
    let (api, doc) = api();
    let cfg = &state.config;
    let cors = (!cfg.cors_origins.is_empty()).then(|| {
        let origins: Vec<HeaderValue> = cfg
            .cors_origins
            .iter()
            .filter_map(|o| HeaderValue::from_str(o).ok())
            .collect();
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(origins))
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                envelope::X_REQUEST_ID.clone(),
            ])
            .expose_headers([envelope::X_REQUEST_ID.clone(), header::RETRY_AFTER])
            .max_age(Duration::from_secs(600))
    });
    let timeout = cfg.request_timeout;
    let app = api
        .merge(SwaggerUi::new("/swagger-ui").url("/api-docs/openapi.json", doc))
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    let app = match cors {
        Some(c) => app.layer(c),
        None => app,
    };
    app.layer(CompressionLayer::new())
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        .layer(middleware::from_fn(ensure_envelope))
        .layer(CatchPanicLayer::custom(|_| {
            tracing::error!("handler panicked");
            ApiError::Domain(Error::internal("handler panicked")).into_response()
        }))
        .layer(security_header(header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .layer(security_header(header::X_FRAME_OPTIONS, "DENY"))
        .layer(security_header(header::REFERRER_POLICY, "no-referrer"))
        .layer(security_header(header::CACHE_CONTROL, "no-store"))
        .layer(middleware::from_fn(envelope::request_id_middleware))
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Errors produced below the handlers (method not allowed, timeouts, ...) come without a body;
/// give them the envelope so clients never see a bare answer.
async fn ensure_envelope(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if status.is_success() || status.is_redirection() || is_json || status.is_informational() {
        return resp;
    }
    let err = match status {
        StatusCode::METHOD_NOT_ALLOWED => ApiError::MethodNotAllowed,
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::PayloadTooLarge,
        StatusCode::NOT_FOUND => ApiError::RouteNotFound,
        StatusCode::SERVICE_UNAVAILABLE | StatusCode::REQUEST_TIMEOUT => {
            ApiError::Domain(Error::Unavailable)
        }
        s if s.is_client_error() => ApiError::InvalidJson("malformed request".into()),
        _ => ApiError::Domain(Error::internal(format!(
            "bare {status} from the middleware stack"
        ))),
    };
    let mut new = err.into_response();
    for name in [header::ALLOW] {
        if let Some(v) = resp.headers().get(&name) {
            new.headers_mut().insert(name, v.clone());
        }
    }
    new
}

/// Serve `app` on `listener` until `shutdown` resolves; in-flight requests finish first.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
