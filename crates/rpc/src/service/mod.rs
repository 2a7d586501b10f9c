//! The service layer over gRPC: servers that expose the [`domain::AuthService`] /
//! [`domain::UserService`] ports as `arcana.v1.AuthService` / `arcana.v1.UserService` (plus the
//! internal `SessionCheckService`), and client adapters that implement the same ports by calling
//! such a server. Callers never know whether they got the in-process `service::Auth` or an
//! [`AuthClient`].
//!
//! # Who is calling
//! The servers are generic over a [`PrincipalSource`], the policy of the port they are served on:
//! - on the internal port (:50051) [`VerifiedPrincipal`] verifies the caller's access token the
//!   gateway forwards (signature, claims, and the session's liveness, asked of this process's
//!   own service layer) and takes the request facts (`x-arcana-client-ip`, user agent) as
//!   forwarded. It is only ever served behind the internal credential ([`internal_router`]);
//! - on the public port of the gateway (:9090) the gateway's own source verifies the bearer token
//!   and rate-limits the unauthenticated calls and password changes.
//!
//! Every handler runs with the request id in scope ([`crate::context::with_request_id`]) inside a
//! tracing span carrying it, echoes it in `x-request-id`, and maps errors with
//! [`crate::status::to_status`] — the one mapping — so a client adapter rebuilds the exact domain
//! error and the REST answers are identical in every deployment mode.
mod auth;
mod client;
mod oidc;
mod principal;
mod provider;
mod users;
mod webhooks;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::credential::InternalCredential;
use crate::server::GrpcRouter;
use crate::{internal, v1};
use domain::{
    AccessToken, AuthService, Caller, OidcClientService, OidcProvider, Principal, RequestContext,
    Result, UserId, UserService, WebhookService,
};
use tonic::metadata::MetadataMap;
use tonic::{Code, Request, Response, Status};

pub use auth::{AuthGrpc, SessionCheckGrpc};
pub use client::{AuthClient, OidcClientClient, UserClient, WebhookClient};
pub use oidc::OidcClientGrpc;
pub use principal::{
    CLIENT_IP, USER_AGENT, VerifiedPrincipal, VerifyToken, bearer_token, forward, parse_bearer,
    request_id_or_new,
};
pub use provider::{OidcProviderClient, OidcProviderGrpc};
pub use tonic_health::server::HealthReporter;
pub use users::UserGrpc;
pub use webhooks::WebhookGrpc;

/// What a handler knows about an incoming call before reading its message.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub metadata: &'a MetadataMap,
    /// The TCP peer (absent on transports without one).
    pub remote_addr: Option<SocketAddr>,
}

impl<'a> Call<'a> {
    pub fn of<T>(req: &'a Request<T>) -> Self {
        Self {
            metadata: req.metadata(),
            remote_addr: req.remote_addr(),
        }
    }
}

/// The calls an edge may rate-limit: the unauthenticated ones, and password changes (two
/// password hashes each) by the calling user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Throttled {
    Register,
    Login,
    Refresh,
    PasswordChange(UserId),
    /// Forgot password, reset password, verify email: the per-IP budget of the recovery routes.
    Recovery,
}

