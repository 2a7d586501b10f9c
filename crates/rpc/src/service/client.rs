//! Client adapters: [`AuthClient`] and [`UserClient`] implement the service ports by calling a
//! service layer over gRPC, so a gateway cannot tell them from the in-process `Auth`/`Users`.
//!
//! Each call carries the internal credential, the request id, the caller's access token (the
//! service layer verifies it) and the client's ip and user agent; reads are retried on UNAVAILABLE, writes never
//! ([`Upstream::call`]); every domain error (field names, retry-after) survives the hop.
use async_trait::async_trait;
use domain::{
    AccessToken, AccessTokenInfo, AccessTokenInput, AuditPage, AuthService, AuthSession, Caller,
    ClientPage, CreateUserInput, Error, ForgotPasswordInput, IssuedClient, LoginInput, OidcClient,
    OidcClientInput, OidcClientPatch, OidcClientService, PasswordInput, Principal, RawAuditQuery,
    RawClientQuery, RawUserQuery, RegisterInput, RequestContext, ResetPasswordInput, Result,
    SessionId, SessionInfo, User, UserId, UserPage, UserPatch, UserService, VerifyEmailInput,
    WebhookService,
};
use domain::{
    IssuedAccessToken, LoginOutcome, MfaCodeInput, MfaStatus, MfaVerifyInput, PasskeyChallenge,
    PasskeyInfo, PasskeyLoginInput, PasskeyRegistrationInput, PasskeyRename, RecoveryCodes,
    TotpDisableInput, TotpSetup, TotpSetupInput,
};
use tonic::Request;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;

use super::forward;
use crate::client::{Retry, Upstream};
use crate::convert::v1::{update_client_request, update_user_request};
use crate::internal::{SessionLiveRequest, session_check_service_rpcs as sessions};
use crate::raw::HEALTH_CHECK;
use crate::v1::{
    self, auth_service_rpcs as auth, oidc_client_service_rpcs as clients,
    user_service_rpcs as users, webhook_service_rpcs as webhooks,
};

/// An outgoing call: deadline, credential, request id (the context's, else the one in scope),
/// the caller's token and the client facts.
pub(super) fn outgoing<T>(
    up: &Upstream,
    ctx: Option<&RequestContext>,
    token: Option<&AccessToken>,
    msg: T,
) -> Request<T> {
    let id = ctx
        .and_then(|c| c.request_id.clone())
        .or_else(crate::context::request_id);
    let mut req = up.request_with_id(msg, id);
    forward(req.metadata_mut(), ctx, token);
    req
}

/// `service_call!(self, Read|Write, service::method, caller: &Caller | ctx: &RequestContext,
/// message)`: one call (`service` one of the `*_rpcs` modules `build.rs` writes), as that caller
/// (or unauthenticated, with only the request facts).
macro_rules! service_call {
    ($self:ident, $retry:ident, $rpc:path, caller: $caller:expr, $msg:expr) => {{
        let caller: &domain::Caller = $caller;
        service_call!(@go $self, $retry, $rpc, Some(&caller.ctx), caller.token.as_ref(), $msg)
    }};
    ($self:ident, $retry:ident, $rpc:path, ctx: $ctx:expr, $msg:expr) => {
        service_call!(@go $self, $retry, $rpc, Some($ctx), None, $msg)
    };
    (@go $self:ident, $retry:ident, $rpc:path, $ctx:expr, $token:expr, $msg:expr) => {{
        let (ctx, token, msg) = ($ctx, $token, $msg);
        let up = &$self.upstream;
        up.call($rpc, Retry::$retry, &msg, &|body| outgoing(up, ctx, token, body))
            .await
    }};
}

