//! The pages the mailed links open (`<public url>/reset-password#token=…`,
//! `<public url>/verify-email#token=…`, `<public url>/revert-email#token=…`), so a deployment without a front end of its own (and
//! `cargo run`) has working links. Static HTML whose script reads the token from the address's
//! fragment (never sent to a server, so no proxy or access log sees it),
//! removes it from the address bar and history, and POSTs it to the API; nothing from the request
//! is echoed into the page. A front end of your own can take these paths over by pointing
//! `ARCANA_PUBLIC_URL` at itself.
use std::sync::LazyLock;

use axum::Router;
use axum::http::{HeaderValue, header};
use axum::response::{Html, IntoResponse};
use axum::routing::get;

/// The page's own inline script and style only (by hash: nothing injected could run), the API
/// on this origin only; no framing, no form posts.
pub fn csp(html: &str) -> String {
    let hashes = |tag: &str| {
        let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
        let mut out = Vec::new();
        let mut rest = html;
        while let Some(i) = rest.find(&open) {
            let body = &rest[i + open.len()..];
            let Some(j) = body.find(&close) else { break };
            out.push(format!("'sha256-{}'", crypto::sha256_base64(&body[..j])));
            rest = &body[j + close.len()..];
        }
        if out.is_empty() {
            "'none'".to_owned()
        } else {
            out.join(" ")
        }
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; connect-src 'self'; \
         form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
        hashes("script"),
        hashes("style")
    )
}

struct Page {
    html: &'static str,
    csp: HeaderValue,
}

impl Page {
    fn new(html: &'static str) -> Self {
        let csp = HeaderValue::from_str(&csp(html))
            .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        Self { html, csp }
    }
}

static RESET: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("../../pages/reset-password.html")));
static VERIFY: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("../../pages/verify-email.html")));
static REVERT: LazyLock<Page> =
    LazyLock::new(|| Page::new(include_str!("../../pages/revert-email.html")));

fn page(p: &'static Page) -> impl IntoResponse {
    (
        [(header::CONTENT_SECURITY_POLICY, p.csp.clone())],
        Html(p.html),
    )
}

pub fn router<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new()
        .route("/reset-password", get(|| async { page(&RESET) }))
        .route("/verify-email", get(|| async { page(&VERIFY) }))
        .route("/revert-email", get(|| async { page(&REVERT) }))
}

#[cfg(test)]
mod tests {
    use super::csp;

    #[test]
    fn the_policy_allows_exactly_the_inline_blocks() {
        let p = csp("<style>a{}</style><script>go()</script><script>x</script>");
        assert!(!p.contains("unsafe-inline"), "{p}");
        assert!(
            p.contains(&format!(
                "script-src 'sha256-{}' 'sha256-{}';",
                crypto::sha256_base64("go()"),
                crypto::sha256_base64("x")
            )),
            "{p}"
        );
        assert!(p.contains(&format!(
            "style-src 'sha256-{}';",
            crypto::sha256_base64("a{}")
        )));
        assert!(csp("<p>static</p>").contains("script-src 'none'; style-src 'none'"));
    }
}
