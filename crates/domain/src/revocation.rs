//! Which operations end sessions, in one place: a decorator on the service ports that tells a
//! listener (the edge's cache of session liveness) what every successful call revoked, whatever
//! protocol the call came in by and whichever adapter (in-process or gRPC) it went through.
use std::sync::Arc;

use async_trait::async_trait;

use crate::audit::{AuditPage, RawAuditQuery};
use crate::error::Result;
use crate::mfa::*;
use crate::model::{SessionId, User, UserId};
use crate::pagination::{RawUserQuery, UserPage};
use crate::services::*;
use crate::tokens::{AccessTokenInfo, AccessTokenInput, IssuedAccessToken};

/// What a successful call revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    /// One session (logout, session delete).
    Session(SessionId),
    /// Every (or every other) session of a user (logout-all, password change, status or role
    /// change, deletion).
    User(UserId),
}

/// Told after a call that revoked sessions succeeded.
pub trait RevocationListener: Send + Sync {
    fn revoked(&self, what: Revoked);
}

/// `inner` (a service port), telling `listener` what each successful call revoked.
pub struct Revocations<S: ?Sized> {
    inner: Arc<S>,
    listener: Arc<dyn RevocationListener>,
}

impl<S: ?Sized> Revocations<S> {
    pub fn new(inner: Arc<S>, listener: Arc<dyn RevocationListener>) -> Self {
        Self { inner, listener }
    }

    fn tell<T>(&self, r: Result<T>, what: Revoked) -> Result<T> {
        if r.is_ok() {
            self.listener.revoked(what);
        }
        r
    }
}

