//! Machine credentials: personal access tokens (`arc_pat_…`) and the scopes that narrow what a
//! token may do, with the one table from every operation (REST route and RPC) to what it needs.
//!
//! A personal access token acts for its owner with at most the owner's rights (the role decides
//! as for any caller), narrowed by its scopes: an operation whose row needs a scope the token
//! lacks is refused (`Forbidden`) before any port is called, and an operation that needs a
//! signed-in person ([`Need::Session`]: sessions, second factors, the tokens themselves) refuses
//! every token. Interactive sessions carry every scope.
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, FieldErrors, Result};
use crate::model::{Role, Status, Timestamp, User, UserId};
use crate::services::{Principal, redacted_debug};

/// What every personal access token starts with, so secret scanners can find leaked ones.
pub const PAT_PREFIX: &str = "arc_pat_";
/// The longest lifetime a personal access token may be given.
pub const MAX_PAT_LIFETIME: Duration = Duration::from_secs(365 * 24 * 3600);
/// The lifetime of a token created without `expires_in`.
pub const DEFAULT_PAT_LIFETIME: Duration = Duration::from_secs(30 * 24 * 3600);
/// The most unrevoked, unexpired tokens one account may hold.
pub const MAX_LIVE_PATS: u64 = 50;
/// `last_used_at` is written at most this often per token (not once per request).
pub const PAT_USE_GRANULARITY: Duration = Duration::from_secs(60);

/// One permission a token can be narrowed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Read users (one's own account, or any as an admin) and their sessions.
    UsersRead,
    /// Create, change and delete users, their passwords, roles and statuses.
    UsersWrite,
    /// Read the audit log (one's own events, or all as an admin).
    AuditRead,
    /// Administer the platform itself (OpenID Connect clients, service accounts); only for
    /// admins' tokens.
    Admin,
}

