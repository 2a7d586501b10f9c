//! Server adapter: `RepositoryService` over the repository ports.
use std::fmt;
use std::future::Future;
use std::sync::Arc;

use crate::context;
use crate::convert::internal as conv;
use crate::credential::InternalCredential;
use crate::internal as pb;
use crate::internal::repository_service_server::{RepositoryService, RepositoryServiceServer};
use crate::status::to_status;
use domain::{
    AuditEvent, AuditRepository, NewSession, NewUser, PasswordChange, Result, SessionRepository,
    UserQuery, UserRepository,
};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::{Request, Response, Status};
use tracing::Instrument;

/// The three repository ports, served over gRPC. Generic over the implementations: the
/// repository binary passes its `Database`, tests may pass anything that keeps the contract.
#[derive(Clone)]
pub struct RepositoryGrpc {
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    audit: Arc<dyn AuditRepository>,
}

impl fmt::Debug for RepositoryGrpc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RepositoryGrpc").finish_non_exhaustive()
    }
}

impl RepositoryGrpc {
    pub fn new(
        users: Arc<dyn UserRepository>,
        sessions: Arc<dyn SessionRepository>,
        audit: Arc<dyn AuditRepository>,
    ) -> Self {
        Self {
            users,
            sessions,
            audit,
        }
    }
}

/// `RepositoryService` over the given ports, refusing every call that does not carry
/// `credential` (`UNAUTHENTICATED`, before any handler runs). Add it to a
/// `crate::server::GrpcRouter` next to health and reflection.
pub fn server(
    users: Arc<dyn UserRepository>,
    sessions: Arc<dyn SessionRepository>,
    audit: Arc<dyn AuditRepository>,
    credential: InternalCredential,
) -> InterceptedService<RepositoryServiceServer<RepositoryGrpc>, impl Interceptor + Clone> {
    RepositoryServiceServer::with_interceptor(
        RepositoryGrpc::new(users, sessions, audit),
        credential.interceptor(),
    )
}

/// Run one call: the caller's request id in scope and on a span, the message decoded by `f`,
/// the domain error mapped to a `Status` (internal causes are logged, never sent).
async fn handle<Req, Resp, Fut>(
    rpc: &'static str,
    req: Request<Req>,
    f: impl FnOnce(Req) -> Fut,
) -> std::result::Result<Response<Resp>, Status>
where
    Fut: Future<Output = Result<Resp>>,
{
    let request_id = context::from_metadata(req.metadata());
    let span = tracing::info_span!(
        "repository_rpc",
        rpc,
        request_id = request_id.as_deref().unwrap_or("-")
    );
    let msg = req.into_inner();
    let call = async move {
        let result = f(msg).await;
        if let Err(e) = &result {
            tracing::debug!(code = e.code(), "call failed");
        }
        result.map(Response::new).map_err(to_status)
    };
    context::with_request_id(request_id, call.instrument(span)).await
}

type Answer<T> = std::result::Result<Response<T>, Status>;

#[tonic::async_trait]
impl RepositoryService for RepositoryGrpc {
    async fn ping(&self, req: Request<pb::PingRequest>) -> Answer<pb::PingResponse> {
        handle("ping", req, |_| async move {
            self.users.ping().await?;
            Ok(pb::PingResponse {})
        })
        .await
    }

    async fn create_user(&self, req: Request<pb::NewUser>) -> Answer<pb::UserRecord> {
        handle("create_user", req, |m| async move {
            let user = self.users.create(NewUser::try_from(m)?).await?;
            Ok(user.into())
        })
        .await
    }

