//! Black-box harness: the real binaries of this build started by the test kit's launcher against
//! a fresh database (SQLite temp dir, or a new PostgreSQL/MariaDB database), driven over HTTP.
#![allow(
    dead_code,
    unused_imports,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::ops::Deref;
use std::time::Duration;

use repository::Backend;
use repository::testing::TestDb;
use testkit::cluster::{Binaries, Cluster};

pub use testkit::cluster::{
    ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_USER, INTERNAL_TOKEN, JWT_SECRET, Mode, REPOSITORY_TOKEN,
};
pub use testkit::rest::{Resp, Rest};

/// The executables Cargo built for these tests, or those in `ARCANA_TEST_BIN_DIR` (one per
/// binary name: `deploy/images-check` puts there launchers that run the container images).
fn binaries() -> Binaries {
    if let Some(dir) = std::env::var_os("ARCANA_TEST_BIN_DIR") {
        return Binaries::in_dir(std::path::Path::new(&dir));
    }
    Binaries::new([
        ("arcana", env!("CARGO_BIN_EXE_arcana")),
        ("arcana-gateway", env!("CARGO_BIN_EXE_arcana-gateway")),
        ("arcana-service", env!("CARGO_BIN_EXE_arcana-service")),
        (
            "arcana-auth-service",
            env!("CARGO_BIN_EXE_arcana-auth-service"),
        ),
        (
            "arcana-user-service",
            env!("CARGO_BIN_EXE_arcana-user-service"),
        ),
        ("arcana-repository", env!("CARGO_BIN_EXE_arcana-repository")),
    ])
}

/// The monolith executable (Cargo's, or the one in `ARCANA_TEST_BIN_DIR`), for tests that run
/// it themselves.
#[allow(dead_code)]
pub fn monolith_exe() -> std::path::PathBuf {
    match std::env::var_os("ARCANA_TEST_BIN_DIR") {
        Some(dir) => std::path::Path::new(&dir).join("arcana"),
        None => env!("CARGO_BIN_EXE_arcana").into(),
    }
}

#[derive(Default)]
pub struct Options {
    /// ARCANA_AUTH_RATE_LIMIT (0 = off, the default in tests).
    pub rate_limit: u32,
    pub extra_env: Vec<(String, String)>,
    /// Layered mode: how many `arcana-service` processes share the load (1 or 2).
    pub service_replicas: usize,
}

/// A started deployment and a REST client of its edge (`Deref`).
pub struct TestApp {
    pub base: String,
    /// Public gRPC endpoint (`http://127.0.0.1:port`).
    pub grpc: String,
    pub mode: Mode,
    /// Internal ports by process name.
    pub internal: Vec<(String, u16)>,
    /// Ops ports (metrics, health) of every process by name, the edge first.
    pub ops: Vec<(String, u16)>,
    /// A client of the edge's ops listener (`/metrics`, `/health/*`).
    pub edge_ops: Rest,
    rest: Rest,
    cluster: Cluster,
    _db: Option<TestDb>,
}

impl Deref for TestApp {
    type Target = Rest;
    fn deref(&self) -> &Rest {
        &self.rest
    }
}