impl Scope {
    pub const ALL: &'static [Scope] = &[
        Scope::UsersRead,
        Scope::UsersWrite,
        Scope::AuditRead,
        Scope::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Scope::UsersRead => "users:read",
            Scope::UsersWrite => "users:write",
            Scope::AuditRead => "audit:read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Scope> {
        Scope::ALL.iter().copied().find(|scope| scope.as_str() == s)
    }

    /// What it says, for the OpenAPI document and the proto comments.
    pub fn description(self) -> &'static str {
        match self {
            Scope::UsersRead => "read users and their sessions",
            Scope::UsersWrite => "create, change and delete users",
            Scope::AuditRead => "read the audit log",
            Scope::Admin => "administer OpenID Connect clients and service accounts (admins only)",
        }
    }

    /// The least role whose owner may hold it.
    pub fn least_role(self) -> Role {
        match self {
            Scope::Admin => Role::Admin,
            _ => Role::Guest,
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of scopes, and whether the credential is a signed-in person's session (which holds
/// every scope and may do what needs a session).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Scopes(u8);

const SESSION_BIT: u8 = 0x80;
/// The credential is a service account's access token.
const MACHINE_BIT: u8 = 0x40;
const SCOPE_BITS: u8 = 0x0f;

impl Scopes {
    /// An interactive session: every scope, and the operations that need a person.
    pub const SESSION: Scopes = Scopes(SESSION_BIT | SCOPE_BITS);
    pub const NONE: Scopes = Scopes(0);

    pub fn of(scopes: &[Scope]) -> Scopes {
        Scopes(scopes.iter().fold(0, |bits, s| bits | s.bit()))
    }

    pub fn contains(self, scope: Scope) -> bool {
        self.0 & scope.bit() != 0
    }

    pub fn is_session(self) -> bool {
        self.0 & SESSION_BIT != 0
    }

    /// Whether the credential is a service account's (no person behind it).
    pub fn is_machine(self) -> bool {
        self.0 & MACHINE_BIT != 0
    }

    /// The same scopes, marked as a service account's.
    pub fn machine(self) -> Scopes {
        Scopes((self.0 & SCOPE_BITS) | MACHINE_BIT)
    }

    /// The scopes in both (markers dropped).
    pub fn intersect(self, other: Scopes) -> Scopes {
        Scopes(self.0 & other.0 & SCOPE_BITS)
    }

    /// No scope at all (markers aside).
    pub fn is_empty(self) -> bool {
        self.0 & SCOPE_BITS == 0
    }

    /// Every bit, markers included (the internal wire form).
    pub fn bits(self) -> u32 {
        u32::from(self.0)
    }

    /// [`Self::bits`] back; `None` for bits no scope or marker has.
    pub fn from_bits(bits: u32) -> Option<Scopes> {
        u8::try_from(bits)
            .ok()
            .filter(|b| b & !(SESSION_BIT | MACHINE_BIT | SCOPE_BITS) == 0)
            .map(Scopes)
    }

    pub fn iter(self) -> impl Iterator<Item = Scope> {
        Scope::ALL
            .iter()
            .copied()
            .filter(move |s| self.contains(*s))
    }

    pub fn names(self) -> Vec<String> {
        self.iter().map(|s| s.as_str().to_owned()).collect()
    }

    /// Space-separated, as stored.
    pub fn to_text(self) -> String {
        self.names().join(" ")
    }

    /// The stored form back; `None` when a name is unknown.
    pub fn parse_text(text: &str) -> Option<Scopes> {
        text.split_whitespace()
            .map(Scope::parse)
            .collect::<Option<Vec<_>>>()
            .map(|list| Scopes::of(&list))
    }

    /// Whether an owner with `role` may hold every one of them.
    pub fn allowed_for(self, role: Role) -> bool {
        self.iter()
            .all(|s| role_rank(role) >= role_rank(s.least_role()))
    }
}

/// The scopes a list names (`field[i]` errors for unknown ones, and for `admin` unless `role`
/// is admin); at least one.
pub fn parse_scopes(names: &[String], role: Option<Role>, errors: &mut FieldErrors) -> Scopes {
    if names.is_empty() {
        errors.add("scopes", "name at least one scope");
    }
    let known = Scope::ALL
        .iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    let mut scopes = Vec::new();
    for (i, name) in names.iter().enumerate() {
        match Scope::parse(name) {
            Some(scope) if role.is_some_and(|r| !Scopes::of(&[scope]).allowed_for(r)) => errors
                .add(
                    &format!("scopes[{i}]"),
                    format!("{} is only for admins", scope.as_str()),
                ),
            Some(scope) => scopes.push(scope),
            None => errors.add(
                &format!("scopes[{i}]"),
                format!("is not a scope (one of {known})"),
            ),
        }
    }
    Scopes::of(&scopes)
}

fn role_rank(role: Role) -> u8 {
    match role {
        Role::Guest => 0,
        Role::User => 1,
        Role::Admin => 2,
    }
}

impl fmt::Debug for Scopes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_session() {
            f.write_str("Scopes(session)")
        } else if self.is_machine() {
            write!(f, "Scopes(machine: {:?})", self.to_text())
        } else {
            write!(f, "Scopes({:?})", self.to_text())
        }
    }
}

/// What an operation asks of the credential that calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// No credential at all (register, login, the recovery links…).
    Public,
    /// A signed-in person's session; tokens are refused.
    Session,
    /// Any credential holding the scope (a session holds every one).
    Scope(Scope),
}

/// One operation of the API: its RPC (`Service/Method` of `arcana.v1`), its REST route
/// (`METHOD /path`, as routed), and what it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Operation {
    pub rpc: &'static str,
    pub rest: &'static str,
    pub need: Need,
}

const fn op(rpc: &'static str, rest: &'static str, need: Need) -> Operation {
    Operation { rpc, rest, need }
}

const READ: Need = Need::Scope(Scope::UsersRead);
const WRITE: Need = Need::Scope(Scope::UsersWrite);
const AUDIT: Need = Need::Scope(Scope::AuditRead);
const ADMIN: Need = Need::Scope(Scope::Admin);
const SESSION: Need = Need::Session;
const PUBLIC: Need = Need::Public;

