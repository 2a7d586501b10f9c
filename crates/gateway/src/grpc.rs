//! The public gRPC API (`arcana.v1.AuthService`, `arcana.v1.UserService`,
//! `arcana.v1.OidcClientService`, `arcana.v1.WebhookService`, health, reflection) on
//! the gateway's gRPC port, with the same rules and checks as REST:
//!
//! - callers authenticate with `authorization: Bearer <access token>` metadata, verified by the
//!   same [`Authenticator`](crate::authn::Authenticator) (signature, claims, session liveness
//!   through the 2 s cache), which the ports tell about every revocation (`domain::Revocations`);
//! - the client IP is the TCP peer, or — when the peer is a trusted proxy — the right-most
//!   untrusted `x-forwarded-for` entry ([`AppState::client_ip`]); the user agent is the
//!   `user-agent` metadata;
//! - Register, Login and Refresh share the per-IP budgets of REST ([`AuthRateLimit`]), answering
//!   RESOURCE_EXHAUSTED / `RATE_LIMITED`;
//! - errors carry the standard `google.rpc.Status` details (`rpc::status`: `ErrorInfo` with the
//!   contract code, `BadRequest`, `RetryInfo`; the older `x-error-*` trailers for one release), the
//!   request id (the caller's sane `x-request-id`, else a new one) is echoed in `x-request-id`.
//!
//! The handlers themselves are the service layer's [`AuthGrpc`] / [`UserGrpc`] over the gateway's
//! ports, so this module is only the edge policy ([`BearerPrincipal`]).
//!
//! [`AuthRateLimit`]: crate::ratelimit::AuthRateLimit
use std::net::IpAddr;
use std::time::Duration;

use domain::{Error, Principal, RequestContext, Result};
use rpc::server::{GrpcRouter, ServerLimits};
use rpc::service::{
    AuthGrpc, Call, HealthReporter, OidcClientGrpc, PrincipalSource, Throttled, UserGrpc,
    WebhookGrpc, request_id_or_new,
};
use rpc::v1::{
    auth_service_rpcs, oidc_client_service_rpcs, user_service_rpcs, webhook_service_rpcs,
};
use tonic::Code;

use crate::AppState;
use crate::authn::bearer;
use crate::ratelimit::Bucket;

/// Messages above this are refused, as REST bodies above [`crate::BODY_LIMIT`].
pub const MESSAGE_LIMIT: usize = crate::BODY_LIMIT;

/// How often the health service's status follows the layers' readiness.
pub const READINESS_INTERVAL: Duration = Duration::from_secs(2);

/// The public port's caller policy: bearer tokens, peer addresses, rate limits, cache upkeep.
#[derive(Clone)]
pub struct BearerPrincipal {
    state: AppState,
}

impl BearerPrincipal {
    pub fn new(state: AppState) -> Self {
        Self { state }
    }

    /// The client's address (see [`AppState::client_ip`]); `None` without a TCP peer.
    pub fn client_ip(&self, call: &Call<'_>) -> Option<IpAddr> {
        let peer = call.remote_addr?.ip();
        let headers: &axum::http::HeaderMap = call.metadata.as_ref();
        Some(
            self.state
                .client_ip(peer, headers.get_all("x-forwarded-for").iter()),
        )
    }
}

#[tonic::async_trait]
impl PrincipalSource for BearerPrincipal {
    async fn principal(&self, call: &Call<'_>) -> Result<Principal> {
        let header = call
            .metadata
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let token = bearer(header)?;
        self.state.authenticate(token).await
    }

    fn context(&self, call: &Call<'_>) -> RequestContext {
        RequestContext::new(
            Some(request_id_or_new(call.metadata)),
            self.client_ip(call).map(|ip| ip.to_string()),
            call.metadata
                .get("user-agent")
                .and_then(|v| v.to_str().ok()),
        )
    }

    async fn admit(&self, kind: Throttled, ctx: &RequestContext) -> Result<()> {
        let ip = ctx.ip.as_deref().and_then(|ip| ip.parse::<IpAddr>().ok());
        let rl = &self.state.rate_limit;
        let checked = match (kind, ip) {
            (Throttled::PasswordChange(user), ip) => rl.admit_password_change(user, ip).await,
            (_, None) => Ok(()),
            (Throttled::Register, Some(ip)) => rl.admit(Bucket::Register, ip).await,
            (Throttled::Login, Some(ip)) => rl.admit(Bucket::Login, ip).await,
            (Throttled::Refresh, Some(ip)) => rl.admit(Bucket::Refresh, ip).await,
            (Throttled::Recovery, Some(ip)) => rl.admit(Bucket::Recovery, ip).await,
        };
        checked.map_err(|retry_after| Error::RateLimited { retry_after })
    }

    fn completed(&self, rpc: &'static str, code: Code, elapsed: Duration) {
        let labels = [("rpc", rpc.to_owned()), ("code", format!("{code:?}"))];
        ::metrics::counter!("grpc_requests_total", &labels).increment(1);
        ::metrics::histogram!("grpc_request_duration_seconds", &labels[..1])
            .record(elapsed.as_secs_f64());
    }
}

/// The public gRPC services over `state`'s ports, plus health and reflection, and the reporter
/// of the health service (see [`serve`], which keeps it in step with readiness).
pub fn router_with_health(state: AppState) -> (GrpcRouter, HealthReporter) {
    let _ = crate::metrics::handle();
    let source = BearerPrincipal::new(state.clone());
    let auth = auth_service_rpcs::server(AuthGrpc::new(state.auth.clone(), source.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT);
    let users = user_service_rpcs::server(UserGrpc::new(state.users.clone(), source.clone()))
        .max_decoding_message_size(MESSAGE_LIMIT);
    let clients = oidc_client_service_rpcs::server(OidcClientGrpc::new(
        state.oidc_clients.clone(),
        source.clone(),
    ))
    .max_decoding_message_size(MESSAGE_LIMIT);
    let webhooks = webhook_service_rpcs::server(WebhookGrpc::new(state.webhooks.clone(), source))
        .max_decoding_message_size(MESSAGE_LIMIT);
    let cfg = &state.config;
    let limits = ServerLimits {
        max_concurrent_streams: cfg.max_concurrent_streams,
        rpc_timeout: cfg.request_timeout,
        keepalive_interval: cfg.http2_keepalive_interval,
        keepalive_timeout: crate::HTTP2_KEEPALIVE_TIMEOUT,
    };
    GrpcRouter::new()
        .with_limits(limits)
        .add_raw(auth)
        .add_raw(users)
        .add_raw(clients)
        .add_raw(webhooks)
        .with_health_and_reflection()
}

/// The public gRPC services (not behind the internal credential), health and reflection.
pub fn router(state: AppState) -> GrpcRouter {
    router_with_health(state).0
}

/// Serve the public gRPC API on `listener` until `shutdown` resolves (in-flight calls finish).
/// The health service reports NOT_SERVING while the layers below are not ready.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> std::result::Result<(), tonic::transport::Error> {
    let (router, health) = router_with_health(state.clone());
    let readiness = tokio::spawn(rpc::service::track_readiness(
        health,
        Some(state.auth.clone()),
        Some(state.users.clone()),
        READINESS_INTERVAL,
    ));
    let served = router.serve(listener, shutdown).await;
    readiness.abort();
    served
}
