//! Mapping storage failures onto the domain error, in one place.
use diesel::result::{DatabaseErrorInformation, DatabaseErrorKind, Error as DieselError};
use domain::{ConflictKind, Error};

pub(crate) const USERNAME_TAKEN: &str = "username already taken";
pub(crate) const EMAIL_TAKEN: &str = "email already registered";
pub(crate) const NAME_TAKEN: &str = "username or email already taken";

/// What a blocking repository closure fails with: a driver error (mapped later, with its
/// details) or a domain decision taken inside a transaction (e.g. the last-admin guard).
#[derive(Debug)]
pub(crate) enum DbError {
    Diesel(DieselError),
    Domain(Error),
}

impl From<DieselError> for DbError {
    fn from(e: DieselError) -> Self {
        DbError::Diesel(e)
    }
}

impl From<Error> for DbError {
    fn from(e: Error) -> Self {
        DbError::Domain(e)
    }
}

impl DbError {
    /// An insert that lost a race for a unique key.
    pub fn is_unique_violation(&self) -> bool {
        matches!(
            self,
            DbError::Diesel(DieselError::DatabaseError(
                DatabaseErrorKind::UniqueViolation,
                _
            ))
        )
    }

    /// A deadlock or serialization failure: the transaction was rolled back by the server and
    /// may simply be run again.
    pub fn is_retryable(&self) -> bool {
        match self {
            // MySQL 1213 (deadlock) and PostgreSQL 40001 arrive as SerializationFailure.
            DbError::Diesel(DieselError::DatabaseError(
                DatabaseErrorKind::SerializationFailure,
                _,
            )) => true,
            // PostgreSQL 40P01 has no kind of its own.
            DbError::Diesel(DieselError::DatabaseError(_, info)) => {
                info.message().contains("deadlock detected")
            }
            _ => false,
        }
    }
}

impl From<DbError> for Error {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Domain(e) => e,
            DbError::Diesel(e) => map_diesel(e),
        }
    }
}

fn map_diesel(e: DieselError) -> Error {
    match e {
        DieselError::NotFound => Error::NotFound,
        DieselError::DatabaseError(kind, info) => match kind {
            DatabaseErrorKind::UniqueViolation => {
                Error::conflict(ConflictKind::Duplicate, unique_message(&*info))
            }
            // The referenced user does not exist.
            DatabaseErrorKind::ForeignKeyViolation => Error::NotFound,
            DatabaseErrorKind::ClosedConnection | DatabaseErrorKind::SerializationFailure => {
                tracing::warn!(error = %info.message(), "database unavailable");
                Error::Unavailable
            }
            _ if is_transient(info.message()) => {
                tracing::warn!(error = %info.message(), "database unavailable");
                Error::Unavailable
            }
            _ => Error::Internal(anyhow::anyhow!(
                "database error ({kind:?}): {}",
                info.message()
            )),
        },
        other => Error::Internal(anyhow::anyhow!("database error: {other}")),
    }
}

/// Driver errors without a kind of their own that mean "try again later". Compared ignoring
/// case: the client libraries word the same error differently (libmysqlclient's "MySQL server
/// has gone away" is MariaDB Connector/C's "Server has gone away").
fn is_transient(message: &str) -> bool {
    const TRANSIENT: &[&str] = &[
        "database is locked",           // SQLite busy timeout expired
        "database table is locked",     // SQLite
        "server has gone away",         // MySQL/MariaDB 2006
        "lost connection",              // MySQL/MariaDB 2013
        "lock wait timeout exceeded",   // MySQL 1205
        "too many connections",         // MySQL 1040
        "terminating connection",       // PostgreSQL admin shutdown
        "server closed the connection", // libpq
        "deadlock detected",            // PostgreSQL 40P01, after the retries
    ];
    let message = message.to_ascii_lowercase();
    TRANSIENT.iter().any(|t| message.contains(t))
}

/// Which name a unique violation is about, from the index name (PostgreSQL), the message
/// (`UNIQUE constraint failed: users.username_key` in SQLite, `Duplicate entry '..' for key
/// 'users_username_key'` in MySQL, where only the part after "for key" names the index).
fn unique_message(info: &dyn DatabaseErrorInformation) -> &'static str {
    let message = info.message();
    let names = info.constraint_name().unwrap_or_else(|| {
        message
            .rfind("for key")
            .map(|i| &message[i..])
            .unwrap_or(message)
    });
    if names.contains("username") {
        USERNAME_TAKEN
    } else if names.contains("email") {
        EMAIL_TAKEN
    } else {
        NAME_TAKEN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Info(&'static str, Option<&'static str>);
    impl DatabaseErrorInformation for Info {
        fn message(&self) -> &str {
            self.0
        }
        fn details(&self) -> Option<&str> {
            None
        }
        fn hint(&self) -> Option<&str> {
            None
        }
        fn table_name(&self) -> Option<&str> {
            None
        }
        fn column_name(&self) -> Option<&str> {
            None
        }
        fn constraint_name(&self) -> Option<&str> {
            self.1
        }
        fn statement_position(&self) -> Option<i32> {
            None
        }
    }

    fn unique(message: &'static str, constraint: Option<&'static str>) -> Error {
        DbError::from(DieselError::DatabaseError(
            DatabaseErrorKind::UniqueViolation,
            Box::new(Info(message, constraint)),
        ))
        .into()
    }

    #[test]
    fn unique_violations_name_the_field() {
        let cases = [
            (
                "UNIQUE constraint failed: users.username_key",
                None,
                USERNAME_TAKEN,
            ),
            (
                "UNIQUE constraint failed: users.email_key",
                None,
                EMAIL_TAKEN,
            ),
            (
                "duplicate key value",
                Some("users_username_key"),
                USERNAME_TAKEN,
            ),
            ("duplicate key value", Some("users_email_key"), EMAIL_TAKEN),
            (
                "Duplicate entry 'username@x.io' for key 'users_email_key'",
                None,
                EMAIL_TAKEN,
            ),
            (
                "Duplicate entry 'email' for key 'users_username_key'",
                None,
                USERNAME_TAKEN,
            ),
            ("UNIQUE constraint failed: users.id", None, NAME_TAKEN),
        ];
        for (message, constraint, expected) in cases {
            match unique(message, constraint) {
                Error::Conflict { message: m, kind } => {
                    assert_eq!(kind, ConflictKind::Duplicate);
                    assert_eq!(m, expected, "{message}");
                }
                other => panic!("{message}: {other:?}"),
            }
        }
    }

    fn unknown(message: &'static str) -> Error {
        DbError::from(DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new(Info(message, None)),
        ))
        .into()
    }

    /// A MariaDB connection the server dropped answers 2013 or, as often the first answer when
    /// the socket already failed, 2006: both are "try again", in every client's wording.
    #[test]
    fn dropped_mysql_connections_are_unavailable() {
        for message in [
            "Server has gone away",                         // MariaDB Connector/C 3, 2006
            "Lost connection to server during query",       // MariaDB Connector/C 3, 2013
            "MySQL server has gone away",                   // libmysqlclient, 2006
            "Lost connection to MySQL server during query", // libmysqlclient, 2013
        ] {
            assert!(matches!(unknown(message), Error::Unavailable), "{message}");
        }
    }

    #[test]
    fn transient_and_other_errors() {
        assert!(matches!(unknown("database is locked"), Error::Unavailable));
        assert!(matches!(unknown("syntax error"), Error::Internal(_)));
        let e: Error = DbError::from(Error::conflict(ConflictKind::LastAdmin, "x")).into();
        assert!(matches!(e, Error::Conflict { message, .. } if message == "x"));
    }
}