#[async_trait]
impl AuthService for Revocations<dyn AuthService> {
    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }
    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession> {
        self.inner.register(ctx, input).await
    }
    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<LoginOutcome> {
        self.inner.login(ctx, input).await
    }
    async fn mfa_verify(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<AuthSession> {
        self.inner.mfa_verify(ctx, input).await
    }
    async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus> {
        self.inner.mfa_status(caller).await
    }
    async fn totp_setup(&self, caller: &Caller, input: TotpSetupInput) -> Result<TotpSetup> {
        self.inner.totp_setup(caller, input).await
    }
    async fn totp_confirm(&self, caller: &Caller, input: MfaCodeInput) -> Result<RecoveryCodes> {
        self.inner.totp_confirm(caller, input).await
    }
    async fn totp_disable(&self, caller: &Caller, input: TotpDisableInput) -> Result<()> {
        self.inner.totp_disable(caller, input).await
    }
    async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes> {
        self.inner.regenerate_recovery_codes(caller, input).await
    }
    async fn passkey_register_start(&self, caller: &Caller) -> Result<PasskeyChallenge> {
        self.inner.passkey_register_start(caller).await
    }
    async fn passkey_register_finish(
        &self,
        caller: &Caller,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyInfo> {
        self.inner.passkey_register_finish(caller, input).await
    }
    async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>> {
        self.inner.list_passkeys(caller).await
    }
    async fn rename_passkey(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: PasskeyRename,
    ) -> Result<PasskeyInfo> {
        self.inner.rename_passkey(caller, id, input).await
    }
    async fn delete_passkey(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        self.inner.delete_passkey(caller, id).await
    }
    async fn passkey_login_start(&self, ctx: &RequestContext) -> Result<PasskeyChallenge> {
        self.inner.passkey_login_start(ctx).await
    }
    async fn passkey_login_finish(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<AuthSession> {
        self.inner.passkey_login_finish(ctx, input).await
    }
    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession> {
        self.inner.refresh(ctx, refresh_token).await
    }
    async fn logout(&self, caller: &Caller) -> Result<()> {
        let r = self.inner.logout(caller).await;
        self.tell(r, Revoked::Session(caller.who.session_id))
    }
    async fn logout_all(&self, caller: &Caller) -> Result<u64> {
        let r = self.inner.logout_all(caller).await;
        self.tell(r, Revoked::User(caller.who.user_id))
    }
    async fn me(&self, caller: &Caller) -> Result<User> {
        self.inner.me(caller).await
    }
    async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        self.inner.list_sessions(caller).await
    }
    async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<()> {
        let r = self.inner.revoke_session(caller, id).await;
        self.tell(r, Revoked::Session(id))
    }
    async fn session_live(&self, who: &Principal) -> Result<bool> {
        self.inner.session_live(who).await
    }
    async fn create_access_token(
        &self,
        caller: &Caller,
        input: AccessTokenInput,
    ) -> Result<IssuedAccessToken> {
        self.inner.create_access_token(caller, input).await
    }
    async fn list_access_tokens(&self, caller: &Caller) -> Result<Vec<AccessTokenInfo>> {
        self.inner.list_access_tokens(caller).await
    }
    async fn revoke_access_token(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        let r = self.inner.revoke_access_token(caller, id).await;
        self.tell(r, Revoked::Session(id))
    }
    async fn token_principal(&self, token: &AccessToken) -> Result<Option<Principal>> {
        self.inner.token_principal(token).await
    }
    async fn forgot_password(
        &self,
        ctx: &RequestContext,
        input: ForgotPasswordInput,
    ) -> Result<()> {
        self.inner.forgot_password(ctx, input).await
    }
    async fn reset_password(
        &self,
        ctx: &RequestContext,
        input: ResetPasswordInput,
    ) -> Result<UserId> {
        let r = self.inner.reset_password(ctx, input).await;
        match r {
            Ok(user) => self.tell(Ok(user), Revoked::User(user)),
            Err(e) => Err(e),
        }
    }
    async fn verify_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        self.inner.verify_email(ctx, input).await
    }
    async fn resend_verification(&self, caller: &Caller) -> Result<()> {
        self.inner.resend_verification(caller).await
    }
    async fn revert_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        match self.inner.revert_email(ctx, input).await {
            Ok(user) => {
                let id = user.id;
                self.tell(Ok(user), Revoked::User(id))
            }
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl UserService for Revocations<dyn UserService> {
    async fn ready(&self) -> Result<()> {
        self.inner.ready().await
    }
    async fn list_users(&self, caller: &Caller, query: RawUserQuery) -> Result<UserPage> {
        self.inner.list_users(caller, query).await
    }
    async fn create_user(&self, caller: &Caller, input: CreateUserInput) -> Result<User> {
        self.inner.create_user(caller, input).await
    }
    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.inner.get_user(caller, id).await
    }
    async fn update_user(&self, caller: &Caller, id: UserId, patch: UserPatch) -> Result<User> {
        self.inner.update_user(caller, id, patch).await
    }
    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        let r = self.inner.delete_user(caller, id).await;
        self.tell(r, Revoked::User(id))
    }
    async fn change_password(&self, caller: &Caller, id: UserId, pw: PasswordInput) -> Result<()> {
        let r = self.inner.change_password(caller, id, pw).await;
        self.tell(r, Revoked::User(id))
    }
    async fn verify_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.inner.verify_user(caller, id).await
    }
    async fn set_status(&self, caller: &Caller, id: UserId, status: &str) -> Result<User> {
        let r = self.inner.set_status(caller, id, status).await;
        self.tell(r, Revoked::User(id))
    }
    async fn set_role(&self, caller: &Caller, id: UserId, role: &str) -> Result<User> {
        let r = self.inner.set_role(caller, id, role).await;
        self.tell(r, Revoked::User(id))
    }
    async fn list_audit_events(&self, caller: &Caller, query: RawAuditQuery) -> Result<AuditPage> {
        self.inner.list_audit_events(caller, query).await
    }
    async fn unlock_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.inner.unlock_user(caller, id).await
    }
    async fn list_user_sessions(&self, caller: &Caller, id: UserId) -> Result<Vec<SessionInfo>> {
        self.inner.list_user_sessions(caller, id).await
    }
    async fn remove_mfa(&self, caller: &Caller, id: UserId) -> Result<()> {
        let r = self.inner.remove_mfa(caller, id).await;
        self.tell(r, Revoked::User(id))
    }
}
