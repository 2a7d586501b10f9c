//! `/api/v1/audit-events`: admins read the audit log (and anyone their own account's events), newest first, a keyset page at a time.
use axum::extract::State;
use domain::{AuditPage, RawAuditQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::authn::Authed;
use crate::dto::*;
use crate::envelope::Success;
use crate::error::ApiResult;
use crate::extract::ApiQuery;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit_events))
}

/// Read the audit log (admin): logins, password and account changes, session revocations.
/// Newest first; follow `pagination.next_cursor` (null on the last page). Any user may read
/// their own account's events with `user_id` set to their id: events another user (an admin)
/// caused come without that user's id, address and request id.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "audit", security(("bearer" = [])),
    params(RawAuditQuery),
    responses(
        (status = 200, description = "A page of audit events", body = EnvelopeDoc<AuditPage>),
        (status = 400, description = "A filter or the cursor is not valid", body = ErrorEnvelopeDoc),
        (status = 401, description = "Not authenticated", body = ErrorEnvelopeDoc),
        (status = 403, description = "Not an admin (and not the caller's own user_id)", body = ErrorEnvelopeDoc),
    ))]
pub async fn list_audit_events(
    State(state): State<AppState>,
    Authed(caller): Authed,
    ApiQuery(query): ApiQuery<RawAuditQuery>,
) -> ApiResult<Success<AuditPage>> {
    Ok(Success::ok(
        state.users.list_audit_events(&caller, query).await?,
    ))
}
