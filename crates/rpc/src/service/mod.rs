//! The service layer over gRPC: servers that expose the [`domain::AuthService`] /
//! [`domain::UserService`] ports as `arcana.v1.AuthService` / `arcana.v1.UserService` (plus the
//! internal `SessionCheckService`), and client adapters that implement the same ports by calling
//! such a server. Callers never know whether they got [`crate::Auth`] or an [`AuthClient`].
//!
//! # Who is calling
//! The servers are generic over a [`PrincipalSource`], the policy of the port they are served on:
//! - on the internal port (:50051) [`ForwardedPrincipal`] believes the caller identity and request
//!   facts the gateway forwards in `x-arcana-*` metadata. It is only ever served behind the
//!   internal credential ([`Internal`], built by [`auth_services`] / [`user_services`]);
//! - on the public port of the gateway (:9090) the gateway's own source verifies the bearer token,
//!   rate-limits the unauthenticated calls and drops its session cache after revocations.
//!
//! Every handler runs with the request id in scope ([`crate::context::with_request_id`]) inside a
//! tracing span carrying it, echoes it in `x-request-id`, and maps errors with
//! [`crate::status::to_status`] — the one mapping — so a client adapter rebuilds the exact domain
//! error and the REST answers are identical in every deployment mode.
mod auth;
mod client;
mod principal;
mod users;

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::credential::InternalCredential;
use crate::internal::session_check_service_server::SessionCheckServiceServer;
use crate::server::GrpcRouter;
use crate::v1::auth_service_server::AuthServiceServer;
use crate::v1::user_service_server::UserServiceServer;
use domain::{AuthService, Principal, RequestContext, Result, SessionId, UserId, UserService};
use tonic::body::Body;
use tonic::codegen::{InterceptedService, Service, http};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::server::NamedService;
use tonic::service::Interceptor;
use tonic::{Code, Request, Response, Status};
use tracing::Instrument;

pub use auth::{AuthGrpc, SessionCheckGrpc};
pub use client::{AuthClient, UserClient};
pub use principal::{
    CLIENT_IP, ForwardedPrincipal, ROLE, SESSION_ID, USER_AGENT, USER_ID, forward,
    request_id_or_new,
};
pub use tonic_health::server::HealthReporter;
pub use users::UserGrpc;

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
}

/// What a successful call revoked, for caches of session liveness in front of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// One session (logout, session delete).
    Session(SessionId),
    /// Every (or every other) session of a user (logout-all, password, role, status, deletion).
    User(UserId),
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
    fn admit(&self, _kind: Throttled, _ctx: &RequestContext) -> Result<()> {
        Ok(())
    }

    /// Told after a call that revoked sessions succeeded.
    fn revoked(&self, _what: Revoked) {}

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
    F: FnOnce(RequestContext, T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    let ctx = source.context(&Call::of(&req));
    let request_id = ctx.request_id.clone();
    let body = async move {
        source.admit(kind, &ctx)?;
        f(ctx, req.into_inner()).await
    };
    run(source, rpc, request_id, body).await
}

/// A bearer call: context, the caller's principal, then `f(ctx, principal, message)`.
pub(crate) async fn bearer<P, T, R, F, Fut>(
    source: &P,
    rpc: &'static str,
    req: Request<T>,
    f: F,
) -> std::result::Result<Response<R>, Status>
where
    P: PrincipalSource,
    F: FnOnce(RequestContext, Principal, T) -> Fut,
    Fut: Future<Output = Result<R>>,
{
    let ctx = source.context(&Call::of(&req));
    let request_id = ctx.request_id.clone();
    let body = async move {
        let who = source.principal(&Call::of(&req)).await?;
        f(ctx, who, req.into_inner()).await
    };
    run(source, rpc, request_id, body).await
}