/// Every operation of the public API and what it needs: the one table REST (the gateway's
/// `Authed` extractor), public gRPC and the internal port (the RPC handlers) check. Tests hold
/// it to the router's routes and the protos' RPCs, so an operation without a row fails the build's
/// tests (and, unlisted, refuses every token).
pub const OPERATIONS: &[Operation] = &[
    op("AuthService/Register", "POST /api/v1/auth/register", PUBLIC),
    op("AuthService/Login", "POST /api/v1/auth/login", PUBLIC),
    op("AuthService/Refresh", "POST /api/v1/auth/refresh", PUBLIC),
    op("AuthService/Logout", "POST /api/v1/auth/logout", SESSION),
    op(
        "AuthService/LogoutAll",
        "POST /api/v1/auth/logout-all",
        SESSION,
    ),
    op("AuthService/Me", "GET /api/v1/auth/me", READ),
    op(
        "AuthService/ListSessions",
        "GET /api/v1/auth/sessions",
        SESSION,
    ),
    op(
        "AuthService/RevokeSession",
        "DELETE /api/v1/auth/sessions/{id}",
        SESSION,
    ),
    op(
        "AuthService/ForgotPassword",
        "POST /api/v1/auth/password/forgot",
        PUBLIC,
    ),
    op(
        "AuthService/ResetPassword",
        "POST /api/v1/auth/password/reset",
        PUBLIC,
    ),
    op(
        "AuthService/VerifyEmail",
        "POST /api/v1/auth/email/verify",
        PUBLIC,
    ),
    op(
        "AuthService/ResendVerification",
        "POST /api/v1/auth/email/verify/resend",
        SESSION,
    ),
    op(
        "AuthService/RevertEmail",
        "POST /api/v1/auth/email/revert",
        PUBLIC,
    ),
    op(
        "AuthService/VerifyMfa",
        "POST /api/v1/auth/mfa/verify",
        PUBLIC,
    ),
    op("AuthService/GetMfa", "GET /api/v1/auth/mfa", SESSION),
    op(
        "AuthService/SetupTotp",
        "POST /api/v1/auth/mfa/totp/setup",
        SESSION,
    ),
    op(
        "AuthService/ConfirmTotp",
        "POST /api/v1/auth/mfa/totp/confirm",
        SESSION,
    ),
    op(
        "AuthService/DisableTotp",
        "DELETE /api/v1/auth/mfa/totp",
        SESSION,
    ),
    op(
        "AuthService/RegenerateRecoveryCodes",
        "POST /api/v1/auth/mfa/recovery-codes",
        SESSION,
    ),
    op(
        "AuthService/StartPasskeyRegistration",
        "POST /api/v1/auth/mfa/passkeys/register/start",
        SESSION,
    ),
    op(
        "AuthService/FinishPasskeyRegistration",
        "POST /api/v1/auth/mfa/passkeys/register/finish",
        SESSION,
    ),
    op(
        "AuthService/ListPasskeys",
        "GET /api/v1/auth/mfa/passkeys",
        SESSION,
    ),
    op(
        "AuthService/RenamePasskey",
        "PATCH /api/v1/auth/mfa/passkeys/{id}",
        SESSION,
    ),
    op(
        "AuthService/DeletePasskey",
        "DELETE /api/v1/auth/mfa/passkeys/{id}",
        SESSION,
    ),
    op(
        "AuthService/StartPasskeyLogin",
        "POST /api/v1/auth/passkeys/login/start",
        PUBLIC,
    ),
    op(
        "AuthService/FinishPasskeyLogin",
        "POST /api/v1/auth/passkeys/login/finish",
        PUBLIC,
    ),
    op(
        "AuthService/CreateAccessToken",
        "POST /api/v1/auth/tokens",
        SESSION,
    ),
    op(
        "AuthService/ListAccessTokens",
        "GET /api/v1/auth/tokens",
        SESSION,
    ),
    op(
        "AuthService/RevokeAccessToken",
        "DELETE /api/v1/auth/tokens/{id}",
        SESSION,
    ),
    op("UserService/ListUsers", "GET /api/v1/users", READ),
    op("UserService/CreateUser", "POST /api/v1/users", WRITE),
    op("UserService/GetUser", "GET /api/v1/users/{id}", READ),
    op("UserService/UpdateUser", "PATCH /api/v1/users/{id}", WRITE),
    op("UserService/UpdateUser", "PUT /api/v1/users/{id}", WRITE),
    op("UserService/DeleteUser", "DELETE /api/v1/users/{id}", WRITE),
    op(
        "UserService/ChangePassword",
        "PUT /api/v1/users/{id}/password",
        WRITE,
    ),
    op(
        "UserService/VerifyUser",
        "POST /api/v1/users/{id}/verify",
        WRITE,
    ),
    op(
        "UserService/SetStatus",
        "PUT /api/v1/users/{id}/status",
        WRITE,
    ),
    op("UserService/SetRole", "PUT /api/v1/users/{id}/role", WRITE),
    op(
        "UserService/UnlockUser",
        "POST /api/v1/users/{id}/unlock",
        WRITE,
    ),
    op(
        "UserService/ListUserSessions",
        "GET /api/v1/users/{id}/sessions",
        READ,
    ),
    op(
        "UserService/RemoveMfa",
        "DELETE /api/v1/users/{id}/mfa",
        WRITE,
    ),
    op(
        "UserService/ListAuditEvents",
        "GET /api/v1/audit-events",
        AUDIT,
    ),
    op(
        "OidcClientService/CreateClient",
        "POST /api/v1/oidc/clients",
        ADMIN,
    ),
    op(
        "OidcClientService/ListClients",
        "GET /api/v1/oidc/clients",
        ADMIN,
    ),
    op(
        "OidcClientService/GetClient",
        "GET /api/v1/oidc/clients/{client_id}",
        ADMIN,
    ),
    op(
        "OidcClientService/UpdateClient",
        "PATCH /api/v1/oidc/clients/{client_id}",
        ADMIN,
    ),
    op(
        "OidcClientService/DeleteClient",
        "DELETE /api/v1/oidc/clients/{client_id}",
        ADMIN,
    ),
    op(
        "OidcClientService/RotateClientSecret",
        "POST /api/v1/oidc/clients/{client_id}/secret",
        ADMIN,
    ),
    op(
        "OidcClientService/CreateServiceAccount",
        "POST /api/v1/service-accounts",
        ADMIN,
    ),
    op(
        "OidcClientService/ListServiceAccounts",
        "GET /api/v1/service-accounts",
        ADMIN,
    ),
    op(
        "OidcClientService/GetServiceAccount",
        "GET /api/v1/service-accounts/{id}",
        ADMIN,
    ),
    op(
        "OidcClientService/RotateServiceAccountSecret",
        "POST /api/v1/service-accounts/{id}/secret",
        ADMIN,
    ),
    op(
        "OidcClientService/DeleteServiceAccount",
        "DELETE /api/v1/service-accounts/{id}",
        ADMIN,
    ),
    op(
        "WebhookService/CreateWebhook",
        "POST /api/v1/webhooks",
        ADMIN,
    ),
    op("WebhookService/ListWebhooks", "GET /api/v1/webhooks", ADMIN),
    op(
        "WebhookService/GetWebhook",
        "GET /api/v1/webhooks/{id}",
        ADMIN,
    ),
    op(
        "WebhookService/UpdateWebhook",
        "PATCH /api/v1/webhooks/{id}",
        ADMIN,
    ),
    op(
        "WebhookService/DeleteWebhook",
        "DELETE /api/v1/webhooks/{id}",
        ADMIN,
    ),
    op(
        "WebhookService/TestWebhook",
        "POST /api/v1/webhooks/{id}/test",
        ADMIN,
    ),
    op(
        "WebhookService/ListWebhookDeliveries",
        "GET /api/v1/webhooks/{id}/deliveries",
        ADMIN,
    ),
    op(
        "WebhookService/RetryWebhookDelivery",
        "POST /api/v1/webhooks/{id}/deliveries/{delivery}/retry",
        ADMIN,
    ),
];

