//! `/api/v1/webhooks`: endpoints other systems register to hear about users the moment they
//! change (admin only). Deliveries are signed per Standard Webhooks.
use axum::extract::{Path, State};
use axum::http::StatusCode;
use domain::{
    DeliveryPage, Error, IssuedWebhook, RawDeliveryQuery, Webhook, WebhookDelivery, WebhookInput,
    WebhookPatch,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::{ApiId, ApiJson, ApiQuery};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, update_webhook, delete_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(list_deliveries))
        .routes(routes!(retry_delivery))
}

/// Register an endpoint. Its signing `secret` (`whsec_…`) is in this answer only: verify every
/// delivery's `webhook-signature` with it.
#[utoipa::path(post, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    request_body = WebhookInput,
    responses(
        (status = 201, description = "The endpoint, with its secret (shown once)", body = EnvelopeDoc<IssuedWebhook>),
        (status = 400, description = "A field is invalid (url: not https, a refused address; an unknown event)", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 409, description = "The most endpoints allowed exist", body = ErrorEnvelopeDoc),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiJson(input): ApiJson<WebhookInput>,
) -> ApiResult<Success<IssuedWebhook>> {
    Ok(Success::created(
        state.webhooks.create_webhook(&caller, input).await?,
    ))
}

/// Every endpoint (never a secret), oldest first.
#[utoipa::path(get, path = "/api/v1/webhooks", tag = "webhooks", security(("bearer" = [])),
    responses(
        (status = 200, description = "The endpoints", body = EnvelopeDoc<Vec<Webhook>>),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Authed(caller): Authed,
) -> ApiResult<Success<Vec<Webhook>>> {
    Ok(Success::ok(state.webhooks.list_webhooks(&caller).await?))
}

/// One endpoint.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The endpoint", body = EnvelopeDoc<Webhook>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint", body = ErrorEnvelopeDoc),
    ))]
pub async fn get_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<Webhook>> {
    Ok(Success::ok(state.webhooks.get_webhook(&caller, id).await?))
}

/// Change an endpoint: the fields given. `enabled: true` resumes a disabled endpoint (the
/// events queued meanwhile go out, in order); `enabled: false` pauses it (events keep being
/// queued).
#[utoipa::path(patch, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    request_body = WebhookPatch,
    responses(
        (status = 200, description = "The endpoint as changed", body = EnvelopeDoc<Webhook>),
        (status = 400, description = "A field is invalid, or the id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint", body = ErrorEnvelopeDoc),
    ))]
pub async fn update_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> ApiResult<Success<Webhook>> {
    Ok(Success::ok(
        state.webhooks.update_webhook(&caller, id, patch).await?,
    ))
}

/// Delete an endpoint and everything queued for it.
#[utoipa::path(delete, path = "/api/v1/webhooks/{id}", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint", body = ErrorEnvelopeDoc),
    ))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<StatusCode> {
    state.webhooks.delete_webhook(&caller, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Send a `webhook.test` event to the endpoint now (enabled or not) and answer how it went.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/test", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id")),
    responses(
        (status = 200, description = "The test delivery after its attempt (status delivered, or pending with the error)", body = EnvelopeDoc<WebhookDelivery>),
        (status = 400, description = "The id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint", body = ErrorEnvelopeDoc),
    ))]
pub async fn test_webhook(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
) -> ApiResult<Success<WebhookDelivery>> {
    Ok(Success::ok(state.webhooks.test_webhook(&caller, id).await?))
}

/// The endpoint's deliveries, newest first: status, attempts, the last answer and error.
#[utoipa::path(get, path = "/api/v1/webhooks/{id}/deliveries", tag = "webhooks", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Endpoint id"), RawDeliveryQuery),
    responses(
        (status = 200, description = "A page of deliveries", body = EnvelopeDoc<DeliveryPage>),
        (status = 400, description = "A parameter is invalid, or the id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiId(id): ApiId,
    ApiQuery(query): ApiQuery<RawDeliveryQuery>,
) -> ApiResult<Success<DeliveryPage>> {
    Ok(Success::ok(
        state
            .webhooks
            .list_webhook_deliveries(&caller, id, query)
            .await?,
    ))
}

/// Try a delivery again now. A failed one (given up) is pending again, with three more days.
#[utoipa::path(post, path = "/api/v1/webhooks/{id}/deliveries/{delivery}/retry", tag = "webhooks", security(("bearer" = [])),
    params(
        ("id" = Uuid, Path, description = "Endpoint id"),
        ("delivery" = Uuid, Path, description = "Delivery id"),
    ),
    responses(
        (status = 202, description = "Due now", body = EnvelopeDoc<WebhookDelivery>),
        (status = 400, description = "An id is not a UUID", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin, or a token without the admin scope", body = ErrorEnvelopeDoc),
        (status = 404, description = "No such endpoint or delivery", body = ErrorEnvelopeDoc),
    ))]
pub async fn retry_delivery(
    State(state): State<AppState>,
    Authed(caller): Authed,
    Path((id, delivery)): Path<(String, String)>,
) -> ApiResult<Success<WebhookDelivery>> {
    let uuid = |field: &str, v: &str| {
        Uuid::parse_str(v).map_err(|_| Error::validation(field, "must be a UUID"))
    };
    let (id, delivery) = (uuid("id", &id)?, uuid("delivery", &delivery)?);
    Ok(Success::accepted(
        state
            .webhooks
            .retry_webhook_delivery(&caller, id, delivery)
            .await?,
    ))
}
