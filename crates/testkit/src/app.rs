//! The REST router over the in-process layers and a fresh SQLite database: requests go through
//! the real middleware stack, extractors and handlers without any process or socket.
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request};
use http_body_util::BodyExt;
use repository::testing::TestDb;
use serde_json::Value;
use tower::ServiceExt;

use crate::rest::Resp;

pub const JWT_SECRET: &[u8] = b"testkit-in-process-secret-0123456789";

/// A gateway over the in-process service layer over a fresh SQLite file.
pub struct TestApp {
    pub state: gateway::AppState,
    pub services: service::Services,
    pub db: TestDb,
}

impl TestApp {
    /// Cheap hashes (1,000 iterations), no rate limits.
    pub fn new() -> Self {
        Self::with(
            service::ServiceConfig {
                password_iterations: 1000,
                hash_workers: 2,
                ..service::ServiceConfig::default()
            },
            gateway::GatewayConfig {
                auth_rate_limit: 0,
                password_change_rate_limit: 0,
                ..gateway::GatewayConfig::default()
            },
        )
    }

    /// A data key is generated when `config` has none.
    pub fn with(mut config: service::ServiceConfig, edge: gateway::GatewayConfig) -> Self {
        if config.mfa.data_key.0.is_none() {
            let key = crypto::mfa::DataKey::generate();
            config.mfa.data_key = service::DataKeyHandle(Some(Arc::new(key)));
        }
        let db = TestDb::sqlite();
        let keys = crypto::JwtKeys::hs256(JWT_SECRET).unwrap_or_else(|e| panic!("{e}"));
        let services = service::build(
            service::Repositories::from_one(db.db().clone()),
            config.clone(),
            Some(&keys),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let ports = gateway::Ports {
            auth: services.auth.clone(),
            users: services.users.clone(),
            oidc_clients: services.oidc_clients.clone(),
            webhooks: services.webhooks.clone(),
            oidc: Some(services.oidc.clone()),
        };
        let state = gateway::AppState::new(
            ports,
            Arc::new(keys.verifier(&config.issuer, &config.audience)),
            edge,
        );
        Self {
            state,
            services,
            db,
        }
    }

    /// One request through the whole REST stack.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Resp {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let req = req.body(body).unwrap_or_else(|e| panic!("{e}"));
        let (status, headers, bytes) = self.send(req).await;
        Resp::parse(status, headers, &bytes)
    }

    /// One request as built by the caller (any header); the answer's status, headers and raw
    /// body bytes (still compressed, if the stack compressed them).
    pub async fn send(
        &self,
        req: Request<Body>,
    ) -> (u16, axum::http::HeaderMap, axum::body::Bytes) {
        let resp = gateway::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap_or_else(|e| match e {});
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        (status, headers, bytes)
    }
}

impl Default for TestApp {
    fn default() -> Self {
        Self::new()
    }
}
