//! Service ports: what the edge (gateway) needs from the business layer. Implemented in-process
//! by `service` and over gRPC by its client adapters. Inputs arrive raw (as typed by the caller)
//! and are validated by the service, so REST and gRPC share every rule.
use std::fmt;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::model::{Role, SessionId, Timestamp, User, UserId};
use crate::pagination::{RawUserQuery, UserPage};

/// Facts about the call that the audit log and sessions record. Never used for authorization.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestContext {
    pub request_id: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// An authenticated caller, taken from a verified access token whose session is live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    pub user_id: UserId,
    pub session_id: SessionId,
    pub role: Role,
}

impl Principal {
    pub fn is_admin(&self) -> bool {
        self.role == Role::Admin
    }
}

#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct RegisterInput {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct LoginInput {
    pub username_or_email: String,
    pub password: String,
}

/// Admin-created user: the register fields plus optional role/status/verification.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct CreateUserInput {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub is_verified: Option<bool>,
}

/// Profile change. `None` leaves a field alone; `Some(None)` (or an empty string) clears it.
/// PUT sends every field; PATCH only the ones it names.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserPatch {
    pub email: Option<String>,
    pub first_name: Option<Option<String>>,
    pub last_name: Option<Option<String>>,
    pub phone: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
}

#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
pub struct ChangePasswordInput {
    pub current_password: Option<String>,
    pub new_password: String,
}

macro_rules! redacted_debug {
    ($t:ty, $($field:ident),*) => {
        impl fmt::Debug for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($t))$(.field(stringify!($field), &self.$field))*.finish_non_exhaustive()
            }
        }
    };
}
redacted_debug!(RegisterInput, username, email);
redacted_debug!(LoginInput, username_or_email);
redacted_debug!(CreateUserInput, username, email, role, status);
redacted_debug!(ChangePasswordInput,);

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenPair {
    pub access_token: String,
    pub refresh_token: String,
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
}

impl fmt::Debug for TokenPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenPair")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// What register, login and refresh return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthSession {
    pub tokens: TokenPair,
    pub user: User,
}

/// A live session as its owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionInfo {
    pub id: SessionId,
    pub created_at: Timestamp,
    pub last_used_at: Timestamp,
    pub expires_at: Timestamp,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session of the access token that asked.
    pub current: bool,
}

#[async_trait]
pub trait AuthService: Send + Sync {
    /// The layer and everything below it answer.
    async fn ready(&self) -> Result<()>;
    async fn register(&self, ctx: &RequestContext, input: RegisterInput) -> Result<AuthSession>;
    async fn login(&self, ctx: &RequestContext, input: LoginInput) -> Result<AuthSession>;
    async fn refresh(&self, ctx: &RequestContext, refresh_token: &str) -> Result<AuthSession>;
    async fn logout(&self, ctx: &RequestContext, who: &Principal) -> Result<()>;
    async fn logout_all(&self, ctx: &RequestContext, who: &Principal) -> Result<u64>;
    async fn me(&self, ctx: &RequestContext, who: &Principal) -> Result<User>;
    async fn list_sessions(
        &self,
        ctx: &RequestContext,
        who: &Principal,
    ) -> Result<Vec<SessionInfo>>;
    async fn revoke_session(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: SessionId,
    ) -> Result<()>;
    /// Whether the token of `who` is still good: its session is live (not revoked, not expired,
    /// opened with the current credentials), the user is active and still has the token's role.
    /// Token verifiers call this (through a short cache) so revocation takes effect within seconds.
    async fn session_live(&self, who: &Principal) -> Result<bool>;
}

#[async_trait]
pub trait UserService: Send + Sync {
    async fn ready(&self) -> Result<()>;
    async fn list_users(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        query: RawUserQuery,
    ) -> Result<UserPage>;
    async fn create_user(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        input: CreateUserInput,
    ) -> Result<User>;
    async fn get_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<User>;
    async fn update_user(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        patch: UserPatch,
    ) -> Result<User>;
    async fn delete_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<()>;
    async fn change_password(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        input: ChangePasswordInput,
    ) -> Result<()>;
    async fn verify_user(&self, ctx: &RequestContext, who: &Principal, id: UserId) -> Result<User>;
    async fn set_status(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        status: &str,
    ) -> Result<User>;
    async fn set_role(
        &self,
        ctx: &RequestContext,
        who: &Principal,
        id: UserId,
        role: &str,
    ) -> Result<User>;
}
