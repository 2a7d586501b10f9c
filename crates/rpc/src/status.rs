//! The only mapping between `domain::Error` and `tonic::Status`, both ways.
//!
//! Every error carries the standard `google.rpc.Status` details (`grpc-status-details-bin`), so
//! clients in any language read them: `ErrorInfo` with the contract's error code as `reason`
//! (domain [`ERROR_DOMAIN`]; a conflict's kind in its metadata), `BadRequest` with one field
//! violation per problem, `RetryInfo` for 429/503-like answers (a lock, a rate limit). A client
//! adapter rebuilds the exact domain error from them, so the gateway answers REST and gRPC alike
//! whatever the deployment mode.
//!
//! For one release the same facts also travel as before, in the `x-error-code` and
//! `x-error-details` (JSON) metadata: callers and layers of the previous release read those; a
//! status without the standard details is read from them.
use std::time::Duration;

use domain::{ConflictKind, Error, FieldErrors};
use serde_json::json;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// Deprecated (one release): the error code as metadata; read `ErrorInfo.reason` instead.
pub const ERROR_CODE: &str = "x-error-code";
/// Deprecated (one release): field errors and retry delays as JSON metadata.
pub const ERROR_DETAILS: &str = "x-error-details";
/// When to try again after SERVICE_UNAVAILABLE (its `RetryInfo`).
pub const UNAVAILABLE_RETRY: Duration = Duration::from_secs(1);
/// `ErrorInfo.domain` of arcana's errors.
pub const ERROR_DOMAIN: &str = "arcana.dev";

/// `domain::Error` → `Status`. Internal causes are logged here and never sent.
pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::Validation(_) => Code::InvalidArgument,
        Error::Unauthorized
        | Error::TokenExpired
        | Error::InvalidCredentials
        | Error::InvalidMfaCode => Code::Unauthenticated,
        Error::Forbidden(_) | Error::MfaRequired => Code::PermissionDenied,
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
    let mut standard = ErrorDetails::new();
    let mut info = std::collections::HashMap::new();
    match &e {
        Error::Validation(f) => {
            for (field, problems) in &f.0 {
                for problem in problems {
                    standard.add_bad_request_violation(field.clone(), problem.clone());
                }
            }
        }
        Error::Conflict { kind, .. } => {
            if let Ok(serde_json::Value::String(k)) = serde_json::to_value(kind) {
                info.insert("conflict".to_owned(), k);
            }
        }
        Error::Locked { retry_after } | Error::RateLimited { retry_after } => {
            standard.set_retry_info(Some(*retry_after));
        }
        Error::Unavailable => {
            standard.set_retry_info(Some(UNAVAILABLE_RETRY));
        }
        _ => {}
    }
    standard.set_error_info(e.code(), ERROR_DOMAIN, info);
    let mut status = Status::with_error_details(code, e.public_message(), standard);
    let md = status.metadata_mut();
    md.insert(ERROR_CODE, MetadataValue::from_static(e.code()));
    if let Some(d) = details
        && let Ok(v) = MetadataValue::try_from(d.to_string())
    {
        md.insert(ERROR_DETAILS, v);
    }
    status
}

/// `Status` → `domain::Error`, for client adapters: from the standard details, else (a layer of
/// the previous release) from the `x-error-*` metadata. Transport failures become `Unavailable`.
pub fn to_error(s: Status) -> Error {
    let standard = s.get_error_details();
    match standard.error_info() {
        Some(info) if info.domain == ERROR_DOMAIN => from_details(&s, &standard, &info.reason),
        _ => from_metadata(s),
    }
}

fn from_details(s: &Status, d: &ErrorDetails, code: &str) -> Error {
    let retry_after = || {
        d.retry_info()
            .and_then(|r| r.retry_delay)
            .unwrap_or(Duration::from_secs(1))
    };
    let message = s.message().to_owned();
    match code {
        "VALIDATION_FAILED" => {
            let mut fields = FieldErrors::new();
            for v in d
                .bad_request()
                .map(|b| b.field_violations.as_slice())
                .unwrap_or(&[])
            {
                fields.add(&v.field, v.description.clone());
            }
            Error::Validation(fields)
        }
        "CONFLICT" => Error::Conflict {
            kind: d
                .error_info()
                .and_then(|i| i.metadata.get("conflict"))
                .and_then(|k| serde_json::from_value(json!(k)).ok())
                .unwrap_or(ConflictKind::ChangedMeanwhile),
            message,
        },
        "ACCOUNT_LOCKED" => Error::Locked {
            retry_after: retry_after(),
        },
        "RATE_LIMITED" => Error::RateLimited {
            retry_after: retry_after(),
        },
        other => simple_error(other, message).unwrap_or_else(|| transport_error(s)),
    }
}

