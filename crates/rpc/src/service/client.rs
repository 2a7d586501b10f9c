//! Client adapters: [`AuthClient`] and [`UserClient`] implement the service ports by calling a
//! service layer over gRPC, so a gateway cannot tell them from the in-process `Auth`/`Users`.
//!
//! Each call carries the internal credential, the request id, the caller (`x-arcana-*`) and the
//! client's ip and user agent. Reads are retried on UNAVAILABLE ([`retry_read`]); writes never
//! are. Errors come back through [`to_error`], so every domain error (field names, retry-after)
//! survives the hop.
use std::future::Future;

use crate::client::{Upstream, retry_read, retry_unsent};
use crate::convert::v1 as conv;
use crate::internal::{self, session_check_service_client::SessionCheckServiceClient};
use crate::status::to_error;
use crate::v1::{
    self, auth_service_client::AuthServiceClient, user_service_client::UserServiceClient,
};
use async_trait::async_trait;
use domain::{
    AuthService, AuthSession, ChangePasswordInput, CreateUserInput, Error, LoginInput, Principal,
    RawUserQuery, RegisterInput, RequestContext, Result, SessionId, SessionInfo, User, UserId,
    UserPage, UserPatch, UserService,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

use super::forward;

/// An outgoing call: deadline, credential, request id (the context's, else the one in scope),
/// the caller and the client facts.
fn outgoing<T>(
    up: &Upstream,
    ctx: Option<&RequestContext>,
    who: Option<&Principal>,
    msg: T,
) -> Request<T> {
    let id = ctx
        .and_then(|c| c.request_id.clone())
        .or_else(crate::context::request_id);
    let mut req = up.request_with_id(msg, id);
    forward(req.metadata_mut(), ctx, who);
    req
}

/// An idempotent call, retried while the upstream is unavailable.
async fn read<C, M, R, F, Fut>(
    up: &Upstream,
    client: C,
    ctx: Option<&RequestContext>,
    who: Option<&Principal>,
    msg: M,
    call: F,
) -> Result<R>
where
    C: Clone,
    M: Clone,
    F: Fn(C, Request<M>) -> Fut,
    Fut: Future<Output = std::result::Result<Response<R>, Status>>,
{
    retry_read(|| call(client.clone(), outgoing(up, ctx, who, msg.clone())))
        .await
        .map(Response::into_inner)
        .map_err(to_error)
}

/// A call that changes state: sent once, unless it certainly never left (connection refused).
async fn write<R, F, Fut>(call: F) -> Result<R>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = std::result::Result<Response<R>, Status>>,
{
    retry_unsent(call)
        .await
        .map(Response::into_inner)
        .map_err(to_error)
}

/// An answer that does not decode is the upstream's fault, not the caller's: never a 400.
fn decoded<T>(r: Result<T>) -> Result<T> {
    r.map_err(|e| match e {
        Error::Validation(f) => Error::internal(format!("upstream sent a malformed answer: {f:?}")),
        other => other,
    })
}

/// `grpc.health.v1` Check of the whole upstream (service `""`): SERVING or `Unavailable`.
async fn health(up: &Upstream) -> Result<()> {
    let client = HealthClient::new(up.channel());
    let msg = HealthCheckRequest {
        service: String::new(),
    };
    let answer = read(up, client, None, None, msg, |mut c, r| async move {
        c.check(r).await
    })
    .await;
    match answer {
        Ok(r) if r.status == ServingStatus::Serving as i32 => Ok(()),
        Ok(r) => {
            tracing::warn!(status = r.status, "upstream is not serving");
            Err(Error::Unavailable)
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream health check failed");
            Err(Error::Unavailable)
        }
    }
}

/// [`AuthService`] over gRPC (`arcana.v1.AuthService` + `SessionCheckService` of `upstream`).
#[derive(Debug, Clone)]
pub struct AuthClient {
    upstream: Upstream,
}

impl AuthClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    fn rpc(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.upstream.channel())
    }

    fn req<T>(&self, ctx: &RequestContext, who: Option<&Principal>, msg: T) -> Request<T> {
        outgoing(&self.upstream, Some(ctx), who, msg)
    }
}

