//! The only mapping between `domain::Error` and `tonic::Status`, both ways.
//!
//! The contract's error code travels in the `x-error-code` metadata, details (field errors,
//! retry-after) as JSON in `x-error-details`, so a client adapter rebuilds the exact domain error
//! and the gateway answers REST and gRPC alike whatever the deployment mode.
use std::time::Duration;

use domain::{ConflictKind, Error, FieldErrors};
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

pub const ERROR_CODE: &str = "x-error-code";
pub const ERROR_DETAILS: &str = "x-error-details";

/// `domain::Error` → `Status`. Internal causes are logged here and never sent.
pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::Validation(_) => Code::InvalidArgument,
        Error::Unauthorized | Error::TokenExpired | Error::InvalidCredentials => {
            Code::Unauthenticated
        }
        Error::Forbidden(_) => Code::PermissionDenied,
        Error::NotFound => Code::NotFound,
        Error::Conflict {
            kind: ConflictKind::Duplicate,
            ..
        } => Code::AlreadyExists,
        Error::Conflict { .. } | Error::Locked { .. } | Error::EmailNotVerified => {
            Code::FailedPrecondition
        }
        Error::RateLimited { .. } => Code::ResourceExhausted,
        Error::Unavailable => Code::Unavailable,
        Error::Internal(_) => Code::Internal,
    };
    let details = match &e {
        Error::Validation(f) => Some(json!({ "fields": f.0 })),
        Error::Conflict { kind, .. } => Some(json!({ "conflict": kind })),
        Error::Locked { retry_after } | Error::RateLimited { retry_after } => Some(json!({
            "retry_after_seconds": retry_after.as_secs() + u64::from(retry_after.subsec_nanos() > 0),
            "retry_after_ms": u64::try_from(retry_after.as_millis()).unwrap_or(u64::MAX),
        })),
        _ => None,
    };
    if let Error::Internal(cause) = &e {
        tracing::error!(error = %format!("{cause:#}"), "internal error");
    }
    let mut status = Status::new(code, e.public_message());
    let md = status.metadata_mut();
    md.insert(ERROR_CODE, MetadataValue::from_static(e.code()));
    if let Some(d) = details
        && let Ok(v) = MetadataValue::try_from(d.to_string())
    {
        md.insert(ERROR_DETAILS, v);
    }
    status
}

