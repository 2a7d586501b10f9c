//! `AuthService`: registration, login with lockout, refresh-token rotation with reuse
//! detection, logout and the caller's sessions.
use std::sync::Arc;

use async_trait::async_trait;
use crypto::Verified;
use domain::{
    AuthService, AuthSession, Caller, CreateUserInput, Error, FieldErrors, ForgotPasswordInput,
    LoginBegun, LoginCompletion, LoginInput, LoginOutcome, LoginStart, LoginSuccess, MfaCodeInput,
    MfaStatus, MfaVerifyInput, PasskeyChallenge, PasskeyInfo, PasskeyLoginInput,
    PasskeyRegistrationInput, PasskeyRename, Principal, RecoveryCodes, RegisterInput, Rehash,
    RequestContext, ResetPasswordInput, Result, RevokeReason, Rotation, SessionEnd, SessionId,
    SessionInfo, SessionOwner, Status, Timestamp, TotpDisableInput, TotpSetup, TotpSetupInput,
    User, UserId, UserRevocation, VerifyEmailInput, client_network,
};

use crate::audit::{Event, FAILURE, SUCCESS};
use crate::core::{Core, chrono_duration, new_refresh_token, refresh_token_session, retry_after};
use crate::hasher::Priority;

/// The in-process [`AuthService`].
pub struct Auth {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auth").finish_non_exhaustive()
    }
}

impl Auth {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Rotate the refresh token `prefix` + `<session>.<secret>` of a live session, with reuse
    /// detection, and let `mint` answer for the rotated session (its owner, id, the next
    /// refresh token and the instant). The prefix tells token families apart: the API's have
    /// none, those of OpenID Connect clients `oidc.`, so neither is accepted for the other.
    pub(crate) async fn rotate_refresh<T>(
        &self,
        ctx: &RequestContext,
        refresh_token: &str,
        prefix: &str,
        mint: impl Fn(&SessionOwner, SessionId, String, Timestamp) -> Result<T>,
    ) -> Result<T> {
        let core = &self.core;
        let token = refresh_token.trim();
        let sid = token
            .strip_prefix(prefix)
            .and_then(refresh_token_session)
            .ok_or(Error::Unauthorized)?;
        let presented = crypto::sha256_hex(token);
        let grace = chrono_duration(core.config.refresh_reuse_grace);
        let swap = |expected: String, now| {
            let next = format!("{prefix}{}", new_refresh_token(sid));
            let rotation = Rotation {
                id: sid,
                expected_hash: expected,
                new_hash: crypto::sha256_hex(&next),
                now,
            };
            let mint = &mint;
            async move {
                let owner = core.repos.sessions.rotate(rotation).await?;
                match owner {
                    Some(owner) => Ok::<_, Error>(Some(mint(&owner, sid, next, now)?)),
                    None => Ok(None),
                }
            }
        };
        // An unverified account's session is not renewed while verification is required: asked
        // before the swap, so the same token works once the address is verified.
        if core.config.recovery.require_verified_email {
            let owner = core.repos.sessions.find_with_owner(sid).await?;
            if let Some(owner) = owner.filter(|o| o.is_live(core.now()))
                && !owner.user.is_verified
                && crypto::tokens::constant_time_eq(&presented, &owner.session.refresh_token_hash)
            {
                return Err(Error::EmailNotVerified);
            }
        }
        // The usual case, in one repository call: the token presented is the current one of a
        // live session, swapped for a new one.
        if let Some(done) = swap(presented.clone(), core.now()).await? {
            return Ok(done);
        }
        // Otherwise find out why: not live, an earlier token of this family (reuse, or a retry
        // within the grace), a forgery, or a concurrent rotation that got in first.
        for _ in 0..3 {
            let now = core.now();
            let owner = core
                .repos
                .sessions
                .find_with_owner(sid)
                .await?
                .ok_or(Error::Unauthorized)?;
            let session = &owner.session;
            if !session.is_live(now) {
                return Err(Error::Unauthorized);
            }
            let current = crypto::tokens::constant_time_eq(&presented, &session.refresh_token_hash);
            if !current {
                let previous = session
                    .previous_refresh_hash
                    .as_deref()
                    .is_some_and(|p| crypto::tokens::constant_time_eq(&presented, p));
                if !previous {
                    // Never issued for this session (a forgery, or an older generation): no
                    // proof of theft, so nothing changes.
                    return Err(Error::Unauthorized);
                }
                let in_grace = grace > chrono::Duration::zero()
                    && session.rotated_at.is_some_and(|t| now - t <= grace);
                if !in_grace {
                    return Err(self
                        .refresh_reuse(ctx, sid, session.user_id, "rotated_token_presented")
                        .await?);
                }
            }
            // Opened with credentials that have changed since, or the owner is not active.
            if !owner.is_live(now) {
                return Err(Error::Unauthorized);
            }
            if !current {
                tracing::info!(session_id = %sid, "refresh token reused within the grace: accepted once more");
                core.audit(
                    ctx,
                    Event::new("auth.refresh_reuse", "grace_accepted")
                        .subject(session.user_id)
                        .detail("session_id", sid.to_string()),
                )
                .await;
            }
            // Rotating from the current hash: in the grace case the displaced current token
            // becomes the previous one, so the just-rotated token is accepted only once.
            if let Some(done) = swap(session.refresh_token_hash.clone(), now).await? {
                return Ok(done);
            }
        }
        Err(Error::Unauthorized)
    }

