//! `arcana.v1.UserService` over the users port.
use std::sync::Arc;

use crate::convert::{uuid, v1 as conv};
use crate::v1::{self, user_service_server::UserService as UserRpc};
use domain::UserService;
use tonic::{Request, Response, Status};

use super::{PrincipalSource, Revoked, Throttled, bearer};

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
        bearer(&self.source, "ListUsers", req, |ctx, who, m| async move {
            users.list_users(&ctx, &who, m.into()).await.map(Into::into)
        })
        .await
    }

    async fn create_user(&self, req: Request<v1::CreateUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "CreateUser", req, |ctx, who, m| async move {
            users
                .create_user(&ctx, &who, m.into())
                .await
                .map(Into::into)
        })
        .await
    }

    async fn get_user(&self, req: Request<v1::GetUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "GetUser", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            users.get_user(&ctx, &who, id).await.map(Into::into)
        })
        .await
    }

    async fn update_user(&self, req: Request<v1::UpdateUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "UpdateUser", req, |ctx, who, m| async move {
            let (id, patch) = conv::update_user_from_request(m)?;
            users
                .update_user(&ctx, &who, id, patch)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn delete_user(
        &self,
        req: Request<v1::DeleteUserRequest>,
    ) -> Answer<v1::DeleteUserResponse> {
        let (users, source) = (&self.users, &self.source);
        bearer(source, "DeleteUser", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            users.delete_user(&ctx, &who, id).await?;
            source.revoked(Revoked::User(id));
            Ok(v1::DeleteUserResponse {})
        })
        .await
    }

    async fn change_password(
        &self,
        req: Request<v1::ChangePasswordRequest>,
    ) -> Answer<v1::ChangePasswordResponse> {
        let (users, source) = (&self.users, &self.source);
        bearer(source, "ChangePassword", req, |ctx, who, m| async move {
            source.admit(Throttled::PasswordChange(who.user_id), &ctx)?;
            let (id, input) = conv::change_password_from_request(m)?;
            users.change_password(&ctx, &who, id, input).await?;
            source.revoked(Revoked::User(id));
            Ok(v1::ChangePasswordResponse {})
        })
        .await
    }

    async fn verify_user(&self, req: Request<v1::VerifyUserRequest>) -> Answer<v1::User> {
        let users = &self.users;
        bearer(&self.source, "VerifyUser", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            users.verify_user(&ctx, &who, id).await.map(Into::into)
        })
        .await
    }

    async fn set_status(&self, req: Request<v1::SetStatusRequest>) -> Answer<v1::User> {
        let (users, source) = (&self.users, &self.source);
        bearer(source, "SetStatus", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            let user = users.set_status(&ctx, &who, id, &m.status).await?;
            source.revoked(Revoked::User(id));
            Ok(user.into())
        })
        .await
    }

    async fn set_role(&self, req: Request<v1::SetRoleRequest>) -> Answer<v1::User> {
        let (users, source) = (&self.users, &self.source);
        bearer(source, "SetRole", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            let user = users.set_role(&ctx, &who, id, &m.role).await?;
            source.revoked(Revoked::User(id));
            Ok(user.into())
        })
        .await
    }
}
