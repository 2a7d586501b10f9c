//! Fixtures for the tests of every crate (feature `testing`): the domain values a test builds,
//! made one way, so a new field of `NewUser` or `AuditEvent` is added here once.
use crate::{AuditEvent, NewUser, Role, Status, Timestamp, UserId};

/// 2025-01-01T00:00:00Z plus `secs` seconds.
pub fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_735_689_600 + secs, 0).unwrap_or_default()
}

/// An active, unverified user `username` (email `<username lowercased>@example.com`) whose
/// stored hash is `pbkdf2:sha256:1000$salt$<username>`, created at [`at`]`(0)`.
pub fn new_user(username: &str) -> NewUser {
    NewUser {
        id: uuid::Uuid::new_v4(),
        username: username.to_owned(),
        email: format!("{}@example.com", username.to_lowercase()),
        password_hash: format!("pbkdf2:sha256:1000$salt${username}"),
        first_name: None,
        last_name: None,
        phone: None,
        avatar_url: None,
        role: Role::User,
        status: Status::Active,
        is_verified: false,
        created_at: at(0),
    }
}

/// A successful `action` about `subject` at [`at`]`(1)`, with `details` (JSON text), from
/// 192.0.2.7 under request id `req-test`, nobody acting.
pub fn audit_event(action: &str, subject: Option<UserId>, details: &str) -> AuditEvent {
    AuditEvent {
        id: uuid::Uuid::now_v7(),
        at: at(1),
        actor_id: None,
        subject_id: subject,
        r#type: action.into(),
        outcome: "success".into(),
        ip: Some("192.0.2.7".into()),
        request_id: Some("req-test".into()),
        details: Some(details.into()),
    }
}
