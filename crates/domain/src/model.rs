//! Entities: users, sessions (refresh-token families) and audit events.
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub type UserId = Uuid;
pub type SessionId = Uuid;
pub type Timestamp = DateTime<Utc>;

macro_rules! string_enum {
    ($(#[$m:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
        #[serde(rename_all = "lowercase")]
        pub enum $name { $($variant),+ }
        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }
        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(format!(
                        "must be one of: {}",
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

string_enum!(
    /// What a user may do. Ordered by privilege only where the service says so.
    Role { Guest = "guest", User = "user", Admin = "admin" }
);
string_enum!(
    /// Lifecycle of an account. `Deleted` is a soft delete that frees username and email.
    Status { Active = "active", Inactive = "inactive", Suspended = "suspended", Deleted = "deleted" }
);

/// A user as every layer may see it: never the password hash, never the lockout counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct User {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub status: Status,
    pub is_verified: bool,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_login_at: Option<Timestamp>,
}

/// A user together with what only login and password change need. Leaves the repository only
/// towards the service layer's credential checks.
#[derive(Clone, PartialEq, Eq)]
pub struct UserCredentials {
    pub user: User,
    pub password_hash: String,
    pub failed_login_count: u32,
    pub locked_until: Option<Timestamp>,
    /// Changes with every password change; sessions remember the version they were opened with.
    pub credential_version: u32,
}

impl fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserCredentials")
            .field("user", &self.user)
            .field("password_hash", &"<redacted>")
            .field("failed_login_count", &self.failed_login_count)
            .field("locked_until", &self.locked_until)
            .field("credential_version", &self.credential_version)
            .finish()
    }
}

/// Everything the repository needs to insert a user. Values are already validated.
#[derive(Clone, PartialEq, Eq)]
pub struct NewUser {
    pub id: UserId,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Role,
    pub status: Status,
    pub is_verified: bool,
    pub created_at: Timestamp,
}

impl fmt::Debug for NewUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("email", &self.email)
            .field("role", &self.role)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A partial update. `None` leaves a column alone; `Some(None)` clears a nullable one.
/// Setting `status = Deleted` is not allowed here: use `UserRepository::soft_delete`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct UserUpdate {
    pub email: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub role: Option<Role>,
    pub status: Option<Status>,
    /// Ignored when `email` replaces the stored address: a new address is never verified (the
    /// repository decides that against the locked row, never from a cache).
    pub is_verified: Option<bool>,
    pub password_hash: Option<String>,
    /// What an address change writes with it, in the update's transaction. Applied only when
    /// `email` really replaces the stored address.
    pub email_change: Option<crate::recovery::EmailChange>,
    /// A login attempt reserved to check the current password, given back (the failure count
    /// and lock cleared) if no other attempt was reserved since.
    pub release_attempt: Option<u32>,
    /// The network `release_attempt` was reserved for.
    pub release_network: String,
    /// End every login lockout of the account (all networks), in the update's transaction: an
    /// admin's "unlock".
    pub clear_lockout: bool,
}

impl UserUpdate {
    pub fn is_empty(&self) -> bool {
        *self == UserUpdate::default()
    }
}

impl fmt::Debug for UserUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserUpdate")
            .field("email", &self.email)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("phone", &self.phone)
            .field("avatar_url", &self.avatar_url)
            .field("role", &self.role)
            .field("status", &self.status)
            .field("is_verified", &self.is_verified)
            .field(
                "password_hash",
                &self.password_hash.as_ref().map(|_| "<redacted>"),
            )
            .field("email_change", &self.email_change)
            .field("release_attempt", &self.release_attempt)
            .field("release_network", &self.release_network)
            .finish()
    }
}

/// Exponential lockout: `max_failures` consecutive failures lock the account for `base_lock`,
/// each further failure doubles it, up to `max_lock`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockoutPolicy {
    pub max_failures: u32,
    pub base_lock: Duration,
    pub max_lock: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            base_lock: Duration::from_secs(30),
            max_lock: Duration::from_secs(15 * 60),
        }
    }
}

/// The delay before the first slowed-down attempt; it doubles with each further account-wide
/// failure up to [`MAX_SLOWDOWN`].
pub const SLOWDOWN_STEP: Duration = Duration::from_millis(100);
/// The most a login waits before its password is evaluated, however many networks guess.
pub const MAX_SLOWDOWN: Duration = Duration::from_secs(2);
/// A network the owner signed in from within this long is "known": strangers' failures
/// elsewhere do not slow it down.
pub const KNOWN_NETWORK_WINDOW: Duration = Duration::from_secs(30 * 24 * 3600);

