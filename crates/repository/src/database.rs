//! [`Database`]: the pool, the blocking-thread runner, write transactions and migrations.
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use diesel::connection::{AnsiTransactionManager, Connection, TransactionManager};
use diesel::r2d2::R2D2Connection;
use diesel::result::Error as DieselError;
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use domain::{Error, Result};

use crate::connection::{AnyConnection, LogErrors, Manager, SqlitePragmas};
use crate::error::DbError;
use crate::url::{Backend, DatabaseUrl, SqliteTarget};

const SQLITE_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/sqlite");
const POSTGRES_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/postgres");
#[cfg(feature = "mysql")]
const MYSQL_MIGRATIONS: EmbeddedMigrations = embed_migrations!("../../migrations/mysql");

/// How long a caller waits for a free pooled connection before getting `Error::Unavailable`.
const POOL_CHECKOUT_TIMEOUT: Duration = Duration::from_secs(5);
/// A write transaction that hit a deadlock (MySQL) or serialization failure is retried.
const TRANSACTION_ATTEMPTS: u32 = 3;

/// A pool of connections to one database; implements the repository ports. Cheap to clone
/// (the pool is shared).
#[derive(Clone)]
pub struct Database {
    pool: r2d2::Pool<Manager>,
    backend: Backend,
    /// When a pooled server connection was last found dead: the server may have dropped its
    /// siblings too, so every connection returned before then is pinged before its next use.
    dropped_at: Arc<Mutex<Option<Instant>>>,
    /// One permit per pooled connection: a call waits here (as a future) before it takes a
    /// blocking thread, so the blocking pool never holds more jobs than there are connections
    /// (otherwise every waiting request parks a thread on r2d2's condition variable: ~180
    /// threads, four context switches per request and per-thread malloc arenas under load).
    slots: Arc<tokio::sync::Semaphore>,
    /// Dropped with the last handle, after `pool`: waits for the pool's threads.
    _closed: Arc<PoolClosed>,
}

/// A blocking job of [`Database::run`], its answer's type erased.
type Job =
    Box<dyn FnOnce(&mut AnyConnection) -> Result<Box<dyn std::any::Any + Send>, DbError> + Send>;

/// How long the last [`Database`] handle waits for the pool's threads.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// Makes the last `Database` handle, once the pool is dropped, wait until r2d2's worker threads
/// are done with every connection they were opening or closing. A process that ends right after
/// (a test, a binary after its drain) otherwise ran the client libraries' exit-time cleanup under
/// those threads: OpenSSL's atexit handler freed what a TLS handshake to PostgreSQL was using
/// (SIGSEGV), Kerberos' destructor a mutex libpq's GSSAPI probe held (SIGABRT).
struct PoolClosed(std::sync::Weak<()>);