    /// A wrong password for a known account (already counted by its reservation).
    async fn wrong_password(
        &self,
        ctx: &RequestContext,
        id: UserId,
        attempt: u32,
        locked_until: Option<Timestamp>,
    ) -> Error {
        let core = &self.core;
        let mut events = vec![
            Event::new("auth.login", FAILURE)
                .subject(id)
                .detail("reason", "bad_password")
                .detail("failures", attempt),
        ];
        if let Some(until) = locked_until {
            events.push(
                Event::new("auth.lockout", "locked")
                    .subject(id)
                    .detail("failures", attempt)
                    .detail("locked_until", until.to_rfc3339())
                    .detail("lock_seconds", retry_after(until, core.now()).as_secs()),
            );
        }
        core.audit_all(ctx, events).await;
        Error::InvalidCredentials
    }

    /// Someone presented a refresh token of this family that is no longer current: an older,
    /// already-rotated one (theft, or a replayed copy) or the loser of a concurrent rotation.
    /// The whole family dies; the legitimate holder signs in again.
    async fn refresh_reuse(
        &self,
        ctx: &RequestContext,
        sid: SessionId,
        user_id: UserId,
        reason: &'static str,
    ) -> Result<Error> {
        let core = &self.core;
        let event = Event::new("auth.refresh_reuse", FAILURE)
            .subject(user_id)
            .detail("session_id", sid.to_string())
            .detail("reason", reason);
        let end = SessionEnd {
            id: sid,
            user_id: Some(user_id),
            reason: RevokeReason::RefreshReuse,
            live_only: false,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        core.repos.sessions.end_session(end).await?;
        tracing::warn!(session_id = %sid, %user_id, reason, "refresh token reuse: session revoked");
        Ok(Error::Unauthorized)
    }
}

fn status_reason(status: Status) -> Option<&'static str> {
    match status {
        Status::Active => None,
        Status::Inactive => Some("account inactive"),
        Status::Suspended => Some("account suspended"),
        Status::Deleted => Some("account deleted"),
    }
}

