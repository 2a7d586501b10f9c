//! Wire shapes of the REST API (documented with utoipa). Requests reject unknown fields.
use chrono::{DateTime, Utc};
use domain::{AuthSession, PageInfo, SessionInfo, User, UserPage};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::extract::double_option;

#[derive(Debug, Serialize, ToSchema)]
pub struct UserDto {
    pub id: Uuid,
    pub username: String,
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    /// guest | user | admin
    pub role: String,
    /// active | inactive | suspended | deleted
    pub status: String,
    pub is_verified: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_login_at: Option<DateTime<Utc>>,
}

impl From<User> for UserDto {
    fn from(u: User) -> Self {
        Self {
            id: u.id,
            username: u.username,
            email: u.email,
            first_name: u.first_name,
            last_name: u.last_name,
            phone: u.phone,
            avatar_url: u.avatar_url,
            role: u.role.to_string(),
            status: u.status.to_string(),
            is_verified: u.is_verified,
            created_at: u.created_at,
            updated_at: u.updated_at,
            last_login_at: u.last_login_at,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuthDto {
    pub access_token: String,
    pub refresh_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: u64,
    pub user: UserDto,
}

impl From<AuthSession> for AuthDto {
    fn from(s: AuthSession) -> Self {
        Self {
            access_token: s.tokens.access_token,
            refresh_token: s.tokens.refresh_token,
            token_type: s.tokens.token_type,
            expires_in: s.tokens.expires_in,
            user: s.user.into(),
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionDto {
    pub id: Uuid,
    pub created_at: DateTime<Utc>,
    pub last_used_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub user_agent: Option<String>,
    pub ip: Option<String>,
    /// The session of the token that asked.
    pub current: bool,
}

impl From<SessionInfo> for SessionDto {
    fn from(s: SessionInfo) -> Self {
        Self {
            id: s.id,
            created_at: s.created_at,
            last_used_at: s.last_used_at,
            expires_at: s.expires_at,
            user_agent: s.user_agent,
            ip: s.ip,
            current: s.current,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedDto {
    pub revoked_count: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaginationDto {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<u32>,
    pub per_page: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pages: Option<u64>,
    /// Keyset mode only: pass as `cursor` for the next page; null at the end.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Option<String>>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct UserListDto {
    pub items: Vec<UserDto>,
    pub pagination: PaginationDto,
}

impl From<UserPage> for UserListDto {
    fn from(p: UserPage) -> Self {
        let pagination = match p.pagination {
            PageInfo::Offset {
                page,
                per_page,
                total,
                pages,
            } => PaginationDto {
                page: Some(page),
                per_page,
                total: Some(total),
                pages: Some(pages),
                next_cursor: None,
            },
            PageInfo::Keyset {
                per_page,
                next_cursor,
            } => PaginationDto {
                page: None,
                per_page,
                total: None,
                pages: None,
                next_cursor: Some(next_cursor),
            },
        };
        Self {
            items: p.items.into_iter().map(UserDto::from).collect(),
            pagination,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Username or email address.
    pub username_or_email: String,
    pub password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUserRequest {
    pub username: String,
    pub email: String,
    pub password: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    /// guest | user | admin (default user)
    pub role: Option<String>,
    /// active | inactive | suspended (default active)
    pub status: Option<String>,
    pub is_verified: Option<bool>,
}

/// PUT: the full profile. Omitted optional fields are cleared.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceUserRequest {
    pub email: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
}

/// PATCH: any subset of the profile; `null` clears a field.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchUserRequest {
    pub email: Option<String>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub first_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub last_name: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub phone: Option<Option<String>>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>)]
    pub avatar_url: Option<Option<String>>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    /// Required when changing your own password.
    pub current_password: Option<String>,
    pub new_password: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    /// active | inactive | suspended
    pub status: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    /// guest | user | admin
    pub role: String,
}

/// Query parameters of `GET /api/v1/users`.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListUsersParams {
    /// Page number, ≥ 1 (default 1). Not with `cursor`.
    pub page: Option<String>,
    /// 1–100 (default 20).
    pub per_page: Option<String>,
    /// created_at | username | email | last_login_at
    pub sort: Option<String>,
    /// asc | desc (default desc)
    pub order: Option<String>,
    /// guest | user | admin
    pub role: Option<String>,
    /// active | inactive | suspended | deleted (default: all but deleted)
    pub status: Option<String>,
    /// Case-insensitive substring of username, email, first or last name.
    pub search: Option<String>,
    /// RFC 3339; users created at or after.
    pub created_after: Option<String>,
    /// RFC 3339; users created before.
    pub created_before: Option<String>,
    /// Keyset pagination: empty for the first page, then `next_cursor`.
    pub cursor: Option<String>,
}

impl From<ListUsersParams> for domain::RawUserQuery {
    fn from(p: ListUsersParams) -> Self {
        Self {
            page: p.page,
            per_page: p.per_page,
            sort: p.sort,
            order: p.order,
            role: p.role,
            status: p.status,
            search: p.search,
            created_after: p.created_after,
            created_before: p.created_before,
            cursor: p.cursor,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct StatusDto {
    pub status: String,
}

/// The error envelope (every non-2xx answer).
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelopeDoc {
    pub success: bool,
    pub error: ErrorDoc,
    pub timestamp: String,
    pub request_id: String,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDoc {
    /// e.g. VALIDATION_FAILED, UNAUTHORIZED, NOT_FOUND
    pub code: String,
    pub message: String,
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
}

/// The success envelope around `data`.
#[derive(Serialize, ToSchema)]
pub struct EnvelopeDoc<T: ToSchema> {
    pub success: bool,
    pub data: T,
    pub message: Option<String>,
    pub timestamp: String,
    pub request_id: String,
}