impl Drop for PoolClosed {
    fn drop(&mut self) {
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.0.strong_count() > 0 {
            if Instant::now() >= deadline {
                tracing::warn!("the database pool is still opening or closing connections");
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (connections, idle) = self.pool_state();
        f.debug_struct("Database")
            .field("backend", &self.backend)
            .field("connections", &connections)
            .field("idle", &idle)
            .finish()
    }
}

impl Database {
    /// Open a pool of at most `pool_size` connections to `url`: `sqlite://path`, `sqlite:path`,
    /// `sqlite::memory:` (one connection, lives as long as the pool), `postgres://`,
    /// `postgresql://`, `mysql://` or `mariadb://`. Creates the parent directory of a SQLite
    /// file. An unknown scheme is `Error::Validation` on `database_url`; a database that cannot
    /// be reached is `Error::Unavailable` (the cause is logged, without the password).
    pub fn connect(url: &str, pool_size: u32) -> Result<Database> {
        let url = DatabaseUrl::parse(url)?;
        let unavailable = |what: &str, cause: &dyn fmt::Display| {
            tracing::error!(
                backend = %url.backend,
                url = %url.redacted,
                error = %url.scrub(&cause.to_string()),
                "{what}"
            );
            Error::Unavailable
        };
        let memory = url.sqlite == Some(SqliteTarget::Memory);
        if let Some(SqliteTarget::File(path)) = &url.sqlite {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                domain::files::create_private_dir(dir)
                    .map_err(|e| unavailable("cannot create the SQLite database directory", &e))?;
                domain::files::warn_if_shared(dir, "the SQLite database directory");
            }
            // Created 0600 before SQLite opens it: its -wal and -shm files take the same mode.
            domain::files::create_private_file(path)
                .map_err(|e| unavailable("cannot create the SQLite database file", &e))?;
        }

        let manager = Manager::new(url.clone());
        let open = Arc::downgrade(&manager.open);
        let pragmas = SqlitePragmas { wal: !memory };
        // One direct connection first: fails fast (the pool would retry until its timeout) and
        // keeps the driver's own message for the log.
        let mut probe = manager
            .establish()
            .map_err(|e| unavailable("cannot connect to the database", &e))?;
        pragmas
            .apply(&mut probe)
            .map_err(|e| unavailable("cannot configure the database connection", &e))?;
        probe
            .ping()
            .map_err(|e| unavailable("the database does not answer", &e))?;
        drop(probe);

        let mut builder = r2d2::Pool::builder()
            .max_size(if memory { 1 } else { pool_size.max(1) })
            .min_idle(Some(1))
            // `run` validates only connections that were idle (one query less per checkout)
            .test_on_check_out(false)
            .connection_timeout(POOL_CHECKOUT_TIMEOUT)
            .error_handler(Box::new(LogErrors {
                redacted_url: url.redacted.clone(),
            }));
        if url.backend == Backend::Sqlite {
            builder = builder.connection_customizer(Box::new(pragmas));
        }
        if memory {
            // The data lives in the one connection: never let the pool recycle it.
            builder = builder.idle_timeout(None).max_lifetime(None);
        }
        let pool = builder
            .build(manager)
            .map_err(|e| unavailable("cannot open the database pool", &e))?;
        tracing::info!(backend = %url.backend, url = %url.redacted, "database pool ready");
        let slots = Arc::new(tokio::sync::Semaphore::new(pool.max_size() as usize));
        Ok(Database {
            pool,
            backend: url.backend,
            dropped_at: Arc::default(),
            slots,
            _closed: Arc::new(PoolClosed(open)),
        })
    }

    /// Apply the pending embedded migrations of this backend.
    pub async fn run_migrations(&self) -> Result<()> {
        self.run(migrate).await
    }

    /// Every embedded migration of this backend, oldest first, with whether it is applied.
    /// Applies nothing.
    pub async fn migration_status(&self) -> Result<Vec<(String, bool)>> {
        self.run(migration_status).await
    }

    #[cfg(feature = "testing")]
    pub(crate) fn run_migrations_blocking(&self) -> Result<()> {
        let mut conn = self.checkout()?;
        migrate(&mut conn).map_err(Error::from)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// `(connections, idle)` of the pool, for metrics.
    pub fn pool_state(&self) -> (u32, u32) {
        let s = self.pool.state();
        (s.connections, s.idle_connections)
    }

    #[cfg(feature = "testing")]
    fn checkout(&self) -> Result<r2d2::PooledConnection<Manager>> {
        checkout(&self.pool, &self.dropped_at)
    }

    /// Run `f` with a pooled connection on a blocking thread.
    pub(crate) async fn run<T, F>(&self, f: F) -> Result<T>
    where
        F: FnOnce(&mut AnyConnection) -> Result<T, DbError> + Send + 'static,
        T: Send + 'static,
    {
        // Only this part depends on the call's types; `run_job` is compiled once, not once per
        // repository method (85 of them).
        let answer = self
            .run_job(Box::new(move |conn| {
                f(conn).map(|t| Box::new(t) as Box<dyn std::any::Any + Send>)
            }))
            .await?;
        answer
            .downcast::<T>()
            .map(|t| *t)
            .map_err(|_| Error::internal("a database job answered with another type"))
    }

    async fn run_job(&self, f: Job) -> Result<Box<dyn std::any::Any + Send>> {
        let (pool, dropped_at) = (self.pool.clone(), self.dropped_at.clone());
        // A free slot is taken at once; only a wait arms the checkout timeout's timer.
        let slot = match self.slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                tokio::time::timeout(POOL_CHECKOUT_TIMEOUT, self.slots.clone().acquire_owned())
                    .await
                    .map_err(|_| {
                        tracing::warn!("no database connection available");
                        Error::Unavailable
                    })?
                    .map_err(|_| Error::Unavailable)?
            }
        };
        tokio::task::spawn_blocking(move || {
            let _slot = slot;
            let mut conn = checkout(&pool, &dropped_at)?;
            let result = f(&mut conn);
            // Failures are rare: check the connection is still usable after one, so a dropped
            // server connection is replaced (with its siblings checked) instead of failing
            // every request it is lent to.
            if result.is_err() && !matches!(conn.conn, AnyConnection::Sqlite(_)) {
                conn.broken = conn.conn.ping().is_err();
                if conn.broken {
                    mark_dropped(&dropped_at);
                }
            }
            result.map_err(Error::from)
        })
        .await
        .map_err(|e| Error::Internal(anyhow::anyhow!("database task failed: {e}")))?
    }
}