/// `grpc.health.v1` Check of the whole upstream (service `""`): SERVING or `Unavailable`.
async fn health(up: &Upstream) -> Result<()> {
    let msg = HealthCheckRequest {
        service: String::new(),
    };
    let answer: Result<Serving> = up
        .call(HEALTH_CHECK, Retry::Read, &msg, &|body| {
            outgoing(up, None, None, body)
        })
        .await;
    match answer {
        Ok(Serving(status)) if status == ServingStatus::Serving as i32 => Ok(()),
        Ok(Serving(status)) => {
            tracing::warn!(status, "upstream is not serving");
            Err(Error::Unavailable)
        }
        Err(e) => {
            tracing::warn!(error = %e, "upstream health check failed");
            Err(Error::Unavailable)
        }
    }
}

/// The serving status of a health answer.
struct Serving(i32);

impl TryFrom<tonic_health::pb::HealthCheckResponse> for Serving {
    type Error = Error;
    fn try_from(r: tonic_health::pb::HealthCheckResponse) -> Result<Self> {
        Ok(Serving(r.status))
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
}

#[async_trait]
impl AuthService for AuthClient {
    async fn ready(&self) -> Result<()> {
        health(&self.upstream).await
    }
    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession> {
        let msg = v1::RegisterRequest::from(input);
        service_call!(self, Write, auth::register, ctx: ctx, msg)
    }
    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<LoginOutcome> {
        service_call!(self, Write, auth::login, ctx: ctx, v1::LoginRequest::from(input))
    }
    async fn mfa_verify(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<AuthSession> {
        let msg = v1::VerifyMfaRequest::from(input);
        service_call!(self, Write, auth::verify_mfa, ctx: ctx, msg)
    }
    async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus> {
        service_call!(self, Read, auth::get_mfa, caller: caller, v1::GetMfaRequest {})
    }
    async fn totp_setup(&self, caller: &Caller, input: TotpSetupInput) -> Result<TotpSetup> {
        let msg = v1::SetupTotpRequest::from(input);
        service_call!(self, Write, auth::setup_totp, caller: caller, msg)
    }
    async fn totp_confirm(&self, caller: &Caller, input: MfaCodeInput) -> Result<RecoveryCodes> {
        let msg = v1::ConfirmTotpRequest::from(input);
        service_call!(self, Write, auth::confirm_totp, caller: caller, msg)
    }
    async fn totp_disable(&self, caller: &Caller, input: TotpDisableInput) -> Result<()> {
        let msg = v1::DisableTotpRequest::from(input);
        service_call!(self, Write, auth::disable_totp, caller: caller, msg)
    }
    async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes> {
        let msg = v1::RegenerateRecoveryCodesRequest::from(input);
        service_call!(self, Write, auth::regenerate_recovery_codes, caller: caller, msg)
    }
    async fn passkey_register_start(&self, caller: &Caller) -> Result<PasskeyChallenge> {
        let msg = v1::StartPasskeyRegistrationRequest {};
        service_call!(self, Write, auth::start_passkey_registration, caller: caller, msg)
    }
    async fn passkey_register_finish(
        &self,
        caller: &Caller,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyInfo> {
        let msg = v1::FinishPasskeyRegistrationRequest::from(input);
        service_call!(self, Write, auth::finish_passkey_registration, caller: caller, msg)
    }
    async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>> {
        let msg = v1::ListPasskeysRequest {};
        service_call!(self, Read, auth::list_passkeys, caller: caller, msg)
    }
    async fn rename_passkey(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: PasskeyRename,
    ) -> Result<PasskeyInfo> {
        let msg = v1::RenamePasskeyRequest::new(id, input.name);
        service_call!(self, Write, auth::rename_passkey, caller: caller, msg)
    }
    async fn delete_passkey(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let msg = v1::DeletePasskeyRequest::new(id);
        service_call!(self, Write, auth::delete_passkey, caller: caller, msg)
    }
    async fn passkey_login_start(&self, ctx: &RequestContext) -> Result<PasskeyChallenge> {
        let msg = v1::StartPasskeyLoginRequest {};
        service_call!(self, Write, auth::start_passkey_login, ctx: ctx, msg)
    }
    async fn passkey_login_finish(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<AuthSession> {
        let msg = v1::FinishPasskeyLoginRequest::from(input);
        service_call!(self, Write, auth::finish_passkey_login, ctx: ctx, msg)
    }
    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession> {
        let msg = v1::RefreshRequest::new(refresh_token.to_owned());
        service_call!(self, Write, auth::refresh, ctx: ctx, msg)
    }
    async fn logout(&self, caller: &Caller) -> Result<()> {
        service_call!(self, Write, auth::logout, caller: caller, v1::LogoutRequest {})
    }
    async fn logout_all(&self, caller: &Caller) -> Result<u64> {
        service_call!(self, Write, auth::logout_all, caller: caller, v1::LogoutAllRequest {})
    }
    async fn me(&self, caller: &Caller) -> Result<User> {
        service_call!(self, Read, auth::me, caller: caller, v1::MeRequest {})
    }
    async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        let msg = v1::ListSessionsRequest {};
        service_call!(self, Read, auth::list_sessions, caller: caller, msg)
    }
    async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<()> {
        let msg = v1::RevokeSessionRequest::new(id);
        service_call!(self, Write, auth::revoke_session, caller: caller, msg)
    }
    async fn session_live(&self, who: &Principal) -> Result<bool> {
        let msg = SessionLiveRequest::new(who.user_id, who.session_id, who.role);
        let up = &self.upstream;
        up.call(sessions::session_live, Retry::Read, &msg, &|body| {
            outgoing(up, None, None, body)
        })
        .await
    }
    async fn create_access_token(
        &self,
        caller: &Caller,
        input: AccessTokenInput,
    ) -> Result<IssuedAccessToken> {
        let msg = v1::CreateAccessTokenRequest::from(input);
        service_call!(self, Write, auth::create_access_token, caller: caller, msg)
    }
    async fn list_access_tokens(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>> {
        let msg = v1::ListAccessTokensRequest {};
        service_call!(self, Read, auth::list_access_tokens, caller: caller, msg)
    }
    async fn revoke_access_token(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let msg = v1::RevokeAccessTokenRequest::new(id);
        service_call!(self, Write, auth::revoke_access_token, caller: caller, msg)
    }
    async fn token_principal(&self, token: &AccessToken) -> Result<Option<Principal>> {
        let msg = crate::internal::TokenPrincipalRequest::new(token.expose().to_owned());
        let up = &self.upstream;
        up.call(sessions::token_principal, Retry::Read, &msg, &|body| {
            outgoing(up, None, None, body)
        })
        .await
    }
    async fn forgot_password(
        &self,
        ctx: &RequestContext,
        input: ForgotPasswordInput,
    ) -> Result<()> {
        let msg = v1::ForgotPasswordRequest::from(input);
        service_call!(self, Write, auth::forgot_password, ctx: ctx, msg)
    }
    async fn reset_password(
        &self,
        ctx: &RequestContext,
        input: ResetPasswordInput,
    ) -> Result<UserId> {
        let msg = v1::ResetPasswordRequest::from(input);
        service_call!(self, Write, auth::reset_password, ctx: ctx, msg)
    }
    async fn verify_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        let msg = v1::VerifyEmailRequest::from(input);
        service_call!(self, Write, auth::verify_email, ctx: ctx, msg)
    }
    async fn resend_verification(&self, caller: &Caller) -> Result<()> {
        let msg = v1::ResendVerificationRequest {};
        service_call!(self, Write, auth::resend_verification, caller: caller, msg)
    }
    async fn revert_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        let msg = v1::RevertEmailRequest::from(input);
        service_call!(self, Write, auth::revert_email, ctx: ctx, msg)
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
}

#[async_trait]
impl UserService for UserClient {
    async fn ready(&self) -> Result<()> {
        health(&self.upstream).await
    }
    async fn list_users(&self, caller: &Caller, query: RawUserQuery) -> Result<UserPage> {
        let msg = v1::ListUsersRequest::from(query);
        service_call!(self, Read, users::list_users, caller: caller, msg)
    }
    async fn create_user(&self, caller: &Caller, input: CreateUserInput) -> Result<User> {
        let msg = v1::CreateUserRequest::from(input);
        service_call!(self, Write, users::create_user, caller: caller, msg)
    }
    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        let msg = v1::GetUserRequest::new(id);
        service_call!(self, Read, users::get_user, caller: caller, msg)
    }
    async fn update_user(&self, caller: &Caller, id: UserId, patch: UserPatch) -> Result<User> {
        let msg = update_user_request(id, patch);
        service_call!(self, Write, users::update_user, caller: caller, msg)
    }
    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        let msg = v1::DeleteUserRequest::new(id);
        service_call!(self, Write, users::delete_user, caller: caller, msg)
    }
    async fn remove_mfa(&self, caller: &Caller, id: UserId) -> Result<()> {
        let msg = v1::RemoveMfaRequest::new(id);
        service_call!(self, Write, users::remove_mfa, caller: caller, msg)
    }
    async fn change_password(&self, caller: &Caller, id: UserId, pw: PasswordInput) -> Result<()> {
        let msg = v1::ChangePasswordRequest::new(id, pw.current_password, pw.new_password);
        service_call!(self, Write, users::change_password, caller: caller, msg)
    }
    async fn unlock_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        let msg = v1::UnlockUserRequest::new(id);
        service_call!(self, Write, users::unlock_user, caller: caller, msg)
    }
    async fn list_user_sessions(&self, caller: &Caller, id: UserId) -> Result<Vec<SessionInfo>> {
        let msg = v1::ListUserSessionsRequest::new(id);
        service_call!(self, Read, users::list_user_sessions, caller: caller, msg)
    }
    async fn verify_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        let msg = v1::VerifyUserRequest::new(id);
        service_call!(self, Write, users::verify_user, caller: caller, msg)
    }
    async fn set_status(&self, caller: &Caller, id: UserId, status: &str) -> Result<User> {
        let msg = v1::SetStatusRequest::new(id, status.to_owned());
        service_call!(self, Write, users::set_status, caller: caller, msg)
    }
    async fn set_role(&self, caller: &Caller, id: UserId, role: &str) -> Result<User> {
        let msg = v1::SetRoleRequest::new(id, role.to_owned());
        service_call!(self, Write, users::set_role, caller: caller, msg)
    }
    async fn list_audit_events(&self, caller: &Caller, query: RawAuditQuery) -> Result<AuditPage> {
        let msg = v1::ListAuditEventsRequest::from(query);
        service_call!(self, Read, users::list_audit_events, caller: caller, msg)
    }
}

