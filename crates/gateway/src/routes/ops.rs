//! The public operations endpoint: the JWKS. Metrics and health are never on the public port:
//! every binary serves them on its ops listener (`ARCANA_METRICS_ADDR`, `rpc::ops`).
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(jwks))
}

/// Public keys that verify access tokens (none for HS256) and OpenID Connect ID tokens (RS256
/// and EdDSA, previous keys of a rotation included), each with its `kid`.
#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "operations",
    responses((status = 200, description = "JSON Web Key Set", body = Object)))]
pub async fn jwks(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.jwks.clone(),
    )
}