impl TestApp {
    /// `None` when the backend is not configured for this run (the caller prints SKIPPED).
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, Options::default()).await
    }

    pub async fn start_with(backend: Backend, opts: Options) -> Option<TestApp> {
        Self::start_mode(Mode::Monolith, backend, opts).await
    }

    pub async fn start_mode(mode: Mode, backend: Backend, opts: Options) -> Option<TestApp> {
        let db = match backend {
            Backend::Sqlite => None,
            other => Some(TestDb::from_env(other)?),
        };
        let options = testkit::cluster::Options {
            mode,
            database_url: db.as_ref().map(|d| d.url().to_owned()),
            rate_limit: opts.rate_limit,
            service_replicas: opts.service_replicas.max(1),
            env: opts.extra_env,
            ..testkit::cluster::Options::default()
        };
        let cluster = Cluster::start(&binaries(), &options)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let base = format!("http://{}", cluster.http);
        Some(TestApp {
            grpc: format!("http://{}", cluster.grpc),
            rest: Rest::new(base.clone()),
            base,
            mode,
            internal: cluster.internal.clone(),
            ops: cluster.ops.clone(),
            edge_ops: Rest::new(format!("http://{}", cluster.edge_ops)),
            cluster,
            _db: db,
        })
    }

    /// Another replica of the edge on new ports: a REST client of it.
    pub async fn add_edge(&mut self) -> Rest {
        let addr = self
            .cluster
            .add_edge()
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        Rest::new(format!("http://{addr}"))
    }

    /// The deployment's directory (the monolith's data dir on SQLite, logs, mail files).
    pub fn dir(&self) -> &std::path::Path {
        self.cluster.dir()
    }

    /// What every process logged (stdout and stderr).
    pub fn logs(&self) -> String {
        self.cluster.logs()
    }

    /// Send SIGTERM to the edge process and wait for its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.terminate_process(0)
    }

    /// Send SIGTERM to process `i` (0 = the edge) and wait for its exit status.
    pub fn terminate_process(&mut self, i: usize) -> std::process::ExitStatus {
        self.cluster.terminate(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Index of the process named `name`.
    pub fn process(&self, name: &str) -> usize {
        self.cluster
            .process(name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// SIGKILL process `i` (a crash).
    pub fn kill_process(&mut self, i: usize) -> std::process::ExitStatus {
        self.cluster.kill(i).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Start process `i` again with the same command line (after `terminate_process`).
    pub fn restart_process(&mut self, i: usize) {
        self.cluster.restart(i).unwrap_or_else(|e| panic!("{e}"));
    }

    /// Register a user and return (id, access token, refresh token).
    pub async fn user(&self, username: &str) -> (String, String, String) {
        let a = self.rest.account(username).await;
        (a.id, a.access_token, a.refresh_token)
    }

    /// Poll `path` with `token` until it answers `status` (at most `within`).
    pub async fn eventually(
        &self,
        path: &str,
        token: &str,
        status: u16,
        within: Duration,
    ) -> Duration {
        self.rest
            .eventually(path, Some(token), status, within)
            .await
            .0
    }
}

/// Generate one test per backend from an `async fn(TestApp)` body.
#[macro_export]
macro_rules! backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite { use super::*; $( #[tokio::test] async fn $name() { super::$name(TestApp::start(Backend::Sqlite).await.unwrap()).await } )* }
        mod postgres { use super::*; $( #[tokio::test] async fn $name() {
            match TestApp::start(Backend::Postgres).await {
                Some(app) => super::$name(app).await,
                None => repository::testing::skipped(concat!("postgres::", stringify!($name)), "ARCANA_TEST_POSTGRES_URL not set"),
            }
        } )* }
        mod mysql { use super::*; $( #[tokio::test] async fn $name() {
            match TestApp::start(Backend::Mysql).await {
                Some(app) => super::$name(app).await,
                None => repository::testing::skipped(concat!("mysql::", stringify!($name)), "ARCANA_TEST_MYSQL_URL not set or mysql feature off"),
            }
        } )* }
        mod layered { use super::*; $( #[tokio::test] async fn $name() {
            super::$name(TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default()).await.unwrap()).await
        } )* }
        mod microservices { use super::*; $( #[tokio::test] async fn $name() {
            super::$name(TestApp::start_mode(Mode::Microservices, Backend::Sqlite, Options::default()).await.unwrap()).await
        } )* }
    };
}

/// One test per deployment mode and database from an `async fn(TestApp)` body, each app made by
/// the calling file's `async fn start(Mode, Backend) -> Option<TestApp>` (`None`: the database
/// is not configured for this run, the test prints SKIPPED).
#[macro_export]
macro_rules! every_mode {
    ($($name:ident),* $(,)?) => {
        mod sqlite { $( #[tokio::test] async fn $name() { super::$name(super::start($crate::common::Mode::Monolith, repository::Backend::Sqlite).await.unwrap()).await } )* }
        mod postgres { $( #[tokio::test] async fn $name() {
            match super::start($crate::common::Mode::Monolith, repository::Backend::Postgres).await {
                Some(app) => super::$name(app).await,
                None => repository::testing::skipped(concat!("postgres::", stringify!($name)), "ARCANA_TEST_POSTGRES_URL not set"),
            }
        } )* }
        mod mysql { $( #[tokio::test] async fn $name() {
            match super::start($crate::common::Mode::Monolith, repository::Backend::Mysql).await {
                Some(app) => super::$name(app).await,
                None => repository::testing::skipped(concat!("mysql::", stringify!($name)), "ARCANA_TEST_MYSQL_URL not set or mysql feature off"),
            }
        } )* }
        mod layered { $( #[tokio::test] async fn $name() { super::$name(super::start($crate::common::Mode::Layered, repository::Backend::Sqlite).await.unwrap()).await } )* }
        mod microservices { $( #[tokio::test] async fn $name() { super::$name(super::start($crate::common::Mode::Microservices, repository::Backend::Sqlite).await.unwrap()).await } )* }
    };
}
