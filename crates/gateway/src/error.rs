//! The only mapping of `domain::Error` to HTTP, plus the few failures that exist only at the edge.
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use domain::Error;
use serde_json::json;

use crate::envelope::{ErrorBody, error_response};

#[derive(Debug)]
pub enum ApiError {
    Domain(Error),
    /// Body is not JSON or has the wrong content type.
    InvalidJson(String),
    PayloadTooLarge,
    /// No route matches the path.
    RouteNotFound,
    MethodNotAllowed,
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        ApiError::Domain(e)
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

fn retry_after(d: std::time::Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let e = match self {
            ApiError::Domain(e) => e,
            ApiError::InvalidJson(msg) => {
                return error_response(
                    StatusCode::BAD_REQUEST,
                    ErrorBody {
                        code: "INVALID_JSON",
                        message: msg,
                        details: None,
                    },
                );
            }
            ApiError::PayloadTooLarge => {
                return error_response(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorBody {
                        code: "PAYLOAD_TOO_LARGE",
                        message: "request body is larger than 64 KiB".into(),
                        details: None,
                    },
                );
            }
            ApiError::RouteNotFound => Error::NotFound,
            ApiError::MethodNotAllowed => {
                return error_response(
                    StatusCode::METHOD_NOT_ALLOWED,
                    ErrorBody {
                        code: "METHOD_NOT_ALLOWED",
                        message: "method not allowed for this resource".into(),
                        details: None,
                    },
                );
            }
        };
        let status = match &e {
            Error::Validation(_) => StatusCode::BAD_REQUEST,
            Error::Unauthorized
            | Error::TokenExpired
            | Error::InvalidCredentials
            | Error::InvalidMfaCode => StatusCode::UNAUTHORIZED,
            Error::Forbidden(_) | Error::MfaRequired => StatusCode::FORBIDDEN,
            Error::NotFound => StatusCode::NOT_FOUND,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            Error::Locked { .. } => StatusCode::LOCKED,
            Error::EmailNotVerified => StatusCode::FORBIDDEN,
            Error::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Error::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let details = match &e {
            Error::Validation(fields) => Some(json!({ "fields": fields.0 })),
            Error::Locked { retry_after: d } => {
                Some(json!({ "retry_after_seconds": retry_after(*d) }))
            }
            Error::RateLimited { retry_after: d } => {
                Some(json!({ "retry_after_seconds": retry_after(*d) }))
            }
            _ => None,
        };
        match &e {
            Error::Internal(cause) => {
                tracing::error!(error = %format!("{cause:#}"), "internal error")
            }
            Error::Unavailable => tracing::warn!("answering 503: a layer below is unavailable"),
            _ => {}
        }
        let mut resp = error_response(
            status,
            ErrorBody {
                code: e.code(),
                message: e.public_message(),
                details,
            },
        );
        let h = resp.headers_mut();
        match &e {
            Error::Unauthorized | Error::TokenExpired => {
                let v = if matches!(e, Error::TokenExpired) {
                    r#"Bearer error="invalid_token", error_description="token expired""#
                } else {
                    "Bearer"
                };
                h.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(v));
            }
            Error::Locked { retry_after: d } | Error::RateLimited { retry_after: d } => {
                h.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after(*d).max(1)),
                );
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn statuses_follow_the_contract() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (
                Error::validation("x", "bad").into(),
                400,
                "VALIDATION_FAILED",
            ),
            (ApiError::InvalidJson("x".into()), 400, "INVALID_JSON"),
            (Error::Unauthorized.into(), 401, "UNAUTHORIZED"),
            (Error::TokenExpired.into(), 401, "TOKEN_EXPIRED"),
            (Error::InvalidCredentials.into(), 401, "INVALID_CREDENTIALS"),
            (Error::Forbidden("no".into()).into(), 403, "FORBIDDEN"),
            (Error::NotFound.into(), 404, "NOT_FOUND"),
            (
                Error::conflict(domain::ConflictKind::Duplicate, "dup").into(),
                409,
                "CONFLICT",
            ),
            (ApiError::PayloadTooLarge, 413, "PAYLOAD_TOO_LARGE"),
            (
                Error::Locked {
                    retry_after: Duration::from_millis(1500),
                }
                .into(),
                423,
                "ACCOUNT_LOCKED",
            ),
            (
                Error::RateLimited {
                    retry_after: Duration::from_secs(3),
                }
                .into(),
                429,
                "RATE_LIMITED",
            ),
            (Error::Unavailable.into(), 503, "SERVICE_UNAVAILABLE"),
            (
                Error::internal("db exploded at /etc/secret").into(),
                500,
                "INTERNAL_ERROR",
            ),
        ];
        for (err, status, code) in cases {
            let resp = err.into_response();
            assert_eq!(resp.status().as_u16(), status, "{code}");
            if status == 423 {
                assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
            }
            if code == "UNAUTHORIZED" {
                assert_eq!(resp.headers()[header::WWW_AUTHENTICATE], "Bearer");
            }
        }
    }
}
