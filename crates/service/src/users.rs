//! `UserService`: user administration and self-service profile changes.
//!
//! Access rules: an admin may do everything; anyone else may only read, update and change the
//! password of their own account. A non-admin naming another user gets `NotFound` (never
//! `Forbidden`: ids must not be enumerable); a non-admin calling an admin-only operation gets
//! `Forbidden`. The repository refuses, atomically, any change that would leave no active
//! admin; this layer turns that `Conflict` into a message saying so.
use std::sync::Arc;

use async_trait::async_trait;
use crypto::Verified;
use domain::{
    AuditPage, Caller, ConflictKind, CreateUserInput, Email, Error, FieldErrors, Password,
    PasswordChange, PasswordInput, Principal, RawAuditQuery, RawUserQuery, RequestContext, Result,
    RevokeReason, Role, SessionInfo, Status, User, UserChange, UserCredentials, UserDeletion,
    UserId, UserPage, UserPatch, UserService, UserUpdate,
};

use crate::audit::{Event, SUCCESS, mask_email};
use crate::core::{Core, ReservedAttempt, parse_settable_status};
use crate::hasher::Priority;

/// The in-process [`UserService`].
pub struct Users {
    pub(crate) core: Arc<Core>,
}

impl std::fmt::Debug for Users {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Users").finish_non_exhaustive()
    }
}

pub(crate) fn require_admin(who: &Principal) -> Result<()> {
    if who.is_admin() {
        Ok(())
    } else {
        Err(Error::Forbidden("admin role required".into()))
    }
}

impl Core {
    /// Self or admin (with a second factor when admins must have one); anyone else is told the
    /// user does not exist.
    async fn require_self_or_admin(&self, who: &Principal, id: UserId) -> Result<()> {
        if who.user_id == id {
            Ok(())
        } else if who.is_admin() {
            self.require_admin(who).await
        } else {
            Err(Error::NotFound)
        }
    }
}

/// The repository's last-admin refusal, said plainly.
fn last_admin(e: Error, what: &str) -> Error {
    match e {
        Error::Conflict {
            kind: kind @ ConflictKind::LastAdmin,
            ..
        } => Error::conflict(kind, format!("the last active admin cannot be {what}")),
        other => other,
    }
}