/// The client network login failures are counted for: the IPv4 /24 or the IPv6 /64 of `ip`
/// (an IPv4-mapped IPv6 address counts as IPv4). Without a parseable address, one shared
/// bucket, `unknown`.
pub fn client_network(ip: Option<&str>) -> String {
    use std::net::IpAddr;
    match ip.and_then(|ip| ip.trim().parse::<IpAddr>().ok()) {
        Some(IpAddr::V4(v4)) => v4_network(v4),
        Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
            Some(v4) => v4_network(v4),
            None => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        },
        None => "unknown".to_owned(),
    }
}

fn v4_network(v4: std::net::Ipv4Addr) -> String {
    let [a, b, c, _] = v4.octets();
    format!("{a}.{b}.{c}.0/24")
}

impl LockoutPolicy {
    /// How long a login waits before its password is evaluated when the account as a whole
    /// (every network together) has `account_failures` consecutive failures including this
    /// attempt: nothing up to `max_failures`, then [`SLOWDOWN_STEP`] doubling per failure,
    /// capped at [`MAX_SLOWDOWN`]. Many networks slow an account down; none locks it.
    pub fn slowdown(&self, account_failures: u32) -> Duration {
        if self.max_failures == 0 || account_failures <= self.max_failures {
            return Duration::ZERO;
        }
        let doublings = (account_failures - self.max_failures - 1).min(30);
        SLOWDOWN_STEP
            .saturating_mul(1u32 << doublings)
            .min(MAX_SLOWDOWN)
    }

    /// How long a network with `failures` consecutive failures stays locked (None: not locked).
    pub fn lock_for(&self, failures: u32) -> Option<Duration> {
        if self.max_failures == 0 || failures < self.max_failures {
            return None;
        }
        let doublings = (failures - self.max_failures).min(30);
        let lock = self.base_lock.saturating_mul(1u32 << doublings);
        Some(lock.min(self.max_lock))
    }
}

/// Outcome of atomically reserving one login attempt (before any password is hashed).
///
/// Failures are counted per (account, client network, see [`client_network`]): an attempt is
/// counted as a failure of its network the moment it is reserved; a correct password gives it
/// back ([`crate::UserRepository::record_login_success`]). So whatever the concurrency, at most
/// `max_failures` passwords are evaluated per lock window for one (account, network): the
/// reservation that takes the last remaining attempt locks that network at once, and every
/// later one from it is refused unhashed. Other networks are not locked; the account-wide count
/// only slows them down ([`LockoutPolicy::slowdown`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginAttempt {
    /// The caller may evaluate one password. `attempt` is the network's failure count including
    /// this attempt (hand it back on success); `locked_until` is set when this attempt used the
    /// last one and locked the network. `account_failures` counts the account's consecutive
    /// failures from every network, this one included; `last_success` is when the owner last
    /// signed in from this network.
    Reserved {
        attempt: u32,
        locked_until: Option<Timestamp>,
        account_failures: u32,
        last_success: Option<Timestamp>,
    },
    /// This (account, network) is locked: no password may be evaluated.
    Locked { locked_until: Timestamp },
    /// The user no longer exists (or is deleted).
    UnknownUser,
}

/// A stored hash to replace after a successful login (parameters upgraded), only if the stored
/// hash is still the one that was verified: a password change in between wins.
#[derive(Clone, PartialEq, Eq)]
pub struct Rehash {
    pub verified_hash: String,
    pub new_hash: String,
}

impl fmt::Debug for Rehash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Rehash(<redacted>)")
    }
}

/// Take one of the remaining login attempts of `user_id` from `network` (see
/// [`client_network`]) under `policy` at `now`, before a password is evaluated
/// (`UserRepository::reserve_login_attempt`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptReservation {
    pub user_id: UserId,
    pub network: String,
    pub policy: LockoutPolicy,
    pub now: Timestamp,
}

/// Revoke every unrevoked session of `user_id` except `keep`, for `reason`, at `now`, and write
/// the audit events (completed by [`audit_with_revoked`]) in the same transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRevocation {
    pub user_id: UserId,
    pub reason: RevokeReason,
    pub now: Timestamp,
    pub keep: Option<SessionId>,
    pub audit: Vec<AuditEvent>,
}

/// A correct password for the reserved login attempt `attempt` (the count
/// `UserRepository::reserve_login_attempt` answered), recorded at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginSuccess {
    pub user_id: UserId,
    /// The network the attempt was reserved for: it becomes known (see
    /// [`KNOWN_NETWORK_WINDOW`]).
    pub network: String,
    pub attempt: u32,
    /// Replace the hash, only if the stored one is still the verified one.
    pub rehash: Option<Rehash>,
    pub now: Timestamp,
}

