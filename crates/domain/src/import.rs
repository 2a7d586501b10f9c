//! Import from arcana-cloud-python: its `users` rows, as read from its database, checked against
//! arcana's rules and turned into arcana users (new ids, the password hashes kept as they are).
use std::fmt;
use std::str::FromStr;

use chrono::{NaiveDateTime, Utc};
use uuid::Uuid;

use crate::error::FieldErrors;
use crate::model::{NewUser, Role, Status, Timestamp};
use crate::values::{Email, Username, parse_avatar_url, parse_name, parse_phone};

/// One row of the Python deployment's `users` table, as its database holds it: enum NAMES
/// (`ADMIN`, `ACTIVE`), naive UTC datetimes as text. `Debug` never shows the hash.
#[derive(Clone, PartialEq, Eq)]
pub struct LegacyUser {
    pub legacy_id: i64,
    pub username: String,
    pub email: String,
    pub password_hash: String,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub avatar_url: Option<String>,
    pub role: String,
    pub status: String,
    pub is_verified: bool,
    pub is_active: bool,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
    pub last_login_at: Option<String>,
}

impl fmt::Debug for LegacyUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacyUser")
            .field("legacy_id", &self.legacy_id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// A legacy row that passed every check: the arcana user it becomes (a fresh id; the
/// repository keeps the id of an earlier import), and digests of the source row and of its
/// password hash, so a later run can tell what changed in the source since.
#[derive(Clone, PartialEq, Eq)]
pub struct ImportedUser {
    pub legacy_id: i64,
    pub user: NewUser,
    pub updated_at: Timestamp,
    pub last_login_at: Option<Timestamp>,
    /// Of every imported column (the hash included).
    pub row_digest: String,
    /// Of the password hash alone: an update replaces the arcana hash only when this changed.
    pub password_digest: String,
}

impl fmt::Debug for ImportedUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImportedUser")
            .field("legacy_id", &self.legacy_id)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

/// What to do with a row whose username or email an arcana user already has, or which changed
/// in the source since an earlier import.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Leave the arcana user alone and report the row as skipped.
    #[default]
    Skip,
    /// Overwrite the arcana user with the source row.
    Update,
    /// Write nothing and stop.
    Fail,
}

impl FromStr for ConflictPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "skip" => Ok(Self::Skip),
            "update" => Ok(Self::Update),
            "fail" => Ok(Self::Fail),
            _ => Err("must be one of: skip, update, fail".into()),
        }
    }
}

/// What the import did with one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportOutcome {
    Created(Uuid),
    Updated(Uuid),
    /// Imported before and unchanged in the source since.
    Unchanged(Uuid),
    Skipped(String),
    /// Not importable: the reason names the column.
    Refused(String),
    /// A conflict under [`ConflictPolicy::Fail`]: nothing of the batch was written.
    Conflict(String),
}

/// Check a legacy row against arcana's rules. `hash_check` tells whether arcana can verify a
/// password against the stored hash (the `crypto` crate's formats). `Err` names every column
/// that failed and why (`username: …; phone: …`).
pub fn check_legacy_user(
    row: &LegacyUser,
    hash_check: impl Fn(&str) -> Result<(), &'static str>,
    digest: impl Fn(&str) -> String,
) -> Result<ImportedUser, String> {
    let mut errs = FieldErrors::new();
    let username = errs.check("username", Username::parse(&row.username));
    let email = errs.check("email", Email::parse(&row.email));
    errs.check(
        "password_hash",
        hash_check(&row.password_hash).map_err(|e| format!("not a hash arcana can verify ({e})")),
    );
    let first_name = errs.check("first_name", parse_name(row.first_name.as_deref()));
    let last_name = errs.check("last_name", parse_name(row.last_name.as_deref()));
    let phone = errs.check("phone", parse_phone(row.phone.as_deref()));
    let avatar_url = errs.check("avatar_url", parse_avatar_url(row.avatar_url.as_deref()));
    let role = errs.check("role", enum_name::<Role>(&row.role));
    let status = errs.check("status", enum_name::<Status>(&row.status));
    let time = |t: Option<&str>| t.map(naive_utc).transpose();
    let created_at = errs.check(
        "created_at",
        time(row.created_at.as_deref()).and_then(|t| t.ok_or_else(|| "is missing".to_owned())),
    );
    let updated_at = errs.check("updated_at", time(row.updated_at.as_deref()));
    let last_login_at = errs.check("last_login_at", time(row.last_login_at.as_deref()));
    let (
        Some(username),
        Some(email),
        Some(first_name),
        Some(last_name),
        Some(phone),
        Some(avatar_url),
        Some(role),
        Some(mut status),
        Some(created_at),
        Some(updated_at),
        Some(last_login_at),
    ) = (
        username,
        email,
        first_name,
        last_name,
        phone,
        avatar_url,
        role,
        status,
        created_at,
        updated_at,
        last_login_at,
    )
    else {
        return Err(reasons(&errs));
    };
    if !errs.is_empty() {
        return Err(reasons(&errs));
    }
    // `is_active = false` kept an ACTIVE account from signing in: it stays unable to.
    if !row.is_active && status == Status::Active {
        status = Status::Inactive;
    }
    let updated_at = updated_at.unwrap_or(created_at);
    let row_digest = digest(
        &serde_json::json!([
            row.username,
            row.email,
            row.password_hash,
            row.first_name,
            row.last_name,
            row.phone,
            row.avatar_url,
            row.role,
            row.status,
            row.is_verified,
            row.is_active,
            row.created_at,
            row.updated_at,
            row.last_login_at,
        ])
        .to_string(),
    );
    Ok(ImportedUser {
        legacy_id: row.legacy_id,
        user: NewUser {
            id: Uuid::new_v4(),
            username: username.into_inner(),
            email: email.into_inner(),
            password_hash: row.password_hash.clone(),
            first_name,
            last_name,
            phone,
            avatar_url,
            role,
            status,
            is_verified: row.is_verified,
            created_at,
        },
        updated_at,
        last_login_at,
        row_digest,
        password_digest: digest(&row.password_hash),
    })
}

