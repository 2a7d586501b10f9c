//! Black-box harness: starts the real `arcana` binary on a free port against a fresh database
//! (SQLite temp dir, or a new PostgreSQL/MariaDB database) and talks to it over HTTP.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use repository::Backend;
use repository::testing::TestDb;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_USER: &str = "root-admin";
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "AdminPass123";
pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";

/// How the platform is deployed for a test: one process, or one process per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Monolith,
    /// gateway → service → repository
    Layered,
    /// gateway → auth-service + user-service → repository
    Microservices,
}

/// Environment of one process.
type Env = Vec<(&'static str, String)>;

/// The gateway's credential towards the service layers.
pub const INTERNAL_TOKEN: &str = "internal-token-internal-token-0123456789";
/// The service layers' credential towards the repository (the only one it accepts).
pub const REPOSITORY_TOKEN: &str = "repository-token-repository-token-0123456789";

pub struct TestApp {
    pub base: String,
    /// Public gRPC endpoint (`http://127.0.0.1:port`).
    pub grpc: String,
    pub client: reqwest::Client,
    pub mode: Mode,
    /// (name, process); the first is the edge (monolith or gateway).
    children: Vec<(String, Child)>,
    /// (executable, environment) of each process, to restart it.
    specs: Vec<(String, Vec<(&'static str, String)>)>,
    /// Internal ports by process name, for tests that talk to or stop a layer.
    pub internal: Vec<(String, u16)>,
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    /// ARCANA_AUTH_RATE_LIMIT (0 = off, the default in tests).
    pub rate_limit: u32,
    pub extra_env: Vec<(String, String)>,
    /// Layered mode: how many `arcana-service` processes share the load (1 or 2).
    pub service_replicas: usize,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
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
        let dir = tempfile::tempdir().unwrap();
        let (db, url) = match backend {
            Backend::Sqlite => (
                None,
                format!("sqlite://{}", dir.path().join("arcana.db").display()),
            ),
            other => {
                let db = TestDb::from_env(other)?;
                let url = db.url().to_owned();
                (Some(db), url)
            }
        };
        // A port picked here can be taken by another test before the child binds it: if a
        // process dies at start, start the whole set again on fresh ports.
        let mut db = db;
        let mut dir = Some(dir);
        for attempt in 1..=3 {
            let dir_path = dir.as_ref().unwrap().path().to_path_buf();
            let port = free_port();
            let grpc_port = free_port();
            let common: Vec<(&'static str, String)> = vec![
                ("ARCANA_PASSWORD_ITERATIONS", "1000".into()),
                ("ARCANA_JWT_SECRET", JWT_SECRET.into()),
                ("ARCANA_LOG_FORMAT", "json".into()),
                ("RUST_LOG", "info".into()),
            ];
            let edge: Vec<(&'static str, String)> = vec![
                ("ARCANA_HTTP_ADDR", format!("127.0.0.1:{port}")),
                ("ARCANA_GRPC_ADDR", format!("127.0.0.1:{grpc_port}")),
                ("ARCANA_AUTH_RATE_LIMIT", opts.rate_limit.to_string()),
            ];
            let bootstrap: Vec<(&'static str, String)> = vec![
                ("ARCANA_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USER.into()),
                ("ARCANA_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
                ("ARCANA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
            ];
            let database: Vec<(&'static str, String)> = vec![
                ("ARCANA_DATA_DIR", dir_path.as_path().display().to_string()),
                ("ARCANA_DATABASE_URL", url.clone()),
                ("ARCANA_DB_POOL_SIZE", "8".into()),
            ];
            let mut plan: Vec<(&str, &str, Env)> = Vec::new();
            let mut internal = Vec::new();
            match mode {
                Mode::Monolith => {
                    plan.push((
                        "arcana",
                        env!("CARGO_BIN_EXE_arcana"),
                        [&edge[..], &bootstrap, &database].concat(),
                    ));
                }
                Mode::Layered | Mode::Microservices => {
                    let repo_port = free_port();
                    internal.push(("arcana-repository".to_owned(), repo_port));
                    let repo_url = format!("http://127.0.0.1:{repo_port}");
                    let services: Vec<(&str, &str)> = if mode == Mode::Layered {
                        let exe = env!("CARGO_BIN_EXE_arcana-service");
                        let mut v = vec![("arcana-service", exe)];
                        if opts.service_replicas > 1 {
                            v.push(("arcana-service-2", exe));
                        }
                        v
                    } else {
                        vec![
                            (
                                "arcana-auth-service",
                                env!("CARGO_BIN_EXE_arcana-auth-service"),
                            ),
                            (
                                "arcana-user-service",
                                env!("CARGO_BIN_EXE_arcana-user-service"),
                            ),
                        ]
                    };
                    let mut gateway_env = edge.clone();
                    gateway_env.push(("ARCANA_INTERNAL_TOKEN", INTERNAL_TOKEN.into()));
                    let mut service_plan = Vec::new();
                    for (name, exe) in services {
                        let p = free_port();
                        internal.push((name.to_owned(), p));
                        let var: &'static str = match name {
                            "arcana-auth-service" => "ARCANA_AUTH_SERVICE_URL",
                            "arcana-user-service" => "ARCANA_USER_SERVICE_URL",
                            _ => "ARCANA_SERVICE_URL",
                        };
                        // Replicas of one layer: one comma-separated upstream list.
                        match gateway_env.iter_mut().find(|(k, _)| *k == var) {
                            Some((_, list)) => list.push_str(&format!(",http://127.0.0.1:{p}")),
                            None => gateway_env.push((var, format!("http://127.0.0.1:{p}"))),
                        }
                        let mut env = bootstrap.clone();
                        env.push(("ARCANA_GRPC_ADDR", format!("127.0.0.1:{p}")));
                        env.push(("ARCANA_REPOSITORY_URL", repo_url.clone()));
                        env.push(("ARCANA_INTERNAL_TOKEN", INTERNAL_TOKEN.into()));
                        env.push(("ARCANA_REPOSITORY_TOKEN", REPOSITORY_TOKEN.into()));
                        service_plan.push((name, exe, env));
                    }
                    plan.push((
                        "arcana-gateway",
                        env!("CARGO_BIN_EXE_arcana-gateway"),
                        gateway_env,
                    ));
                    plan.extend(service_plan);
                    let mut repo_env = database.clone();
                    repo_env.push(("ARCANA_GRPC_ADDR", format!("127.0.0.1:{repo_port}")));
                    repo_env.push(("ARCANA_REPOSITORY_TOKEN", REPOSITORY_TOKEN.into()));
                    plan.push((
                        "arcana-repository",
                        env!("CARGO_BIN_EXE_arcana-repository"),
                        repo_env,
                    ));
                }
            }
            let mut children = Vec::new();
            let mut specs = Vec::new();
            let extra: Vec<(&'static str, String)> = opts
                .extra_env
                .iter()
                .map(|(k, v)| (&*k.clone().leak(), v.clone()))
                .collect();
            for (name, exe, env) in plan {
                let env: Vec<(&'static str, String)> = common
                    .iter()
                    .chain(env.iter())
                    .chain(extra.iter())
                    .cloned()
                    .collect();
                children.push((
                    name.to_owned(),
                    spawn(dir_path.as_path(), name, exe, env.iter()),
                ));
                specs.push((exe.to_owned(), env));
            }
            let mut app = TestApp {
                base: format!("http://127.0.0.1:{port}"),
                grpc: format!("http://127.0.0.1:{grpc_port}"),
                client: reqwest::Client::builder()
                    .timeout(Duration::from_secs(20))
                    .build()
                    .unwrap(),
                mode,
                children,
                specs,
                internal,
                _db: db.take(),
                _dir: dir.take().unwrap(),
            };
            match app.wait_ready().await {
                Ok(()) => return Some(app),
                Err(why) if attempt < 3 => {
                    eprintln!("attempt {attempt}: {why}; retrying on new ports");
                    db = app._db.take();
                    dir = Some(std::mem::replace(
                        &mut app._dir,
                        tempfile::tempdir().unwrap(),
                    ));
                }
                Err(why) => panic!("{why}"),
            }
        }
        unreachable!()
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return Ok(());
            }
            let mut dead = None;
            for (name, child) in &mut self.children {
                if let Ok(Some(status)) = child.try_wait() {
                    dead = Some(format!("{name} exited at start ({status})"));
                }
            }
            if let Some(dead) = dead {
                return Err(format!("{dead}; logs:\n{}", self.logs()));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "arcana did not become ready; logs:\n{}",
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What every process logged (stdout and stderr).
    pub fn logs(&self) -> String {
        let mut all = String::new();
        for (name, _) in &self.children {
            for stream in ["stdout", "stderr"] {
                let path = self._dir.path().join(format!("{name}.{stream}.log"));
                all.push_str(&std::fs::read_to_string(path).unwrap_or_default());
            }
        }
        all
    }

    /// Send SIGTERM to the edge process and wait for its exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.terminate_process(0)
    }

    /// Send SIGTERM to process `i` (0 = the edge) and wait for its exit status.
    pub fn terminate_process(&mut self, i: usize) -> std::process::ExitStatus {
        let (name, child) = &mut self.children[i];
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("{name} did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Index of the process named `name`.
    pub fn process(&self, name: &str) -> usize {
        self.children
            .iter()
            .position(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"))
    }

    /// Start process `i` again with the same command line (after `terminate_process`).
    pub fn restart_process(&mut self, i: usize) {
        let (name, child) = &mut self.children[i];
        let _ = child.wait();
        let spec = self.specs[i].clone();
        *child = spawn(self._dir.path(), name, &spec.0, spec.1.iter());
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Send a request; returns (status, headers, body as JSON or Null).
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = self.client.request(method, self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        Resp::from(req.send().await.unwrap()).await
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Resp {
        self.call(Method::GET, path, token, None).await
    }
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Resp {
        self.call(Method::POST, path, token, Some(body)).await
    }

    pub async fn register(&self, username: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({"username": username, "email": format!("{username}@example.com"), "password": password}),
        )
        .await
    }

    pub async fn login(&self, login: &str, password: &str) -> Resp {
        self.post(
            "/api/v1/auth/login",
            None,
            json!({"username_or_email": login, "password": password}),
        )
        .await
    }

    /// Access token of the bootstrap admin.
    pub async fn admin_token(&self) -> String {
        // Layer processes create the bootstrap admin in the background; give them a moment.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.login(ADMIN_USER, ADMIN_PASSWORD).await;
            if r.status == 200 {
                return r.body["data"]["access_token"].as_str().unwrap().to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "bootstrap admin cannot log in: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Register a user and return (id, access token, refresh token).
    pub async fn user(&self, username: &str) -> (String, String, String) {
        let r = self.register(username, "Secret123").await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let d = &r.body["data"];
        (
            d["user"]["id"].as_str().unwrap().to_owned(),
            d["access_token"].as_str().unwrap().to_owned(),
            d["refresh_token"].as_str().unwrap().to_owned(),
        )
    }

    /// Poll `path` with `token` until it answers `status` (at most `within`).
    pub async fn eventually(
        &self,
        path: &str,
        token: &str,
        status: u16,
        within: Duration,
    ) -> Duration {
        let start = Instant::now();
        loop {
            let r = self.get(path, Some(token)).await;
            if r.status == status {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < within,
                "{path} still answers {} after {within:?}",
                r.status
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn spawn<'a>(
    dir: &std::path::Path,
    name: &str,
    exe: &str,
    env: impl Iterator<Item = &'a (&'static str, String)>,
) -> Child {
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log_file(dir, name, "stdout")))
        .stderr(Stdio::from(log_file(dir, name, "stderr")))
        .spawn()
        .unwrap_or_else(|e| panic!("spawning {name}: {e}"))
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// Assert the error envelope with `code` and `status`.
    pub fn assert_error(&self, status: u16, code: &str) {
        assert_eq!(self.status, status, "{:?}", self.body);
        assert_eq!(self.body["success"], false, "{:?}", self.body);
        assert_eq!(self.body["error"]["code"], code, "{:?}", self.body);
        assert!(self.body["error"]["message"].is_string());
        assert!(self.body["timestamp"].is_string());
        assert!(self.body["request_id"].is_string());
        assert_eq!(
            self.headers
                .get("x-request-id")
                .and_then(|v| v.to_str().ok()),
            self.body["request_id"].as_str()
        );
    }

    pub fn field_errors(&self) -> &serde_json::Map<String, Value> {
        self.body["error"]["details"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("no field errors: {:?}", self.body))
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
                None => eprintln!("SKIPPED postgres::{}: ARCANA_TEST_POSTGRES_URL not set", stringify!($name)),
            }
        } )* }
        mod mysql { use super::*; $( #[tokio::test] async fn $name() {
            match TestApp::start(Backend::Mysql).await {
                Some(app) => super::$name(app).await,
                None => eprintln!("SKIPPED mysql::{}: ARCANA_TEST_MYSQL_URL not set or mysql feature off", stringify!($name)),
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

fn log_file(dir: &std::path::Path, name: &str, stream: &str) -> std::fs::File {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("{name}.{stream}.log")))
        .unwrap()
}