/// Begin a login (`UserRepository::begin_login`): find the non-deleted account whose username
/// or email equals `login` (case-insensitively) and reserve one attempt for it from `network`
/// under `policy`, in one transaction, before any password is hashed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginStart {
    pub login: String,
    pub network: String,
    pub policy: LockoutPolicy,
    pub now: Timestamp,
}

/// A login begun: the account's credentials and the attempt reserved (or the lock refusing one).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginBegun {
    pub credentials: UserCredentials,
    pub attempt: LoginAttempt,
    /// The account's second factors, read in the same call (a login stays two repository
    /// calls).
    pub factors: crate::mfa::MfaFactors,
}

/// A correct password, completed in one transaction (`UserRepository::complete_login`): the
/// success is recorded, the session opened (absent: only the success is recorded) and the audit
/// events written. Nothing is kept when any part fails (e.g. the session is refused because the
/// password changed since it was verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginCompletion {
    pub success: LoginSuccess,
    pub session: Option<NewSession>,
    pub audit: Vec<AuditEvent>,
}

/// A change of one user as one transaction (`UserRepository::change_user`): the update, the
/// revocation of the user's sessions when `revoke` is set, and the audit events (completed by
/// [`AuditEvent::fill`] with `from`, the previous status or role the update replaced, and
/// `sessions_revoked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserChange {
    pub id: UserId,
    pub update: UserUpdate,
    pub revoke: Option<RevokeReason>,
    pub audit: Vec<AuditEvent>,
    pub now: Timestamp,
}

impl UserChange {
    /// The audit events as written: the first completed with what the transaction decided.
    pub fn audit_records(&self, before: &User, revoked: u64) -> Vec<AuditEvent> {
        let mut events = self.audit.clone();
        if let Some(first) = events.first_mut() {
            if self.update.status.is_some() {
                first.fill("from", before.status.as_str().into());
            }
            if self.update.role.is_some() {
                first.fill("from", before.role.as_str().into());
            }
            first.fill("sessions_revoked", revoked.into());
        }
        events
    }
}

/// A soft delete as one transaction (`UserRepository::delete_user`): the user is marked deleted
/// (username and email freed), every session revoked, the audit events written (the first
/// completed with `sessions_revoked`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDeletion {
    pub id: UserId,
    pub audit: Vec<AuditEvent>,
    pub now: Timestamp,
}

/// End one session (`SessionRepository::end_session`): when it belongs to `user_id` (any owner
/// when `None`) and, with `live_only`, is live at `now`, it is revoked for `reason` (if not
/// already) and the audit events are written, in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionEnd {
    pub id: SessionId,
    pub user_id: Option<UserId>,
    pub reason: RevokeReason,
    pub live_only: bool,
    pub audit: Vec<AuditEvent>,
    pub now: Timestamp,
}

/// The audit events of a command, with the number of sessions it revoked filled in
/// (`sessions_revoked` and `revoked_count`, where the first event names them).
pub fn audit_with_revoked(audit: &[AuditEvent], revoked: u64) -> Vec<AuditEvent> {
    let mut events = audit.to_vec();
    if let Some(first) = events.first_mut() {
        first.fill("sessions_revoked", revoked.into());
        first.fill("revoked_count", revoked.into());
    }
    events
}

/// Compare-and-swap of a session's refresh hash: `expected_hash` (the hash the presented token
/// matched) becomes the previous hash and `new_hash` the current one.
#[derive(Clone, PartialEq, Eq)]
pub struct Rotation {
    pub id: SessionId,
    pub expected_hash: String,
    pub new_hash: String,
    pub now: Timestamp,
}

impl fmt::Debug for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rotation")
            .field("id", &self.id)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// A password change as one unit: the new hash, a new credential version (sessions opened with
/// an older one stop working), and the revocation of every other session of the user.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordChange {
    pub user_id: UserId,
    pub new_hash: String,
    /// Compare-and-set: apply only while the stored hash is still this one (the hash the current
    /// password was verified against). `None` for an admin's change.
    pub verified_hash: Option<String>,
    /// The login attempt reserved for checking the current password, given back on success.
    pub attempt: Option<u32>,
    /// The network `attempt` was reserved for.
    pub attempt_network: String,
    /// The session that made the change and keeps working (moved to the new version).
    pub keep_session: Option<SessionId>,
    pub now: Timestamp,
    /// Written in the change's transaction, completed by [`audit_with_revoked`].
    pub audit: Vec<AuditEvent>,
}

