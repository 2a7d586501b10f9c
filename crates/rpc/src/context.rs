//! The request id of the call being served, carried between layers in `x-request-id` metadata so
//! every layer's log lines of one request share it.
use std::future::Future;

pub const REQUEST_ID: &str = "x-request-id";

tokio::task_local! {
    static CURRENT: Option<String>;
}

/// The request id in scope (set by an internal server from incoming metadata, or by the edge).
pub fn request_id() -> Option<String> {
    CURRENT.try_with(Clone::clone).ok().flatten()
}

/// Run `f` with `id` as the request id in scope.
pub async fn with_request_id<F: Future>(id: Option<String>, f: F) -> F::Output {
    CURRENT.scope(id, f).await
}

/// A sane id from incoming metadata (≤ 128 chars of `[A-Za-z0-9._-]`).
pub fn from_metadata(md: &tonic::metadata::MetadataMap) -> Option<String> {
    md.get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| domain::is_sane_request_id(s))
        .map(str::to_owned)
}