/// [`OidcClientService`] over gRPC (`arcana.v1.OidcClientService` of `upstream`).
#[derive(Debug, Clone)]
pub struct OidcClientClient {
    upstream: Upstream,
}

impl OidcClientClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }
}

#[async_trait]
impl OidcClientService for OidcClientClient {
    async fn create_client(&self, caller: &Caller, input: OidcClientInput) -> Result<IssuedClient> {
        let msg = v1::CreateClientRequest::from(input);
        service_call!(self, Write, clients::create_client, caller: caller, msg)
    }
    async fn list_clients(&self, caller: &Caller, query: RawClientQuery) -> Result<ClientPage> {
        let msg = v1::ListClientsRequest::from(query);
        service_call!(self, Read, clients::list_clients, caller: caller, msg)
    }
    async fn get_client(&self, caller: &Caller, client_id: &str) -> Result<OidcClient> {
        let msg = v1::GetClientRequest::new(client_id.to_owned());
        service_call!(self, Read, clients::get_client, caller: caller, msg)
    }
    async fn update_client(
        &self,
        caller: &Caller,
        client_id: &str,
        patch: OidcClientPatch,
    ) -> Result<OidcClient> {
        let msg = update_client_request(client_id, patch);
        service_call!(self, Write, clients::update_client, caller: caller, msg)
    }
    async fn delete_client(&self, caller: &Caller, client_id: &str) -> Result<()> {
        let msg = v1::DeleteClientRequest::new(client_id.to_owned());
        service_call!(self, Write, clients::delete_client, caller: caller, msg)
    }
    async fn rotate_client_secret(&self, caller: &Caller, client_id: &str) -> Result<IssuedClient> {
        let msg = v1::RotateClientSecretRequest::new(client_id.to_owned());
        service_call!(self, Write, clients::rotate_client_secret, caller: caller, msg)
    }
    async fn create_service_account(
        &self,
        caller: &Caller,
        input: domain::ServiceAccountInput,
    ) -> Result<domain::IssuedServiceAccount> {
        let msg = v1::CreateServiceAccountRequest::from(input);
        service_call!(self, Write, clients::create_service_account, caller: caller, msg)
    }
    async fn list_service_accounts(&self, caller: &Caller) -> Result<Vec<domain::ServiceAccount>> {
        let msg = v1::ListServiceAccountsRequest {};
        service_call!(self, Read, clients::list_service_accounts, caller: caller, msg)
    }
    async fn get_service_account(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
    ) -> Result<domain::ServiceAccount> {
        let msg = v1::GetServiceAccountRequest::new(id);
        service_call!(self, Read, clients::get_service_account, caller: caller, msg)
    }
    async fn rotate_service_account_secret(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: domain::SecretRotationInput,
    ) -> Result<domain::IssuedServiceAccount> {
        let msg = v1::RotateServiceAccountSecretRequest::new(id, input.overlap_seconds);
        service_call!(self, Write, clients::rotate_service_account_secret, caller: caller, msg)
    }
    async fn delete_service_account(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let msg = v1::DeleteServiceAccountRequest::new(id);
        service_call!(self, Write, clients::delete_service_account, caller: caller, msg)
    }
}

