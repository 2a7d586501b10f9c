//! arcana gateway: the REST edge, and the public gRPC API ([`grpc`]) under the same rules.
//!
//! Owns the edge only: routing, extraction and validation of wire input, caller authentication
//! (bearer token + session liveness), per-IP rate limits, the error envelope, OpenAPI/Swagger UI,
//! health and metrics. Business rules live behind the `AuthService`/`UserService` ports; this crate
//! never sees a database.

pub mod authn;
pub mod dto;
pub mod envelope;
pub mod error;
pub mod extract;
pub mod grpc;
pub mod metrics;
pub mod ratelimit;
pub mod routes;
pub mod shared;

use std::net::IpAddr;
use std::ops::Deref;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::header::{self, HeaderName};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use domain::{
    AuthService, Error, OidcClientService, RevocationListener, Revocations, UserService,
    WebhookService,
};
use ipnet::IpNet;
use tower_http::CompressionLevel;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::compression::CompressionLayer;
use tower_http::compression::predicate::{DefaultPredicate, Predicate, SizeAbove};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::authn::Authenticator;
use crate::error::ApiError;
use crate::ratelimit::AuthRateLimit;

/// Request bodies above this answer 413.
pub const BODY_LIMIT: usize = 64 * 1024;

#[derive(Debug, Clone)]
pub struct GatewayConfig {
    /// Origins allowed by CORS; empty disables CORS headers entirely.
    pub cors_origins: Vec<String>,
    /// Requests per minute per client IP on login, register, refresh and password change;
    /// 0 disables.
    pub auth_rate_limit: u32,
    /// Password changes per minute per calling user; 0 disables.
    pub password_change_rate_limit: u32,
    /// Requests per minute per personal access token; 0 disables.
    pub token_rate_limit: u32,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<IpNet>,
    /// Whole-request deadline (REST answers 503, gRPC DEADLINE_EXCEEDED).
    pub request_timeout: Duration,
    /// HTTP/1: the request head must arrive within this time, and an idle keep-alive
    /// connection is closed after it (slow-header and idle connections cannot pile up).
    pub header_read_timeout: Duration,
    /// HTTP/2 (REST and gRPC): PING interval; a peer that does not answer within
    /// [`HTTP2_KEEPALIVE_TIMEOUT`] is disconnected.
    pub http2_keepalive_interval: Duration,
    /// Concurrent streams per HTTP/2 connection (REST over h2c and public gRPC).
    pub max_concurrent_streams: u32,
    /// The OpenID Connect public keys, published in the JWK Set beside the access-token keys.
    pub oidc_keys: Option<Arc<crypto::OidcKeys>>,
    /// The OpenID Connect issuer (`ARCANA_PUBLIC_URL`): where discovery says the endpoints are;
    /// an https issuer makes the SSO cookie `Secure` and `__Host-`.
    pub issuer: String,
    /// The name the hosted pages show.
    pub product_name: String,
}

/// How long an HTTP/2 keep-alive PING may go unanswered.
pub const HTTP2_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);

impl Default for GatewayConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            auth_rate_limit: 60,
            password_change_rate_limit: 5,
            token_rate_limit: 600,
            trusted_proxies: Vec::new(),
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            http2_keepalive_interval: Duration::from_secs(30),
            max_concurrent_streams: 100,
            oidc_keys: None,
            issuer: "http://localhost:8080".into(),
            product_name: "arcana".into(),
        }
    }
}

/// The service ports the edge serves: in-process (monolith) or gRPC clients of the service
/// layer (in microservices mode the OpenID Connect clients live with the auth context).
#[derive(Clone)]
pub struct Ports {
    pub auth: Arc<dyn AuthService>,
    pub users: Arc<dyn UserService>,
    pub oidc_clients: Arc<dyn OidcClientService>,
    /// Lifecycle webhooks (with the user context).
    pub webhooks: Arc<dyn WebhookService>,
    /// The OpenID Connect provider; `None`: its endpoints and pages answer 404.
    pub oidc: Option<Arc<dyn domain::OidcProvider>>,
}

