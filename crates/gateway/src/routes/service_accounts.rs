//! `/api/v1/service-accounts`: the principals other services call with (admin only). Their
//! `client_id` and secret get access tokens at `/oauth2/token` (`client_credentials`).
use axum::extract::State;
use axum::http::StatusCode;
use domain::{IssuedServiceAccount, SecretRotationInput, ServiceAccount, ServiceAccountInput};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::{ApiId, ApiJson};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_account, list_accounts))
        .routes(routes!(get_account, delete_account))
        .routes(routes!(rotate_secret))
}

/// Create a service account: a role, scopes, no password. Its `client_secret` is in this answer
/// only; with its `client_id` it gets access tokens at `POST /oauth2/token`
/// (`grant_type=client_credentials`).
#[utoipa::path(post, path = "/api/v1/service-accounts", tag = "service-accounts", security(("bearer" = [])),
    request_body = ServiceAccountInput,
    responses(
        (status = 201, description = "The account, with its secret (shown once)", body = EnvelopeDoc<IssuedServiceAccount>),
        (status = 400, description = "A field is invalid (name, role, scopes)", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 409, description = "The most service accounts allowed exist", body = ErrorEnvelopeDoc),
    ))]
pub async fn create_account(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<ServiceAccountInput>,
) -> ApiResult<Success<IssuedServiceAccount>> {
    Ok(Success::created(
        state
            .oidc_clients
            .create_service_account(&caller, input)
            .await?,
    ))
}

/// Every service account (never a secret), oldest first.
#[utoipa::path(get, path = "/api/v1/service-accounts", tag = "service-accounts", security(("bearer" = [])),
    responses(
        (status = 200, description = "The accounts", body = EnvelopeDoc<Vec<ServiceAccount>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_accounts(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Vec<ServiceAccount>>> {
    Ok(Success::ok(
        state.oidc_clients.list_service_accounts(&caller).await?,
    ))
}

/// One service account.
#[utoipa::path(get, path = "/api/v1/service-accounts/{id}", tag = "service-accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Service account id")),
    responses(
        (status = 200, description = "The account", body = EnvelopeDoc<ServiceAccount>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such account", body = ErrorEnvelopeDoc),
    ))]
pub async fn get_account(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<ServiceAccount>> {
    Ok(Success::ok(
        state.oidc_clients.get_service_account(&caller, id).await?,
    ))
}

/// Give the account a new secret (in this answer only). The secret it replaces keeps working
/// for `overlap_seconds` (default one day, 0 to 7 days), so callers can switch without a gap.
#[utoipa::path(post, path = "/api/v1/service-accounts/{id}/secret", tag = "service-accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Service account id")),
    request_body = SecretRotationInput,
    responses(
        (status = 200, description = "The account, with its new secret (shown once)", body = EnvelopeDoc<IssuedServiceAccount>),
        (status = 400, description = "overlap_seconds out of range, or the id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such account", body = ErrorEnvelopeDoc),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(input): ApiJson<SecretRotationInput>,
) -> ApiResult<Success<IssuedServiceAccount>> {
    Ok(Success::ok(
        state
            .oidc_clients
            .rotate_service_account_secret(&caller, id, input)
            .await?,
    ))
}

/// Delete a service account: its access tokens stop working within seconds.
#[utoipa::path(delete, path = "/api/v1/service-accounts/{id}", tag = "service-accounts", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Service account id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such account", body = ErrorEnvelopeDoc),
    ))]
pub async fn delete_account(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state
        .oidc_clients
        .delete_service_account(&caller, id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