#[async_trait]
impl AuthService for AuthClient {
    async fn ready(&self) -> Result<()> {
        health(&self.upstream).await
    }

    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession> {
        let msg = v1::RegisterRequest::from(input);
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, None, msg.clone()));
            async move { c.register(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<AuthSession> {
        let msg = v1::LoginRequest::from(input);
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, None, msg.clone()));
            async move { c.login(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession> {
        let msg = v1::RefreshRequest {
            refresh_token: refresh_token.to_owned(),
        };
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, None, msg.clone()));
            async move { c.refresh(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn logout(&self, ctx: &RequestContext, who: &Principal) -> Result<()> {
        let msg = v1::LogoutRequest {};
        write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, Some(who), msg));
            async move { c.logout(r).await }
        })
        .await?;
        Ok(())
    }

    async fn logout_all(&self, ctx: &RequestContext, who: &Principal) -> Result<u64> {
        let msg = v1::LogoutAllRequest {};
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, Some(who), msg));
            async move { c.logout_all(r).await }
        })
        .await?;
        Ok(r.revoked_count)
    }

    async fn me(&self, ctx: &RequestContext, who: &Principal) -> Result<User> {
        let (up, msg) = (&self.upstream, v1::MeRequest {});
        let r = read(
            up,
            self.rpc(),
            Some(ctx),
            Some(who),
            msg,
            |mut c, r| async move { c.me(r).await },
        )
        .await?;
        decoded(r.try_into())
    }

    async fn list_sessions(
        &self,
        ctx: &RequestContext,
        who: &Principal,
    ) -> Result<Vec<SessionInfo>> {
        let (up, msg) = (&self.upstream, v1::ListSessionsRequest {});
        let r = read(
            up,
            self.rpc(),
            Some(ctx),
            Some(who),
            msg,
            |mut c, r| async move { c.list_sessions(r).await },
        )
        .await?;
        decoded(conv::from_sessions(r))
    }

    async fn revoke_session(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: SessionId,
    ) -> Result<()> {
        let msg = v1::RevokeSessionRequest { id: id.to_string() };
        write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, Some(who), msg.clone()));
            async move { c.revoke_session(r).await }
        })
        .await?;
        Ok(())
    }

    async fn session_live(&self, who: &Principal) -> Result<bool> {
        let up = &self.upstream;
        let client = SessionCheckServiceClient::new(up.channel());
        let msg = internal::SessionLiveRequest {
            user_id: who.user_id.to_string(),
            session_id: who.session_id.to_string(),
            role: who.role.as_str().to_owned(),
        };
        let r = read(up, client, None, None, msg, |mut c, r| async move {
            c.session_live(r).await
        })
        .await?;
        Ok(r.live)
    }
}

/// [`UserService`] over gRPC (`arcana.v1.UserService` of `upstream`).
#[derive(Debug, Clone)]
pub struct UserClient {
    upstream: Upstream,
}

impl UserClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }

    fn rpc(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.upstream.channel())
    }

    fn req<T>(&self, ctx: &RequestContext, who: &Principal, msg: T) -> Request<T> {
        outgoing(&self.upstream, Some(ctx), Some(who), msg)
    }
}

#[async_trait]
impl UserService for UserClient {
    async fn ready(&self) -> Result<()> {
        health(&self.upstream).await
    }

    async fn list_users(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        query: RawUserQuery,
    ) -> Result<UserPage> {
        let (up, msg) = (&self.upstream, v1::ListUsersRequest::from(query));
        let r = read(
            up,
            self.rpc(),
            Some(ctx),
            Some(who),
            msg,
            |mut c, r| async move { c.list_users(r).await },
        )
        .await?;
        decoded(r.try_into())
    }

    async fn create_user(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        input: CreateUserInput,
    ) -> Result<User> {
        let msg = v1::CreateUserRequest::from(input);
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.create_user(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn get_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<User> {
        let (up, msg) = (&self.upstream, v1::GetUserRequest { id: id.to_string() });
        let r = read(
            up,
            self.rpc(),
            Some(ctx),
            Some(who),
            msg,
            |mut c, r| async move { c.get_user(r).await },
        )
        .await?;
        decoded(r.try_into())
    }

    async fn update_user(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User> {
        let msg = conv::update_user_request(id, patch);
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.update_user(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn delete_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<()> {
        let msg = v1::DeleteUserRequest { id: id.to_string() };
        write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.delete_user(r).await }
        })
        .await?;
        Ok(())
    }

    async fn change_password(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        input: ChangePasswordInput,
    ) -> Result<()> {
        let msg = conv::change_password_request(id, input);
        write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.change_password(r).await }
        })
        .await?;
        Ok(())
    }

    async fn verify_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<User> {
        let msg = v1::VerifyUserRequest { id: id.to_string() };
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.verify_user(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn set_status(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        status: &str,
    ) -> Result<User> {
        let msg = v1::SetStatusRequest {
            id: id.to_string(),
            status: status.to_owned(),
        };
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.set_status(r).await }
        })
        .await?;
        decoded(r.try_into())
    }

    async fn set_role(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        role: &str,
    ) -> Result<User> {
        let msg = v1::SetRoleRequest {
            id: id.to_string(),
            role: role.to_owned(),
        };
        let r = write(|| {
            let (mut c, r) = (self.rpc(), self.req(ctx, who, msg.clone()));
            async move { c.set_role(r).await }
        })
        .await?;
        decoded(r.try_into())
    }
}
