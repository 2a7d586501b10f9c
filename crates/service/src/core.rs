//! What `Auth` and `Users` share: ports, config, the hash pool, the token issuer, the clock,
//! and the few operations both need (validate and create an account, open a session, audit).
use std::sync::Arc;
use std::time::Duration;

use crypto::TokenIssuer;
use domain::{
    AttemptReservation, AuditEvent, CreateUserInput, Email, Error, FieldErrors,
    KNOWN_NETWORK_WINDOW, LoginAttempt, NewSession, NewUser, Password, Principal, RequestContext,
    Result, Role, SessionId, SessionInfo, Status, Timestamp, TokenPair, User, UserId, Username,
    client_network, parse_avatar_url, parse_name, parse_phone,
};

use crate::audit::Event;
use crate::clock::Clock;
use crate::hasher::{Hasher, Priority};
use crate::{Repositories, ServiceConfig};

pub(crate) struct Core {
    pub(crate) repos: Repositories,
    pub(crate) config: ServiceConfig,
    pub(crate) hasher: Arc<Hasher>,
    /// `None` in a process that issues no tokens (no signing key).
    issuer: Option<TokenIssuer>,
    clock: Arc<dyn Clock>,
    /// A hash of a random password at the current cost: unknown users are verified against it
    /// so that "no such user" takes as long as "wrong password".
    pub(crate) dummy_hash: String,
    /// The read caches in front of `repos.users`: writes made through other ports (token
    /// redemption) drop the user's entry there.
    caches: Vec<Arc<dyn crate::cache::UserCache>>,
    pub(crate) mail_queued: Arc<tokio::sync::Notify>,
    /// The WebAuthn relying party (`None`: `ARCANA_PUBLIC_URL` cannot be one).
    pub(crate) webauthn: Option<Arc<webauthn_rs::prelude::Webauthn>>,
}

/// A login attempt taken for one (account, network): hand `attempt` and `network` back with
/// the success.
pub(crate) struct ReservedAttempt {
    pub(crate) attempt: u32,
    /// Set when this attempt used the network's last one and locked it.
    pub(crate) locked_until: Option<Timestamp>,
    pub(crate) network: String,
}

/// A new account whose every field passed validation.
pub(crate) struct ValidAccount {
    username: String,
    email: String,
    password: Password,
    first_name: Option<String>,
    last_name: Option<String>,
    phone: Option<String>,
    avatar_url: Option<String>,
    role: Role,
    status: Status,
    is_verified: bool,
}

impl Core {
    pub(crate) fn new(
        repos: Repositories,
        config: ServiceConfig,
        hasher: Arc<Hasher>,
        issuer: Option<TokenIssuer>,
        clock: Arc<dyn Clock>,
        caches: Vec<Arc<dyn crate::cache::UserCache>>,
        mail_queued: Arc<tokio::sync::Notify>,
    ) -> Self {
        let dummy_hash =
            crypto::hash_password(&crypto::new_refresh_token(), config.password_iterations);
        let webauthn = crate::passkeys::relying_party(
            &config.recovery.public_url,
            &config.recovery.product_name,
        )
        .map(Arc::new);
        Self {
            repos,
            config,
            hasher,
            issuer,
            clock,
            dummy_hash,
            caches,
            mail_queued,
            webauthn,
        }
    }

    pub(crate) fn now(&self) -> Timestamp {
        self.clock.now()
    }

    pub(crate) async fn ready(&self) -> Result<()> {
        self.repos.users.ping().await
    }

    /// Record an audit event that records no change of its own (a refused attempt); a failure
    /// is logged, never returned. A change's events travel with its command instead.
    pub(crate) async fn audit(&self, ctx: &RequestContext, event: Event) {
        self.audit_all(ctx, vec![event]).await;
    }

