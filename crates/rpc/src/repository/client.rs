//! Client adapter: the repository ports implemented by calling `RepositoryService`.
use std::future::Future;

use crate::client::{Upstream, retry_read, retry_unsent};
use crate::convert::internal::{self as conv, malformed_response};
use crate::internal as pb;
use crate::internal::repository_service_client::RepositoryServiceClient;
use crate::status::to_error;
use async_trait::async_trait;
use domain::{
    AuditEvent, AuditRepository, LockoutPolicy, LoginAttempt, NewSession, NewUser, PasswordChange,
    Rehash, Result, RevokeReason, Session, SessionId, SessionOwner, SessionRepository, Timestamp,
    User, UserCredentials, UserId, UserPage, UserQuery, UserRepository, UserUpdate,
};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

type Client = RepositoryServiceClient<Channel>;

/// The repository ports over gRPC. Every call carries the internal credential, the request id in
/// scope and a deadline (all from the [`Upstream`]); idempotent reads are retried while the
/// layer below is unavailable, writes never are. Errors come back as the domain error the server
/// answered (`crate::status::to_error`). Cheap to clone.
#[derive(Clone, Debug)]
pub struct RepositoryClient {
    upstream: Upstream,
    client: Client,
}

impl RepositoryClient {
    pub fn new(upstream: Upstream) -> Self {
        let client = RepositoryServiceClient::new(upstream.channel());
        Self { upstream, client }
    }

    /// An idempotent read: retried on `UNAVAILABLE` from the transport.
    async fn read<Req, Resp, F, Fut>(&self, msg: Req, call: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Client, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        retry_read(|| call(self.client.clone(), self.upstream.request(msg.clone())))
            .await
            .map(Response::into_inner)
            .map_err(to_error)
    }

    /// A write: sent once, unless it certainly never reached the server (connection refused,
    /// e.g. one endpoint of a balanced list is down). Whether a call that timed out was applied is
    /// unknown, so that is never retried here.
    async fn write<Req, Resp, F, Fut>(&self, msg: Req, call: F) -> Result<Resp>
    where
        Req: Clone,
        F: Fn(Client, Request<Req>) -> Fut,
        Fut: Future<Output = std::result::Result<Response<Resp>, Status>>,
    {
        retry_unsent(|| call(self.client.clone(), self.upstream.request(msg.clone())))
            .await
            .map(Response::into_inner)
            .map_err(to_error)
    }
}

/// Decode a response message; bad data from the server is an internal error, not the caller's.
fn decode<W, T>(wire: W) -> Result<T>
where
    T: TryFrom<W, Error = domain::Error>,
{
    T::try_from(wire).map_err(malformed_response)
}

#[async_trait]
impl UserRepository for RepositoryClient {
    async fn ping(&self) -> Result<()> {
        self.read(
            pb::PingRequest {},
            |mut c, r| async move { c.ping(r).await },
        )
        .await?;
        Ok(())
    }