/// `column: problem; column: problem`, in column order of the map.
fn reasons(errs: &FieldErrors) -> String {
    errs.0
        .iter()
        .map(|(field, problems)| format!("{field}: {}", problems.join(", ")))
        .collect::<Vec<_>>()
        .join("; ")
}

/// SQLAlchemy's `Enum` stores the member NAME (`ADMIN`); a deployment configured to store
/// values has `admin`. Either is read.
fn enum_name<T: FromStr<Err = String>>(name: &str) -> Result<T, String> {
    name.trim().to_ascii_lowercase().parse()
}

/// A naive datetime as the Python stack wrote it (`datetime.utcnow()`): UTC, with or without
/// fractional seconds, `T` or space between date and time.
fn naive_utc(text: &str) -> Result<Timestamp, String> {
    let t = text.trim();
    ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(t, f).ok())
        .map(|n| n.and_utc().with_timezone(&Utc))
        .ok_or_else(|| format!("{t:?} is not a date and time (YYYY-MM-DD HH:MM:SS)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> LegacyUser {
        LegacyUser {
            legacy_id: 7,
            username: "alice".into(),
            email: "Alice@Example.com".into(),
            password_hash: "pbkdf2:sha256:600000$salt$00".into(),
            first_name: Some("Alice".into()),
            last_name: None,
            phone: Some("+1 555 0100".into()),
            avatar_url: None,
            role: "ADMIN".into(),
            status: "ACTIVE".into(),
            is_verified: true,
            is_active: true,
            created_at: Some("2024-03-01 12:30:45.123456".into()),
            updated_at: Some("2024-03-02 08:00:00".into()),
            last_login_at: None,
        }
    }

    fn check(row: &LegacyUser) -> Result<ImportedUser, String> {
        check_legacy_user(
            row,
            |h| {
                if h.starts_with("pbkdf2:") {
                    Ok(())
                } else {
                    Err("unknown method")
                }
            },
            str::to_owned,
        )
    }

    #[test]
    fn a_python_row_becomes_an_arcana_user() {
        let u = check(&row()).expect("valid");
        assert_eq!(u.legacy_id, 7);
        assert_eq!(u.user.email, "alice@example.com");
        assert_eq!(u.user.role, Role::Admin);
        assert_eq!(u.user.status, Status::Active);
        assert!(u.user.is_verified);
        assert_eq!(
            u.user.created_at.to_rfc3339(),
            "2024-03-01T12:30:45.123456+00:00"
        );
        assert_eq!(u.updated_at.to_rfc3339(), "2024-03-02T08:00:00+00:00");
        assert_eq!(u.user.password_hash, "pbkdf2:sha256:600000$salt$00");
    }

    #[test]
    fn enum_values_and_inactive_flags_are_read() {
        let mut r = row();
        r.role = "guest".into();
        r.is_active = false;
        let u = check(&r).expect("valid");
        assert_eq!(
            (u.user.role, u.user.status),
            (Role::Guest, Status::Inactive)
        );
        r.status = "SUSPENDED".into();
        assert_eq!(check(&r).expect("valid").user.status, Status::Suspended);
    }

    #[test]
    fn invalid_rows_are_refused_naming_the_column() {
        type Spoil = fn(&mut LegacyUser);
        let cases: [(Spoil, &str); 7] = [
            (|r| r.username = "a b".into(), "username:"),
            (|r| r.email = "not-an-address".into(), "email:"),
            (|r| r.password_hash = "md5$x$y".into(), "password_hash:"),
            (|r| r.role = "OWNER".into(), "role:"),
            (|r| r.phone = Some("call me".into()), "phone:"),
            (|r| r.created_at = Some("yesterday".into()), "created_at:"),
            (|r| r.created_at = None, "created_at: is missing"),
        ];
        for (spoil, reason) in cases {
            let mut r = row();
            spoil(&mut r);
            let err = check(&r).expect_err(reason);
            assert!(err.starts_with(reason), "{err}");
        }
    }

    #[test]
    fn every_problem_of_a_row_is_named() {
        let mut r = row();
        r.username = "a b".into();
        r.phone = Some("call me".into());
        r.status = "GONE".into();
        let err = check(&r).expect_err("three problems");
        assert!(err.starts_with("phone: "), "{err}");
        assert!(err.contains("; status: must be one of"), "{err}");
        assert!(err.contains("; username: may contain only"), "{err}");
    }

    #[test]
    fn the_digests_follow_the_source_row() {
        let a = check(&row()).expect("valid");
        let mut r = row();
        r.first_name = Some("Alicia".into());
        let b = check(&r).expect("valid");
        assert_ne!(a.row_digest, b.row_digest);
        assert_eq!(a.password_digest, b.password_digest);
        assert!(!format!("{a:?}").contains("pbkdf2"));
        assert!(!format!("{:?}", row()).contains("pbkdf2"));
    }
}
