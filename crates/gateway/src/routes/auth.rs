//! `/api/v1/auth`: register, login, refresh, logout, sessions. Bodies are the domain inputs.
use axum::extract::State;
use axum::http::StatusCode;
use domain::{
    AuthSession, Error, ForgotPasswordInput, LoginInput, LoginOutcome, RegisterInput,
    ResetPasswordInput, SessionInfo, User, VerifyEmailInput,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::{ApiError, ApiResult};
use crate::extract::{ApiId, ApiJson, Client};
use crate::ratelimit::Bucket;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(register))
        .routes(routes!(login))
        .routes(routes!(refresh))
        .routes(routes!(logout))
        .routes(routes!(logout_all))
        .routes(routes!(me))
        .routes(routes!(list_sessions))
        .routes(routes!(revoke_session))
        .routes(routes!(forgot_password))
        .routes(routes!(reset_password))
        .routes(routes!(verify_email))
        .routes(routes!(revert_email))
        .routes(routes!(resend_verification))
}

pub(crate) async fn limit(
    state: &AppState,
    bucket: Bucket,
    client: &Client,
) -> Result<(), ApiError> {
    match client.ip {
        Some(ip) => state
            .rate_limit
            .admit(bucket, ip)
            .await
            .map_err(|retry_after| ApiError::Domain(Error::RateLimited { retry_after })),
        None => Ok(()),
    }
}

/// Create an account and log it in.
#[utoipa::path(post, path = "/api/v1/auth/register", tag = "auth",
    request_body = RegisterInput,
    responses(
        (status = 201, description = "Registered and logged in", body = EnvelopeDoc<AuthSession>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 409, description = "Username or email taken", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn register(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<RegisterInput>,
) -> ApiResult<Success<AuthSession>> {
    limit(&state, Bucket::Register, &client).await?;
    let session = state.auth.register(&client.ctx, input).await?;
    Ok(Success::created(session))
}

/// Log in with username or email and password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "auth",
    request_body = LoginInput,
    responses(
        (status = 200, description = "Token pair and user; or, for an account with a second factor, `mfa_required` and the `mfa_token` for POST /api/v1/auth/mfa/verify (no tokens)", body = EnvelopeDoc<LoginOutcome>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "INVALID_CREDENTIALS", body = ErrorEnvelopeDoc),
        (status = 403, description = "Right password, account not active", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn login(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<LoginInput>,
) -> ApiResult<Success<LoginOutcome>> {
    limit(&state, Bucket::Login, &client).await?;
    Ok(Success::ok(state.auth.login(&client.ctx, input).await?))
}

/// Rotate the refresh token: a new pair; the presented token is dead from now on.
#[utoipa::path(post, path = "/api/v1/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New token pair", body = EnvelopeDoc<AuthSession>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Unknown, expired, revoked or reused token", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn refresh(
    State(state): State<AppState>,
    client: Client,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Success<AuthSession>> {
    limit(&state, Bucket::Refresh, &client).await?;
    let session = state.auth.refresh(&client.ctx, &body.refresh_token).await?;
    Ok(Success::ok(session))
}

/// Revoke the caller's session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Logged out", body = EnvelopeDoc<Option<String>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn logout(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Option<()>>> {
    state.auth.logout(&caller).await?;
    Ok(Success::ok(None).with_message("logged out"))
}

/// Revoke every session of the caller.
#[utoipa::path(post, path = "/api/v1/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "All sessions revoked", body = EnvelopeDoc<RevokedDto>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn logout_all(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<RevokedDto>> {
    let revoked_count = state.auth.logout_all(&caller).await?;
    Ok(Success::ok(RevokedDto { revoked_count }))
}

/// The caller's user.
#[utoipa::path(get, path = "/api/v1/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The caller", body = EnvelopeDoc<User>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn me(State(state): State<AppState>, Authed(caller): Authed) -> ApiResult<Success<User>> {
    Ok(Success::ok(state.auth.me(&caller).await?))
}

/// The caller's live sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Live sessions", body = EnvelopeDoc<Vec<SessionInfo>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Vec<SessionInfo>>> {
    Ok(Success::ok(state.auth.list_sessions(&caller).await?))
}

/// Revoke one of the caller's sessions.
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Session id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such session of the caller", body = ErrorEnvelopeDoc),
    ))]
pub async fn revoke_session(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.auth.revoke_session(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Ask for a password-reset link by mail. The answer is the same, in comparable time, whether
/// the address belongs to an account or not.
#[utoipa::path(post, path = "/api/v1/auth/password/forgot", tag = "auth",
    request_body = ForgotPasswordInput,
    responses(
        (status = 202, description = "If the address belongs to an active account, a link is on its way", body = EnvelopeDoc<Option<String>>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn forgot_password(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<ForgotPasswordInput>,
) -> ApiResult<Success<Option<()>>> {
    limit(&state, Bucket::Recovery, &client).await?;
    state.auth.forgot_password(&client.ctx, input).await?;
    Ok(Success::accepted(None)
        .with_message("if this address belongs to an account, a reset link has been sent to it"))
}

/// Set a new password with the token of a reset link: every session of the account ends and a
/// lockout is lifted.
#[utoipa::path(post, path = "/api/v1/auth/password/reset", tag = "auth",
    request_body = ResetPasswordInput,
    responses(
        (status = 204, description = "Password set; sign in with it"),
        (status = 400, description = "VALIDATION_FAILED (the token is unknown, used, expired or superseded; or the password breaks the policy) or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn reset_password(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<ResetPasswordInput>,
) -> ApiResult<StatusCode> {
    limit(&state, Bucket::Recovery, &client).await?;
    state.auth.reset_password(&client.ctx, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Confirm the account's email address with the token of a verification link.
#[utoipa::path(post, path = "/api/v1/auth/email/verify", tag = "auth",
    request_body = VerifyEmailInput,
    responses(
        (status = 200, description = "The address, verified (nothing else of the account)", body = EnvelopeDoc<AddressDto>),
        (status = 400, description = "VALIDATION_FAILED (the token is unknown, used, expired or superseded) or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn verify_email(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<VerifyEmailInput>,
) -> ApiResult<Success<AddressDto>> {
    limit(&state, Bucket::Recovery, &client).await?;
    Ok(Success::ok(
        state.auth.verify_email(&client.ctx, input).await?.into(),
    ))
}

/// Undo an email change with the token of the link mailed to the replaced address: that address
/// comes back (verified) and every session of the account ends.
#[utoipa::path(post, path = "/api/v1/auth/email/revert", tag = "auth",
    request_body = VerifyEmailInput,
    responses(
        (status = 200, description = "The previous address, back and verified (nothing else of the account)", body = EnvelopeDoc<AddressDto>),
        (status = 400, description = "VALIDATION_FAILED (the token is unknown, used or expired) or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 409, description = "The previous address belongs to another account meanwhile", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn revert_email(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<VerifyEmailInput>,
) -> ApiResult<Success<AddressDto>> {
    limit(&state, Bucket::Recovery, &client).await?;
    Ok(Success::ok(
        state.auth.revert_email(&client.ctx, input).await?.into(),
    ))
}

/// Mail the caller a new verification link (nothing when the address is already verified).
#[utoipa::path(post, path = "/api/v1/auth/email/verify/resend", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 202, description = "A link is on its way (or the address is verified already)", body = EnvelopeDoc<Option<String>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 429, description = "Too many links lately (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn resend_verification(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Option<()>>> {
    state.auth.resend_verification(&caller).await?;
    Ok(Success::accepted(None).with_message("verification link sent"))
}