/// `Status` → `domain::Error`, for client adapters. Transport failures become `Unavailable`.
pub fn to_error(s: Status) -> Error {
    let code = s
        .metadata()
        .get(ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let details: serde_json::Value = s
        .metadata()
        .get(ERROR_DETAILS)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| serde_json::from_str(v).ok())
        .unwrap_or(serde_json::Value::Null);
    let retry_after = || Duration::from_millis(details["retry_after_ms"].as_u64().unwrap_or(1000));
    let message = s.message().to_owned();
    match code.as_deref() {
        Some("VALIDATION_FAILED") => {
            let fields = serde_json::from_value(details["fields"].clone()).unwrap_or_default();
            Error::Validation(FieldErrors(fields))
        }
        Some("UNAUTHORIZED") => Error::Unauthorized,
        Some("TOKEN_EXPIRED") => Error::TokenExpired,
        Some("INVALID_CREDENTIALS") => Error::InvalidCredentials,
        Some("FORBIDDEN") => Error::Forbidden(message),
        Some("EMAIL_NOT_VERIFIED") => Error::EmailNotVerified,
        Some("NOT_FOUND") => Error::NotFound,
        Some("CONFLICT") => Error::Conflict {
            kind: serde_json::from_value(details["conflict"].clone())
                .unwrap_or(ConflictKind::ChangedMeanwhile),
            message,
        },
        Some("ACCOUNT_LOCKED") => Error::Locked {
            retry_after: retry_after(),
        },
        Some("RATE_LIMITED") => Error::RateLimited {
            retry_after: retry_after(),
        },
        Some("SERVICE_UNAVAILABLE") => Error::Unavailable,
        Some("INTERNAL_ERROR") => Error::internal("a layer below answered INTERNAL"),
        // No error code: the status did not come from a layer's answer (every answer carries
        // one, see `to_status`) but from the transport between the two — a reset stream, a
        // GOAWAY, a connection that broke mid-call (Unknown, Internal). The layer below is
        // unreachable, not broken: 503.
        _ => match s.code() {
            Code::Unavailable
            | Code::DeadlineExceeded
            | Code::Cancelled
            | Code::ResourceExhausted
            | Code::Aborted
            | Code::Unknown
            | Code::Internal => {
                tracing::warn!(code = ?s.code(), message = %s.message(), "upstream call failed");
                Error::Unavailable
            }
            Code::Unauthenticated => Error::Unauthorized,
            Code::NotFound => Error::NotFound,
            Code::PermissionDenied => Error::Forbidden("permission denied".into()),
            other => Error::internal(format!("upstream answered {other:?}: {}", s.message())),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_keeps_the_domain_error() {
        let cases = vec![
            Error::validation("email", "must be valid"),
            Error::Unauthorized,
            Error::TokenExpired,
            Error::InvalidCredentials,
            Error::Forbidden("account suspended".into()),
            Error::EmailNotVerified,
            Error::NotFound,
            Error::conflict(ConflictKind::Duplicate, "username already taken"),
            Error::conflict(
                ConflictKind::LastAdmin,
                "the last active admin cannot be deleted",
            ),
            Error::conflict(ConflictKind::ChangedMeanwhile, "changed meanwhile"),
            Error::Locked {
                retry_after: Duration::from_millis(29_500),
            },
            Error::RateLimited {
                retry_after: Duration::from_secs(3),
            },
            Error::Unavailable,
        ];
        for e in cases {
            let text = format!("{e:?}");
            let back = to_error(to_status(e));
            assert_eq!(format!("{back:?}"), text);
        }
    }

    #[test]
    fn codes_follow_the_contract_table() {
        assert_eq!(
            to_status(Error::validation("x", "y")).code(),
            Code::InvalidArgument
        );
        assert_eq!(
            to_status(Error::conflict(ConflictKind::Duplicate, "taken")).code(),
            Code::AlreadyExists
        );
        assert_eq!(
            to_status(Error::conflict(ConflictKind::LastAdmin, "last admin")).code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            to_status(Error::Locked {
                retry_after: Duration::from_secs(1)
            })
            .code(),
            Code::FailedPrecondition
        );
        assert_eq!(
            to_status(Error::RateLimited {
                retry_after: Duration::from_secs(1)
            })
            .code(),
            Code::ResourceExhausted
        );
        let s = to_status(Error::internal("SELECT * FROM users at /srv/db"));
        assert_eq!(s.code(), Code::Internal);
        assert!(!s.message().contains("SELECT"));
        assert_eq!(s.metadata().get(ERROR_CODE).unwrap(), "INTERNAL_ERROR");
    }

    #[test]
    fn transport_failures_are_unavailable() {
        assert!(matches!(
            to_error(Status::unavailable("connection refused")),
            Error::Unavailable
        ));
        assert!(matches!(
            to_error(Status::deadline_exceeded("slow")),
            Error::Unavailable
        ));
        // What tonic answers when the connection breaks mid-call (h2 reset, GOAWAY, EOF): no
        // error code of ours, so the transport's, not the layer's.
        for s in [
            Status::unknown("transport error"),
            Status::internal("h2 protocol error: stream no longer needed"),
            Status::cancelled("operation was canceled"),
        ] {
            assert!(matches!(to_error(s), Error::Unavailable));
        }
        // A real INTERNAL of the layer below stays one.
        assert!(matches!(
            to_error(to_status(Error::internal("boom"))),
            Error::Internal(_)
        ));
    }
}