    /// [`Self::audit`] of several events, in one call.
    pub(crate) async fn audit_all(&self, ctx: &RequestContext, events: Vec<Event>) {
        let records = self.records(ctx, events);
        let action = records.first().map(|r| r.r#type.clone());
        if let Err(e) = self.repos.audit.record_all(records).await {
            tracing::error!(
                error = %e,
                action,
                request_id = ctx.request_id.as_deref(),
                "audit event could not be written"
            );
        }
    }

    /// The events as written, at this moment, for a command to carry.
    pub(crate) fn records(&self, ctx: &RequestContext, events: Vec<Event>) -> Vec<AuditEvent> {
        let now = self.now();
        events
            .into_iter()
            .map(|e| e.into_record(ctx, now))
            .collect()
    }

    /// With `ARCANA_REQUIRE_VERIFIED_EMAIL`, a session of an account whose address is not
    /// verified may only read the account, ask for and follow a verification link, and end
    /// sessions: everything else is `EmailNotVerified`. Read from storage, never a cache. A
    /// service account has no address to verify.
    pub(crate) async fn require_verified(&self, who: &Principal) -> Result<()> {
        if !self.config.recovery.require_verified_email || who.scopes.is_machine() {
            return Ok(());
        }
        let user_id = who.user_id;
        let verified = self
            .repos
            .users
            .find_credentials_by_id(user_id)
            .await?
            .is_some_and(|c| c.user.is_verified);
        if verified {
            Ok(())
        } else {
            Err(Error::EmailNotVerified)
        }
    }

    /// Reserve one login attempt for `id` from the caller's network before a password of it is
    /// hashed (login, and the current password of a password or email change): the attempt
    /// and the lock it set, or `Error::Locked` when none is left for that network (nothing may
    /// be evaluated). Failures from many networks slow the account down: the capped
    /// [`domain::LockoutPolicy::slowdown`] is waited here, except from a network the owner
    /// signed in from within [`domain::KNOWN_NETWORK_WINDOW`].
    pub(crate) async fn reserve_attempt(
        &self,
        ctx: &RequestContext,
        id: UserId,
    ) -> Result<ReservedAttempt> {
        let now = self.now();
        let network = client_network(ctx.ip.as_deref());
        let reservation = AttemptReservation {
            user_id: id,
            network: network.clone(),
            policy: self.config.lockout,
            now,
        };
        let attempt = self.repos.users.reserve_login_attempt(reservation).await?;
        self.admit(attempt, network, now).await
    }

    /// What a reservation made at `now` for `network` allows: the attempt (after the
    /// slowdown), or `Error::Locked`.
    pub(crate) async fn admit(
        &self,
        attempt: LoginAttempt,
        network: String,
        now: Timestamp,
    ) -> Result<ReservedAttempt> {
        match attempt {
            LoginAttempt::Reserved {
                attempt,
                locked_until,
                account_failures,
                last_success,
            } => {
                let known = last_success.is_some_and(|t| {
                    now.signed_duration_since(t) < chrono_duration(KNOWN_NETWORK_WINDOW)
                });
                let delay = self.config.lockout.slowdown(account_failures);
                if !known && !delay.is_zero() {
                    self.clock.pause(delay).await;
                }
                Ok(ReservedAttempt {
                    attempt,
                    locked_until,
                    network,
                })
            }
            LoginAttempt::Locked { locked_until } => Err(Error::Locked {
                retry_after: retry_after(locked_until, now),
            }),
            // Deleted between the lookup and the reservation.
            LoginAttempt::UnknownUser => Err(Error::InvalidCredentials),
        }
    }

    /// Validate every field of a new account, collecting all problems. Role defaults to
    /// `user`, status to `active`, verification to `false`.
    pub(crate) fn validate_account(input: &CreateUserInput) -> Result<ValidAccount> {
        let mut errs = FieldErrors::new();
        let username = errs.check("username", Username::parse(&input.username));
        let email = errs.check("email", Email::parse(&input.email));
        let password = errs.check("password", Password::parse(&input.password));
        let first_name = errs.check("first_name", parse_name(input.first_name.as_deref()));
        let last_name = errs.check("last_name", parse_name(input.last_name.as_deref()));
        let phone = errs.check("phone", parse_phone(input.phone.as_deref()));
        let avatar_url = errs.check("avatar_url", parse_avatar_url(input.avatar_url.as_deref()));
        let role = match input.role.as_deref() {
            None => Some(Role::User),
            Some(r) => errs.check("role", r.parse::<Role>()),
        };
        let status = match input.status.as_deref() {
            None => Some(Status::Active),
            Some(s) => errs.check("status", parse_settable_status(s)),
        };
        match (
            username, email, password, first_name, last_name, phone, avatar_url, role, status,
        ) {
            (
                Some(username),
                Some(email),
                Some(password),
                Some(first_name),
                Some(last_name),
                Some(phone),
                Some(avatar_url),
                Some(role),
                Some(status),
            ) if errs.is_empty() => Ok(ValidAccount {
                username: username.into_inner(),
                email: email.into_inner(),
                password,
                first_name,
                last_name,
                phone,
                avatar_url,
                role,
                status,
                is_verified: input.is_verified.unwrap_or(false),
            }),
            _ => Err(Error::Validation(errs)),
        }
    }

    /// A user changed through a port other than `repos.users`: drop it from the read cache.
    pub(crate) async fn forget_user(&self, id: UserId) {
        for c in &self.caches {
            c.forget(id).await;
        }
    }

    /// Hash the password (on the pool) and insert the user with the audit event `audit` makes
    /// of it, in one transaction. Duplicates are the repository's `Error::Conflict`.
    pub(crate) async fn create_account(
        &self,
        ctx: &RequestContext,
        account: ValidAccount,
        audit: impl FnOnce(&NewUser) -> Event,
    ) -> Result<User> {
        let password_hash = self
            .hasher
            .hash(account.password.expose(), Priority::Other)
            .await?;
        let user = NewUser {
            id: uuid::Uuid::new_v4(),
            username: account.username,
            email: account.email,
            password_hash,
            first_name: account.first_name,
            last_name: account.last_name,
            phone: account.phone,
            avatar_url: account.avatar_url,
            role: account.role,
            status: account.status,
            is_verified: account.is_verified,
            created_at: self.now(),
        };
        let events = self.records(ctx, vec![audit(&user)]);
        self.repos.users.create_user(user, events).await
    }

    /// A new session (refresh-token family) for `user_id`, whose password was verified at
    /// `credential_version`, and its first refresh token: for the repository to open. `amr`:
    /// how the login was authenticated, RFC 8176 values (`&["pwd"]`, `&["pwd", "otp"]`).
    pub(crate) fn new_session(
        &self,
        ctx: &RequestContext,
        user_id: UserId,
        credential_version: u32,
        now: Timestamp,
        amr: &[&str],
    ) -> Result<(NewSession, String)> {
        let expires_at = now
            .checked_add_signed(chrono_duration(self.config.refresh_ttl))
            .ok_or_else(|| Error::internal("refresh TTL out of range"))?;
        let id = uuid::Uuid::new_v4();
        let refresh_token = new_refresh_token(id);
        let session = NewSession {
            id,
            user_id,
            credential_version,
            refresh_token_hash: crypto::sha256_hex(&refresh_token),
            // Already cut to `domain::MAX_USER_AGENT` where the request came in.
            user_agent: ctx.user_agent.clone(),
            ip: ctx.ip.as_deref().map(|s| truncate(s, 64)),
            created_at: now,
            expires_at,
            max_live: self.config.max_sessions_per_user,
            amr: amr.iter().map(|&m| m.to_owned()).collect(),
        };
        Ok((session, refresh_token))
    }

    /// Start a new session for `user`, whose password was verified at `credential_version`,
    /// and return its first token pair. `Error::InvalidCredentials` when the password changed
    /// since.
    pub(crate) async fn open_session(
        &self,
        ctx: &RequestContext,
        user: &User,
        credential_version: u32,
    ) -> Result<TokenPair> {
        let now = self.now();
        let (session, refresh_token) =
            self.new_session(ctx, user.id, credential_version, now, &["pwd"])?;
        let id = session.id;
        self.repos.sessions.create(session).await?;
        self.token_pair(user, id, refresh_token, now)
    }

    /// The live sessions of `user_id`, as `who` sees them (`current`: `who`'s own).
    pub(crate) async fn live_sessions(
        &self,
        user_id: UserId,
        who: &Principal,
    ) -> Result<Vec<SessionInfo>> {
        let sessions = self
            .repos
            .sessions
            .list_live_for_user(user_id, self.now())
            .await?;
        Ok(sessions
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == who.session_id,
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect())
    }

    /// An access token of `user`'s session `session_id`, and its lifetime in seconds.
    pub(crate) fn access_token(
        &self,
        user: &User,
        session_id: SessionId,
        now: Timestamp,
    ) -> Result<(String, u64)> {
        let issuer = self
            .issuer
            .as_ref()
            .ok_or_else(|| Error::internal("this process issues no tokens (no signing key)"))?;
        issuer.issue_at(
            user.id,
            session_id,
            user.role,
            self.config.access_ttl,
            now.timestamp(),
        )
    }

    pub(crate) fn token_pair(
        &self,
        user: &User,
        session_id: SessionId,
        refresh_token: String,
        now: Timestamp,
    ) -> Result<TokenPair> {
        let (access_token, expires_in) = self.access_token(user, session_id, now)?;
        Ok(TokenPair {
            access_token,
            refresh_token,
            token_type: "Bearer".into(),
            expires_in,
        })
    }
}

/// Statuses an admin may set directly (`deleted` only through delete).
pub(crate) fn parse_settable_status(s: &str) -> std::result::Result<Status, String> {
    match s.parse::<Status>() {
        Ok(Status::Deleted) | Err(_) => {
            Err("must be one of: active, inactive, suspended (use delete to delete a user)".into())
        }
        Ok(status) => Ok(status),
    }
}

/// `<session id as 32 hex>.<256 random bits, base64url>`: the session is found by id, the
/// token is checked by its stored SHA-256.
pub(crate) fn new_refresh_token(session_id: SessionId) -> String {
    format!("{}.{}", session_id.simple(), crypto::new_refresh_token())
}

/// The session id a refresh token claims to belong to, when it is shaped like one of ours.
pub(crate) fn refresh_token_session(token: &str) -> Option<SessionId> {
    let (id, secret) = token.split_once('.')?;
    if id.len() != 32 || secret.len() != 43 {
        return None;
    }
    uuid::Uuid::try_parse(id).ok()
}

/// How long until `until`, rounded up to whole seconds, at least one.
pub(crate) fn retry_after(until: Timestamp, now: Timestamp) -> Duration {
    let ms = (until - now).num_milliseconds().max(0);
    let secs = u64::try_from(ms).unwrap_or(0).div_ceil(1000).max(1);
    Duration::from_secs(secs)
}

pub(crate) fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::days(365 * 100))
}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refresh_token_names_its_session() {
        let id = uuid::Uuid::new_v4();
        let t = new_refresh_token(id);
        assert_eq!(refresh_token_session(&t), Some(id));
        for bad in ["", "abc", "x.y", &format!("{}.short", id.simple()), &t[1..]] {
            assert_eq!(refresh_token_session(bad), None, "{bad}");
        }
    }

    #[test]
    fn retry_after_rounds_up() {
        let now = chrono::Utc::now();
        assert_eq!(
            retry_after(now + chrono::Duration::milliseconds(29_001), now),
            Duration::from_secs(30)
        );
        assert_eq!(retry_after(now, now), Duration::from_secs(1));
    }

    #[test]
    fn account_validation_collects_every_field() {
        let input = CreateUserInput {
            username: "x".into(),
            email: "nope".into(),
            password: "short".into(),
            first_name: Some("n".repeat(51)),
            last_name: Some("l".repeat(51)),
            phone: Some("call me".into()),
            avatar_url: Some("ftp://x".into()),
            role: Some("root".into()),
            status: Some("deleted".into()),
            is_verified: None,
        };
        let Err(Error::Validation(f)) = Core::validate_account(&input) else {
            panic!("expected validation error")
        };
        for k in [
            "username",
            "email",
            "password",
            "first_name",
            "last_name",
            "phone",
            "avatar_url",
            "role",
            "status",
        ] {
            assert!(f.0.contains_key(k), "{k} missing in {f:?}");
        }
    }
}
