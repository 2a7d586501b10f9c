//! `/api/v1/auth/mfa`: second factors (TOTP, recovery codes) and the second step of a login;
//! `DELETE /api/v1/users/{id}/mfa` for administrators.
use axum::extract::State;
use axum::http::StatusCode;
use domain::{
    AuthSession, MfaCodeInput, MfaStatus, MfaVerifyInput, PasskeyChallenge, PasskeyInfo,
    PasskeyLoginInput, PasskeyRegistrationInput, PasskeyRename, RecoveryCodes, TotpDisableInput,
    TotpSetup, TotpSetupInput,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::{ApiId, ApiJson, Client};
use crate::ratelimit::Bucket;
use crate::routes::auth::limit;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(mfa_status))
        .routes(routes!(totp_setup))
        .routes(routes!(totp_confirm))
        .routes(routes!(totp_disable))
        .routes(routes!(recovery_codes))
        .routes(routes!(mfa_verify))
        .routes(routes!(remove_mfa))
        .routes(routes!(passkey_register_start))
        .routes(routes!(passkey_register_finish))
        .routes(routes!(list_passkeys))
        .routes(routes!(rename_passkey, delete_passkey))
        .routes(routes!(passkey_login_start))
        .routes(routes!(passkey_login_finish))
}

/// The caller's second factors.
#[utoipa::path(get, path = "/api/v1/auth/mfa", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, description = "What is enrolled", body = EnvelopeDoc<MfaStatus>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn mfa_status(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<MfaStatus>> {
    Ok(Success::ok(state.auth.mfa_status(&caller).await?))
}