impl Users {
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self { core }
    }

    /// Create `username` as an active, verified admin if there is no active admin yet
    /// (`ARCANA_BOOTSTRAP_ADMIN_*`). `Ok(None)` when an admin already exists.
    pub async fn bootstrap_admin(
        &self,
        username: &str,
        email: &str,
        password: &str,
    ) -> Result<Option<User>> {
        if self.core.repos.users.count_active_admins().await? > 0 {
            return Ok(None);
        }
        self.create_admin_via(username, email, password, "bootstrap")
            .await
            .map(Some)
    }

    /// Create an active, verified admin unconditionally (`arcana admin create`).
    pub async fn create_admin(&self, username: &str, email: &str, password: &str) -> Result<User> {
        self.create_admin_via(username, email, password, "cli")
            .await
    }

    async fn create_admin_via(
        &self,
        username: &str,
        email: &str,
        password: &str,
        via: &'static str,
    ) -> Result<User> {
        let core = &self.core;
        let account = Core::validate_account(&CreateUserInput {
            username: username.into(),
            email: email.into(),
            password: password.into(),
            role: Some(Role::Admin.as_str().into()),
            is_verified: Some(true),
            ..CreateUserInput::default()
        })?;
        let ctx = RequestContext::default();
        let user = core
            .create_account(&ctx, account, |u| {
                Event::new("user.created", SUCCESS)
                    .subject(u.id)
                    .detail("role", u.role.as_str())
                    .detail("status", u.status.as_str())
                    .detail("via", via)
            })
            .await?;
        tracing::info!(user_id = %user.id, username = %user.username, via, "admin account created");
        Ok(user)
    }

    /// A user that exists and is not deleted.
    async fn existing(&self, id: UserId) -> Result<User> {
        self.core
            .repos
            .users
            .find_by_id(id)
            .await?
            .filter(|u| u.status != Status::Deleted)
            .ok_or(Error::NotFound)
    }

    /// Prove that `given` is the current password of `creds`'s account (self-service changes
    /// of the password or the email address). Guessing here counts like guessing at login: an
    /// attempt is reserved before the password is hashed and is returned for the change to give
    /// back. A wrong password is 403 (the token is fine, the value well formed).
    async fn prove_password(
        &self,
        ctx: &RequestContext,
        creds: &UserCredentials,
        given: &str,
        action: &'static str,
    ) -> Result<ReservedAttempt> {
        let core = &self.core;
        let id = creds.user.id;
        let reserved = match core.reserve_attempt(ctx, id).await {
            Err(Error::InvalidCredentials) => return Err(Error::NotFound),
            other => other?,
        };
        let verified = core
            .hasher
            .verify(given, &creds.password_hash, Priority::Other)
            .await?;
        if verified == Verified::Invalid {
            core.audit(
                ctx,
                Event::new(action, "failure")
                    .own(id)
                    .detail("reason", "bad_current_password")
                    .detail("failures", reserved.attempt),
            )
            .await;
            return Err(Error::Forbidden("the current password is incorrect".into()));
        }
        Ok(reserved)
    }

    /// One repository command: `update` of a non-deleted user, with `revoke` of their sessions
    /// and the audit `events`, in one transaction. `NotFound` when there is no such user.
    async fn change(
        &self,
        ctx: &RequestContext,
        id: UserId,
        update: UserUpdate,
        revoke: Option<RevokeReason>,
        events: Vec<Event>,
    ) -> Result<User> {
        let core = &self.core;
        let change = UserChange {
            id,
            update,
            revoke,
            audit: core.records(ctx, events),
            now: core.now(),
        };
        core.repos
            .users
            .change_user(change)
            .await?
            .ok_or(Error::NotFound)
    }
}

#[async_trait]
impl UserService for Users {
    async fn ready(&self) -> Result<()> {
        self.core.ready().await
    }

    async fn list_users(&self, caller: &Caller, query: RawUserQuery) -> Result<UserPage> {
        self.core.require_verified(&caller.who).await?;
        self.core.require_admin(&caller.who).await?;
        let query = query.parse()?;
        self.core.repos.users.list(&query).await
    }

