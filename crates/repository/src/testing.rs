//! Test support: a fresh, migrated database per test, so tests never share state and can run in
//! parallel.
//!
//! - SQLite: a file in a new temporary directory (always available).
//! - PostgreSQL / MySQL: `CREATE DATABASE arcana_t_<uuid>` on the server named by
//!   `ARCANA_TEST_POSTGRES_URL` / `ARCANA_TEST_MYSQL_URL` (the URL's own database is only used to
//!   issue `CREATE`/`DROP`), dropped again when the [`TestDb`] is dropped.
//!
//! Setup failures panic: this is test code, and a test without its database cannot go on.
#![allow(clippy::expect_used, clippy::panic)]

use diesel::connection::SimpleConnection;
use diesel::{Connection, PgConnection};
use tempfile::TempDir;
use uuid::Uuid;

use crate::database::Database;
use crate::url::Backend;
use crate::url::{DatabaseUrl, with_database};

/// Server URL for PostgreSQL tests, e.g. `postgres://postgres@127.0.0.1:5432/test`.
pub const POSTGRES_URL_ENV: &str = "ARCANA_TEST_POSTGRES_URL";
/// Server URL for MySQL/MariaDB tests, e.g. `mysql://root@127.0.0.1:3306/test`.
pub const MYSQL_URL_ENV: &str = "ARCANA_TEST_MYSQL_URL";

const POOL_SIZE: u32 = 8;

/// A test whose backend (a database server, Redis) is not configured for this run: prints
/// `SKIPPED <test>: <reason>` and passes, except in CI (`CI` set, and not `false` or `0`), where a
/// variant that cannot run fails: CI must run them all.
pub fn skipped(test: &str, reason: &str) {
    let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    if ci {
        panic!("{test}: {reason} — with CI set, every backend variant must run");
    }
    println!("SKIPPED {test}: {reason}");
}

/// A migrated database that exists for as long as this value.
pub struct TestDb {
    db: Option<Database>,
    url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    /// Removed (with the SQLite file) on drop.
    Dir(#[allow(dead_code)] TempDir),
    Server {
        backend: Backend,
        admin_url: String,
        name: String,
    },
}

impl TestDb {
    /// A SQLite database in a fresh temporary directory.
    pub fn sqlite() -> TestDb {
        let dir = tempfile::Builder::new()
            .prefix("arcana-test-")
            .tempdir()
            .expect("creating a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("arcana.db").display());
        let db = Database::connect(&url, POOL_SIZE).expect("opening the SQLite test database");
        db.run_migrations_blocking()
            .expect("migrating the SQLite test database");
        TestDb {
            db: Some(db),
            url,
            cleanup: Cleanup::Dir(dir),
        }
    }

    /// A database of `backend`, or `None` when this environment has none (see
    /// [`TestDb::skip_reason`]). SQLite is always available.
    pub fn from_env(backend: Backend) -> Option<TestDb> {
        if Self::skip_reason(backend).is_some() {
            return None;
        }
        match backend {
            Backend::Sqlite => Some(Self::sqlite()),
            Backend::Postgres => env_url(POSTGRES_URL_ENV).map(|u| Self::server(backend, &u)),
            Backend::Mysql => env_url(MYSQL_URL_ENV).map(|u| Self::server(backend, &u)),
        }
    }

    /// Why [`TestDb::from_env`] has no database of `backend` here, e.g.
    /// `"ARCANA_TEST_POSTGRES_URL not set"`.
    pub fn skip_reason(backend: Backend) -> Option<String> {
        match backend {
            Backend::Sqlite => None,
            Backend::Postgres => env_url(POSTGRES_URL_ENV)
                .is_none()
                .then(|| format!("{POSTGRES_URL_ENV} not set")),
            Backend::Mysql if cfg!(not(feature = "mysql")) => {
                Some("built without the `mysql` feature".into())
            }
            Backend::Mysql => env_url(MYSQL_URL_ENV)
                .is_none()
                .then(|| format!("{MYSQL_URL_ENV} not set")),
        }
    }

    /// The URL of this test database (to hand to a process under test).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn db(&self) -> &Database {
        self.db
            .as_ref()
            .expect("the database lives until the TestDb is dropped")
    }

    fn server(backend: Backend, url: &str) -> TestDb {
        let parsed = DatabaseUrl::parse(url)
            .unwrap_or_else(|e| panic!("test database URL is not usable: {e:?}"));
        let name = format!("arcana_t_{}", Uuid::new_v4().simple());
        let create = match backend {
            Backend::Mysql => {
                format!("CREATE DATABASE {name} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
            }
            _ => format!("CREATE DATABASE {name}"),
        };
        admin_execute(backend, &parsed.target, &create).unwrap_or_else(|e| {
            panic!(
                "creating test database {name} on {}: {}",
                parsed.redacted,
                parsed.scrub(&e)
            )
        });
        let db_url = with_database(url, &name).expect("a server URL has an authority");
        // From here on, dropping `t` removes the database, even if a step below panics.
        let mut t = TestDb {
            db: None,
            url: db_url.clone(),
            cleanup: Cleanup::Server {
                backend,
                admin_url: parsed.target.clone(),
                name,
            },
        };
        let db = Database::connect(&db_url, POOL_SIZE).expect("connecting to the test database");
        db.run_migrations_blocking()
            .expect("migrating the test database");
        t.db = Some(db);
        t
    }
}

fn env_url(var: &str) -> Option<String> {
    std::env::var(var).ok().filter(|u| !u.trim().is_empty())
}

/// Run `sql` on a one-off connection to the server's own database.
fn admin_execute(backend: Backend, url: &str, sql: &str) -> Result<(), String> {
    match backend {
        Backend::Sqlite => Ok(()),
        Backend::Postgres => PgConnection::establish(url)
            .map_err(|e| e.to_string())?
            .batch_execute(sql)
            .map_err(|e| e.to_string()),
        #[cfg(feature = "mysql")]
        Backend::Mysql => diesel::MysqlConnection::establish(url)
            .map_err(|e| e.to_string())?
            .batch_execute(sql)
            .map_err(|e| e.to_string()),
        #[cfg(not(feature = "mysql"))]
        Backend::Mysql => Err("built without the `mysql` feature".into()),
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Close the pool before dropping its database.
        drop(self.db.take());
        if let Cleanup::Server {
            backend,
            admin_url,
            name,
        } = &self.cleanup
        {
            let drop_sql = match backend {
                Backend::Postgres => format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS {name}"),
            };
            if let Err(e) = admin_execute(*backend, admin_url, &drop_sql) {
                eprintln!("warning: could not drop test database {name}: {e}");
            }
        }
    }
}