/// Start TOTP enrolment (current password required): a new secret, its `otpauth://` URI and
/// QR code. Pending until confirmed with a first code; a second setup replaces a pending one.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/setup", tag = "mfa", security(("bearer" = [])),
    request_body = TotpSetupInput,
    responses(
        (status = 200, description = "The secret to enrol", body = EnvelopeDoc<TotpSetup>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated, or INVALID_CREDENTIALS (wrong password)", body = ErrorEnvelopeDoc),
        (status = 409, description = "TOTP is already enabled", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn totp_setup(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<TotpSetupInput>,
) -> ApiResult<Success<TotpSetup>> {
    Ok(Success::ok(state.auth.totp_setup(&caller, input).await?))
}

/// Turn TOTP on with a first code: answers 10 recovery codes, shown this once.
#[utoipa::path(post, path = "/api/v1/auth/mfa/totp/confirm", tag = "mfa", security(("bearer" = [])),
    request_body = MfaCodeInput,
    responses(
        (status = 200, description = "TOTP on; the recovery codes", body = EnvelopeDoc<RecoveryCodes>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated, or INVALID_MFA_CODE", body = ErrorEnvelopeDoc),
        (status = 409, description = "No setup pending, or already enabled", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn totp_confirm(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<MfaCodeInput>,
) -> ApiResult<Success<RecoveryCodes>> {
    Ok(Success::ok(state.auth.totp_confirm(&caller, input).await?))
}

/// Turn TOTP off (current password and a code): every second factor goes; a notice is mailed.
#[utoipa::path(delete, path = "/api/v1/auth/mfa/totp", tag = "mfa", security(("bearer" = [])),
    request_body = TotpDisableInput,
    responses(
        (status = 204, description = "TOTP off"),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated, INVALID_CREDENTIALS or INVALID_MFA_CODE", body = ErrorEnvelopeDoc),
        (status = 404, description = "TOTP is not enabled", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn totp_disable(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<TotpDisableInput>,
) -> ApiResult<StatusCode> {
    state.auth.totp_disable(&caller, input).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new set of recovery codes (a TOTP code required); the old set dies.
#[utoipa::path(post, path = "/api/v1/auth/mfa/recovery-codes", tag = "mfa", security(("bearer" = [])),
    request_body = MfaCodeInput,
    responses(
        (status = 200, description = "The new codes", body = EnvelopeDoc<RecoveryCodes>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated, or INVALID_MFA_CODE", body = ErrorEnvelopeDoc),
        (status = 409, description = "TOTP is not enabled", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn recovery_codes(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<MfaCodeInput>,
) -> ApiResult<Success<RecoveryCodes>> {
    let codes = state.auth.regenerate_recovery_codes(&caller, input).await?;
    Ok(Success::ok(codes))
}

/// The second step of a login that answered `mfa_required`: the `mfa_token` and a TOTP code or
/// a recovery code. Answers exactly what a login without a second factor answers.
#[utoipa::path(post, path = "/api/v1/auth/mfa/verify", tag = "mfa",
    request_body = MfaVerifyInput,
    responses(
        (status = 200, description = "Token pair and user", body = EnvelopeDoc<AuthSession>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "INVALID_MFA_CODE, or UNAUTHORIZED (mfa_token unknown, used, expired or from another network)", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn mfa_verify(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<MfaVerifyInput>,
) -> ApiResult<Success<AuthSession>> {
    limit(&state, Bucket::Login, &client).await?;
    Ok(Success::ok(
        state.auth.mfa_verify(&client.ctx, input).await?,
    ))
}

/// Remove every second factor of a user (admin): their sessions end, they are mailed.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa", tag = "users", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or MFA_REQUIRED", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such user, or no second factor", body = ErrorEnvelopeDoc),
    ))]
pub async fn remove_mfa(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.users.remove_mfa(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start registering a passkey: the options for `navigator.credentials.create` (binary fields
/// base64url) and the ceremony's id (single use, 5 minutes, finished on any replica).
#[utoipa::path(post, path = "/api/v1/auth/mfa/passkeys/register/start", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, description = "The creation options", body = EnvelopeDoc<PasskeyChallenge>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn passkey_register_start(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<PasskeyChallenge>> {
    Ok(Success::ok(
        state.auth.passkey_register_start(&caller).await?,
    ))
}

/// Finish registering a passkey: the created credential and a name. A notice is mailed.
#[utoipa::path(post, path = "/api/v1/auth/mfa/passkeys/register/finish", tag = "mfa", security(("bearer" = [])),
    request_body = PasskeyRegistrationInput,
    responses(
        (status = 201, description = "Registered", body = EnvelopeDoc<PasskeyInfo>),
        (status = 400, description = "VALIDATION_FAILED (name, or a credential that does not answer the challenge)", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated, or the ceremony is unknown, used or expired", body = ErrorEnvelopeDoc),
        (status = 409, description = "This passkey is registered already", body = ErrorEnvelopeDoc),
    ))]
pub async fn passkey_register_finish(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<PasskeyRegistrationInput>,
) -> ApiResult<Success<PasskeyInfo>> {
    let passkey = state.auth.passkey_register_finish(&caller, input).await?;
    Ok(Success::created(passkey))
}

/// The caller's passkeys, oldest first.
#[utoipa::path(get, path = "/api/v1/auth/mfa/passkeys", tag = "mfa", security(("bearer" = [])),
    responses(
        (status = 200, description = "The passkeys", body = EnvelopeDoc<Vec<PasskeyInfo>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_passkeys(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Vec<PasskeyInfo>>> {
    Ok(Success::ok(state.auth.list_passkeys(&caller).await?))
}

/// Rename one of the caller's passkeys.
#[utoipa::path(patch, path = "/api/v1/auth/mfa/passkeys/{id}", tag = "mfa", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    request_body = PasskeyRename,
    responses(
        (status = 200, description = "Renamed", body = EnvelopeDoc<PasskeyInfo>),
        (status = 400, description = "VALIDATION_FAILED", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such passkey of the caller", body = ErrorEnvelopeDoc),
    ))]
pub async fn rename_passkey(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(input): ApiJson<PasskeyRename>,
) -> ApiResult<Success<PasskeyInfo>> {
    Ok(Success::ok(
        state.auth.rename_passkey(&caller, id, input).await?,
    ))
}

/// Delete one of the caller's passkeys; a notice is mailed.
#[utoipa::path(delete, path = "/api/v1/auth/mfa/passkeys/{id}", tag = "mfa", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Passkey id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such passkey of the caller", body = ErrorEnvelopeDoc),
    ))]
pub async fn delete_passkey(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.auth.delete_passkey(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Start a sign-in with a passkey alone: the options for `navigator.credentials.get`.
#[utoipa::path(post, path = "/api/v1/auth/passkeys/login/start", tag = "auth",
    responses(
        (status = 200, description = "The request options", body = EnvelopeDoc<PasskeyChallenge>),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn passkey_login_start(
    State(state): State<AppState>,
    client: Client,
) -> ApiResult<Success<PasskeyChallenge>> {
    limit(&state, Bucket::Login, &client).await?;
    Ok(Success::ok(
        state.auth.passkey_login_start(&client.ctx).await?,
    ))
}

/// Finish a sign-in with a passkey alone: answers exactly what a login answers.
#[utoipa::path(post, path = "/api/v1/auth/passkeys/login/finish", tag = "auth",
    request_body = PasskeyLoginInput,
    responses(
        (status = 200, description = "Token pair and user", body = EnvelopeDoc<AuthSession>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "INVALID_CREDENTIALS: unknown passkey, a signature that does not verify, or the ceremony is unknown, used or expired", body = ErrorEnvelopeDoc),
        (status = 403, description = "The account may not sign in (status, unverified address)", body = ErrorEnvelopeDoc),
        (status = 423, description = "ACCOUNT_LOCKED (Retry-After)", body = ErrorEnvelopeDoc),
        (status = 429, description = "Rate limited (Retry-After)", body = ErrorEnvelopeDoc),
    ))]
pub async fn passkey_login_finish(
    State(state): State<AppState>,
    client: Client,
    ApiJson(input): ApiJson<PasskeyLoginInput>,
) -> ApiResult<Success<AuthSession>> {
    limit(&state, Bucket::Login, &client).await?;
    let session = state.auth.passkey_login_finish(&client.ctx, input).await?;
    Ok(Success::ok(session))
}