/// What the RPC `Service/Method` (or its bare `Method`: method names are unique across the
/// services) needs; `None` when it has no row.
pub fn need_of_rpc(rpc: &str) -> Option<Need> {
    let method = rpc.rsplit('/').next().unwrap_or(rpc);
    OPERATIONS
        .iter()
        .find(|o| o.rpc == rpc || o.rpc.rsplit('/').next() == Some(method))
        .map(|o| o.need)
}

/// What the REST route (`method`, routed `path` with its `{param}`s) needs; `None` when it has
/// no row.
pub fn need_of_route(method: &str, path: &str) -> Option<Need> {
    OPERATIONS
        .iter()
        .find(|o| {
            o.rest
                .split_once(' ')
                .is_some_and(|(m, p)| m.eq_ignore_ascii_case(method) && p == path)
        })
        .map(|o| o.need)
}

/// [`admit`] for the RPC `rpc`; the table is read only for a token (a session passes).
pub fn admit_rpc(who: &Principal, rpc: &str) -> Result<()> {
    if who.scopes.is_session() {
        return Ok(());
    }
    admit(who, need_of_rpc(rpc))
}

/// [`admit`] for the REST route `method` `path` (as routed; `None`: unrouted, which only
/// sessions may call); the table is read only for a token.
pub fn admit_route(who: &Principal, method: &str, path: Option<&str>) -> Result<()> {
    if who.scopes.is_session() {
        return Ok(());
    }
    admit(who, path.and_then(|p| need_of_route(method, p)))
}