pub struct Inner {
    /// The ports, telling `authn` what they revoke.
    pub auth: Arc<dyn AuthService>,
    pub users: Arc<dyn UserService>,
    pub oidc_clients: Arc<dyn OidcClientService>,
    pub webhooks: Arc<dyn WebhookService>,
    pub oidc: Option<Arc<dyn domain::OidcProvider>>,
    pub authn: Arc<Authenticator>,
    pub rate_limit: AuthRateLimit,
    pub config: GatewayConfig,
    /// `/.well-known/jwks.json`, built once at start: the access-token keys and the OpenID
    /// Connect keys (see [`jwk_set`]).
    pub jwks: axum::body::Bytes,
    /// The consoles' access tokens, by SHA-256 of the SSO cookie (`routes::console`).
    pub console_tokens: moka::sync::Cache<String, String>,
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
        ports: Ports,
        verifier: Arc<crypto::jwt::TokenVerifier>,
        config: GatewayConfig,
    ) -> Self {
        Self::with_shared(ports, verifier, config, None)
    }

    /// As [`AppState::new`], with the state replicas share through Redis (see [`shared`]):
    /// rate limits kept there, revocations broadcast to and followed from every replica.
    pub fn with_shared(
        ports: Ports,
        verifier: Arc<crypto::jwt::TokenVerifier>,
        config: GatewayConfig,
        shared: Option<Arc<shared::Shared>>,
    ) -> Self {
        let Ports {
            auth,
            users,
            oidc_clients,
            webhooks,
            oidc,
        } = ports;
        let authn = Arc::new(Authenticator::new(verifier, auth.clone()));
        let listener: Arc<dyn RevocationListener> = match &shared {
            Some(s) => {
                s.subscribe(authn.clone());
                Arc::new(shared::Broadcast {
                    local: authn.clone(),
                    shared: s.clone(),
                })
            }
            None => authn.clone(),
        };
        let auth: Arc<dyn AuthService> = Arc::new(Revocations::new(auth, listener.clone()));
        let users: Arc<dyn UserService> = Arc::new(Revocations::new(users, listener));
        let rate_limit =
            AuthRateLimit::new(config.auth_rate_limit, config.password_change_rate_limit)
                .per_token(config.token_rate_limit)
                .shared(shared);
        let jwks = jwk_set(authn.verifier(), config.oidc_keys.as_deref());
        Self(Arc::new(Inner {
            auth,
            users,
            oidc_clients,
            webhooks,
            oidc,
            authn,
            rate_limit,
            config,
            jwks,
            console_tokens: routes::console::token_cache(),
        }))
    }

    /// The caller `token` proves (see [`Authenticator::authenticate`]), a personal access
    /// token's within its per-token budget (`RATE_LIMITED` beyond it).
    pub async fn authenticate(&self, token: &str) -> domain::Result<domain::Principal> {
        let who = self.authn.authenticate(token).await?;
        if !who.scopes.is_session() {
            self.rate_limit
                .admit_token(who.session_id)
                .await
                .map_err(|retry_after| domain::Error::RateLimited { retry_after })?;
        }
        Ok(who)
    }

    /// The client's address (see [`client_ip`]).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded: impl DoubleEndedIterator<Item = &'a HeaderValue>,
    ) -> IpAddr {
        client_ip(&self.config.trusted_proxies, peer, forwarded)
    }
}

/// The JWK Set the gateway publishes: the keys that verify access tokens (none for HS256), then
/// the OpenID Connect keys, previous keys of a rotation included. Keys do not change while a
/// process runs, so it is serialized once.
pub fn jwk_set(
    verifier: &crypto::jwt::TokenVerifier,
    oidc: Option<&crypto::OidcKeys>,
) -> axum::body::Bytes {
    let mut set = verifier.jwks();
    if let (Some(oidc), Some(keys)) = (oidc, set["keys"].as_array_mut())
        && let serde_json::Value::Array(more) = oidc.jwks()["keys"].take()
    {
        keys.extend(more);
    }
    axum::body::Bytes::from(set.to_string())
}

