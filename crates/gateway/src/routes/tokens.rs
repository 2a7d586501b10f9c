//! `/api/v1/auth/tokens`: the caller's personal access tokens (from a signed-in session only:
//! the scope table refuses tokens here).
use axum::extract::State;
use axum::http::StatusCode;
use domain::{AccessTokenInfo, AccessTokenInput, IssuedAccessToken};
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
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(revoke_token))
}

/// Create a personal access token (`arc_pat_…`): a bearer token for scripts and CI jobs that
/// acts for the caller, narrowed by its scopes, until it expires or is revoked. The token is in
/// this answer only.
#[utoipa::path(post, path = "/api/v1/auth/tokens", tag = "auth", security(("bearer" = [])),
    request_body = AccessTokenInput,
    responses(
        (status = 201, description = "The token, shown once", body = EnvelopeDoc<IssuedAccessToken>),
        (status = 400, description = "A field is invalid (name, scopes, expires_in)", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Called with an access token (a signed-in session is needed)", body = ErrorEnvelopeDoc),
        (status = 409, description = "The account holds the most live tokens allowed", body = ErrorEnvelopeDoc),
    ))]
pub async fn create_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<AccessTokenInput>,
) -> ApiResult<Success<IssuedAccessToken>> {
    Ok(Success::created(
        state.auth.create_access_token(&caller, input).await?,
    ))
}

/// The caller's live personal access tokens (never the tokens themselves), newest first.
#[utoipa::path(get, path = "/api/v1/auth/tokens", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "Unrevoked, unexpired tokens", body = EnvelopeDoc<Vec<AccessTokenInfo>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Called with an access token", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_tokens(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Vec<AccessTokenInfo>>> {
    Ok(Success::ok(state.auth.list_access_tokens(&caller).await?))
}

/// Revoke one of the caller's personal access tokens: it stops working at once on this
/// replica, within 2 s everywhere.
#[utoipa::path(delete, path = "/api/v1/auth/tokens/{id}", tag = "auth", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Token id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Called with an access token", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such live token of the caller", body = ErrorEnvelopeDoc),
    ))]
pub async fn revoke_token(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.auth.revoke_access_token(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
