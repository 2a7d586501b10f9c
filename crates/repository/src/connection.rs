//! The connection type (one enum over the three backends) and how the pool makes connections.
//!
//! The derived `MultiConnection::establish` tries every backend in turn and swallows the errors,
//! so the pool uses [`Manager`], which opens exactly the backend the URL names and keeps the
//! driver's error for the log.
use std::time::Duration;

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::database::Backend;
use crate::url::DatabaseUrl;

// `#[derive(MultiConnection)]` does not carry `#[cfg]` on variants, hence two definitions.
#[cfg(feature = "mysql")]
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
    Mysql(diesel::MysqlConnection),
}

#[cfg(not(feature = "mysql"))]
#[derive(diesel::MultiConnection)]
pub(crate) enum AnyConnection {
    Sqlite(SqliteConnection),
    Postgres(PgConnection),
}

/// SQLite waits this long for another writer's lock before answering SQLITE_BUSY.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens connections for the r2d2 pool.
#[derive(Debug)]
pub(crate) struct Manager {
    pub url: DatabaseUrl,
}

/// Why a connection could not be made or checked; `Display` never contains the password.
#[derive(Debug)]
pub(crate) struct ConnectError(pub String);

impl std::fmt::Display for ConnectError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConnectError {}

impl Manager {
    pub fn establish(&self) -> Result<AnyConnection, ConnectError> {
        let target = self.url.target.as_str();
        let conn = match self.url.backend {
            Backend::Sqlite => SqliteConnection::establish(target).map(AnyConnection::Sqlite),
            Backend::Postgres => PgConnection::establish(target).map(AnyConnection::Postgres),
            #[cfg(feature = "mysql")]
            Backend::Mysql => diesel::MysqlConnection::establish(target).map(AnyConnection::Mysql),
            #[cfg(not(feature = "mysql"))]
            Backend::Mysql => {
                return Err(ConnectError(
                    "MySQL support is not compiled into this build".into(),
                ));
            }
        };
        conn.map_err(|e| ConnectError(self.url.scrub(&e.to_string())))
    }
}

impl r2d2::ManageConnection for Manager {
    type Connection = AnyConnection;
    type Error = ConnectError;

    fn connect(&self) -> Result<AnyConnection, ConnectError> {
        self.establish()
    }

    fn is_valid(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        conn.ping()
            .map_err(|e| ConnectError(self.url.scrub(&e.to_string())))
    }

    fn has_broken(&self, conn: &mut AnyConnection) -> bool {
        conn.is_broken()
    }
}

/// Per-connection SQLite settings: WAL (readers never block the writer), a busy timeout so
/// writers queue instead of failing, enforced foreign keys, and `synchronous=NORMAL` (durable
/// at checkpoints, safe against corruption with WAL).
#[derive(Debug)]
pub(crate) struct SqlitePragmas {
    pub wal: bool,
}

impl r2d2::CustomizeConnection<AnyConnection, ConnectError> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
        #[allow(irrefutable_let_patterns)]
        let AnyConnection::Sqlite(c) = conn else {
            return Ok(());
        };
        // busy_timeout first: switching to WAL needs a lock another new connection may hold.
        let mut sql = format!("PRAGMA busy_timeout = {};", SQLITE_BUSY_TIMEOUT.as_millis());
        if self.wal {
            sql.push_str("PRAGMA journal_mode = WAL;");
        }
        sql.push_str("PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;");
        c.batch_execute(&sql)
            .map_err(|e| ConnectError(format!("configuring the SQLite connection: {e}")))
    }
}

/// r2d2 reports background connection failures here; log them with tracing (redacted).
#[derive(Debug)]
pub(crate) struct LogErrors {
    pub redacted_url: String,
}

impl r2d2::HandleError<ConnectError> for LogErrors {
    fn handle_error(&self, error: ConnectError) {
        tracing::error!(url = %self.redacted_url, error = %error, "database connection failed");
    }
}
