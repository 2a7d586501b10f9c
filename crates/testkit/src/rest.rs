//! A REST client with typed answers and the fixtures every suite needs.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::cluster::{ADMIN_PASSWORD, ADMIN_USER};

/// One answer: status, headers, and the body as JSON (`Null` when empty, a string when not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub async fn from(r: reqwest::Response) -> Resp {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let bytes = r.bytes().await.unwrap_or_default();
        Resp::parse(status, headers, &bytes)
    }

    /// An answer whose body is JSON when it parses, else a string (empty: `null`).
    pub fn parse(status: u16, headers: reqwest::header::HeaderMap, bytes: &[u8]) -> Resp {
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(bytes).into_owned()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    /// `data` of a success envelope.
    pub fn data(&self) -> &Value {
        &self.body["data"]
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

    /// The body with its volatile values (ids, instants, tokens) replaced, for a snapshot.
    pub fn stable(&self) -> Value {
        crate::snapshot::stable(&self.body)
    }

    /// `error.details.fields` of a validation error.
    pub fn field_errors(&self) -> &serde_json::Map<String, Value> {
        self.body["error"]["details"]["fields"]
            .as_object()
            .unwrap_or_else(|| panic!("no field errors: {:?}", self.body))
    }
}

/// A user as the fixtures create it.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: String,
    pub access_token: String,
    pub refresh_token: String,
}

/// REST calls against `base` (`http://127.0.0.1:port`).
#[derive(Debug, Clone)]
pub struct Rest {
    pub base: String,
    pub client: reqwest::Client,
}

impl Rest {
    pub fn new(base: impl Into<String>) -> Self {
        Self {
            base: base.into(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(20))
                .build()
                .unwrap_or_default(),
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

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
        match req.send().await {
            Ok(r) => Resp::from(r).await,
            Err(e) => panic!("{path}: {e}"),
        }
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

    /// Register `username` (password `Secret123`): its id and token pair.
    pub async fn account(&self, username: &str) -> Account {
        let r = self.register(username, "Secret123").await;
        assert_eq!(r.status, 201, "{:?}", r.body);
        let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
        Account {
            id: text(&r.data()["user"]["id"]),
            access_token: text(&r.data()["access_token"]),
            refresh_token: text(&r.data()["refresh_token"]),
        }
    }

    /// Access token of the bootstrap admin (layer processes create it in the background).
    pub async fn admin_token(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.login(ADMIN_USER, ADMIN_PASSWORD).await;
            if r.status == 200 {
                return r.data()["access_token"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "bootstrap admin cannot log in: {:?}",
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Poll `path` with `token` until it answers `status` (at most `within`); how long it took.
    pub async fn eventually(
        &self,
        path: &str,
        token: Option<&str>,
        status: u16,
        within: Duration,
    ) -> (Duration, Resp) {
        let start = Instant::now();
        loop {
            let r = self.get(path, token).await;
            if r.status == status {
                return (start.elapsed(), r);
            }
            assert!(
                start.elapsed() < within,
                "{path} still answers {} after {within:?}: {:?}",
                r.status,
                r.body
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
