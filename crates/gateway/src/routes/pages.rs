//! The pages the mailed links open (`<public url>/reset-password#token=…`,
//! `<public url>/verify-email#token=…`, `<public url>/revert-email#token=…`), so a deployment without a front end of its own (and
//! `cargo run`) has working links. Static HTML whose script reads the token from the address's
//! fragment (never sent to a server, so no proxy or access log sees it),
//! removes it from the address bar and history, and POSTs it to the API; nothing from the request
//! is echoed into the page. A front end of your own can take these paths over by pointing
//! `ARCANA_PUBLIC_URL` at itself.
use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// Inline script and style only; the API on this origin only; no framing, no form posts.
const CSP: &str = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
                   connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

fn page(html: &'static str) -> impl IntoResponse {
    (
        [(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        )],
        Html(html),
    )
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route(
            "/reset-password",
            get(|| async { page(include_str!("../../pages/reset-password.html")) }),
        )
        .route(
            "/verify-email",
            get(|| async { page(include_str!("../../pages/verify-email.html")) }),
        )
        .route(
            "/revert-email",
            get(|| async { page(include_str!("../../pages/revert-email.html")) }),
        )
}