/// Whether `who` may call an operation that needs `need` (`None`: an operation without a row,
/// which only sessions may call). Refusals are `Forbidden`, naming what is missing.
pub fn admit(who: &Principal, need: Option<Need>) -> Result<()> {
    if who.scopes.is_session() {
        return Ok(());
    }
    match need {
        Some(Need::Public) => Ok(()),
        Some(Need::Scope(scope)) if who.scopes.contains(scope) => Ok(()),
        Some(Need::Scope(scope)) => Err(Error::Forbidden(format!(
            "the token lacks the scope {}",
            scope.as_str()
        ))),
        Some(Need::Session) | None => Err(Error::Forbidden(
            "this operation needs a signed-in session; access tokens cannot call it".into(),
        )),
    }
}

/// `POST /auth/tokens`: a new personal access token.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessTokenInput {
    /// What it is for ("CI deploy job"): 1 to 64 characters.
    #[cfg_attr(
        feature = "openapi",
        schema(
            min_length = 1,
            max_length = 64,
            pattern = r"^[^\u0000-\u001F\u007F-\u009F]*\S[^\u0000-\u001F\u007F-\u009F]*$",
            example = "CI deploy job"
        )
    )]
    pub name: String,
    /// At least one of `users:read`, `users:write`, `audit:read`, `admin` (admins only).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, example = json!(["users:read"])))]
    pub scopes: Vec<String>,
    /// Seconds until it expires: 1 hour to 1 year (default 30 days).
    #[cfg_attr(
        feature = "openapi",
        schema(minimum = 3600, maximum = 31536000, example = 2592000)
    )]
    pub expires_in: Option<u64>,
}

/// A personal access token as its owner sees it (never the token itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessTokenInfo {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: uuid::Uuid,
    pub name: String,
    pub scopes: Vec<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// Within a minute; absent when never used.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_used_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub expires_at: Timestamp,
}

/// The answer to creating a token: its description and the token, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedAccessToken {
    #[serde(flatten)]
    pub info: AccessTokenInfo,
    /// `arc_pat_` and 43 characters of base64url (256 random bits). Shown once.
    pub token: String,
}

redacted_debug!(IssuedAccessToken, info);

/// A personal access token as stored: the SHA-256 of the token (hex), never the token.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredAccessToken {
    pub id: uuid::Uuid,
    pub user_id: UserId,
    pub name: String,
    pub token_hash: String,
    pub scopes: Scopes,
    /// The owner's credential version when it was made: a password change kills it.
    pub credential_version: u32,
    pub created_at: Timestamp,
    pub expires_at: Timestamp,
    pub last_used_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

redacted_debug!(StoredAccessToken, id, user_id, name, scopes);

impl StoredAccessToken {
    pub fn info(&self) -> AccessTokenInfo {
        AccessTokenInfo {
            id: self.id,
            name: self.name.clone(),
            scopes: self.scopes.names(),
            created_at: self.created_at,
            last_used_at: self.last_used_at,
            expires_at: self.expires_at,
        }
    }
}

