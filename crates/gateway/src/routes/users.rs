//! `/api/v1/users`: user administration (admin) and self-service profile/password. Bodies and
//! the query are the domain inputs.
use axum::extract::State;
use axum::http::StatusCode;
use domain::{
    CreateUserInput, Error, PasswordInput, RawUserQuery, SessionInfo, User, UserPage, UserPatch,
    UserProfile,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::{ApiId, ApiJson, ApiQuery, Client};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, replace_user, patch_user, delete_user))
        .routes(routes!(change_password))
        .routes(routes!(verify_user))
        .routes(routes!(unlock_user))
        .routes(routes!(list_user_sessions))
        .routes(routes!(set_status))
        .routes(routes!(set_role))
}

/// List, filter and search users (admin).
#[utoipa::path(get, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    params(RawUserQuery),
    responses(
        (status = 200, description = "A page of users", body = EnvelopeDoc<UserPage>),
        (status = 400, description = "A query parameter out of its range", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_users(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<RawUserQuery>,
) -> ApiResult<Success<UserPage>> {
    Ok(Success::ok(state.users.list_users(&caller, query).await?))
}

/// Create a user (admin).
#[utoipa::path(post, path = "/api/v1/users", tag = "users", security(("bearer" = [])),
    request_body = CreateUserInput,
    responses(
        (status = 201, description = "Created", body = EnvelopeDoc<User>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 409, description = "Username or email taken", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
    ))]
pub async fn create_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<CreateUserInput>,
) -> ApiResult<Success<User>> {
    let user = state.users.create_user(&caller, input).await?;
    Ok(Success::created(user))
}

/// A user (self or admin; others answer 404).
#[utoipa::path(get, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "The user", body = EnvelopeDoc<User>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user (or not yours)", body = ErrorEnvelopeDoc),
    ))]
pub async fn get_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<User>> {
    Ok(Success::ok(state.users.get_user(&caller, id).await?))
}

/// Replace the profile (self or admin). Omitted optional fields are cleared.
#[utoipa::path(put, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UserProfile,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<User>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Changing your own email address: the current password is incorrect", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user (or not yours)", body = ErrorEnvelopeDoc),
        (status = 409, description = "Email taken", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 423, description = "Locked after repeated wrong current passwords", body = ErrorEnvelopeDoc),
    ))]
pub async fn replace_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(profile): ApiJson<UserProfile>,
) -> ApiResult<Success<User>> {
    let user = state.users.update_user(&caller, id, profile.into()).await?;
    Ok(Success::ok(user))
}

/// Change some profile fields (self or admin); `null` clears.
#[utoipa::path(patch, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = UserPatch,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<User>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Changing your own email address: the current password is incorrect", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user (or not yours)", body = ErrorEnvelopeDoc),
        (status = 409, description = "Email taken", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 423, description = "Locked after repeated wrong current passwords", body = ErrorEnvelopeDoc),
    ))]
pub async fn patch_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(patch): ApiJson<UserPatch>,
) -> ApiResult<Success<User>> {
    let user = state.users.update_user(&caller, id, patch).await?;
    Ok(Success::ok(user))
}

/// Soft-delete a user (admin): sessions revoked, username and email freed.
#[utoipa::path(delete, path = "/api/v1/users/{id}", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
        (status = 409, description = "Last active admin", body = ErrorEnvelopeDoc),
    ))]
pub async fn delete_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.users.delete_user(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Change a password: self with `current_password`, or admin without.
#[utoipa::path(put, path = "/api/v1/users/{id}/password", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = PasswordInput,
    responses(
        (status = 204, description = "Changed; the user's other sessions are revoked"),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "The current password is incorrect", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user (or not yours)", body = ErrorEnvelopeDoc),
        (status = 409, description = "Changed by another request meanwhile", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 423, description = "Locked after repeated wrong current passwords", body = ErrorEnvelopeDoc),
        (status = 429, description = "Too many password changes (per user and per address)", body = ErrorEnvelopeDoc),
    ))]
pub async fn change_password(
    State(state): State<AppState>,
    Authed(caller): Authed,
    client: Client,
    ApiId(id): ApiId,
    ApiJson(input): ApiJson<PasswordInput>,
) -> ApiResult<StatusCode> {
    // Two password hashes per call: budgeted per caller and per address.
    state
        .rate_limit
        .admit_password_change(caller.who.user_id, client.ip)
        .await
        .map_err(|retry_after| Error::RateLimited { retry_after })?;
    state.users.change_password(&caller, id, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Mark a user's email as verified (admin).
#[utoipa::path(post, path = "/api/v1/users/{id}/verify", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Verified", body = EnvelopeDoc<User>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
    ))]
pub async fn verify_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<User>> {
    Ok(Success::ok(state.users.verify_user(&caller, id).await?))
}

/// End every login lockout of a user (admin): all networks, audited as `user.unlocked`.
#[utoipa::path(post, path = "/api/v1/users/{id}/unlock", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Unlocked", body = EnvelopeDoc<User>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
    ))]
pub async fn unlock_user(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<User>> {
    Ok(Success::ok(state.users.unlock_user(&caller, id).await?))
}

/// A user's live sessions (admin); `current` marks the caller's own.
#[utoipa::path(get, path = "/api/v1/users/{id}/sessions", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 200, description = "Live sessions", body = EnvelopeDoc<Vec<SessionInfo>>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_user_sessions(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<Vec<SessionInfo>>> {
    Ok(Success::ok(
        state.users.list_user_sessions(&caller, id).await?,
    ))
}

/// Set a user's status (admin): suspension or deactivation revokes their sessions.
#[utoipa::path(put, path = "/api/v1/users/{id}/status", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = StatusRequest,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<User>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
        (status = 409, description = "Last active admin", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
    ))]
pub async fn set_status(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(b): ApiJson<StatusRequest>,
) -> ApiResult<Success<User>> {
    let user = state.users.set_status(&caller, id, &b.status).await?;
    Ok(Success::ok(user))
}

/// Set a user's role (admin): revokes their sessions (the role is in their tokens).
#[utoipa::path(put, path = "/api/v1/users/{id}/role", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = RoleRequest,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<User>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user", body = ErrorEnvelopeDoc),
        (status = 409, description = "Last active admin", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
    ))]
pub async fn set_role(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(b): ApiJson<RoleRequest>,
) -> ApiResult<Success<User>> {
    let user = state.users.set_role(&caller, id, &b.role).await?;
    Ok(Success::ok(user))
}