    async fn find_user_by_id(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalUser> {
        handle("find_user_by_id", req, |m| async move {
            let id = conv::id_from_wire(&m)?;
            Ok(self.users.find_by_id(id).await?.into())
        })
        .await
    }

    async fn find_credentials(
        &self,
        req: Request<pb::FindCredentialsRequest>,
    ) -> Answer<pb::OptionalCredentials> {
        handle("find_credentials", req, |m| async move {
            Ok(self.users.find_credentials(&m.login).await?.into())
        })
        .await
    }

    async fn find_credentials_by_id(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalCredentials> {
        handle("find_credentials_by_id", req, |m| async move {
            let id = conv::id_from_wire(&m)?;
            Ok(self.users.find_credentials_by_id(id).await?.into())
        })
        .await
    }

    async fn list_users(&self, req: Request<pb::UserQuery>) -> Answer<pb::UserPage> {
        handle("list_users", req, |m| async move {
            let query = UserQuery::try_from(m)?;
            Ok(self.users.list(&query).await?.into())
        })
        .await
    }

    async fn update_user(&self, req: Request<pb::UpdateUserRequest>) -> Answer<pb::OptionalUser> {
        handle("update_user", req, |m| async move {
            let (id, update, now) = conv::update_from_wire(m)?;
            Ok(self.users.update(id, update, now).await?.into())
        })
        .await
    }

    async fn soft_delete_user(&self, req: Request<pb::AtRequest>) -> Answer<pb::BoolResponse> {
        handle("soft_delete_user", req, |m| async move {
            let (id, now) = conv::at_from_wire(m)?;
            let value = self.users.soft_delete(id, now).await?;
            Ok(pb::BoolResponse { value })
        })
        .await
    }

    async fn reserve_login_attempt(
        &self,
        req: Request<pb::ReserveLoginAttemptRequest>,
    ) -> Answer<pb::LoginAttemptResponse> {
        handle("reserve_login_attempt", req, |m| async move {
            let (id, now, policy) = conv::login_attempt_from_wire(m)?;
            Ok(self
                .users
                .reserve_login_attempt(id, now, policy)
                .await?
                .into())
        })
        .await
    }

    async fn record_login_success(
        &self,
        req: Request<pb::RecordLoginSuccessRequest>,
    ) -> Answer<pb::Empty> {
        handle("record_login_success", req, |m| async move {
            let (id, now, attempt, rehash) = conv::login_success_from_wire(m)?;
            self.users
                .record_login_success(id, now, attempt, rehash)
                .await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn change_password(
        &self,
        req: Request<pb::ChangePasswordRequest>,
    ) -> Answer<pb::ChangePasswordResponse> {
        handle("change_password", req, |m| async move {
            let change = PasswordChange::try_from(m)?;
            Ok(self.users.change_password(change).await?.into())
        })
        .await
    }

    async fn count_active_admins(&self, req: Request<pb::Empty>) -> Answer<pb::CountResponse> {
        handle("count_active_admins", req, |_| async move {
            let count = self.users.count_active_admins().await?;
            Ok(pb::CountResponse { count })
        })
        .await
    }

    async fn create_session(&self, req: Request<pb::NewSession>) -> Answer<pb::SessionRecord> {
        handle("create_session", req, |m| async move {
            let session = self.sessions.create(NewSession::try_from(m)?).await?;
            Ok(session.into())
        })
        .await
    }

    async fn find_session(&self, req: Request<pb::IdRequest>) -> Answer<pb::OptionalSession> {
        handle("find_session", req, |m| async move {
            let id = conv::id_from_wire(&m)?;
            Ok(self.sessions.find(id).await?.into())
        })
        .await
    }

    async fn find_session_with_owner(
        &self,
        req: Request<pb::IdRequest>,
    ) -> Answer<pb::OptionalSessionOwner> {
        handle("find_session_with_owner", req, |m| async move {
            let id = conv::id_from_wire(&m)?;
            Ok(self.sessions.find_with_owner(id).await?.into())
        })
        .await
    }

    async fn rotate_session(
        &self,
        req: Request<pb::RotateSessionRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("rotate_session", req, |m| async move {
            let (id, expected, new, now) = conv::rotate_from_wire(m)?;
            let value = self.sessions.rotate(id, &expected, &new, now).await?;
            Ok(pb::BoolResponse { value })
        })
        .await
    }

    async fn revoke_session(
        &self,
        req: Request<pb::RevokeSessionRequest>,
    ) -> Answer<pb::BoolResponse> {
        handle("revoke_session", req, |m| async move {
            let (id, reason, now) = conv::revoke_from_wire(m)?;
            let value = self.sessions.revoke(id, reason, now).await?;
            Ok(pb::BoolResponse { value })
        })
        .await
    }

    async fn revoke_all_sessions(
        &self,
        req: Request<pb::RevokeAllSessionsRequest>,
    ) -> Answer<pb::CountResponse> {
        handle("revoke_all_sessions", req, |m| async move {
            let (user_id, reason, now, keep) = conv::revoke_all_from_wire(m)?;
            let count = self
                .sessions
                .revoke_all_for_user(user_id, reason, now, keep)
                .await?;
            Ok(pb::CountResponse { count })
        })
        .await
    }

    async fn list_live_sessions(&self, req: Request<pb::AtRequest>) -> Answer<pb::SessionList> {
        handle("list_live_sessions", req, |m| async move {
            let (user_id, now) = conv::at_from_wire(m)?;
            Ok(self.sessions.list_live_for_user(user_id, now).await?.into())
        })
        .await
    }

    async fn record_audit(&self, req: Request<pb::AuditEvent>) -> Answer<pb::Empty> {
        handle("record_audit", req, |m| async move {
            self.audit.record(AuditEvent::try_from(m)?).await?;
            Ok(pb::Empty {})
        })
        .await
    }

    async fn list_audit(&self, req: Request<pb::ListAuditRequest>) -> Answer<pb::AuditList> {
        handle("list_audit", req, |m| async move {
            let (subject_id, limit) = conv::list_audit_from_wire(&m)?;
            Ok(self.audit.list_for_subject(subject_id, limit).await?.into())
        })
        .await
    }
}
