//! Operations endpoints: liveness, readiness, Prometheus metrics and the JWKS.
use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::dto::{ErrorEnvelopeDoc, StatusDto};
use crate::error::ApiError;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(live))
        .routes(routes!(ready))
        .routes(routes!(metrics))
        .routes(routes!(jwks))
}

/// The process runs.
#[utoipa::path(get, path = "/health/live", tag = "operations",
    responses((status = 200, description = "Alive", body = StatusDto)))]
pub async fn live() -> Json<StatusDto> {
    Json(StatusDto {
        status: "ok".into(),
    })
}

/// The database (or the layer below, transitively) answers.
#[utoipa::path(get, path = "/health/ready", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = StatusDto),
        (status = 503, description = "A layer below is unavailable, or the process is shutting down", body = ErrorEnvelopeDoc),
    ))]
pub async fn ready(State(state): State<AppState>) -> Result<Json<StatusDto>, ApiError> {
    // Shutting down: not ready, so load balancers move away while requests are still served.
    if rpc::server::is_draining() {
        return Err(domain::Error::Unavailable.into());
    }
    let (a, u) = tokio::join!(state.auth.ready(), state.users.ready());
    a?;
    u?;
    Ok(Json(StatusDto {
        status: "ready".into(),
    }))
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain", body = String)))]
pub async fn metrics(State(state): State<AppState>) -> Response {
    for refresh in &state.gauges {
        refresh();
    }
    match crate::metrics::handle() {
        Some(h) => (
            StatusCode::OK,
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            h.render(),
        )
            .into_response(),
        None => ApiError::Domain(domain::Error::Unavailable).into_response(),
    }
}

/// Public keys that verify access tokens (empty for HS256).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.authn.verifier().jwks())
}
