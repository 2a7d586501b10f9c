//! Second factors on [`Auth`]: TOTP enrolment, recovery codes, the second step of a login, and
//! their removal by an administrator (on [`crate::Users`]).
//!
//! TOTP secrets are sealed with the data key (bound to the account id) before the repository
//! sees them. Every code checked counts in the login lockout of (account, network): an attempt
//! is reserved before the code is looked at and given back when it is right.
use crypto::Verified;
use crypto::mfa::{
    DataKey, check_totp, new_recovery_code, new_totp_secret, recovery_code_hash, totp_enrolment,
};
use domain::{
    AuthSession, Caller, Error, FactorRemoval, FieldErrors, LoginCompletion, LoginOutcome,
    LoginSuccess, MFA_TOKEN_TTL, MfaChallenge, MfaCodeInput, MfaFactors, MfaMethod, MfaPending,
    MfaStatus, MfaVerifyInput, Principal, RECOVERY_CODE_COUNT, RecoveryCodeSet, RecoveryCodes,
    RequestContext, Result, Status, StoredTotp, TotpConfirmation, TotpDisableInput, TotpEnrolment,
    TotpSetup, TotpSetupInput, User, UserCredentials, UserId, client_network,
};

use crate::audit::{Event, FAILURE, SUCCESS};
use crate::auth::Auth;
use crate::core::{Core, ReservedAttempt, chrono_duration};
use crate::hasher::Priority;
use crate::recovery::security_notice;

