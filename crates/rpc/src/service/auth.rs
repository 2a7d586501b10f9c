//! `arcana.v1.AuthService` and `arcana.internal.v1.SessionCheckService` over the auth port.
use std::sync::Arc;

use crate::convert::{parse, uuid, v1 as conv};
use crate::internal::{self, session_check_service_server::SessionCheckService};
use crate::v1::{self, auth_service_server::AuthService as AuthRpc};
use domain::{AuthService, Principal};
use tonic::{Request, Response, Status};

use super::{Call, ForwardedPrincipal, PrincipalSource, Revoked, Throttled, bearer, public, run};

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the auth port to callers identified by `P`.
pub struct AuthGrpc<P> {
    auth: Arc<dyn AuthService>,
    source: P,
}

impl<P: PrincipalSource> AuthGrpc<P> {
    pub fn new(auth: Arc<dyn AuthService>, source: P) -> Self {
        Self { auth, source }
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> AuthRpc for AuthGrpc<P> {
    async fn register(&self, req: Request<v1::RegisterRequest>) -> Answer<v1::AuthResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "Register",
            Throttled::Register,
            req,
            |ctx, m| async move { auth.register(&ctx, m.into()).await.map(Into::into) },
        )
        .await
    }

    async fn login(&self, req: Request<v1::LoginRequest>) -> Answer<v1::AuthResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "Login",
            Throttled::Login,
            req,
            |ctx, m| async move { auth.login(&ctx, m.into()).await.map(Into::into) },
        )
        .await
    }

    async fn refresh(&self, req: Request<v1::RefreshRequest>) -> Answer<v1::AuthResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "Refresh",
            Throttled::Refresh,
            req,
            |ctx, m| async move { auth.refresh(&ctx, &m.refresh_token).await.map(Into::into) },
        )
        .await
    }

    async fn logout(&self, req: Request<v1::LogoutRequest>) -> Answer<v1::LogoutResponse> {
        let (auth, source) = (&self.auth, &self.source);
        bearer(source, "Logout", req, |ctx, who, _| async move {
            auth.logout(&ctx, &who).await?;
            source.revoked(Revoked::Session(who.session_id));
            Ok(v1::LogoutResponse {})
        })
        .await
    }

    async fn logout_all(
        &self,
        req: Request<v1::LogoutAllRequest>,
    ) -> Answer<v1::LogoutAllResponse> {
        let (auth, source) = (&self.auth, &self.source);
        bearer(source, "LogoutAll", req, |ctx, who, _| async move {
            let revoked_count = auth.logout_all(&ctx, &who).await?;
            source.revoked(Revoked::User(who.user_id));
            Ok(v1::LogoutAllResponse { revoked_count })
        })
        .await
    }

    async fn me(&self, req: Request<v1::MeRequest>) -> Answer<v1::User> {
        let auth = &self.auth;
        bearer(&self.source, "Me", req, |ctx, who, _| async move {
            auth.me(&ctx, &who).await.map(Into::into)
        })
        .await
    }

    async fn list_sessions(
        &self,
        req: Request<v1::ListSessionsRequest>,
    ) -> Answer<v1::ListSessionsResponse> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "ListSessions",
            req,
            |ctx, who, _| async move { auth.list_sessions(&ctx, &who).await.map(conv::sessions) },
        )
        .await
    }

    async fn revoke_session(
        &self,
        req: Request<v1::RevokeSessionRequest>,
    ) -> Answer<v1::RevokeSessionResponse> {
        let (auth, source) = (&self.auth, &self.source);
        bearer(source, "RevokeSession", req, |ctx, who, m| async move {
            let id = uuid(&m.id, "id")?;
            auth.revoke_session(&ctx, &who, id).await?;
            source.revoked(Revoked::Session(id));
            Ok(v1::RevokeSessionResponse {})
        })
        .await
    }
}

/// Serves `AuthService::session_live` to gateways (internal port only).
pub struct SessionCheckGrpc {
    auth: Arc<dyn AuthService>,
}

impl SessionCheckGrpc {
    pub fn new(auth: Arc<dyn AuthService>) -> Self {
        Self { auth }
    }
}

#[tonic::async_trait]
impl SessionCheckService for SessionCheckGrpc {
    async fn session_live(
        &self,
        req: Request<internal::SessionLiveRequest>,
    ) -> Answer<internal::SessionLiveResponse> {
        let source = ForwardedPrincipal;
        let request_id = source.context(&Call::of(&req)).request_id;
        let m = req.into_inner();
        let auth = &self.auth;
        let body = async move {
            let who = Principal {
                user_id: uuid(&m.user_id, "user_id")?,
                session_id: uuid(&m.session_id, "session_id")?,
                role: parse(&m.role, "role")?,
            };
            let live = auth.session_live(&who).await?;
            Ok(internal::SessionLiveResponse { live })
        };
        run(&source, "SessionLive", request_id, body).await
    }
}
