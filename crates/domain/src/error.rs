//! The one domain error. HTTP and gRPC each map it in exactly one place.
use std::collections::BTreeMap;
use std::time::Duration;

/// Field name → human-readable problems, as shown in `error.details.fields`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FieldErrors(pub BTreeMap<String, Vec<String>>);

impl FieldErrors {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0
            .entry(field.to_owned())
            .or_default()
            .push(message.into());
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut e = Self::new();
        e.add(field, message);
        e
    }
    /// `Ok(())` when no field failed, else `Error::Validation`.
    pub fn into_result(self) -> Result<()> {
        if self.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self))
        }
    }
    /// Record the outcome of one field's validation, keeping the value when it passed.
    pub fn check<T>(&mut self, field: &str, r: std::result::Result<T, String>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(m) => {
                self.add(field, m);
                None
            }
        }
    }
}

/// Why a change conflicts with the state: decides the gRPC code (ALREADY_EXISTS for duplicates,
/// FAILED_PRECONDITION otherwise); HTTP answers 409 for all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConflictKind {
    /// A username or email that is taken.
    Duplicate,
    /// The last active admin cannot be demoted, suspended or deleted.
    LastAdmin,
    /// Another request changed the same thing first (compare-and-set lost).
    ChangedMeanwhile,
    /// The operation does not apply to the thing as it is (the secret of a public client).
    NotApplicable,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed")]
    Validation(FieldErrors),
    /// No, invalid or revoked access token.
    #[error("authentication required")]
    Unauthorized,
    #[error("token expired")]
    TokenExpired,
    #[error("invalid credentials")]
    InvalidCredentials,
    /// The caller is known but not allowed; the text is safe to show.
    #[error("forbidden: {0}")]
    Forbidden(String),
    #[error("not found")]
    NotFound,
    /// The change conflicts with the current state; the text is safe to show.
    #[error("conflict: {message}")]
    Conflict { kind: ConflictKind, message: String },
    #[error("account locked")]
    Locked { retry_after: Duration },
    /// Login refused until the account's email address is verified.
    #[error("email not verified")]
    EmailNotVerified,
    /// The caller is an admin without a second factor while `ARCANA_REQUIRE_MFA_FOR_ADMINS`.
    #[error("second factor required")]
    MfaRequired,
    /// A wrong, reused or malformed second-factor code.
    #[error("invalid second-factor code")]
    InvalidMfaCode,
    #[error("rate limited")]
    RateLimited { retry_after: Duration },
    /// A layer below is down or overloaded (DB, upstream gRPC, full hash queue).
    #[error("service unavailable")]
    Unavailable,
    /// Anything unexpected. Logged with the request id, never shown to the caller.
    #[error("internal error: {0:#}")]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn internal(msg: impl std::fmt::Display) -> Self {
        Error::Internal(anyhow::anyhow!("{msg}"))
    }
    pub fn conflict(kind: ConflictKind, message: impl Into<String>) -> Self {
        Error::Conflict {
            kind,
            message: message.into(),
        }
    }
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Error::Validation(FieldErrors::single(field, message))
    }
    /// The stable machine-readable code of the API contract.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Validation(_) => "VALIDATION_FAILED",
            Error::Unauthorized => "UNAUTHORIZED",
            Error::TokenExpired => "TOKEN_EXPIRED",
            Error::InvalidCredentials => "INVALID_CREDENTIALS",
            Error::Forbidden(_) => "FORBIDDEN",
            Error::NotFound => "NOT_FOUND",
            Error::Conflict { .. } => "CONFLICT",
            Error::Locked { .. } => "ACCOUNT_LOCKED",
            Error::EmailNotVerified => "EMAIL_NOT_VERIFIED",
            Error::MfaRequired => "MFA_REQUIRED",
            Error::InvalidMfaCode => "INVALID_MFA_CODE",
            Error::RateLimited { .. } => "RATE_LIMITED",
            Error::Unavailable => "SERVICE_UNAVAILABLE",
            Error::Internal(_) => "INTERNAL_ERROR",
        }
    }
    /// The message safe to show to a caller (never internal detail).
    pub fn public_message(&self) -> String {
        match self {
            Error::Validation(_) => "request validation failed".into(),
            Error::Unauthorized => "authentication required".into(),
            Error::TokenExpired => "access token expired".into(),
            Error::InvalidCredentials => "invalid username/email or password".into(),
            Error::Forbidden(reason) => reason.clone(),
            Error::NotFound => "resource not found".into(),
            Error::Conflict { message, .. } => message.clone(),
            Error::Locked { .. } => {
                "account temporarily locked after repeated failed logins".into()
            }
            Error::EmailNotVerified => {
                "verify your email address first: follow the link we sent you".into()
            }
            Error::MfaRequired => {
                "enrol a second factor first (POST /api/v1/auth/mfa/totp/setup)".into()
            }
            Error::InvalidMfaCode => "invalid or already used second-factor code".into(),
            Error::RateLimited { .. } => "too many requests".into(),
            Error::Unavailable => "service temporarily unavailable".into(),
            Error::Internal(_) => "internal server error".into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
