//! The few REST shapes that are not domain types (bodies of one field, envelopes for the
//! OpenAPI document). Everything else the handlers read and answer is the domain type itself.
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct RevokedDto {
    pub revoked_count: u64,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    #[schema(min_length = 1)]
    pub refresh_token: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StatusRequest {
    #[schema(value_type = domain::SettableStatus)]
    pub status: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RoleRequest {
    #[schema(value_type = domain::Role)]
    pub role: String,
}

/// What a link page shows after following its link: the address and whether it is verified,
/// nothing else of the account (whoever holds a link, e.g. from a forwarded mail, sees only this).
#[derive(Serialize, ToSchema)]
pub struct AddressDto {
    pub email: String,
    pub is_verified: bool,
}

impl From<domain::User> for AddressDto {
    fn from(u: domain::User) -> Self {
        Self {
            email: u.email,
            is_verified: u.is_verified,
        }
    }
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