/// The errors that carry nothing but their code (and a message).
fn simple_error(code: &str, message: String) -> Option<Error> {
    Some(match code {
        "UNAUTHORIZED" => Error::Unauthorized,
        "TOKEN_EXPIRED" => Error::TokenExpired,
        "INVALID_CREDENTIALS" => Error::InvalidCredentials,
        "FORBIDDEN" => Error::Forbidden(message),
        "EMAIL_NOT_VERIFIED" => Error::EmailNotVerified,
        "MFA_REQUIRED" => Error::MfaRequired,
        "INVALID_MFA_CODE" => Error::InvalidMfaCode,
        "NOT_FOUND" => Error::NotFound,
        "SERVICE_UNAVAILABLE" => Error::Unavailable,
        "INTERNAL_ERROR" => Error::internal("a layer below answered INTERNAL"),
        _ => return None,
    })
}

fn from_metadata(s: Status) -> Error {
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
        Some(other) => simple_error(other, message).unwrap_or_else(|| transport_error(&s)),
        None => transport_error(&s),
    }
}

/// No error code: the status did not come from a layer's answer (every answer carries one,
/// see `to_status`) but from the transport between the two — a reset stream, a GOAWAY, a
/// connection that broke mid-call (Unknown, Internal). The layer below is unreachable, not
/// broken: 503.
fn transport_error(s: &Status) -> Error {
    match s.code() {
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

    /// What a client in any language reads: the standard details, nothing of ours needed.
    #[test]
    fn errors_carry_the_standard_details() {
        let mut fields = FieldErrors::new();
        fields.add("email", "must be valid");
        fields.add("password", "too short");
        let s = to_status(Error::Validation(fields));
        let d = s.get_error_details();
        let info = d.error_info().unwrap();
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("VALIDATION_FAILED", ERROR_DOMAIN)
        );
        let violations: Vec<(&str, &str)> = d
            .bad_request()
            .unwrap()
            .field_violations
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            violations,
            [("email", "must be valid"), ("password", "too short")]
        );
        let s = to_status(Error::RateLimited {
            retry_after: Duration::from_millis(2_500),
        });
        let d = s.get_error_details();
        assert_eq!(d.error_info().unwrap().reason, "RATE_LIMITED");
        assert_eq!(
            d.retry_info().unwrap().retry_delay,
            Some(Duration::from_millis(2_500))
        );
        let d = to_status(Error::Unavailable).get_error_details();
        assert_eq!(d.retry_info().unwrap().retry_delay, Some(UNAVAILABLE_RETRY));
        let d = to_status(Error::conflict(ConflictKind::LastAdmin, "last")).get_error_details();
        assert_eq!(d.error_info().unwrap().metadata["conflict"], "last_admin");
    }

    /// A layer of the previous release answers with the metadata alone: still understood.
    #[test]
    fn metadata_of_the_previous_release_is_still_read() {
        let cases = vec![
            Error::validation("email", "must be valid"),
            Error::conflict(
                ConflictKind::LastAdmin,
                "the last active admin cannot be deleted",
            ),
            Error::Locked {
                retry_after: Duration::from_millis(29_500),
            },
            Error::NotFound,
        ];
        for e in cases {
            let text = format!("{e:?}");
            let full = to_status(e);
            let mut old = Status::new(full.code(), full.message());
            for key in [ERROR_CODE, ERROR_DETAILS] {
                if let Some(v) = full.metadata().get(key) {
                    old.metadata_mut().insert(key, v.clone());
                }
            }
            assert!(old.get_error_details().error_info().is_none());
            assert_eq!(format!("{:?}", to_error(old)), text);
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
