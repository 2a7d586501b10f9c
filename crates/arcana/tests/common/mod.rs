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

pub struct TestApp {
    pub base: String,
    pub client: reqwest::Client,
    child: Child,
    _db: Option<TestDb>,
    _dir: tempfile::TempDir,
}

#[derive(Default)]
pub struct Options {
    /// ARCANA_AUTH_RATE_LIMIT (0 = off, the default in tests).
    pub rate_limit: u32,
    pub extra_env: Vec<(String, String)>,
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
        let port = free_port();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_arcana"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("ARCANA_HTTP_ADDR", format!("127.0.0.1:{port}"))
            .env("ARCANA_GRPC_ADDR", format!("127.0.0.1:{}", free_port()))
            .env("ARCANA_DATA_DIR", dir.path())
            .env("ARCANA_DATABASE_URL", &url)
            .env("ARCANA_DB_POOL_SIZE", "8")
            .env("ARCANA_PASSWORD_ITERATIONS", "1000")
            .env("ARCANA_JWT_SECRET", JWT_SECRET)
            .env("ARCANA_AUTH_RATE_LIMIT", opts.rate_limit.to_string())
            .env("ARCANA_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USER)
            .env("ARCANA_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL)
            .env("ARCANA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("ARCANA_LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::from(
                std::fs::File::create(dir.path().join("stdout.log")).unwrap(),
            ))
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).unwrap(),
            ));
        for (k, v) in &opts.extra_env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("spawning arcana");
        let app = TestApp {
            base: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap(),
            child,
            _db: db,
            _dir: dir,
        };
        app.wait_ready().await;
        Some(app)
    }

    async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(r) = self
                .client
                .get(format!("{}/health/ready", self.base))
                .send()
                .await
                && r.status() == StatusCode::OK
            {
                return;
            }
            if Instant::now() > deadline {
                panic!("arcana did not become ready; logs:\n{}", self.logs());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// What the server logged (stdout and stderr).
    pub fn logs(&self) -> String {
        let read = |n: &str| std::fs::read_to_string(self._dir.path().join(n)).unwrap_or_default();
        format!("{}{}", read("stdout.log"), read("stderr.log"))
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            if Instant::now() > deadline {
                panic!("arcana did not stop after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
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
        let r = self.login(ADMIN_USER, ADMIN_PASSWORD).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["data"]["access_token"].as_str().unwrap().to_owned()
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
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
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
    };
}