    async fn create_user(&self, caller: &Caller, input: CreateUserInput) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let core = &self.core;
        let account = Core::validate_account(&input)?;
        core.create_account(ctx, account, |u| {
            Event::new("user.created", SUCCESS)
                .by(who)
                .subject(u.id)
                .detail("role", u.role.as_str())
                .detail("status", u.status.as_str())
                .detail("is_verified", u.is_verified)
        })
        .await
    }

    async fn get_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        self.core.require_self_or_admin(&caller.who, id).await?;
        self.core
            .repos
            .users
            .find_by_id(id)
            .await?
            .ok_or(Error::NotFound)
    }

    async fn update_user(&self, caller: &Caller, id: UserId, patch: UserPatch) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_self_or_admin(who, id).await?;
        let own = who.user_id == id;
        let mut errs = FieldErrors::new();
        let mut update = UserUpdate::default();
        let fields = patch.touched();
        if patch.current_password.as_deref() == Some("") {
            errs.add("current_password", "must not be empty");
        }
        if let Some(email) = &patch.email {
            update.email = errs
                .check("email", Email::parse(email))
                .map(Email::into_inner);
        }
        patch.validate_profile(&mut errs, &mut update);
        errs.into_result()?;

        let core = &self.core;
        if update.is_empty() {
            return self.existing(id).await;
        }
        // A new address: read the account from storage (never a cache). Changing one's own
        // needs the current password (a stolen access token alone must not be enough to take
        // the account over); the old address is told and can undo the change; the new one is
        // unverified until its owner follows the link mailed to it (the repository decides
        // that against the locked row).
        let mut moved: Option<(String, String)> = None;
        if let Some(email) = update.email.clone() {
            let creds = core
                .repos
                .users
                .find_credentials_by_id(id)
                .await?
                .filter(|c| c.user.status != Status::Deleted)
                .ok_or(Error::NotFound)?;
            if !creds.user.email.eq_ignore_ascii_case(&email) {
                if own {
                    let Some(given) = patch.current_password.as_deref() else {
                        return Err(Error::validation(
                            "current_password",
                            "is required to change your own email address",
                        ));
                    };
                    let reserved = self
                        .prove_password(ctx, &creds, given, "user.updated")
                        .await?;
                    update.release_attempt = Some(reserved.attempt);
                    update.release_network = reserved.network;
                }
                update.email_change = Some(core.email_change(&creds.user, &email)?);
                moved = Some((creds.user.email.clone(), email));
            }
        }
        let mut event = Event::new("user.updated", SUCCESS)
            .by(who)
            .subject(id)
            .detail("fields", fields);
        let mut events = Vec::new();
        if let Some((old, new)) = &moved {
            event = event
                .detail("old_email", mask_email(old))
                .detail("new_email", mask_email(new))
                .detail("by_admin", !own);
            events.push(event);
            events.push(Event::new("auth.email_verification_requested", "sent").subject(id));
        } else {
            events.push(event);
        }
        let user = self.change(ctx, id, update, None, events).await?;
        if moved.is_some() {
            core.mail_queued.notify_waiters();
        }
        Ok(user)
    }

    async fn delete_user(&self, caller: &Caller, id: UserId) -> Result<()> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let core = &self.core;
        let event = Event::new("user.deleted", SUCCESS)
            .by(who)
            .subject(id)
            .detail("sessions_revoked", 0);
        // One transaction: the user, every session of theirs, the audit event.
        let deletion = UserDeletion {
            id,
            audit: core.records(ctx, vec![event]),
            now: core.now(),
        };
        let deleted = core
            .repos
            .users
            .delete_user(deletion)
            .await
            .map_err(|e| last_admin(e, "deleted"))?;
        if !deleted {
            return Err(Error::NotFound);
        }
        Ok(())
    }

    async fn change_password(&self, caller: &Caller, id: UserId, pw: PasswordInput) -> Result<()> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_self_or_admin(who, id).await?;
        let core = &self.core;
        let own = who.user_id == id;
        let mut errs = FieldErrors::new();
        // Changing one's own password always proves knowledge of the current one (admins
        // included): a stolen access token alone must not be enough to take the account over.
        let given = pw.current_password.as_deref();
        if given == Some("") {
            errs.add("current_password", "must not be empty");
        }
        let current = if own {
            if given.is_none() {
                errs.add("current_password", "is required");
            }
            given.filter(|c| !c.is_empty())
        } else {
            None
        };
        let new_password = errs.check("new_password", Password::parse(&pw.new_password));
        errs.into_result()?;
        let new_password = new_password.ok_or_else(|| Error::internal("unreachable"))?;

        let creds = core
            .repos
            .users
            .find_credentials_by_id(id)
            .await?
            .filter(|c| c.user.status != Status::Deleted)
            .ok_or(Error::NotFound)?;

        // Guessing through this endpoint counts like guessing at login, and the attempt is
        // reserved before the current password is hashed.
        let (verified_hash, reserved) = match current {
            Some(current) => {
                let reserved = self
                    .prove_password(ctx, &creds, current, "user.password_changed")
                    .await?;
                (Some(creds.password_hash), Some(reserved))
            }
            None => (None, None),
        };
        let (attempt, attempt_network) = match reserved {
            Some(r) => (Some(r.attempt), r.network),
            None => (None, String::new()),
        };

        let new_hash = core
            .hasher
            .hash(new_password.expose(), Priority::Other)
            .await?;
        // One transaction: the new hash, a new credential version (a session opened by a login
        // that verified the old password dies with it), every other session revoked, and the
        // audit event. One's own change keeps the session that made it.
        let event = Event::new("user.password_changed", SUCCESS)
            .by(who)
            .subject(id)
            .detail("by_admin", !own)
            .detail("sessions_revoked", 0);
        core.repos
            .users
            .change_password(PasswordChange {
                user_id: id,
                new_hash,
                verified_hash,
                attempt,
                attempt_network,
                keep_session: own.then_some(who.session_id),
                now: core.now(),
                audit: core.records(ctx, vec![event]),
            })
            .await?
            .ok_or(Error::NotFound)?;
        Ok(())
    }

    async fn verify_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let update = UserUpdate {
            is_verified: Some(true),
            ..UserUpdate::default()
        };
        let event = Event::new("user.verified", SUCCESS).by(who).subject(id);
        self.change(ctx, id, update, None, vec![event]).await
    }

    async fn unlock_user(&self, caller: &Caller, id: UserId) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let update = UserUpdate {
            clear_lockout: true,
            ..UserUpdate::default()
        };
        let event = Event::new("user.unlocked", SUCCESS).by(who).subject(id);
        self.change(ctx, id, update, None, vec![event]).await
    }

    async fn list_user_sessions(&self, caller: &Caller, id: UserId) -> Result<Vec<SessionInfo>> {
        self.core.require_verified(&caller.who).await?;
        self.core.require_admin(&caller.who).await?;
        // A user that does not exist (or was deleted) is not found, not sessionless.
        if self.core.repos.users.find_by_id(id).await?.is_none() {
            return Err(Error::NotFound);
        }
        self.core.live_sessions(id, &caller.who).await
    }

    async fn set_status(&self, caller: &Caller, id: UserId, status: &str) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let status = parse_settable_status(status).map_err(|m| Error::validation("status", m))?;
        let update = UserUpdate {
            status: Some(status),
            ..UserUpdate::default()
        };
        // `from` and `sessions_revoked` are filled in by the repository's transaction.
        let event = Event::new("user.status_changed", SUCCESS)
            .by(who)
            .subject(id)
            .detail("from", "")
            .detail("to", status.as_str())
            .detail("sessions_revoked", 0);
        let revoke = (status != Status::Active).then_some(RevokeReason::StatusChanged);
        self.change(ctx, id, update, revoke, vec![event])
            .await
            .map_err(|e| last_admin(e, "deactivated or suspended"))
    }

    async fn remove_mfa(&self, caller: &Caller, id: UserId) -> Result<()> {
        self.remove_factors_of(caller, id).await
    }

    async fn set_role(&self, caller: &Caller, id: UserId, role: &str) -> Result<User> {
        self.core.require_verified(&caller.who).await?;
        let (ctx, who) = (&caller.ctx, &caller.who);
        self.core.require_admin(who).await?;
        let role: Role = role
            .parse()
            .map_err(|m: String| Error::validation("role", m))?;
        let update = UserUpdate {
            role: Some(role),
            ..UserUpdate::default()
        };
        let event = Event::new("user.role_changed", SUCCESS)
            .by(who)
            .subject(id)
            .detail("from", "")
            .detail("to", role.as_str())
            .detail("sessions_revoked", 0);
        // The role is baked into access tokens, so they end, in the same transaction.
        self.change(
            ctx,
            id,
            update,
            Some(RevokeReason::RoleChanged),
            vec![event],
        )
        .await
        .map_err(|e| last_admin(e, "demoted"))
    }

    async fn list_audit_events(&self, caller: &Caller, query: RawAuditQuery) -> Result<AuditPage> {
        self.core.require_verified(&caller.who).await?;
        // Anyone may read the events of their own account (the account console's "recent
        // security events"); what others did to it comes without their id, address or request.
        let me = caller.who.user_id;
        let own = query.user_id.as_deref().map(str::trim) == Some(me.to_string().as_str());
        let whole = if caller.who.is_admin() || !own {
            match self.core.require_admin(&caller.who).await {
                Ok(()) => true,
                Err(e) if !own => return Err(e),
                Err(_) => false,
            }
        } else {
            false
        };
        let query = query.parse()?;
        let mut page = self.core.repos.audit.list_events(&query).await?;
        if !whole {
            for e in page.items.iter_mut().filter(|e| e.actor_id != Some(me)) {
                e.actor_id = None;
                e.ip = None;
                e.request_id = None;
            }
        }
        Ok(page)
    }
}
