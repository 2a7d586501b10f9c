//! The connection type (one enum over the three backends) and how the pool makes connections.
//!
//! The derived `MultiConnection::establish` tries every backend in turn and swallows the errors,
//! so the pool uses [`Manager`], which opens exactly the backend the URL names and keeps the
//! driver's error for the log.
use std::sync::Arc;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::r2d2::R2D2Connection;
use diesel::{Connection, PgConnection, SqliteConnection};

use crate::url::Backend;
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

/// A pooled connection used less than this long ago is handed out without a validation query
/// (HikariCP's "alive bypass window"): under load every checkout skips the extra round trip,
/// while a connection that sat idle (the server may have closed it meanwhile) is pinged first.
pub(crate) const VALIDATE_AFTER_IDLE: Duration = Duration::from_millis(500);

/// A connection as the pool keeps it: the connection, when it was last handed back, and
/// whether it must not be reused.
pub(crate) struct Pooled {
    pub conn: AnyConnection,
    pub returned: Instant,
    pub broken: bool,
    /// The pool's [`Manager::open`], released after `conn` is closed.
    _open: Arc<()>,
}

impl Pooled {
    /// Whether to ping this connection before use: a server connection that sat idle. A SQLite
    /// connection is a file handle in this process and never goes away.
    /// `dropped`: when a sibling connection was last found dead (the server may have dropped
    /// them all).
    pub fn needs_validation(&self, now: Instant, dropped: Option<Instant>) -> bool {
        !matches!(self.conn, AnyConnection::Sqlite(_))
            && (now.saturating_duration_since(self.returned) >= VALIDATE_AFTER_IDLE
                || dropped.is_some_and(|d| self.returned <= d))
    }
}

impl std::ops::Deref for Pooled {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        &self.conn
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        &mut self.conn
    }
}

/// SQLite waits this long for another writer's lock before answering SQLITE_BUSY.
pub(crate) const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Opens connections for the r2d2 pool.
#[derive(Debug)]
pub(crate) struct Manager {
    pub url: DatabaseUrl,
    /// Held by the manager and by every connection it opened: when the last of them is gone,
    /// no thread of the pool is opening, using or closing a connection any more (see
    /// `database::PoolClosed`).
    pub open: Arc<()>,
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
    pub fn new(url: DatabaseUrl) -> Manager {
        Manager {
            url,
            open: Arc::default(),
        }
    }

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

/// The pool does not validate on checkout (`test_on_check_out(false)`): `Database::run` pings
/// only connections that were idle (see [`Pooled::needs_validation`]) and marks a connection
/// broken when a ping fails, so the pool drops it instead of handing it out again.
impl r2d2::ManageConnection for Manager {
    type Connection = Pooled;
    type Error = ConnectError;

    fn connect(&self) -> Result<Pooled, ConnectError> {
        Ok(Pooled {
            conn: self.establish()?,
            returned: Instant::now(),
            broken: false,
            _open: self.open.clone(),
        })
    }

    fn is_valid(&self, conn: &mut Pooled) -> Result<(), ConnectError> {
        conn.conn
            .ping()
            .map_err(|e| ConnectError(self.url.scrub(&e.to_string())))
    }

    /// Called when a connection comes back to the pool: also stamps when.
    fn has_broken(&self, conn: &mut Pooled) -> bool {
        conn.returned = Instant::now();
        conn.broken || conn.conn.is_broken()
    }
}

/// Per-connection SQLite settings: WAL (readers never block the writer), a busy timeout so
/// writers queue instead of failing, enforced foreign keys, and `synchronous=NORMAL` (durable
/// at checkpoints, safe against corruption with WAL).
#[derive(Debug)]
pub(crate) struct SqlitePragmas {
    pub wal: bool,
}

impl SqlitePragmas {
    pub fn apply(&self, conn: &mut AnyConnection) -> Result<(), ConnectError> {
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

impl r2d2::CustomizeConnection<Pooled, ConnectError> for SqlitePragmas {
    fn on_acquire(&self, conn: &mut Pooled) -> Result<(), ConnectError> {
        self.apply(&mut conn.conn)
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

/// Insert `$rows` (a slice of `Insertable` rows) into `$table` in the caller's transaction:
/// multi-row statements of at most 500 rows on PostgreSQL and MySQL (a round trip per 500
/// rows instead of one per row), one statement per row on SQLite (in-process: there is no
/// round trip to save, and diesel's SQLite batch insert does the same). Returns from the
/// enclosing function on an error.
macro_rules! insert_rows {
    ($conn:expr, $table:expr, $rows:expr) => {{
        let rows = $rows;
        match $conn {
            $crate::connection::AnyConnection::Sqlite(c) => {
                for row in rows.iter() {
                    diesel::insert_into($table).values(row).execute(c)?;
                }
            }
            $crate::connection::AnyConnection::Postgres(c) => {
                for chunk in rows.chunks(500) {
                    diesel::insert_into($table).values(chunk).execute(c)?;
                }
            }
            #[cfg(feature = "mysql")]
            $crate::connection::AnyConnection::Mysql(c) => {
                for chunk in rows.chunks(500) {
                    diesel::insert_into($table).values(chunk).execute(c)?;
                }
            }
        }
    }};
}
pub(crate) use insert_rows;
