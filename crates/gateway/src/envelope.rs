//! The response envelope of the API contract and the request id that every envelope carries.
//!
//! The request id middleware runs outermost: it accepts a sane caller `X-Request-Id` or makes a
//! new one, scopes it as the request id in scope for the whole request (`rpc::context`, the one
//! task-local every layer uses: envelopes built anywhere below read it, gRPC calls to the layer
//! below carry it), opens the tracing span every log line of the request inherits, and echoes it.
use axum::Json;
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use tracing::Instrument;

pub static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The id of the request being served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The id of the request this task serves (a fresh one outside any request).
    pub fn current() -> String {
        rpc::context::request_id().unwrap_or_else(|| uuid::Uuid::new_v4().to_string())
    }
}

pub use domain::is_sane_request_id;

pub async fn request_id_middleware(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&X_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| is_sane_request_id(s))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    // A sane id is always a valid header value.
    if let Ok(v) = HeaderValue::from_str(&id) {
        req.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    req.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!(
        "request",
        request_id = %id,
        otel.name = %format_args!("HTTP {}", req.method()),
        otel.kind = "server",
        http.request.method = %req.method(),
        url.path = %req.uri().path(),
    );
    // Part of the trace the client sent in `traceparent`, if any (and tracing is on).
    rpc::trace::Parent::of(req.headers()).adopt(&span);
    let mut resp =
        rpc::context::with_request_id(Some(id.clone()), next.run(req).instrument(span)).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(X_REQUEST_ID.clone(), v);
    }
    resp
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// `{"success": true, "data": .., "message": .., "timestamp": .., "request_id": ..}`
#[derive(Debug, Serialize)]
pub struct Envelope<T: Serialize> {
    pub success: bool,
    pub data: T,
    pub message: Option<String>,
    pub timestamp: String,
    pub request_id: String,
}

/// A successful answer: status + data (+ optional message), wrapped in the envelope.
pub struct Success<T: Serialize>(pub StatusCode, pub T, pub Option<&'static str>);

impl<T: Serialize> Success<T> {
    pub fn ok(data: T) -> Self {
        Success(StatusCode::OK, data, None)
    }
    pub fn created(data: T) -> Self {
        Success(StatusCode::CREATED, data, None)
    }
    pub fn accepted(data: T) -> Self {
        Success(StatusCode::ACCEPTED, data, None)
    }
    pub fn with_message(mut self, message: &'static str) -> Self {
        self.2 = Some(message);
        self
    }
}

impl<T: Serialize> IntoResponse for Success<T> {
    fn into_response(self) -> Response {
        let body = Envelope {
            success: true,
            data: self.1,
            message: self.2.map(str::to_owned),
            timestamp: now(),
            request_id: RequestId::current(),
        };
        (self.0, Json(body)).into_response()
    }
}

#[derive(Debug, Serialize)]
pub struct ErrorBody {
    pub code: &'static str,
    pub message: String,
    pub details: Option<serde_json::Value>,
}

#[derive(Debug, Serialize)]
pub struct ErrorEnvelope {
    pub success: bool,
    pub error: ErrorBody,
    pub timestamp: String,
    pub request_id: String,
}

pub fn error_response(status: StatusCode, error: ErrorBody) -> Response {
    let body = ErrorEnvelope {
        success: false,
        error,
        timestamp: now(),
        request_id: RequestId::current(),
    };
    (status, Json(body)).into_response()
}