/// A connection from the pool. One that sat idle, or was returned before a sibling was found
/// dead, is pinged first and replaced when the server no longer answers on it.
fn checkout(
    pool: &r2d2::Pool<Manager>,
    dropped_at: &Mutex<Option<Instant>>,
) -> Result<r2d2::PooledConnection<Manager>> {
    for _ in 0..=pool.max_size() {
        let mut conn = pool.get().map_err(|e| {
            tracing::warn!(error = %e, "no database connection available");
            Error::Unavailable
        })?;
        let dropped = dropped_at.lock().map(|d| *d).unwrap_or_default();
        if !conn.needs_validation(Instant::now(), dropped) {
            return Ok(conn);
        }
        match conn.conn.ping() {
            Ok(_) => return Ok(conn),
            Err(e) => {
                tracing::warn!(error = %e, "replacing a pooled database connection that stopped answering");
                conn.broken = true;
                mark_dropped(dropped_at);
            }
        }
    }
    Err(Error::Unavailable)
}

fn mark_dropped(dropped_at: &Mutex<Option<Instant>>) {
    if let Ok(mut d) = dropped_at.lock() {
        *d = Some(Instant::now());
    }
}

type Tm = <AnyConnection as Connection>::TransactionManager;

/// Run `f` in a write transaction, retried on deadlock/serialization failure. On SQLite it is
/// `BEGIN IMMEDIATE`: the write lock is taken up front, so concurrent writers queue on the busy
/// timeout instead of failing when a read lock cannot be upgraded. On PostgreSQL and MySQL the
/// callers lock the rows they decide on (`SELECT ... FOR UPDATE`).
pub(crate) fn write_transaction<T>(
    conn: &mut AnyConnection,
    mut f: impl FnMut(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    let mut attempt = 1;
    loop {
        match transaction_once(conn, &mut f, true) {
            Err(e) if e.is_retryable() && attempt < TRANSACTION_ATTEMPTS => {
                tracing::debug!(attempt, "retrying a transaction after a deadlock");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// Run `f` as [`write_transaction`] does, then roll everything back: what the writes would do
/// (every constraint checked), without keeping them. A dry run.
pub(crate) fn rehearsal<T>(
    conn: &mut AnyConnection,
    mut f: impl FnMut(&mut AnyConnection) -> Result<T, DbError>,
) -> Result<T, DbError> {
    transaction_once(conn, &mut f, false)
}

fn transaction_once<T>(
    conn: &mut AnyConnection,
    f: &mut impl FnMut(&mut AnyConnection) -> Result<T, DbError>,
    commit: bool,
) -> Result<T, DbError> {
    if let AnyConnection::Sqlite(c) = conn {
        AnsiTransactionManager::begin_transaction_sql(c, "BEGIN IMMEDIATE")?;
    } else {
        Tm::begin_transaction(conn)?;
    }
    match f(conn) {
        Ok(value) if commit => {
            Tm::commit_transaction(conn)?;
            Ok(value)
        }
        Ok(value) => {
            Tm::rollback_transaction(conn)?;
            Ok(value)
        }
        Err(e) => {
            match Tm::rollback_transaction(conn) {
                Ok(()) | Err(DieselError::BrokenTransactionManager) => {}
                Err(rollback) => tracing::warn!(error = %rollback, "rollback failed"),
            }
            Err(e)
        }
    }
}

fn migration_status(conn: &mut AnyConnection) -> Result<Vec<(String, bool)>, DbError> {
    use diesel::migration::MigrationSource;
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        DbError::Domain(Error::Internal(anyhow::anyhow!("reading migrations: {e}")))
    };
    macro_rules! status {
        ($c:expr, $source:expr, $db:ty) => {{
            let applied: std::collections::HashSet<String> = $c
                .applied_migrations()
                .map_err(failed)?
                .into_iter()
                .map(|v| v.to_string())
                .collect();
            MigrationSource::<$db>::migrations(&$source)
                .map_err(failed)?
                .iter()
                .map(|m| {
                    let name = m.name();
                    (
                        name.to_string(),
                        applied.contains(&name.version().to_string()),
                    )
                })
                .collect()
        }};
    }
    Ok(match conn {
        AnyConnection::Sqlite(c) => status!(c, SQLITE_MIGRATIONS, diesel::sqlite::Sqlite),
        AnyConnection::Postgres(c) => status!(c, POSTGRES_MIGRATIONS, diesel::pg::Pg),
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => status!(c, MYSQL_MIGRATIONS, diesel::mysql::Mysql),
    })
}

fn migrate(conn: &mut AnyConnection) -> Result<(), DbError> {
    let failed = |e: Box<dyn std::error::Error + Send + Sync>| {
        DbError::Domain(Error::Internal(anyhow::anyhow!("running migrations: {e}")))
    };
    let applied = match conn {
        AnyConnection::Sqlite(c) => c
            .run_pending_migrations(SQLITE_MIGRATIONS)
            .map(|v| v.len())
            .map_err(failed)?,
        AnyConnection::Postgres(c) => {
            use diesel::RunQueryDsl;
            // Several replicas may start at once: one migrates, the others wait.
            diesel::sql_query("SELECT pg_advisory_lock(727274111)").execute(c)?;
            let result = c
                .run_pending_migrations(POSTGRES_MIGRATIONS)
                .map(|v| v.len());
            if let Err(e) = diesel::sql_query("SELECT pg_advisory_unlock(727274111)").execute(c) {
                tracing::warn!(error = %e, "releasing the migration lock failed");
            }
            result.map_err(failed)?
        }
        #[cfg(feature = "mysql")]
        AnyConnection::Mysql(c) => {
            use diesel::RunQueryDsl;
            use diesel::sql_types::{BigInt, Nullable};
            let lock = |sql: &str, c: &mut diesel::MysqlConnection| {
                diesel::select(diesel::dsl::sql::<Nullable<BigInt>>(sql))
                    .get_result::<Option<i64>>(c)
            };
            if lock("GET_LOCK('arcana_migrations', 300)", c)? != Some(1) {
                return Err(Error::internal("timed out waiting for the migration lock").into());
            }
            let result = c.run_pending_migrations(MYSQL_MIGRATIONS).map(|v| v.len());
            if let Err(e) = lock("RELEASE_LOCK('arcana_migrations')", c) {
                tracing::warn!(error = %e, "releasing the migration lock failed");
            }
            result.map_err(failed)?
        }
    };
    if applied > 0 {
        tracing::info!(applied, "database migrations applied");
    }
    Ok(())
}