/// The policy of the port a server is served on: who the caller is, where the call comes from,
/// and what happens around calls.
#[tonic::async_trait]
pub trait PrincipalSource: Send + Sync + 'static {
    /// The authenticated caller, or `Error::Unauthorized` (or `TokenExpired`).
    async fn principal(&self, call: &Call<'_>) -> Result<Principal>;

    /// The facts the audit log and sessions record (request id, client ip, user agent).
    fn context(&self, call: &Call<'_>) -> RequestContext;

    /// Asked before Register, Login, Refresh and ChangePassword; an error (e.g.
    /// `RateLimited`) refuses the call.
    async fn admit(&self, _kind: Throttled, _ctx: &RequestContext) -> Result<()> {
        Ok(())
    }

    /// Told when a call finished (metrics).
    fn completed(&self, _rpc: &'static str, _code: Code, _elapsed: Duration) {}
}

/// An unauthenticated call: context, admission, then `f(ctx, message)`.
pub(crate) async fn public<P, T, R, F, Fut>(
    source: &P,
    rpc: &'static str,
    kind: Throttled,
    req: Request<T>,
    f: F,
) -> std::result::Result<Response<R>, Status>
where
    P: PrincipalSource,
    F: FnOnce(RequestContext, T) -> Fut + Send,
    T: Send,
    Fut: Future<Output = Result<R>> + Send,
    R: Send,
{
    let ctx = source.context(&Call::of(&req));
    let request_id = ctx.request_id.clone();
    let parent = crate::trace::Parent::of(req.metadata().as_ref());
    let body = async move {
        source.admit(kind, &ctx).await?;
        f(ctx, req.into_inner()).await
    };
    run(source, rpc, request_id, parent, body).await
}

/// A bearer call: context, the caller's principal, then `f(caller, message)`.
pub(crate) async fn bearer<P, T, R, F, Fut>(
    source: &P,
    rpc: &'static str,
    req: Request<T>,
    f: F,
) -> std::result::Result<Response<R>, Status>
where
    P: PrincipalSource,
    F: FnOnce(Caller, T) -> Fut + Send,
    T: Send,
    Fut: Future<Output = Result<R>> + Send,
    R: Send,
{
    let ctx = source.context(&Call::of(&req));
    let request_id = ctx.request_id.clone();
    let parent = crate::trace::Parent::of(req.metadata().as_ref());
    let body = async move {
        let call = Call::of(&req);
        let who = source.principal(&call).await?;
        // What a token's scopes allow, per the one table (a session passes).
        domain::admit_rpc(&who, rpc)?;
        // What proved who, for a hop to a service layer in another process.
        let token = bearer_token(call.metadata).ok().map(AccessToken::new);
        f(Caller { who, ctx, token }, req.into_inner()).await
    };
    run(source, rpc, request_id, parent, body).await
}

/// Answer a call (see [`crate::server::answer`]) and tell the source it finished.
pub(crate) async fn run<P, R>(
    source: &P,
    rpc: &'static str,
    request_id: Option<String>,
    parent: crate::trace::Parent,
    body: impl Future<Output = Result<R>> + Send,
) -> std::result::Result<Response<R>, Status>
where
    P: PrincipalSource,
    R: Send,
{
    let started = Instant::now();
    let answer = crate::server::answer(rpc, request_id, parent, body).await;
    let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
    source.completed(rpc, code, started.elapsed());
    answer
}

/// The ports of the auth context a service layer serves: the auth port, the OpenID Connect
/// clients and the provider.
#[derive(Clone)]
pub struct AuthContext {
    pub auth: Arc<dyn AuthService>,
    pub clients: Arc<dyn OidcClientService>,
    pub provider: Arc<dyn OidcProvider>,
}

/// The ports of the user context a service layer serves: the user port and the webhooks.
#[derive(Clone)]
pub struct UserContext {
    pub users: Arc<dyn UserService>,
    pub webhooks: Arc<dyn WebhookService>,
}

/// The internal port of a service-layer binary: the services of the contexts it holds (`auth`
/// with the OpenID Connect clients, and/or `users`), all behind `credential`, their callers checked by `callers`, plus health and
/// reflection. Drive the reporter with [`track_readiness`].
pub fn internal_router(
    auth: Option<AuthContext>,
    users: Option<UserContext>,
    callers: VerifiedPrincipal,
    credential: InternalCredential,
) -> (GrpcRouter, HealthReporter) {
    let mut router = GrpcRouter::new();
    if let Some(ctx) = auth {
        let rpc = v1::auth_service_rpcs::server(AuthGrpc::new(ctx.auth.clone(), callers.clone()));
        let check = internal::session_check_service_rpcs::server(SessionCheckGrpc::new(ctx.auth));
        let clients =
            v1::oidc_client_service_rpcs::server(OidcClientGrpc::new(ctx.clients, callers.clone()));
        let provider = internal::oidc_provider_service_rpcs::server(OidcProviderGrpc::new(
            ctx.provider,
            callers.clone(),
        ));
        router = router
            .add_raw(rpc.internal(&credential))
            .add_raw(check.internal(&credential))
            .add_raw(clients.internal(&credential))
            .add_raw(provider.internal(&credential));
    }
    if let Some(ctx) = users {
        let rpc = v1::user_service_rpcs::server(UserGrpc::new(ctx.users, callers.clone()));
        let webhooks = v1::webhook_service_rpcs::server(WebhookGrpc::new(ctx.webhooks, callers));
        router = router
            .add_raw(rpc.internal(&credential))
            .add_raw(webhooks.internal(&credential));
    }
    router.with_health_and_reflection()
}

/// Keep a port's `grpc.health.v1` answers in step with readiness: the overall status (`""`) and
/// `arcana.v1.AuthService` / `arcana.v1.UserService` (for the ports given) are SERVING while every given port's `ready()` answers, NOT_SERVING
/// otherwise. Checks every `every`; runs until dropped (spawn it next to the server).
pub async fn track_readiness(
    reporter: HealthReporter,
    auth: Option<Arc<dyn AuthService>>,
    users: Option<Arc<dyn UserService>>,
    every: Duration,
) {
    let mut names = Vec::new();
    if auth.is_some() {
        names.push(crate::v1::auth_service_server::SERVICE_NAME);
    }
    if users.is_some() {
        names.push(crate::v1::user_service_server::SERVICE_NAME);
    }
    let check = || async {
        let a = async {
            match &auth {
                Some(a) => a.ready().await,
                None => Ok(()),
            }
        };
        let u = async {
            match &users {
                Some(u) => u.ready().await,
                None => Ok(()),
            }
        };
        let (a, u) = tokio::join!(a, u);
        a.and(u)
    };
    crate::server::track_health(reporter, names, every, check).await
}

#[cfg(test)]
mod tests {
    use domain::{Need, need_of_rpc};
    use prost::Message;

    /// Every rpc of the public contract has a row in the scope table, and every row an rpc.
    #[test]
    fn every_public_rpc_has_a_row_in_the_scope_table() {
        let all = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let mut rpcs = Vec::new();
        for f in all.file.iter().filter(|f| f.package() == "arcana.v1") {
            for s in &f.service {
                for m in &s.method {
                    let rpc = format!("{}/{}", s.name(), m.name());
                    assert!(need_of_rpc(&rpc).is_some(), "{rpc} has no row");
                    rpcs.push(rpc);
                }
            }
        }
        for op in domain::OPERATIONS {
            assert!(rpcs.iter().any(|r| r == op.rpc), "{} is no rpc", op.rpc);
        }
    }

    /// The proto comments say what the table says: the "Access tokens:" line above each rpc.
    #[test]
    fn the_proto_comments_document_each_rpcs_scope() {
        let protos = [
            (
                "AuthService",
                include_str!("../../../../proto/arcana/v1/auth.proto"),
            ),
            (
                "UserService",
                include_str!("../../../../proto/arcana/v1/users.proto"),
            ),
            (
                "OidcClientService",
                include_str!("../../../../proto/arcana/v1/oidc.proto"),
            ),
        ];
        for (service, text) in protos {
            let lines: Vec<&str> = text.lines().map(str::trim).collect();
            for (i, line) in lines.iter().enumerate() {
                let Some(rest) = line.strip_prefix("rpc ") else {
                    continue;
                };
                let method = rest.split('(').next().unwrap();
                let rpc = format!("{service}/{method}");
                let said = match need_of_rpc(&rpc).unwrap() {
                    Need::Public => "none needed".to_owned(),
                    Need::Session => "refused (a signed-in session only)".to_owned(),
                    Need::Scope(s) => format!("scope {}", s.as_str()),
                };
                assert_eq!(
                    lines[i - 1],
                    format!("// Access tokens: {said}."),
                    "the comment above {rpc}"
                );
            }
        }
    }
}