    async fn create(&self, user: NewUser) -> Result<User> {
        let r = self
            .write(pb::NewUser::from(user), |mut c, r| async move {
                c.create_user(r).await
            })
            .await?;
        decode(r)
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        let r = self
            .read(conv::id_request(id), |mut c, r| async move {
                c.find_user_by_id(r).await
            })
            .await?;
        decode(r)
    }

    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>> {
        let msg = pb::FindCredentialsRequest {
            login: login.to_owned(),
        };
        let r = self
            .read(msg, |mut c, r| async move { c.find_credentials(r).await })
            .await?;
        decode(r)
    }

    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>> {
        let r = self
            .read(conv::id_request(id), |mut c, r| async move {
                c.find_credentials_by_id(r).await
            })
            .await?;
        decode(r)
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage> {
        let r = self
            .read(pb::UserQuery::from(query), |mut c, r| async move {
                c.list_users(r).await
            })
            .await?;
        decode(r)
    }

    async fn update(&self, id: UserId, update: UserUpdate, now: Timestamp) -> Result<Option<User>> {
        let msg = conv::update_request(id, update, now);
        let r = self
            .write(msg, |mut c, r| async move { c.update_user(r).await })
            .await?;
        decode(r)
    }

    async fn soft_delete(&self, id: UserId, now: Timestamp) -> Result<bool> {
        let r = self
            .write(conv::at_request(id, now), |mut c, r| async move {
                c.soft_delete_user(r).await
            })
            .await?;
        Ok(r.value)
    }

    async fn reserve_login_attempt(
        &self,
        id: UserId,
        now: Timestamp,
        policy: LockoutPolicy,
    ) -> Result<LoginAttempt> {
        let msg = conv::login_attempt_request(id, now, policy);
        let r = self
            .write(
                msg,
                |mut c, r| async move { c.reserve_login_attempt(r).await },
            )
            .await?;
        decode(r)
    }

    async fn record_login_success(
        &self,
        id: UserId,
        now: Timestamp,
        attempt: u32,
        rehash: Option<Rehash>,
    ) -> Result<()> {
        let msg = conv::login_success_request(id, now, attempt, rehash);
        self.write(
            msg,
            |mut c, r| async move { c.record_login_success(r).await },
        )
        .await?;
        Ok(())
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let r = self
            .write(
                pb::ChangePasswordRequest::from(change),
                |mut c, r| async move { c.change_password(r).await },
            )
            .await?;
        Ok(r.into())
    }

    async fn count_active_admins(&self) -> Result<u64> {
        let r = self
            .read(pb::Empty {}, |mut c, r| async move {
                c.count_active_admins(r).await
            })
            .await?;
        Ok(r.count)
    }
}

#[async_trait]
impl SessionRepository for RepositoryClient {
    async fn create(&self, session: NewSession) -> Result<Session> {
        let r = self
            .write(pb::NewSession::from(session), |mut c, r| async move {
                c.create_session(r).await
            })
            .await?;
        decode(r)
    }

    async fn find(&self, id: SessionId) -> Result<Option<Session>> {
        let r = self
            .read(conv::id_request(id), |mut c, r| async move {
                c.find_session(r).await
            })
            .await?;
        decode(r)
    }

    async fn find_with_owner(&self, id: SessionId) -> Result<Option<SessionOwner>> {
        let r = self
            .read(conv::id_request(id), |mut c, r| async move {
                c.find_session_with_owner(r).await
            })
            .await?;
        decode(r)
    }

    async fn rotate(
        &self,
        id: SessionId,
        expected_hash: &str,
        new_hash: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let msg = conv::rotate_request(id, expected_hash, new_hash, now);
        let r = self
            .write(msg, |mut c, r| async move { c.rotate_session(r).await })
            .await?;
        Ok(r.value)
    }

    async fn revoke(&self, id: SessionId, reason: RevokeReason, now: Timestamp) -> Result<bool> {
        let msg = conv::revoke_request(id, reason, now);
        let r = self
            .write(msg, |mut c, r| async move { c.revoke_session(r).await })
            .await?;
        Ok(r.value)
    }

    async fn revoke_all_for_user(
        &self,
        user_id: UserId,
        reason: RevokeReason,
        now: Timestamp,
        keep: Option<SessionId>,
    ) -> Result<u64> {
        let msg = conv::revoke_all_request(user_id, reason, now, keep);
        let r = self
            .write(
                msg,
                |mut c, r| async move { c.revoke_all_sessions(r).await },
            )
            .await?;
        Ok(r.count)
    }

    async fn list_live_for_user(&self, user_id: UserId, now: Timestamp) -> Result<Vec<Session>> {
        let r = self
            .read(conv::at_request(user_id, now), |mut c, r| async move {
                c.list_live_sessions(r).await
            })
            .await?;
        decode(r)
    }
}

#[async_trait]
impl AuditRepository for RepositoryClient {
    async fn record(&self, event: AuditEvent) -> Result<()> {
        self.write(pb::AuditEvent::from(event), |mut c, r| async move {
            c.record_audit(r).await
        })
        .await?;
        Ok(())
    }

    async fn list_for_subject(&self, subject_id: UserId, limit: u32) -> Result<Vec<AuditEvent>> {
        let r = self
            .read(
                conv::list_audit_request(subject_id, limit),
                |mut c, r| async move { c.list_audit(r).await },
            )
            .await?;
        decode(r)
    }
}