/// Which second factor a caller proved.
enum Proof {
    Totp,
    RecoveryCode,
    /// A passkey, with its RFC 8176 methods.
    Passkey([&'static str; 2]),
}

impl Proof {
    fn method(&self) -> MfaMethod {
        match self {
            Proof::Totp => MfaMethod::Totp,
            Proof::RecoveryCode => MfaMethod::RecoveryCode,
            Proof::Passkey(_) => MfaMethod::Passkey,
        }
    }

    /// The session's RFC 8176 methods: the password and this factor.
    fn amr(&self) -> Vec<&'static str> {
        match self {
            Proof::Totp | Proof::RecoveryCode => vec!["pwd", "otp", "mfa"],
            Proof::Passkey([key, mfa]) => vec!["pwd", key, mfa],
        }
    }
}

/// The second factor a caller offers.
pub(crate) enum Offered<'a> {
    Code(&'a str),
    RecoveryCode(&'a str),
    Passkey(&'a serde_json::Value),
}

fn unix_seconds(t: domain::Timestamp) -> u64 {
    u64::try_from(t.timestamp()).unwrap_or(0)
}

/// Ten fresh recovery codes and the hashes they are stored under.
fn recovery_set() -> (Vec<String>, Vec<String>) {
    let codes: Vec<String> = (0..RECOVERY_CODE_COUNT)
        .map(|_| new_recovery_code())
        .collect();
    let hashes = codes.iter().filter_map(|c| recovery_code_hash(c)).collect();
    (codes, hashes)
}

impl Core {
    pub(crate) fn data_key(&self) -> Result<&DataKey> {
        self.config
            .mfa
            .data_key
            .0
            .as_deref()
            .ok_or_else(|| Error::internal("no data key (ARCANA_DATA_KEY_FILE) in this process"))
    }

    /// The clear TOTP secret of a stored factor of `user_id`.
    fn totp_secret(&self, user_id: UserId, totp: &StoredTotp) -> Result<Vec<u8>> {
        self.data_key()?
            .open(&totp.secret_enc, &user_id.to_string())
            .map_err(|e| Error::internal(format!("TOTP secret of {user_id}: {e}")))
    }

    /// With `ARCANA_REQUIRE_MFA_FOR_ADMINS`, an admin without a second factor may do nothing
    /// an admin may (`MfaRequired`) until they enrol one.
    pub(crate) async fn require_admin(&self, who: &Principal) -> Result<()> {
        crate::users::require_admin(who)?;
        // A service account has no second factor to have: its secret is its only credential.
        if self.config.mfa.require_for_admins
            && !who.scopes.is_machine()
            && !self.repos.mfa.find_factors(who.user_id).await?.any()
        {
            return Err(Error::MfaRequired);
        }
        Ok(())
    }

    /// The account, its credentials and factors, for a change its owner asks for.
    async fn owner(&self, user_id: UserId) -> Result<(UserCredentials, MfaFactors)> {
        let creds = self
            .repos
            .users
            .find_credentials_by_id(user_id)
            .await?
            .filter(|c| c.user.status == Status::Active)
            .ok_or(Error::Unauthorized)?;
        let factors = self.repos.mfa.find_factors(user_id).await?;
        Ok((creds, factors))
    }

    /// A right answer for the attempt `reserved`: the (account, network) failures are cleared.
    async fn release(&self, user_id: UserId, reserved: ReservedAttempt) -> Result<()> {
        let success = LoginSuccess {
            user_id,
            network: reserved.network,
            attempt: reserved.attempt,
            rehash: None,
            now: self.now(),
        };
        self.repos.users.record_login_success(success).await
    }

    /// A wrong answer for the attempt `reserved` (already counted): audited, with the lock it
    /// set. Answers `error`.
    async fn refused(
        &self,
        ctx: &RequestContext,
        user_id: UserId,
        action: &'static str,
        reason: &'static str,
        reserved: &ReservedAttempt,
        error: Error,
    ) -> Error {
        let mut events = vec![
            Event::new(action, FAILURE)
                .subject(user_id)
                .detail("reason", reason)
                .detail("failures", reserved.attempt),
        ];
        if let Some(until) = reserved.locked_until {
            events.push(
                Event::new("auth.lockout", "locked")
                    .subject(user_id)
                    .detail("failures", reserved.attempt)
                    .detail("locked_until", until.to_rfc3339()),
            );
        }
        self.audit_all(ctx, events).await;
        error
    }

    /// Check the password of `creds`'s account for a change of its factors, counted in the
    /// lockout (a wrong one is `InvalidCredentials`).
    async fn prove_password_for(
        &self,
        ctx: &RequestContext,
        creds: &UserCredentials,
        given: &str,
        action: &'static str,
    ) -> Result<ReservedAttempt> {
        let id = creds.user.id;
        let reserved = self.reserve_attempt(ctx, id).await?;
        let verified = self
            .hasher
            .verify(given, &creds.password_hash, Priority::Other)
            .await?;
        if verified == Verified::Invalid {
            let e = Error::InvalidCredentials;
            return Err(self
                .refused(ctx, id, action, "bad_password", &reserved, e)
                .await);
        }
        Ok(reserved)
    }

    /// Check a TOTP `code` of the confirmed factor (its step is spent: never accepted again),
    /// a recovery code (spent) or a passkey assertion (its challenge spent), counted in the
    /// lockout. Wrong: `InvalidMfaCode`.
    async fn prove_second_factor(
        &self,
        ctx: &RequestContext,
        user_id: UserId,
        factors: &MfaFactors,
        offered: Offered<'_>,
        action: &'static str,
    ) -> Result<(Proof, ReservedAttempt)> {
        let reserved = self.reserve_attempt(ctx, user_id).await?;
        let (proof, reason) = match offered {
            Offered::Code(code) => (Proof::Totp, self.spend_totp(user_id, factors, code).await?),
            Offered::Passkey(assertion) => match self.spend_passkey(user_id, assertion).await? {
                Ok(amr) => (Proof::Passkey(amr), None),
                Err(reason) => (Proof::Passkey(["hwk", "mfa"]), Some(reason)),
            },
            Offered::RecoveryCode(rc) => {
                let spent = match recovery_code_hash(rc) {
                    Some(hash) => {
                        self.repos
                            .mfa
                            .use_recovery_code(user_id, &hash, self.now())
                            .await?
                    }
                    None => false,
                };
                (Proof::RecoveryCode, (!spent).then_some("bad_recovery_code"))
            }
        };
        match reason {
            None => Ok((proof, reserved)),
            Some(reason) => {
                let e = Error::InvalidMfaCode;
                Err(self
                    .refused(ctx, user_id, action, reason, &reserved, e)
                    .await)
            }
        }
    }

    /// A TOTP code of the owner for a change of their factors: proved (its step spent) and
    /// its attempt given back.
    async fn prove_totp(
        &self,
        ctx: &RequestContext,
        user_id: UserId,
        factors: &MfaFactors,
        code: &str,
        action: &'static str,
    ) -> Result<()> {
        let (_, reserved) = self
            .prove_second_factor(ctx, user_id, factors, Offered::Code(code), action)
            .await?;
        self.release(user_id, reserved).await
    }

    /// `None` when `code` is right for the confirmed factor at this moment and its step was
    /// not used yet (it is now); else why not.
    async fn spend_totp(
        &self,
        user_id: UserId,
        factors: &MfaFactors,
        code: &str,
    ) -> Result<Option<&'static str>> {
        let Some(totp) = factors.totp.as_ref().filter(|t| t.confirmed_at.is_some()) else {
            return Ok(Some("no_totp"));
        };
        let secret = self.totp_secret(user_id, totp)?;
        let Some(step) = check_totp(&secret, code, unix_seconds(self.now())) else {
            return Ok(Some("bad_code"));
        };
        let step = i64::try_from(step).map_err(Error::internal)?;
        if self.repos.mfa.use_totp_step(user_id, step).await? {
            Ok(None)
        } else {
            Ok(Some("replayed_code"))
        }
    }

    /// The notice mail of a change of `user`'s factors.
    fn notice(&self, user: &User, change: &str) -> domain::OutgoingMail {
        security_notice(&self.config.recovery, user, change, self.now())
    }

    /// A right password for an account with a second factor: a pending second step, no
    /// session. The attempt reserved for the password stays counted until the second factor
    /// is proved.
    pub(crate) async fn mfa_pending(
        &self,
        ctx: &RequestContext,
        creds: &UserCredentials,
        factors: &MfaFactors,
    ) -> Result<LoginOutcome> {
        let now = self.now();
        let token = crypto::new_refresh_token();
        let challenge = MfaChallenge {
            token_hash: crypto::sha256_hex(&token),
            user_id: creds.user.id,
            network: client_network(ctx.ip.as_deref()),
            credential_version: creds.credential_version,
            created_at: now,
            expires_at: now + chrono_duration(MFA_TOKEN_TTL),
            used_at: None,
        };
        self.repos.mfa.create_mfa_challenge(challenge).await?;
        let methods = factors.methods();
        let event = Event::new("auth.login", "mfa_required")
            .own(creds.user.id)
            .detail(
                "methods",
                methods.iter().map(|m| m.as_str()).collect::<Vec<_>>(),
            );
        self.audit(ctx, event).await;
        let passkey = self.passkey_options(creds.user.id, factors).await?;
        Ok(LoginOutcome::MfaRequired(MfaPending {
            mfa_required: true,
            mfa_token: token,
            methods,
            passkey,
        }))
    }
}

impl Auth {
    pub(crate) async fn mfa_status_of(&self, caller: &Caller) -> Result<MfaStatus> {
        let factors = self.core.repos.mfa.find_factors(caller.who.user_id).await?;
        Ok(MfaStatus {
            totp: factors.totp_enabled(),
            passkeys: factors.passkeys,
            recovery_codes_left: factors.recovery_codes_left,
        })
    }

    pub(crate) async fn setup_totp(
        &self,
        caller: &Caller,
        input: TotpSetupInput,
    ) -> Result<TotpSetup> {
        let (ctx, core) = (&caller.ctx, &self.core);
        if input.current_password.is_empty() {
            return Err(Error::validation("current_password", "must not be empty"));
        }
        let key = core.data_key()?;
        let (creds, factors) = core.owner(caller.who.user_id).await?;
        if factors.totp_enabled() {
            return Err(already_enabled());
        }
        let id = creds.user.id;
        let reserved = core
            .prove_password_for(ctx, &creds, &input.current_password, "mfa.totp_setup")
            .await?;
        core.release(id, reserved).await?;
        let secret = new_totp_secret();
        let account = &creds.user.email;
        let shown = totp_enrolment(&secret, &core.config.recovery.product_name, account)
            .map_err(Error::internal)?;
        let enrolment = TotpEnrolment {
            user_id: id,
            totp: StoredTotp {
                secret_enc: key.seal(&secret, &id.to_string()),
                created_at: core.now(),
                confirmed_at: None,
                last_step: None,
            },
            audit: core.records(ctx, vec![Event::new("mfa.totp_setup", SUCCESS).own(id)]),
        };
        core.repos.mfa.begin_totp(enrolment).await?;
        Ok(TotpSetup {
            secret: shown.secret_base32,
            otpauth_uri: shown.otpauth_uri,
            qr_svg: shown.qr_svg,
        })
    }

    pub(crate) async fn confirm_totp(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes> {
        let (ctx, core) = (&caller.ctx, &self.core);
        let (creds, factors) = core.owner(caller.who.user_id).await?;
        let id = creds.user.id;
        let pending = match &factors.totp {
            Some(t) if t.confirmed_at.is_some() => return Err(already_enabled()),
            Some(t) => t,
            None => {
                return Err(Error::conflict(
                    domain::ConflictKind::NotApplicable,
                    "no TOTP setup is pending: POST /api/v1/auth/mfa/totp/setup first",
                ));
            }
        };
        let reserved = core.reserve_attempt(ctx, id).await?;
        let secret = core.totp_secret(id, pending)?;
        let Some(step) = check_totp(&secret, &input.code, unix_seconds(core.now())) else {
            let e = Error::InvalidMfaCode;
            return Err(core
                .refused(ctx, id, "mfa.totp_enabled", "bad_code", &reserved, e)
                .await);
        };
        core.release(id, reserved).await?;
        let (codes, hashes) = recovery_set();
        let event = Event::new("mfa.totp_enabled", SUCCESS)
            .own(id)
            .detail("recovery_codes", hashes.len());
        let confirmation = TotpConfirmation {
            user_id: id,
            secret_enc: pending.secret_enc.clone(),
            step: i64::try_from(step).map_err(Error::internal)?,
            recovery_code_hashes: hashes,
            audit: core.records(ctx, vec![event]),
            mail: Some(core.notice(
                &creds.user,
                "two-step sign-in with an authenticator app was turned on",
            )),
            now: core.now(),
        };
        if !core.repos.mfa.confirm_totp(confirmation).await? {
            return Err(Error::conflict(
                domain::ConflictKind::ChangedMeanwhile,
                "the TOTP setup changed meanwhile: start again",
            ));
        }
        core.mail_queued.notify_waiters();
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    pub(crate) async fn disable_totp(
        &self,
        caller: &Caller,
        input: TotpDisableInput,
    ) -> Result<()> {
        let (ctx, core) = (&caller.ctx, &self.core);
        let mut errs = FieldErrors::new();
        if input.current_password.is_empty() {
            errs.add("current_password", "must not be empty");
        }
        if input.code.trim().is_empty() {
            errs.add("code", "must not be empty");
        }
        errs.into_result()?;
        let (creds, factors) = core.owner(caller.who.user_id).await?;
        let id = creds.user.id;
        if !factors.totp_enabled() {
            return Err(Error::NotFound);
        }
        let reserved = core
            .prove_password_for(ctx, &creds, &input.current_password, "mfa.totp_disabled")
            .await?;
        core.release(id, reserved).await?;
        core.prove_totp(ctx, id, &factors, &input.code, "mfa.totp_disabled")
            .await?;
        let removal = FactorRemoval {
            user_id: id,
            revoke_sessions: false,
            audit: core.records(ctx, vec![Event::new("mfa.totp_disabled", SUCCESS).own(id)]),
            mail: Some(core.notice(
                &creds.user,
                "two-step sign-in with an authenticator app was turned off",
            )),
            now: core.now(),
        };
        if !core.repos.mfa.remove_factors(removal).await? {
            return Err(Error::NotFound);
        }
        core.mail_queued.notify_waiters();
        Ok(())
    }

    pub(crate) async fn new_recovery_codes(
        &self,
        caller: &Caller,
        input: MfaCodeInput,
    ) -> Result<RecoveryCodes> {
        let (ctx, core) = (&caller.ctx, &self.core);
        if input.code.trim().is_empty() {
            return Err(Error::validation("code", "must not be empty"));
        }
        let (creds, factors) = core.owner(caller.who.user_id).await?;
        let id = creds.user.id;
        if !factors.totp_enabled() {
            return Err(Error::conflict(
                domain::ConflictKind::NotApplicable,
                "recovery codes come with a second factor: enable TOTP first",
            ));
        }
        core.prove_totp(ctx, id, &factors, &input.code, "mfa.recovery_codes")
            .await?;
        let (codes, hashes) = recovery_set();
        let event = Event::new("mfa.recovery_codes", SUCCESS)
            .own(id)
            .detail("count", hashes.len());
        let set = RecoveryCodeSet {
            user_id: id,
            code_hashes: hashes,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        if !core.repos.mfa.replace_recovery_codes(set).await? {
            return Err(Error::conflict(
                domain::ConflictKind::ChangedMeanwhile,
                "TOTP was turned off meanwhile",
            ));
        }
        Ok(RecoveryCodes {
            recovery_codes: codes,
        })
    }

    /// `POST /auth/mfa/verify`: the second step of a login.
    pub(crate) async fn verify_mfa(
        &self,
        ctx: &RequestContext,
        input: MfaVerifyInput,
    ) -> Result<AuthSession> {
        let core = &self.core;
        let code = input.code.as_deref().filter(|c| !c.trim().is_empty());
        let recovery = input
            .recovery_code
            .as_deref()
            .filter(|c| !c.trim().is_empty());
        let mut errs = FieldErrors::new();
        if input.mfa_token.trim().is_empty() {
            errs.add("mfa_token", "must not be empty");
        }
        let offered = match (code, recovery, input.passkey.as_ref()) {
            (Some(c), None, None) => Some(Offered::Code(c)),
            (None, Some(rc), None) => Some(Offered::RecoveryCode(rc)),
            (None, None, Some(p)) => Some(Offered::Passkey(p)),
            (None, None, None) => {
                errs.add("code", "give the code, a recovery_code or a passkey");
                None
            }
            _ => {
                errs.add(
                    "code",
                    "give one of the code, a recovery_code and a passkey",
                );
                None
            }
        };
        errs.into_result()?;
        let offered = offered.ok_or_else(|| Error::validation("code", "is required"))?;
        let now = core.now();
        let token_hash = crypto::sha256_hex(input.mfa_token.trim());
        // Unknown, spent, expired, or presented from another network: all the same answer.
        let challenge = core
            .repos
            .mfa
            .find_mfa_challenge(&token_hash)
            .await?
            .filter(|c| {
                c.used_at.is_none()
                    && c.expires_at > now
                    && c.network == client_network(ctx.ip.as_deref())
            })
            .ok_or(Error::Unauthorized)?;
        let id = challenge.user_id;
        let creds = core
            .repos
            .users
            .find_credentials_by_id(id)
            .await?
            .filter(|c| {
                c.user.status == Status::Active
                    && c.credential_version == challenge.credential_version
            })
            .ok_or(Error::Unauthorized)?;
        let factors = core.repos.mfa.find_factors(id).await?;
        let (proof, reserved) = core
            .prove_second_factor(ctx, id, &factors, offered, "auth.mfa")
            .await?;
        if !core
            .repos
            .mfa
            .spend_mfa_challenge(&token_hash, core.now())
            .await?
        {
            return Err(Error::Unauthorized);
        }
        let now = core.now();
        let amr = proof.amr();
        let (session, refresh_token) =
            core.new_session(ctx, id, creds.credential_version, now, &amr)?;
        let sid = session.id;
        let left = factors
            .recovery_codes_left
            .saturating_sub(u32::from(matches!(proof, Proof::RecoveryCode)));
        let event = Event::new("auth.login", SUCCESS)
            .own(id)
            .detail("mfa", proof.method().as_str())
            .detail("recovery_codes_left", left);
        let completion = LoginCompletion {
            success: LoginSuccess {
                user_id: id,
                network: reserved.network,
                attempt: reserved.attempt,
                rehash: None,
                now,
            },
            session: Some(session),
            audit: core.records(ctx, vec![event]),
        };
        core.repos.users.complete_login(completion).await?;
        let mut user = creds.user;
        user.last_login_at = Some(now);
        let tokens = core.token_pair(&user, sid, refresh_token, now)?;
        Ok(AuthSession { tokens, user })
    }
}

impl crate::Users {
    /// `DELETE /users/{id}/mfa` (admin): every factor of the account goes, its sessions end,
    /// its owner is told by mail.
    pub(crate) async fn remove_factors_of(&self, caller: &Caller, id: UserId) -> Result<()> {
        let core = &self.core;
        core.require_verified(&caller.who).await?;
        core.require_admin(&caller.who).await?;
        let user = core
            .repos
            .users
            .find_by_id(id)
            .await?
            .filter(|u| u.status != Status::Deleted)
            .ok_or(Error::NotFound)?;
        let event = Event::new("mfa.removed", SUCCESS)
            .by(&caller.who)
            .subject(id)
            .detail("sessions_revoked", 0);
        let removal = FactorRemoval {
            user_id: id,
            revoke_sessions: true,
            audit: core.records(&caller.ctx, vec![event]),
            mail: Some(core.notice(
                &user,
                "an administrator removed every second factor and signed out every session",
            )),
            now: core.now(),
        };
        if !core.repos.mfa.remove_factors(removal).await? {
            return Err(Error::NotFound);
        }
        core.mail_queued.notify_waiters();
        Ok(())
    }
}

fn already_enabled() -> Error {
    Error::conflict(
        domain::ConflictKind::NotApplicable,
        "TOTP is already enabled: disable it first (DELETE /api/v1/auth/mfa/totp)",
    )
}