/// A token and its owner as they stand, in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessTokenOwner {
    pub token: StoredAccessToken,
    pub user: User,
    /// The owner's current credential version.
    pub credential_version: u32,
}

impl AccessTokenOwner {
    /// Unrevoked, unexpired, made with the current credentials, the owner active and still of a
    /// role that may hold every scope of it (an admin's `admin` token dies with the demotion).
    pub fn is_live(&self, now: Timestamp) -> bool {
        self.token.revoked_at.is_none()
            && self.token.expires_at > now
            && self.token.credential_version == self.credential_version
            && self.user.status == Status::Active
            && self.token.scopes.allowed_for(self.user.role)
    }

    /// The caller this token makes: its owner with the owner's current role, narrowed by the
    /// token's scopes; the token's id stands where a session's would.
    pub fn principal(&self) -> Principal {
        Principal {
            user_id: self.user.id,
            session_id: self.token.id,
            role: self.user.role,
            scopes: self.token.scopes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(scopes: &[Scope]) -> Principal {
        Principal {
            user_id: uuid::Uuid::nil(),
            session_id: uuid::Uuid::nil(),
            role: Role::Admin,
            scopes: Scopes::of(scopes),
        }
    }

    #[test]
    fn scopes_round_trip_as_text_and_refuse_unknown_names() {
        let s = Scopes::of(&[Scope::UsersRead, Scope::Admin]);
        assert_eq!(s.to_text(), "users:read admin");
        assert_eq!(Scopes::parse_text("users:read admin"), Some(s));
        assert_eq!(Scopes::parse_text("users:read root"), None);
        assert!(!s.is_session() && Scopes::SESSION.is_session());
        assert!(Scopes::SESSION.iter().count() == Scope::ALL.len());
    }

    #[test]
    fn a_token_passes_only_the_rows_its_scopes_name() {
        let reader = token(&[Scope::UsersRead]);
        assert!(admit(&reader, need_of_rpc("UserService/GetUser")).is_ok());
        assert!(admit(&reader, need_of_route("GET", "/api/v1/users/{id}")).is_ok());
        let e = admit(&reader, need_of_route("PATCH", "/api/v1/users/{id}")).unwrap_err();
        assert!(
            matches!(&e, Error::Forbidden(m) if m == "the token lacks the scope users:write"),
            "{e:?}"
        );
        // operations of a person, and operations without a row, refuse every token
        assert!(
            admit(
                &token(Scope::ALL),
                need_of_rpc("AuthService/CreateAccessToken")
            )
            .is_err()
        );
        assert!(admit(&token(Scope::ALL), need_of_rpc("AuthService/Nope")).is_err());
        assert!(admit(&reader, need_of_rpc("AuthService/Login")).is_ok());
        // a session passes everything
        let session = Principal {
            scopes: Scopes::SESSION,
            ..reader
        };
        assert!(admit(&session, None).is_ok());
    }

    #[test]
    fn admin_scope_needs_an_admin_owner() {
        let admin = Scopes::of(&[Scope::Admin, Scope::UsersRead]);
        assert!(admin.allowed_for(Role::Admin));
        assert!(!admin.allowed_for(Role::User));
        assert!(Scopes::of(&[Scope::UsersWrite]).allowed_for(Role::Guest));
    }

    #[test]
    fn method_names_are_unique_across_services() {
        for a in OPERATIONS {
            for b in OPERATIONS {
                let (ma, mb) = (a.rpc.rsplit('/').next(), b.rpc.rsplit('/').next());
                assert!(ma != mb || a.rpc == b.rpc, "{a:?} {b:?}");
                if a.rpc == b.rpc {
                    assert_eq!(a.need, b.need, "one RPC, one need: {a:?} {b:?}");
                }
            }
        }
    }

    #[test]
    fn every_rest_row_names_a_method_and_an_api_path() {
        for o in OPERATIONS {
            let (m, p) = o.rest.split_once(' ').unwrap();
            assert!(
                ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(&m),
                "{o:?}"
            );
            assert!(p.starts_with("/api/v1/"), "{o:?}");
            assert!(o.rpc.contains('/'), "{o:?}");
        }
    }
}
