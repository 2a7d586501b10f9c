//! `/api/v1/oidc/clients`: registering the applications that log in through arcana (admin).
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{
    ClientPage, IssuedClient, OidcClient, OidcClientInput, OidcClientPatch, RawClientQuery,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::{ApiJson, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_clients, create_client))
        .routes(routes!(get_client, patch_client, delete_client))
        .routes(routes!(rotate_secret))
}

/// Register a client (admin). A confidential client's `client_secret` is in this answer only.
#[utoipa::path(post, path = "/api/v1/oidc/clients", tag = "oidc", security(("bearer" = [])),
    request_body = OidcClientInput,
    responses(
        (status = 201, description = "Registered; `client_secret` shown this once", body = EnvelopeDoc<IssuedClient>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
    ))]
pub async fn create_client(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<OidcClientInput>,
) -> ApiResult<Success<IssuedClient>> {
    let issued = state.oidc_clients.create_client(&caller, input).await?;
    Ok(Success::created(issued))
}

/// The registered clients in `client_id` order, one keyset page (admin).
#[utoipa::path(get, path = "/api/v1/oidc/clients", tag = "oidc", security(("bearer" = [])),
    params(RawClientQuery),
    responses(
        (status = 200, description = "A page of clients", body = EnvelopeDoc<ClientPage>),
        (status = 400, description = "A query parameter out of its range", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_clients(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<RawClientQuery>,
) -> ApiResult<Success<ClientPage>> {
    Ok(Success::ok(
        state.oidc_clients.list_clients(&caller, query).await?,
    ))
}

/// A client (admin); never its secret.
#[utoipa::path(get, path = "/api/v1/oidc/clients/{client_id}", tag = "oidc", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 200, description = "The client", body = EnvelopeDoc<OidcClient>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such client", body = ErrorEnvelopeDoc),
    ))]
pub async fn get_client(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(client_id): Path<String>,
) -> ApiResult<Success<OidcClient>> {
    Ok(Success::ok(
        state.oidc_clients.get_client(&caller, &client_id).await?,
    ))
}

/// Change some settings of a client (admin); absent fields stay.
#[utoipa::path(patch, path = "/api/v1/oidc/clients/{client_id}", tag = "oidc", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    request_body = OidcClientPatch,
    responses(
        (status = 200, description = "Updated", body = EnvelopeDoc<OidcClient>),
        (status = 400, description = "VALIDATION_FAILED or INVALID_JSON", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such client", body = ErrorEnvelopeDoc),
        (status = 413, description = "Body above 64 KiB", body = ErrorEnvelopeDoc),
    ))]
pub async fn patch_client(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(client_id): Path<String>,
    ApiJson(patch): ApiJson<OidcClientPatch>,
) -> ApiResult<Success<OidcClient>> {
    let client = state
        .oidc_clients
        .update_client(&caller, &client_id, patch)
        .await?;
    Ok(Success::ok(client))
}

/// Delete a client (admin): it can no longer log anyone in.
#[utoipa::path(delete, path = "/api/v1/oidc/clients/{client_id}", tag = "oidc", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such client", body = ErrorEnvelopeDoc),
    ))]
pub async fn delete_client(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(client_id): Path<String>,
) -> ApiResult<StatusCode> {
    state
        .oidc_clients
        .delete_client(&caller, &client_id)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A new secret for a confidential client (admin); the previous one stops working at once.
#[utoipa::path(post, path = "/api/v1/oidc/clients/{client_id}/secret", tag = "oidc", security(("bearer" = [])),
    params(("client_id" = String, Path, description = "The client's id")),
    responses(
        (status = 200, description = "The client with its new `client_secret`, shown this once", body = EnvelopeDoc<IssuedClient>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such client", body = ErrorEnvelopeDoc),
        (status = 409, description = "A public client has no secret", body = ErrorEnvelopeDoc),
    ))]
pub async fn rotate_secret(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path(client_id): Path<String>,
) -> ApiResult<Success<IssuedClient>> {
    let issued = state
        .oidc_clients
        .rotate_client_secret(&caller, &client_id)
        .await?;
    Ok(Success::ok(issued))
}