/// One `X-Forwarded-For` entry: `ip`, `ipv4:port`, `[ipv6]` or `[ipv6]:port` (IPv4-mapped IPv6
/// as IPv4); `None` for anything else (`unknown`, obfuscated identifiers, garbage).
pub fn parse_forwarded_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(ip) = hop.parse::<IpAddr>() {
        return Some(ip.to_canonical());
    }
    if let Some(rest) = hop.strip_prefix('[') {
        let (inner, after) = rest.split_once(']')?;
        let port_ok = after.is_empty()
            || after
                .strip_prefix(':')
                .is_some_and(|p| p.parse::<u16>().is_ok());
        return port_ok
            .then(|| inner.parse::<std::net::Ipv6Addr>().ok())
            .flatten()
            .map(|v6| IpAddr::V6(v6).to_canonical());
    }
    let (host, port) = hop.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<std::net::Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy; then the
/// `X-Forwarded-For` hops (all headers, in order) are walked from the right, each trusted hop
/// vouching for the one before it, and the first untrusted address is the client. A hop that
/// does not parse ends the trust: the answer is the last address a trusted hop vouched for,
/// never anything further left (which the client may have made up).
pub fn client_ip<'a>(
    trusted: &[IpNet],
    peer: IpAddr,
    forwarded: impl DoubleEndedIterator<Item = &'a HeaderValue>,
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|n| n.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut client = peer;
    for header in forwarded.rev() {
        let Ok(text) = header.to_str() else {
            return client;
        };
        for hop in text.rsplit(',') {
            match parse_forwarded_hop(hop) {
                None => return client,
                Some(ip) => {
                    client = ip;
                    if !is_trusted(&ip) {
                        return ip;
                    }
                }
            }
        }
    }
    client
}

#[derive(OpenApi)]
#[openapi(
    info(title = "arcana", description = "User management and authentication platform. Every JSON answer is wrapped in the success or error envelope."),
    modifiers(&BearerScheme),
    components(schemas(domain::Role, domain::Status, domain::SettableStatus, domain::UserSort, domain::SortOrder)),
    tags(
        (name = "auth", description = "Registration, login, tokens and sessions"),
        (name = "mfa", description = "Second factors: TOTP, recovery codes, the second step of a login"),
        (name = "users", description = "User administration and self-service"),
        (name = "audit", description = "The audit log (admin)"),
        (name = "oidc", description = "OpenID Connect clients (admin)"),
        (name = "service-accounts", description = "Service accounts: machine principals of the client_credentials grant (admin)"),
        (name = "webhooks", description = "Lifecycle webhooks: endpoints, test deliveries, the delivery log (admin)"),
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
    let (router, doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(routes::auth::router())
        .merge(routes::tokens::router())
        .merge(routes::mfa::router())
        .merge(routes::users::router())
        .merge(routes::audit::router())
        .merge(routes::oidc_clients::router())
        .merge(routes::service_accounts::router())
        .merge(routes::webhooks::router())
        .merge(routes::ops::router())
        .split_for_parts();
    (router, document_scopes(doc))
}

/// The scheme of personal access tokens, and on every operation a token may call the scope it
/// needs, both from the one table (`domain::OPERATIONS`).
fn document_scopes(mut doc: utoipa::openapi::OpenApi) -> utoipa::openapi::OpenApi {
    use utoipa::openapi::security::SecurityRequirement;
    let scopes: String = domain::Scope::ALL
        .iter()
        .map(|s| format!("`{}` ({})", s.as_str(), s.description()))
        .collect::<Vec<_>>()
        .join(", ");
    let description = format!(
        "A personal access token (`arc_pat_…`, made at POST /api/v1/auth/tokens). It acts for \
         its owner, with at most the owner's rights, narrowed by its scopes: {scopes}. An \
         operation lists the scope it needs under this scheme; one that does not list it needs a \
         signed-in session (a token gets 403)."
    );
    let components = doc.components.get_or_insert_with(Default::default);
    components.add_security_scheme(
        "personal_access_token",
        SecurityScheme::Http(
            HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .bearer_format("arc_pat_")
                .description(Some(description))
                .build(),
        ),
    );
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [
            ("GET", &mut item.get),
            ("POST", &mut item.post),
            ("PUT", &mut item.put),
            ("PATCH", &mut item.patch),
            ("DELETE", &mut item.delete),
        ];
        for (method, op) in ops {
            let Some(op) = op else { continue };
            if let Some(domain::Need::Scope(scope)) = domain::need_of_route(method, path) {
                op.security
                    .get_or_insert_with(Vec::new)
                    .push(SecurityRequirement::new(
                        "personal_access_token",
                        [scope.as_str()],
                    ));
            }
        }
    }
    doc
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
        // `*` allows every origin, without credentials (no cookies are used: tokens travel in
        // the Authorization header). The composition root refuses `*` mixed with origins.
        let allow = if cfg.cors_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                cfg.cors_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        CorsLayer::new()
            .allow_origin(allow)
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
        .merge(routes::pages::router())
        .merge(routes::oidc::router())
        .merge(routes::console::router())
        .fallback(|| async { ApiError::RouteNotFound })
        .layer(middleware::from_fn(authn::refuse_token_in_url))
        .layer(middleware::from_fn(metrics::track))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state);
    let app = match cors {
        Some(c) => app.layer(c),
        None => app,
    };
    app.layer(
        CompressionLayer::new()
            .quality(CompressionLevel::Fastest)
            .compress_when(compress_when()),
    )
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