impl fmt::Debug for PasswordChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PasswordChange")
            .field("user_id", &self.user_id)
            .field("cas", &self.verified_hash.is_some())
            .field("attempt", &self.attempt)
            .field("keep_session", &self.keep_session)
            .field("now", &self.now)
            .finish_non_exhaustive()
    }
}

/// One refresh-token family: created at login, its refresh token rotated on every refresh.
/// The access token's `sid` claim is this id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    /// SHA-256 (hex) of the current refresh token; the token itself is never stored.
    pub refresh_token_hash: String,
    /// SHA-256 of the token the last rotation replaced: presenting it again is reuse (theft
    /// detection), or within the reuse grace a second chance; any other token is just invalid.
    pub previous_refresh_hash: Option<String>,
    /// When the refresh token was last rotated.
    pub rotated_at: Option<Timestamp>,
    /// How many times the refresh token has been rotated.
    pub generation: u32,
    /// The owner's credential version when the session was opened (or kept by a password
    /// change); a session of an older version is dead.
    pub credential_version: u32,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub revoked_at: Option<Timestamp>,
    pub revoked_reason: Option<String>,
    /// How the login that opened the session was authenticated: OpenID Connect "Authentication
    /// Methods References" (RFC 8176), in the order given at creation, e.g. `["pwd"]` or
    /// `["pwd", "otp"]`. Sessions opened before this was recorded read back as `["pwd"]`.
    pub amr: Vec<String>,
}

impl Session {
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.revoked_at.is_none() && self.expires_at > now
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSession {
    pub id: SessionId,
    pub user_id: UserId,
    /// The credential version the password was verified against; the session is refused
    /// (`Error::InvalidCredentials`) when the user's version moved on meanwhile.
    pub credential_version: u32,
    pub refresh_token_hash: String,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    /// At most this many live sessions per user: opening one more revokes the oldest
    /// (`session_limit`). 0: no cap.
    pub max_live: u32,
    /// How the login was authenticated: RFC 8176 "amr" values (`"pwd"`, `"otp"`, `"hwk"`,
    /// `"swk"`, `"mfa"`), at least one; ID tokens report them (`amr`, `acr`). Stored
    /// space-separated, so no value may contain whitespace, and at most 64 characters once joined.
    pub amr: Vec<String>,
}

/// A session together with its owner as they stand now (one read: token verification and
/// refresh need both).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionOwner {
    pub session: Session,
    pub user: User,
    /// The user's current credential version.
    pub credential_version: u32,
}

impl SessionOwner {
    /// Unrevoked, unexpired, opened with the current credentials, and the owner is active.
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.session.is_live(now)
            && self.session.credential_version == self.credential_version
            && self.user.status == Status::Active
    }
}

/// Why a session stopped working (stored in `sessions.revoked_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    RevokedByUser,
    RefreshReuse,
    PasswordChanged,
    RoleChanged,
    StatusChanged,
    UserDeleted,
    PasswordReset,
    /// The user opened more sessions than the cap allows: the oldest went.
    SessionLimit,
    /// The owner followed the link mailed to their previous address and undid an email change.
    EmailReverted,
    /// The authorization code the session's tokens came from was presented again.
    CodeReuse,
    /// The OpenID Connect client the session's tokens were issued to was deleted.
    ClientDeleted,
    /// The client revoked the tokens (RFC 7009).
    TokenRevoked,
    /// Every second factor of the account was removed (by its owner or an administrator).
    FactorsRemoved,
}

impl RevokeReason {
    /// Whether the revocation ends the user's personal access tokens too: what takes an
    /// account away from whoever held it (suspension, deletion, a password change or reset,
    /// the undoing of an email change, the removal of the second factors). A sign-out does not.
    pub fn ends_access_tokens(self) -> bool {
        matches!(
            self,
            RevokeReason::StatusChanged
                | RevokeReason::UserDeleted
                | RevokeReason::PasswordChanged
                | RevokeReason::PasswordReset
                | RevokeReason::EmailReverted
                | RevokeReason::FactorsRemoved
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::RevokedByUser => "revoked_by_user",
            RevokeReason::RefreshReuse => "refresh_reuse",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::RoleChanged => "role_changed",
            RevokeReason::StatusChanged => "status_changed",
            RevokeReason::UserDeleted => "user_deleted",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::SessionLimit => "session_limit",
            RevokeReason::EmailReverted => "email_reverted",
            RevokeReason::CodeReuse => "code_reuse",
            RevokeReason::ClientDeleted => "client_deleted",
            RevokeReason::TokenRevoked => "token_revoked",
            RevokeReason::FactorsRemoved => "factors_removed",
        }
    }
}