#[async_trait]
impl AuthService for Auth {
    async fn ready(&self) -> Result<()> {
        self.core.ready().await
    }

    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession> {
        let core = &self.core;
        let account = Core::validate_account(&CreateUserInput {
            username: input.username,
            email: input.email,
            password: input.password,
            first_name: input.first_name,
            last_name: input.last_name,
            ..CreateUserInput::default()
        })?;
        let user = core
            .create_account(ctx, account, |u| {
                Event::new("auth.register", SUCCESS).own(u.id)
            })
            .await?;
        core.send_verification(ctx, &user).await;
        // A new account is at credential version 0.
        let tokens = core.open_session(ctx, &user, 0).await?;
        Ok(AuthSession { tokens, user })
    }

    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<LoginOutcome> {
        let core = &self.core;
        let login = input.username_or_email.trim();
        let mut errs = FieldErrors::new();
        if login.is_empty() {
            errs.add("username_or_email", "must not be empty");
        }
        if input.password.is_empty() {
            errs.add("password", "must not be empty");
        }
        errs.into_result()?;

        // One call: the account and an attempt reserved for it, before the password is looked
        // at (a burst cannot get more passwords evaluated than the lockout allows).
        let now = core.now();
        let network = client_network(ctx.ip.as_deref());
        let start = LoginStart {
            login: login.to_owned(),
            network: network.clone(),
            policy: core.config.lockout,
            now,
        };
        let Some(LoginBegun {
            credentials: creds,
            attempt,
            factors,
        }) = core.repos.users.begin_login(start).await?
        else {
            // Same work as a wrong password, so timing does not reveal who has an account.
            let _ = core
                .hasher
                .verify(&input.password, &core.dummy_hash, Priority::Login)
                .await?;
            core.audit(
                ctx,
                Event::new("auth.login", FAILURE).detail("reason", "unknown_user"),
            )
            .await;
            return Err(Error::InvalidCredentials);
        };
        let id = creds.user.id;
        let reserved = match core.admit(attempt, network, now).await {
            Err(locked @ Error::Locked { .. }) => {
                core.audit(
                    ctx,
                    Event::new("auth.login", FAILURE)
                        .subject(id)
                        .detail("reason", "locked"),
                )
                .await;
                return Err(locked);
            }
            other => other?,
        };
        let needs_rehash = match core
            .hasher
            .verify(&input.password, &creds.password_hash, Priority::Login)
            .await?
        {
            Verified::Invalid => {
                return Err(self
                    .wrong_password(ctx, id, reserved.attempt, reserved.locked_until)
                    .await);
            }
            Verified::Valid { needs_rehash } => needs_rehash,
        };

        // Only now may the answer reveal the account's status. (The attempt stays counted: a
        // refused login is no success.)
        if let Some(reason) = status_reason(creds.user.status) {
            core.audit(
                ctx,
                Event::new("auth.login", FAILURE)
                    .subject(id)
                    .detail("reason", "status")
                    .detail("status", creds.user.status.as_str()),
            )
            .await;
            return Err(Error::Forbidden(reason.into()));
        }
        if core.config.recovery.require_verified_email && !creds.user.is_verified {
            core.audit(
                ctx,
                Event::new("auth.login", FAILURE)
                    .subject(id)
                    .detail("reason", "email_not_verified"),
            )
            .await;
            return Err(Error::EmailNotVerified);
        }
        // A second factor: no session yet (and the attempt stays counted until it is proved).
        if factors.any() {
            return core.mfa_pending(ctx, &creds, &factors).await;
        }

        let rehash = if needs_rehash {
            match core.hasher.hash(&input.password, Priority::Other).await {
                // Applied only over the hash just verified: a password change meanwhile wins.
                Ok(new_hash) => Some(Rehash {
                    verified_hash: creds.password_hash.clone(),
                    new_hash,
                }),
                // Upgrading the hash is an optimisation: never fail a login for it.
                Err(e) => {
                    tracing::warn!(error = %e, user_id = %id, "password re-hash skipped");
                    None
                }
            }
        } else {
            None
        };
        let rehashed = rehash.is_some();
        let now = core.now();
        let (session, refresh_token) =
            core.new_session(ctx, id, creds.credential_version, now, &["pwd"])?;
        let sid = session.id;
        let event = Event::new("auth.login", SUCCESS)
            .own(id)
            .detail("rehashed", rehashed);
        // One transaction: the success, the session (refused when the password changed since
        // it was verified: a racing change) and the audit event.
        let completion = LoginCompletion {
            success: LoginSuccess {
                user_id: id,
                network: reserved.network,
                attempt: reserved.attempt,
                rehash,
                now,
            },
            session: Some(session),
            audit: core.records(ctx, vec![event]),
        };
        core.repos.users.complete_login(completion).await?;
        let mut user = creds.user;
        user.last_login_at = Some(now);
        let tokens = core.token_pair(&user, sid, refresh_token, now)?;
        Ok(LoginOutcome::Session(Box::new(AuthSession {
            tokens,
            user,
        })))
    }

    async fn mfa_verify(&self, ctx: &RequestContext, input: MfaVerifyInput) -> Result<AuthSession> {
        self.verify_mfa(ctx, input).await
    }

    async fn mfa_status(&self, caller: &Caller) -> Result<MfaStatus> {
        self.mfa_status_of(caller).await
    }

    async fn totp_setup(&self, caller: &Caller, input: TotpSetupInput) -> Result<TotpSetup> {
        self.setup_totp(caller, input).await
    }

    async fn totp_confirm(&self, caller: &Caller, input: MfaCodeInput) -> Result<RecoveryCodes> {
        self.confirm_totp(caller, input).await
    }

    async fn totp_disable(&self, caller: &Caller, input: TotpDisableInput) -> Result<()> {
        self.disable_totp(caller, input).await
    }