/// Bodies smaller than this go out uncompressed even when the client accepts gzip: they fit in
/// one TCP segment either way, and setting up a deflate stream per answer cost more CPU than
/// the whole rest of a small authenticated read (docs/benchmarks.md, "where the time goes").
/// Larger ones are compressed at gzip's fastest level: API answers are generated per request,
/// and level 1 keeps most of the size gain of the default level for a fraction of its CPU.
pub const COMPRESS_ABOVE_BYTES: u64 = 1400;

/// tower-http's default rules (no gRPC, images or event streams) and at least
/// [`COMPRESS_ABOVE_BYTES`].
fn compress_when() -> impl Predicate {
    DefaultPredicate::new().and(SizeAbove::new(COMPRESS_ABOVE_BYTES))
}

fn security_header(name: HeaderName, value: &'static str) -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::if_not_present(name, HeaderValue::from_static(value))
}

/// Errors produced below the handlers (method not allowed, timeouts, ...) come without a body;
/// give them the envelope so clients never see a bare answer.
async fn ensure_envelope(req: Request, next: Next) -> Response {
    let resp = next.run(req).await;
    let status = resp.status();
    // JSON already, or a page (the hosted sign-in pages answer errors as pages).
    let is_json = resp.headers().get(header::CONTENT_TYPE).is_some_and(|v| {
        v.as_bytes().starts_with(b"application/json") || v.as_bytes().starts_with(b"text/html")
    });
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

/// Serve `app` on `listener` until `shutdown` resolves; in-flight requests finish first (at
/// most `config.request_timeout`). HTTP/1.1 and HTTP/2 (h2c), with the connection limits of
/// `config` (header-read/idle timeout, HTTP/2 keep-alive and stream limit), which
/// `axum::serve` cannot set.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    config: &GatewayConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;
    use tower::ServiceExt;

    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(config.http2_keepalive_interval))
        .keep_alive_timeout(HTTP2_KEEPALIVE_TIMEOUT)
        .max_concurrent_streams(config.max_concurrent_streams);
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let svc = tower::service_fn(move |mut req: Request<hyper::body::Incoming>| {
            req.extensions_mut()
                .insert(axum::extract::ConnectInfo(peer));
            app.clone().oneshot(req.map(axum::body::Body::new))
        });
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), TowerToHyperService::new(svc))
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            // Timeouts and resets end connections here; nothing to report per connection.
            let _ = conn.await;
        });
    }
    drop(listener);
    if tokio::time::timeout(config.request_timeout, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight HTTP requests did not finish in time; closing");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(trusted: &[&str], peer: &str, headers: &[&str]) -> IpAddr {
        let values: Vec<HeaderValue> = headers
            .iter()
            .map(|h| HeaderValue::from_str(h).unwrap())
            .collect();
        client_ip(&nets(trusted), ip(peer), values.iter())
    }

    #[test]
    fn hops_parse_with_and_without_ports() {
        for (hop, want) in [
            ("203.0.113.9", Some("203.0.113.9")),
            (" 203.0.113.9 ", Some("203.0.113.9")),
            ("203.0.113.9:5555", Some("203.0.113.9")),
            ("2001:db8::1", Some("2001:db8::1")),
            ("[2001:db8::1]", Some("2001:db8::1")),
            ("[2001:db8::1]:443", Some("2001:db8::1")),
            ("::ffff:192.0.2.1", Some("192.0.2.1")),
            ("[::ffff:192.0.2.1]:80", Some("192.0.2.1")),
            ("unknown", None),
            ("_hidden", None),
            ("", None),
            ("203.0.113.9:99999", None),
            ("203.0.113.9:port", None),
            ("[2001:db8::1]:", None),
            ("[2001:db8::1", None),
            ("[203.0.113.9]", None),
            ("2001:db8::1:443:x", None),
            ("example.com:80", None),
        ] {
            assert_eq!(parse_forwarded_hop(hop), want.map(ip), "{hop:?}");
        }
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        assert_eq!(
            client(&["10.0.0.0/8"], "198.51.100.1", &["1.2.3.4"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            client(&[], "198.51.100.1", &["1.2.3.4"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let t = ["10.0.0.0/8"];
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, 203.0.113.9"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, 203.0.113.9, 10.0.0.7"]),
            ip("203.0.113.9")
        );
        // Ports are stripped: the proxy's own entry wins over the spoofed one to its left.
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, 203.0.113.9:5555"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, [2001:db8::9]:443"]),
            ip("2001:db8::9")
        );
    }

    #[test]
    fn an_unparseable_hop_ends_the_trust() {
        let t = ["10.0.0.0/8"];
        // `unknown` as reported by the proxy: nothing left of it is believed; the client is the
        // last address vouched for (here the proxy itself).
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, unknown"]),
            ip("10.0.0.1")
        );
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4, garbage, 10.0.0.2"]),
            ip("10.0.0.2")
        );
        assert_eq!(client(&t, "10.0.0.1", &["1.2.3.4,,"]), ip("10.0.0.1"));
    }

    #[test]
    fn several_headers_are_one_list_in_order() {
        let t = ["10.0.0.0/8"];
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4", "203.0.113.9, 10.0.0.5"]),
            ip("203.0.113.9")
        );
        assert_eq!(
            client(&t, "10.0.0.1", &["1.2.3.4", "unknown", "10.0.0.5"]),
            ip("10.0.0.5")
        );
        // Every hop trusted: the left-most one.
        assert_eq!(
            client(&t, "10.0.0.1", &["10.0.0.3", "10.0.0.4"]),
            ip("10.0.0.3")
        );
        assert_eq!(client(&t, "10.0.0.1", &[]), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_peers_are_normalised() {
        assert_eq!(client(&[], "::ffff:198.51.100.1", &[]), ip("198.51.100.1"));
        // ...and matched against IPv4 trusted ranges.
        assert_eq!(
            client(&["10.0.0.0/8"], "::ffff:10.0.0.1", &["203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    /// Every route of the document has a row in the scope table (the one `Authed` checks), and
    /// the operations a token may call say which scope they need.
    #[test]
    fn every_route_has_a_row_and_documents_its_scope() {
        let doc = serde_json::to_value(openapi()).unwrap();
        let mut rows = 0;
        for (path, ops) in doc["paths"].as_object().unwrap() {
            if !path.starts_with("/api/v1/") {
                continue;
            }
            for (method, op) in ops.as_object().unwrap() {
                let need = domain::need_of_route(method, path)
                    .unwrap_or_else(|| panic!("{method} {path} has no row"));
                rows += 1;
                let security = op["security"].to_string();
                match need {
                    domain::Need::Scope(s) => assert!(
                        security.contains(&format!(
                            "{{\"personal_access_token\":[\"{}\"]}}",
                            s.as_str()
                        )),
                        "{method} {path}: {security}"
                    ),
                    _ => assert!(
                        !security.contains("personal_access_token"),
                        "{method} {path}"
                    ),
                }
            }
        }
        assert_eq!(rows, domain::OPERATIONS.len(), "a row names no route");
        assert!(doc["components"]["securitySchemes"]["personal_access_token"].is_object());
    }
}
