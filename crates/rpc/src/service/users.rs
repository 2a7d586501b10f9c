//! `arcana.v1.UserService` over the users port.
use std::sync::Arc;

use crate::convert::v1::update_user_from_request;
use crate::v1::{self, user_service_server::UserService as UserRpc};
use domain::{PasswordInput, UserService};
use tonic::{Request, Response, Status};

use super::{PrincipalSource, Throttled, bearer};

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the users port to callers identified by `P`.
pub struct UserGrpc<P> {
    users: Arc<dyn UserService>,
    source: P,
}

impl<P: PrincipalSource> UserGrpc<P> {
    pub fn new(users: Arc<dyn UserService>, source: P) -> Self {
        Self { users, source }
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> UserRpc for UserGrpc<P> {
    async fn list_users(
        &self,
        req: Request<v1::ListUsersRequest>,
    ) -> Answer<v1::ListUsersResponse> {
        let users = &self.users;
        bearer(&self.source, "ListUsers", req, |caller, m| async move {
            users
                .list_users(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn create_user(&self, req: Request<v1::CreateUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "CreateUser", req, |caller, m| async move {
            users
                .create_user(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn get_user(&self, req: Request<v1::GetUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "GetUser", req, |caller, m| async move {
            let (id,) = m.parse()?;
            users.get_user(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn update_user(&self, req: Request<v1::UpdateUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "UpdateUser", req, |caller, m| async move {
            let (id, patch) = update_user_from_request(m)?;
            users.update_user(&caller, id, patch).await.map(Into::into)
        })
        .await
    }

    async fn delete_user(
        &self,
        req: Request<v1::DeleteUserRequest>,
    ) -> Answer<v1::DeleteUserResponse> {
        let users = &self.users;
        bearer(&self.source, "DeleteUser", req, |caller, m| async move {
            let (id,) = m.parse()?;
            users.delete_user(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn remove_mfa(
        &self,
        req: Request<v1::RemoveMfaRequest>,
    ) -> Answer<v1::RemoveMfaResponse> {
        let users = &self.users;
        bearer(&self.source, "RemoveMfa", req, |caller, m| async move {
            let (id,) = m.parse()?;
            users.remove_mfa(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn change_password(
        &self,
        req: Request<v1::ChangePasswordRequest>,
    ) -> Answer<v1::ChangePasswordResponse> {
        let (users, source) = (&self.users, &self.source);
        bearer(source, "ChangePassword", req, |caller, m| async move {
            source
                .admit(Throttled::PasswordChange(caller.who.user_id), &caller.ctx)
                .await?;
            let (id, current_password, new_password) = m.parse()?;
            let input = PasswordInput {
                current_password,
                new_password,
            };
            users
                .change_password(&caller, id, input)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn unlock_user(&self, req: Request<v1::UnlockUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "UnlockUser", req, |caller, m| async move {
            let (id,) = m.parse()?;
            users.unlock_user(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn list_user_sessions(
        &self,
        req: Request<v1::ListUserSessionsRequest>,
    ) -> Answer<v1::ListSessionsResponse> {
        let users = &self.users;
        bearer(
            &self.source,
            "ListUserSessions",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                users.list_user_sessions(&caller, id).await.map(Into::into)
            },
        )
        .await
    }

    async fn verify_user(&self, req: Request<v1::VerifyUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "VerifyUser", req, |caller, m| async move {
            let (id,) = m.parse()?;
            users.verify_user(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn set_status(&self, req: Request<v1::SetStatusRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "SetStatus", req, |caller, m| async move {
            let (id, status) = m.parse()?;
            users.set_status(&caller, id, &status).await.map(Into::into)
        })
        .await
    }

    async fn set_role(&self, req: Request<v1::SetRoleRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "SetRole", req, |caller, m| async move {
            let (id, role) = m.parse()?;
            users.set_role(&caller, id, &role).await.map(Into::into)
        })
        .await
    }

    async fn list_audit_events(
        &self,
        req: Request<v1::ListAuditEventsRequest>,
    ) -> Answer<v1::ListAuditEventsResponse> {
        let users = &self.users;
        bearer(
            &self.source,
            "ListAuditEvents",
            req,
            |caller, m| async move {
                users
                    .list_audit_events(&caller, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }
}
