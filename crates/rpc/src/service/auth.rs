//! `arcana.v1.AuthService` and `arcana.internal.v1.SessionCheckService` over the auth port.
use std::sync::Arc;

use crate::internal::{self, session_check_service_server::SessionCheckService};
use crate::v1::{self, auth_service_server::AuthService as AuthRpc};
use domain::{AuthService, Principal};
use tonic::{Request, Response, Status};

use super::principal::NoCaller;
use super::{Call, PrincipalSource, Throttled, bearer, public, run};

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
            |ctx, m| async move { auth.register(&ctx, m.try_into()?).await.map(Into::into) },
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
            |ctx, m| async move { auth.login(&ctx, m.try_into()?).await.map(Into::into) },
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
            |ctx, m| async move {
                let (token,) = m.parse()?;
                auth.refresh(&ctx, &token).await.map(Into::into)
            },
        )
        .await
    }

    async fn verify_mfa(&self, req: Request<v1::VerifyMfaRequest>) -> Answer<v1::AuthResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "VerifyMfa",
            Throttled::Login,
            req,
            |ctx, m| async move { auth.mfa_verify(&ctx, m.try_into()?).await.map(Into::into) },
        )
        .await
    }

    async fn get_mfa(&self, req: Request<v1::GetMfaRequest>) -> Answer<v1::MfaStatus> {
        let auth = &self.auth;
        bearer(&self.source, "GetMfa", req, |caller, _| async move {
            auth.mfa_status(&caller).await.map(Into::into)
        })
        .await
    }

    async fn setup_totp(
        &self,
        req: Request<v1::SetupTotpRequest>,
    ) -> Answer<v1::SetupTotpResponse> {
        let auth = &self.auth;
        bearer(&self.source, "SetupTotp", req, |caller, m| async move {
            auth.totp_setup(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn confirm_totp(
        &self,
        req: Request<v1::ConfirmTotpRequest>,
    ) -> Answer<v1::RecoveryCodesResponse> {
        let auth = &self.auth;
        bearer(&self.source, "ConfirmTotp", req, |caller, m| async move {
            auth.totp_confirm(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn disable_totp(
        &self,
        req: Request<v1::DisableTotpRequest>,
    ) -> Answer<v1::DisableTotpResponse> {
        let auth = &self.auth;
        bearer(&self.source, "DisableTotp", req, |caller, m| async move {
            auth.totp_disable(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn regenerate_recovery_codes(
        &self,
        req: Request<v1::RegenerateRecoveryCodesRequest>,
    ) -> Answer<v1::RecoveryCodesResponse> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "RegenerateRecoveryCodes",
            req,
            |caller, m| async move {
                auth.regenerate_recovery_codes(&caller, m.into())
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn start_passkey_registration(
        &self,
        req: Request<v1::StartPasskeyRegistrationRequest>,
    ) -> Answer<v1::PasskeyChallenge> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "StartPasskeyRegistration",
            req,
            |caller, _| async move { auth.passkey_register_start(&caller).await.map(Into::into) },
        )
        .await
    }

    async fn finish_passkey_registration(
        &self,
        req: Request<v1::FinishPasskeyRegistrationRequest>,
    ) -> Answer<v1::Passkey> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "FinishPasskeyRegistration",
            req,
            |caller, m| async move {
                auth.passkey_register_finish(&caller, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn list_passkeys(
        &self,
        req: Request<v1::ListPasskeysRequest>,
    ) -> Answer<v1::ListPasskeysResponse> {
        let auth = &self.auth;
        bearer(&self.source, "ListPasskeys", req, |caller, _| async move {
            auth.list_passkeys(&caller).await.map(Into::into)
        })
        .await
    }

    async fn rename_passkey(&self, req: Request<v1::RenamePasskeyRequest>) -> Answer<v1::Passkey> {
        let auth = &self.auth;
        bearer(&self.source, "RenamePasskey", req, |caller, m| async move {
            let (id, name) = m.parse()?;
            auth.rename_passkey(&caller, id, domain::PasskeyRename { name })
                .await
                .map(Into::into)
        })
        .await
    }

    async fn delete_passkey(
        &self,
        req: Request<v1::DeletePasskeyRequest>,
    ) -> Answer<v1::DeletePasskeyResponse> {
        let auth = &self.auth;
        bearer(&self.source, "DeletePasskey", req, |caller, m| async move {
            let (id,) = m.parse()?;
            auth.delete_passkey(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn start_passkey_login(
        &self,
        req: Request<v1::StartPasskeyLoginRequest>,
    ) -> Answer<v1::PasskeyChallenge> {
        let auth = &self.auth;
        public(
            &self.source,
            "StartPasskeyLogin",
            Throttled::Login,
            req,
            |ctx, _| async move { auth.passkey_login_start(&ctx).await.map(Into::into) },
        )
        .await
    }

    async fn finish_passkey_login(
        &self,
        req: Request<v1::FinishPasskeyLoginRequest>,
    ) -> Answer<v1::AuthResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "FinishPasskeyLogin",
            Throttled::Login,
            req,
            |ctx, m| async move {
                auth.passkey_login_finish(&ctx, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn logout(&self, req: Request<v1::LogoutRequest>) -> Answer<v1::LogoutResponse> {
        let auth = &self.auth;
        bearer(&self.source, "Logout", req, |caller, _| async move {
            auth.logout(&caller).await.map(Into::into)
        })
        .await
    }

    async fn logout_all(
        &self,
        req: Request<v1::LogoutAllRequest>,
    ) -> Answer<v1::LogoutAllResponse> {
        let auth = &self.auth;
        bearer(&self.source, "LogoutAll", req, |caller, _| async move {
            auth.logout_all(&caller).await.map(Into::into)
        })
        .await
    }

    async fn me(&self, req: Request<v1::MeRequest>) -> Answer<v1::User> {
        let auth = &self.auth;
        bearer(&self.source, "Me", req, |caller, _| async move {
            auth.me(&caller).await.map(Into::into)
        })
        .await
    }

    async fn list_sessions(
        &self,
        req: Request<v1::ListSessionsRequest>,
    ) -> Answer<v1::ListSessionsResponse> {
        let auth = &self.auth;
        bearer(&self.source, "ListSessions", req, |caller, _| async move {
            auth.list_sessions(&caller).await.map(Into::into)
        })
        .await
    }

    async fn revoke_session(
        &self,
        req: Request<v1::RevokeSessionRequest>,
    ) -> Answer<v1::RevokeSessionResponse> {
        let auth = &self.auth;
        bearer(&self.source, "RevokeSession", req, |caller, m| async move {
            let (id,) = m.parse()?;
            auth.revoke_session(&caller, id).await.map(Into::into)
        })
        .await
    }

    async fn forgot_password(
        &self,
        req: Request<v1::ForgotPasswordRequest>,
    ) -> Answer<v1::ForgotPasswordResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "ForgotPassword",
            Throttled::Recovery,
            req,
            |ctx, m| async move {
                auth.forgot_password(&ctx, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn reset_password(
        &self,
        req: Request<v1::ResetPasswordRequest>,
    ) -> Answer<v1::ResetPasswordResponse> {
        let auth = &self.auth;
        public(
            &self.source,
            "ResetPassword",
            Throttled::Recovery,
            req,
            |ctx, m| async move {
                auth.reset_password(&ctx, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn verify_email(&self, req: Request<v1::VerifyEmailRequest>) -> Answer<v1::User> {
        let auth = &self.auth;
        public(
            &self.source,
            "VerifyEmail",
            Throttled::Recovery,
            req,
            |ctx, m| async move { auth.verify_email(&ctx, m.try_into()?).await.map(Into::into) },
        )
        .await
    }

    async fn revert_email(&self, req: Request<v1::RevertEmailRequest>) -> Answer<v1::User> {
        let auth = &self.auth;
        public(
            &self.source,
            "RevertEmail",
            Throttled::Recovery,
            req,
            |ctx, m| async move { auth.revert_email(&ctx, m.into()).await.map(Into::into) },
        )
        .await
    }

    async fn resend_verification(
        &self,
        req: Request<v1::ResendVerificationRequest>,
    ) -> Answer<v1::ResendVerificationResponse> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "ResendVerification",
            req,
            |caller, _| async move { auth.resend_verification(&caller).await.map(Into::into) },
        )
        .await
    }

    async fn create_access_token(
        &self,
        req: Request<v1::CreateAccessTokenRequest>,
    ) -> Answer<v1::IssuedAccessToken> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "CreateAccessToken",
            req,
            |caller, m| async move {
                auth.create_access_token(&caller, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn list_access_tokens(
        &self,
        req: Request<v1::ListAccessTokensRequest>,
    ) -> Answer<v1::ListAccessTokensResponse> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "ListAccessTokens",
            req,
            |caller, _| async move { auth.list_access_tokens(&caller).await.map(Into::into) },
        )
        .await
    }

    async fn revoke_access_token(
        &self,
        req: Request<v1::RevokeAccessTokenRequest>,
    ) -> Answer<v1::RevokeAccessTokenResponse> {
        let auth = &self.auth;
        bearer(
            &self.source,
            "RevokeAccessToken",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                auth.revoke_access_token(&caller, id).await.map(Into::into)
            },
        )
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

/// A call of the session checks: no caller, the forwarded request facts, `f(message)`.
async fn check<T, R, F, Fut>(
    rpc: &'static str,
    req: Request<T>,
    f: F,
) -> std::result::Result<Response<R>, Status>
where
    F: FnOnce(T) -> Fut,
    Fut: std::future::Future<Output = domain::Result<R>> + Send,
    R: Send,
{
    let source = NoCaller;
    let request_id = source.context(&Call::of(&req)).request_id;
    let parent = crate::trace::Parent::of(req.metadata().as_ref());
    let body = f(req.into_inner());
    run(&source, rpc, request_id, parent, body).await
}

#[tonic::async_trait]
impl SessionCheckService for SessionCheckGrpc {
    async fn session_live(
        &self,
        req: Request<internal::SessionLiveRequest>,
    ) -> Answer<internal::SessionLiveResponse> {
        let auth = &self.auth;
        check("SessionLive", req, |m| async move {
            let (user_id, session_id, role) = m.parse()?;
            let who = Principal {
                user_id,
                session_id,
                role,
                scopes: domain::Scopes::SESSION,
            };
            auth.session_live(&who).await.map(Into::into)
        })
        .await
    }

    async fn token_principal(
        &self,
        req: Request<internal::TokenPrincipalRequest>,
    ) -> Answer<internal::TokenPrincipalResponse> {
        let auth = &self.auth;
        check("TokenPrincipal", req, |m| async move {
            let (token,) = m.parse()?;
            let token = domain::AccessToken::new(token);
            auth.token_principal(&token).await.map(Into::into)
        })
        .await
    }
}