impl FromStr for RevokeReason {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "logout" => RevokeReason::Logout,
            "logout_all" => RevokeReason::LogoutAll,
            "revoked_by_user" => RevokeReason::RevokedByUser,
            "refresh_reuse" => RevokeReason::RefreshReuse,
            "password_changed" => RevokeReason::PasswordChanged,
            "role_changed" => RevokeReason::RoleChanged,
            "status_changed" => RevokeReason::StatusChanged,
            "user_deleted" => RevokeReason::UserDeleted,
            "password_reset" => RevokeReason::PasswordReset,
            "session_limit" => RevokeReason::SessionLimit,
            "email_reverted" => RevokeReason::EmailReverted,
            "code_reuse" => RevokeReason::CodeReuse,
            "client_deleted" => RevokeReason::ClientDeleted,
            "token_revoked" => RevokeReason::TokenRevoked,
            "factors_removed" => RevokeReason::FactorsRemoved,
            other => return Err(format!("unknown revoke reason {other:?}")),
        })
    }
}

/// Something security-relevant that happened. As JSON, `details` is the object itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEvent {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
    /// Who acted (absent: nobody signed in, e.g. a failed login).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub actor_id: Option<UserId>,
    /// Whom it concerned.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Uuid))]
    pub subject_id: Option<UserId>,
    /// e.g. `auth.login`, `user.role_changed`.
    #[cfg_attr(feature = "openapi", schema(example = "auth.login"))]
    pub r#type: String,
    /// `success` or `failure` (or a short reason such as `locked`).
    pub outcome: String,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// Extra facts (a JSON object); never a secret.
    #[serde(serialize_with = "json_text")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub details: Option<String>,
}

impl AuditEvent {
    /// Replace the detail `key` with `value` where the event already names it (a placeholder
    /// the service set): how an adapter writes what only its transaction knows.
    pub fn fill(&mut self, key: &str, value: serde_json::Value) {
        let Some(text) = self.details.as_deref() else {
            return;
        };
        let Ok(serde_json::Value::Object(mut map)) = serde_json::from_str(text) else {
            return;
        };
        if let Some(slot) = map.get_mut(key) {
            *slot = value;
            self.details = Some(serde_json::Value::Object(map).to_string());
        }
    }
}

/// An address as the audit log shows it: the first character of the local part and the domain
/// (`a***@example.com`), enough to recognise one's own, not to harvest.
pub fn mask_email(email: &str) -> String {
    match email.split_once('@') {
        Some((local, domain)) => {
            let first: String = local.chars().take(1).collect();
            format!("{first}***@{domain}")
        }
        None => "***".into(),
    }
}

/// JSON text stored as such, written out as the JSON it holds (as text if it is not JSON).
fn json_text<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v.as_deref().map(serde_json::from_str::<serde_json::Value>) {
        None => s.serialize_none(),
        Some(Ok(json)) => json.serialize(s),
        Some(Err(_)) => v.serialize(s),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_networks_are_ipv4_slash_24_and_ipv6_slash_64() {
        let net = |ip: &str| client_network(Some(ip));
        assert_eq!(net("203.0.113.7"), "203.0.113.0/24");
        assert_eq!(net("203.0.113.250"), net("203.0.113.7"));
        assert_ne!(net("203.0.114.7"), net("203.0.113.7"));
        assert_eq!(net("::ffff:203.0.113.9"), "203.0.113.0/24");
        assert_eq!(net("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(
            net("2001:db8:1:2:ffff:ffff:ffff:ffff"),
            net("2001:db8:1:2::1")
        );
        assert_ne!(net("2001:db8:1:3::1"), net("2001:db8:1:2::1"));
        assert_eq!(client_network(None), "unknown");
        assert_eq!(net("not an address"), "unknown");
    }

    #[test]
    fn the_slowdown_starts_after_max_failures_doubles_and_is_capped() {
        let p = LockoutPolicy::default();
        let ms = |n| p.slowdown(n).as_millis();
        assert_eq!([ms(1), ms(5)], [0, 0]);
        assert_eq!(
            [ms(6), ms(7), ms(8), ms(9), ms(10)],
            [100, 200, 400, 800, 1600]
        );
        assert_eq!([ms(11), ms(40), ms(u32::MAX)], [2000, 2000, 2000]);
        let off = LockoutPolicy {
            max_failures: 0,
            ..p
        };
        assert_eq!(off.slowdown(1000), Duration::ZERO);
    }
}