/// [`WebhookService`] over `arcana.v1.WebhookService`.
#[derive(Clone)]
pub struct WebhookClient {
    upstream: Upstream,
}

impl WebhookClient {
    pub fn new(upstream: Upstream) -> Self {
        Self { upstream }
    }
}

#[async_trait]
impl WebhookService for WebhookClient {
    async fn create_webhook(
        &self,
        caller: &Caller,
        input: domain::WebhookInput,
    ) -> Result<domain::IssuedWebhook> {
        let msg = v1::CreateWebhookRequest::from(input);
        service_call!(self, Write, webhooks::create_webhook, caller: caller, msg)
    }
    async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<domain::Webhook>> {
        let msg = v1::ListWebhooksRequest {};
        service_call!(self, Read, webhooks::list_webhooks, caller: caller, msg)
    }
    async fn get_webhook(&self, caller: &Caller, id: uuid::Uuid) -> Result<domain::Webhook> {
        let msg = v1::WebhookIdRequest::new(id);
        service_call!(self, Read, webhooks::get_webhook, caller: caller, msg)
    }
    async fn update_webhook(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        patch: domain::WebhookPatch,
    ) -> Result<domain::Webhook> {
        let msg = v1::UpdateWebhookRequest::of(id, patch);
        service_call!(self, Write, webhooks::update_webhook, caller: caller, msg)
    }
    async fn delete_webhook(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let msg = v1::WebhookIdRequest::new(id);
        service_call!(self, Write, webhooks::delete_webhook, caller: caller, msg)
    }
    async fn test_webhook(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
    ) -> Result<domain::WebhookDelivery> {
        let msg = v1::WebhookIdRequest::new(id);
        service_call!(self, Write, webhooks::test_webhook, caller: caller, msg)
    }
    async fn list_webhook_deliveries(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        query: domain::RawDeliveryQuery,
    ) -> Result<domain::DeliveryPage> {
        let msg = v1::ListWebhookDeliveriesRequest::of(id, query);
        service_call!(self, Read, webhooks::list_webhook_deliveries, caller: caller, msg)
    }
    async fn retry_webhook_delivery(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        delivery: uuid::Uuid,
    ) -> Result<domain::WebhookDelivery> {
        let msg = v1::RetryWebhookDeliveryRequest::new(id, delivery);
        service_call!(self, Write, webhooks::retry_webhook_delivery, caller: caller, msg)
    }
}