    async fn regenerate_recovery_codes(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes> {
        self.new_recovery_codes(caller, input).await
    }

    async fn passkey_register_start(&self, caller: &Caller) -> Result<PasskeyChallenge> {
        self.start_registration(caller).await
    }

    async fn passkey_register_finish(
        &self,
        caller: &Caller,
        input: PasskeyRegistrationInput,
    ) -> Result<PasskeyInfo> {
        self.finish_registration(caller, input).await
    }

    async fn list_passkeys(&self, caller: &Caller) -> Result<Vec<PasskeyInfo>> {
        self.passkeys_of(caller).await
    }

    async fn rename_passkey(
        &self,
        caller: &Caller,
        id: uuid::Uuid,
        input: PasskeyRename,
    ) -> Result<PasskeyInfo> {
        self.rename(caller, id, input).await
    }

    async fn delete_passkey(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        self.delete(caller, id).await
    }

    async fn passkey_login_start(&self, ctx: &RequestContext) -> Result<PasskeyChallenge> {
        self.start_passwordless(ctx).await
    }

    async fn passkey_login_finish(
        &self,
        ctx: &RequestContext,
        input: PasskeyLoginInput,
    ) -> Result<AuthSession> {
        self.finish_passwordless(ctx, input).await
    }

    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession> {
        let core = &self.core;
        self.rotate_refresh(ctx, refresh_token, "", |owner, sid, next, now| {
            Ok(AuthSession {
                tokens: core.token_pair(&owner.user, sid, next, now)?,
                user: owner.user.clone(),
            })
        })
        .await
    }

    async fn logout(&self, caller: &Caller) -> Result<()> {
        let (ctx, who) = (&caller.ctx, &caller.who);
        let core = &self.core;
        let event = Event::new("auth.logout", SUCCESS)
            .own(who.user_id)
            .detail("session_id", who.session_id.to_string());
        let end = SessionEnd {
            id: who.session_id,
            user_id: Some(who.user_id),
            reason: RevokeReason::Logout,
            live_only: false,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        if core.repos.sessions.end_session(end).await? {
            Ok(())
        } else {
            Err(Error::Unauthorized)
        }
    }

    async fn logout_all(&self, caller: &Caller) -> Result<u64> {
        let (ctx, who) = (&caller.ctx, &caller.who);
        let core = &self.core;
        let event = Event::new("auth.logout_all", SUCCESS)
            .own(who.user_id)
            .detail("revoked_count", 0);
        core.repos
            .sessions
            .revoke_all_for_user(UserRevocation {
                user_id: who.user_id,
                reason: RevokeReason::LogoutAll,
                now: core.now(),
                keep: None,
                audit: core.records(ctx, vec![event]),
            })
            .await
    }

    async fn me(&self, caller: &Caller) -> Result<User> {
        let users = &self.core.repos.users;
        users
            .find_by_id(caller.who.user_id)
            .await?
            .filter(|u| u.status != Status::Deleted)
            .ok_or(Error::Unauthorized)
    }

    async fn list_sessions(&self, caller: &Caller) -> Result<Vec<SessionInfo>> {
        let (who, core) = (&caller.who, &self.core);
        core.require_verified(who).await?;
        core.live_sessions(who.user_id, who).await
    }

    async fn revoke_session(&self, caller: &Caller, id: SessionId) -> Result<()> {
        let (ctx, who) = (&caller.ctx, &caller.who);
        let core = &self.core;
        let event = Event::new("auth.session_revoked", SUCCESS)
            .own(who.user_id)
            .detail("session_id", id.to_string());
        // Someone else's session and a session that does not exist look the same: 404.
        let end = SessionEnd {
            id,
            user_id: Some(who.user_id),
            reason: RevokeReason::RevokedByUser,
            live_only: true,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        if core.repos.sessions.end_session(end).await? {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    async fn session_live(&self, who: &Principal) -> Result<bool> {
        let now = self.core.now();
        Ok(self
            .core
            .repos
            .sessions
            .find_with_owner(who.session_id)
            .await?
            .is_some_and(|o| {
                o.session.user_id == who.user_id && o.user.role == who.role && o.is_live(now)
            }))
    }

    async fn create_access_token(
        &self,
        caller: &Caller,
        input: domain::AccessTokenInput,
    ) -> Result<domain::IssuedAccessToken> {
        self.create_token(caller, input).await
    }

    async fn list_access_tokens(&self, caller: &Caller) -> Result<Vec<domain::AccessTokenInfo>> {
        self.tokens_of(caller).await
    }

    async fn revoke_access_token(&self, caller: &Caller, id: uuid::Uuid) -> Result<()> {
        self.revoke_token(caller, id).await
    }

    async fn token_principal(&self, token: &domain::AccessToken) -> Result<Option<Principal>> {
        self.principal_of(token).await
    }

    async fn forgot_password(
        &self,
        ctx: &RequestContext,
        input: ForgotPasswordInput,
    ) -> Result<()> {
        self.forgot(ctx, input).await
    }

    async fn reset_password(
        &self,
        ctx: &RequestContext,
        input: ResetPasswordInput,
    ) -> Result<UserId> {
        self.reset(ctx, input).await
    }

    async fn verify_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        self.verify(ctx, input).await
    }

    async fn resend_verification(&self, caller: &Caller) -> Result<()> {
        self.resend(caller).await
    }

    async fn revert_email(&self, ctx: &RequestContext, input: VerifyEmailInput) -> Result<User> {
        self.revert(ctx, input).await
    }
}
