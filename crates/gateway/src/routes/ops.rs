//! The public operations endpoint: the JWKS. Metrics and health are never on the public port:
//! every binary serves them on its ops listener (`ARCANA_METRICS_ADDR`, `rpc::ops`).
use axum::Json;
use axum::extract::State;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// Public keys that verify access tokens (empty for HS256).
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.authn.verifier().jwks())
}
