//! The session-liveness cache at the edge: revoking one user's sessions forgets only that
//! user's cached answers (the whole cache used to be dropped on every password change, so any
//! user could make every other user's next request pay a lookup).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use domain::{AccessToken, AccessTokenInfo, AccessTokenInput, IssuedAccessToken, Scope};
use domain::{
    AuthService, AuthSession, Caller, ForgotPasswordInput, LoginInput, Principal, RegisterInput,
    RequestContext, ResetPasswordInput, Result, SessionId, SessionInfo, User, UserId,
    VerifyEmailInput,
};
use domain::{
    LoginOutcome, MfaCodeInput, MfaStatus, MfaVerifyInput, PasskeyChallenge, PasskeyInfo,
    PasskeyLoginInput, PasskeyRegistrationInput, PasskeyRename, RecoveryCodes, TotpDisableInput,
    TotpSetup, TotpSetupInput,
};
use gateway::authn::Authenticator;
use repository::testing::TestDb;
use service::{Repositories, ServiceConfig};

/// The real service, counting the liveness lookups that reach it.
struct Counting {
    inner: Arc<dyn AuthService>,
    lookups: AtomicUsize,
}

#[async_trait]
impl AuthService for Counting {
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
    async fn refresh(&self, ctx: &RequestContext, token: &str) -> Result<AuthSession> {
        self.inner.refresh(ctx, token).await
    }
    async fn logout(&self, caller: &Caller) -> Result<()> {
        self.inner.logout(caller).await
    }
    async fn logout_all(&self, caller: &Caller) -> Result<u64> {
        self.inner.logout_all(caller).await
    }
    async fn me(&self, caller: &Caller) -> Result<User> {
        self.inner.me(caller).await
    }
    async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        self.inner.list_sessions(caller).await
    }
    async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<()> {
        self.inner.revoke_session(caller, id).await
    }
    async fn session_live(&self, who: &Principal) -> Result<bool> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.session_live(who).await
    }
    async fn forgot_password(&self, ctx: &RequestContext, i: ForgotPasswordInput) -> Result<()> {
        self.inner.forgot_password(ctx, i).await
    }
    async fn reset_password(&self, ctx: &RequestContext, i: ResetPasswordInput) -> Result<UserId> {
        self.inner.reset_password(ctx, i).await
    }
    async fn verify_email(&self, ctx: &RequestContext, i: VerifyEmailInput) -> Result<User> {
        self.inner.verify_email(ctx, i).await
    }
    async fn resend_verification(&self, caller: &Caller) -> Result<()> {
        self.inner.resend_verification(caller).await
    }
    async fn revert_email(&self, ctx: &RequestContext, i: VerifyEmailInput) -> Result<User> {
        self.inner.revert_email(ctx, i).await
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
        self.inner.revoke_access_token(caller, id).await
    }
    async fn token_principal(&self, token: &AccessToken) -> Result<Option<Principal>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.token_principal(token).await
    }
}

fn input(username: &str) -> RegisterInput {
    RegisterInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: "Secret123".into(),
        first_name: None,
        last_name: None,
    }
}

/// The real service over a fresh SQLite database, counted, and an authenticator in front of it.
fn counted() -> (TestDb, Arc<Counting>, Arc<Authenticator>) {
    let db = TestDb::sqlite();
    let config = ServiceConfig {
        password_iterations: 1000,
        ..ServiceConfig::default()
    };
    let keys = crypto::JwtKeys::hs256(b"authn-tests-secret-0123456789abcdef").unwrap();
    let services = service::build(
        Repositories::from_one(db.db().clone()),
        config.clone(),
        Some(&keys),
    )
    .unwrap();
    let counting = Arc::new(Counting {
        inner: services.auth.clone(),
        lookups: AtomicUsize::new(0),
    });
    let authn = Arc::new(Authenticator::new(
        Arc::new(keys.verifier(&config.issuer, &config.audience)),
        counting.clone(),
    ));
    (db, counting, authn)
}

#[tokio::test]
async fn revoking_one_user_forgets_only_that_users_cached_sessions() {
    let (_db, counting, authn) = counted();
    let ctx = RequestContext::default();
    let alice = counting.register(&ctx, input("alice")).await.unwrap();
    let bob = counting.register(&ctx, input("bob")).await.unwrap();
    let lookups = || counting.lookups.load(Ordering::SeqCst);

    let a = authn
        .authenticate(&alice.tokens.access_token)
        .await
        .unwrap();
    authn.authenticate(&bob.tokens.access_token).await.unwrap();
    assert_eq!(lookups(), 2);
    authn
        .authenticate(&alice.tokens.access_token)
        .await
        .unwrap();
    authn.authenticate(&bob.tokens.access_token).await.unwrap();
    assert_eq!(lookups(), 2, "both answers are cached");

    // Alice logs out everywhere (through this process).
    counting
        .logout_all(&Caller {
            who: a,
            ctx,
            token: None,
        })
        .await
        .unwrap();
    authn.forget_user(a.user_id);
    assert!(
        authn
            .authenticate(&alice.tokens.access_token)
            .await
            .is_err()
    );
    assert_eq!(lookups(), 3, "alice's answer was looked up again");
    authn.authenticate(&bob.tokens.access_token).await.unwrap();
    assert_eq!(lookups(), 3, "bob's answer is still cached");
}

#[tokio::test]
async fn a_personal_access_token_is_looked_up_once_per_ttl_and_forgotten_when_revoked_here() {
    let (_db, counting, authn) = counted();
    // The ports tell the authenticator what they revoke, as the gateway wires them.
    let ports = domain::Revocations::new(counting.clone() as Arc<dyn AuthService>, authn.clone());
    let ctx = RequestContext::default();
    let alice = counting.register(&ctx, input("alice")).await.unwrap();
    let session = authn
        .authenticate(&alice.tokens.access_token)
        .await
        .unwrap();
    let caller = Caller {
        who: session,
        ctx,
        token: None,
    };
    let issued = ports
        .create_access_token(
            &caller,
            AccessTokenInput {
                name: "ci".into(),
                scopes: vec!["users:read".into()],
                expires_in: None,
            },
        )
        .await
        .unwrap();
    assert!(issued.token.starts_with("arc_pat_") && issued.token.len() == 51);
    let lookups = || counting.lookups.load(Ordering::SeqCst);
    let before = lookups();
    let who = authn.authenticate(&issued.token).await.unwrap();
    assert_eq!(
        (who.user_id, who.session_id, who.scopes),
        (
            alice.user.id,
            issued.info.id,
            domain::Scopes::of(&[Scope::UsersRead])
        )
    );
    authn.authenticate(&issued.token).await.unwrap();
    assert_eq!(
        lookups(),
        before + 1,
        "the second use is answered from the cache"
    );

    ports
        .revoke_access_token(&caller, issued.info.id)
        .await
        .unwrap();
    assert!(
        authn.authenticate(&issued.token).await.is_err(),
        "revoked through this process: refused at once, cache or not"
    );
    // A made-up token of the right shape is looked up and refused.
    let fake = format!("arc_pat_{}", "A".repeat(43));
    assert!(authn.authenticate(&fake).await.is_err());
}