/// Run `body` with the request id in scope and in a span; map the outcome to the wire.
pub(crate) async fn run<P, R>(
    source: &P,
    rpc: &'static str,
    request_id: Option<String>,
    body: impl Future<Output = Result<R>>,
) -> std::result::Result<Response<R>, Status>
where
    P: PrincipalSource,
{
    let span = tracing::info_span!(
        "grpc",
        rpc,
        request_id = request_id.as_deref().unwrap_or_default()
    );
    let started = Instant::now();
    let outcome =
        crate::context::with_request_id(request_id.clone(), body.instrument(span.clone())).await;
    let echo = request_id.and_then(|id| MetadataValue::try_from(id).ok());
    let answer = match outcome {
        Ok(r) => {
            let mut resp = Response::new(r);
            if let Some(v) = echo {
                resp.metadata_mut().insert(crate::context::REQUEST_ID, v);
            }
            Ok(resp)
        }
        Err(e) => {
            let mut status = span.in_scope(|| crate::status::to_status(e));
            if let Some(v) = echo {
                status.metadata_mut().insert(crate::context::REQUEST_ID, v);
            }
            Err(status)
        }
    };
    let code = answer.as_ref().map_or_else(Status::code, |_| Code::Ok);
    let elapsed = started.elapsed();
    span.in_scope(|| {
        tracing::debug!(code = ?code, elapsed_ms = elapsed.as_millis() as u64, "rpc finished");
    });
    source.completed(rpc, code, elapsed);
    answer
}

type CheckFn = dyn Fn(Request<()>) -> std::result::Result<Request<()>, Status> + Send + Sync;

/// The interceptor of [`InternalCredential::interceptor`] behind a nameable type.
#[derive(Clone)]
pub struct CredentialCheck(Arc<CheckFn>);

impl CredentialCheck {
    pub fn new(credential: &InternalCredential) -> Self {
        let check = credential.interceptor();
        Self(Arc::new(move |req| check.clone().call(req)))
    }
}

impl Interceptor for CredentialCheck {
    fn call(&mut self, req: Request<()>) -> std::result::Result<Request<()>, Status> {
        (self.0)(req)
    }
}

/// A generated server behind the internal credential, ready for [`GrpcRouter::add`]: calls
/// without the credential are refused with UNAUTHENTICATED before any handler runs.
#[derive(Clone)]
pub struct Internal<S> {
    inner: InterceptedService<S, CredentialCheck>,
}

impl<S> Internal<S> {
    pub fn new(svc: S, credential: &InternalCredential) -> Self {
        Self {
            inner: InterceptedService::new(svc, CredentialCheck::new(credential)),
        }
    }
}

impl<S: NamedService> NamedService for Internal<S> {
    const NAME: &'static str = S::NAME;
}

type BoxedResponse =
    Pin<Box<dyn Future<Output = std::result::Result<http::Response<Body>, Infallible>> + Send>>;

impl<S> Service<http::Request<Body>> for Internal<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxedResponse;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<std::result::Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let fut = self.inner.call(req);
        Box::pin(async move { fut.await.map(|resp| resp.map(Body::new)) })
    }
}

/// `arcana.v1.AuthService` and `arcana.internal.v1.SessionCheckService` over `auth`, trusting
/// the forwarded caller identity, both behind `credential`.
pub fn auth_services(
    auth: Arc<dyn AuthService>,
    credential: InternalCredential,
) -> (
    Internal<AuthServiceServer<AuthGrpc<ForwardedPrincipal>>>,
    Internal<SessionCheckServiceServer<SessionCheckGrpc>>,
) {
    (
        Internal::new(
            AuthServiceServer::new(AuthGrpc::new(auth.clone(), ForwardedPrincipal)),
            &credential,
        ),
        Internal::new(
            SessionCheckServiceServer::new(SessionCheckGrpc::new(auth)),
            &credential,
        ),
    )
}

/// `arcana.v1.UserService` over `users`, trusting the forwarded caller identity, behind
/// `credential`.
pub fn user_services(
    users: Arc<dyn UserService>,
    credential: InternalCredential,
) -> Internal<UserServiceServer<UserGrpc<ForwardedPrincipal>>> {
    Internal::new(
        UserServiceServer::new(UserGrpc::new(users, ForwardedPrincipal)),
        &credential,
    )
}

/// The internal port of a service-layer binary: the services of the contexts it holds (`auth`
/// and/or `users`), all behind `credential`, plus health and reflection. Drive the reporter
/// with [`track_readiness`].
pub fn internal_router(
    auth: Option<Arc<dyn AuthService>>,
    users: Option<Arc<dyn UserService>>,
    credential: InternalCredential,
) -> (GrpcRouter, HealthReporter) {
    let mut router = GrpcRouter::new();
    if let Some(auth) = auth {
        let (a, s) = auth_services(auth, credential.clone());
        router = router.add(a).add(s);
    }
    if let Some(users) = users {
        router = router.add(user_services(users, credential));
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
