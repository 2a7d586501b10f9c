//! The public gRPC API of the gateway on a real socket, over the in-process service layer and a
//! fresh SQLite database per test, driven with the generated clients as any gRPC caller would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;

use gateway::{AppState, GatewayConfig};
use repository::testing::TestDb;
use rpc::v1::{
    self, auth_service_client::AuthServiceClient, user_service_client::UserServiceClient,
};
use service::{Repositories, ServiceConfig};
use tokio::sync::oneshot;
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

const PASSWORD: &str = "Secret123";

struct Edge {
    _db: TestDb,
    users: Arc<service::Users>,
    channel: Channel,
    _stop: oneshot::Sender<()>,
}

impl Edge {
    async fn new(auth_rate_limit: u32) -> Self {
        let db = TestDb::sqlite();
        let config = ServiceConfig {
            password_iterations: 1000,
            hash_workers: 2,
            ..ServiceConfig::default()
        };
        let keys = crypto::JwtKeys::hs256(b"gateway-grpc-tests-secret-0123456789").unwrap();
        let services = service::build(
            Repositories::from_one(db.db().clone()),
            config.clone(),
            Some(&keys),
        )
        .unwrap();
        let verifier = Arc::new(keys.verifier(&config.issuer, &config.audience));
        let ports = gateway::Ports {
            auth: services.auth.clone(),
            users: services.users.clone(),
            oidc_clients: services.oidc_clients.clone(),
            webhooks: services.webhooks.clone(),
            oidc: None,
        };
        let state = AppState::new(
            ports,
            verifier,
            GatewayConfig {
                auth_rate_limit,
                ..GatewayConfig::default()
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr: SocketAddr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(gateway::grpc::serve(listener, state, async {
            let _ = stopped.await;
        }));
        let channel = Channel::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect()
            .await
            .unwrap();
        Self {
            _db: db,
            users: services.users,
            channel,
            _stop: stop,
        }
    }

    fn auth(&self) -> AuthServiceClient<Channel> {
        AuthServiceClient::new(self.channel.clone())
    }

    fn users(&self) -> UserServiceClient<Channel> {
        UserServiceClient::new(self.channel.clone())
    }

    async fn register(&self, username: &str) -> v1::AuthResponse {
        self.auth()
            .register(v1::RegisterRequest {
                username: username.into(),
                email: format!("{username}@example.com"),
                password: PASSWORD.into(),
                first_name: None,
                last_name: None,
            })
            .await
            .unwrap()
            .into_inner()
    }

    async fn login(&self, login: &str, password: &str) -> Result<v1::AuthResponse, Status> {
        self.auth()
            .login(v1::LoginRequest {
                username_or_email: login.into(),
                password: password.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }
}

fn with_token<T>(token: &str, msg: T) -> Request<T> {
    let mut req = Request::new(msg);
    req.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    req
}

fn error_code(s: &Status) -> &str {
    s.metadata()
        .get(rpc::status::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let edge = Edge::new(60).await;
    let s = edge.auth().me(v1::MeRequest {}).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(error_code(&s), "UNAUTHORIZED");

    let s = edge
        .users()
        .list_users(with_token("not-a-jwt", v1::ListUsersRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(error_code(&s), "UNAUTHORIZED");

    // The internal port's forwarded identity means nothing on the public port.
    let mut req = Request::new(v1::MeRequest {});
    let md = req.metadata_mut();
    md.insert(
        "x-arcana-user-id",
        MetadataValue::try_from(uuid::Uuid::new_v4().to_string()).unwrap(),
    );
    md.insert(
        "x-arcana-session-id",
        MetadataValue::try_from(uuid::Uuid::new_v4().to_string()).unwrap(),
    );
    md.insert("x-arcana-role", MetadataValue::from_static("admin"));
    let s = edge.auth().me(req).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(error_code(&s), "UNAUTHORIZED");

    let s = edge.login("nobody", PASSWORD).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(error_code(&s), "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn full_flow_with_bearer_metadata() {
    let edge = Edge::new(60).await;
    let reg = edge.register("alice").await;
    assert_eq!(reg.token_type, "Bearer");
    let user = reg.user.clone().unwrap();

    let mut req = with_token(&reg.access_token, v1::MeRequest {});
    req.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("edge-req-1"));
    let resp = edge.auth().me(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "edge-req-1");
    assert_eq!(resp.into_inner().username, "alice");

    // The session records the peer address.
    let sessions = edge
        .auth()
        .list_sessions(with_token(&reg.access_token, v1::ListSessionsRequest {}))
        .await
        .unwrap()
        .into_inner()
        .sessions;
    assert_eq!(sessions.len(), 1);
    assert!(sessions[0].current);
    assert_eq!(sessions[0].ip.as_deref(), Some("127.0.0.1"));

    // PATCH through the field mask; validation errors name the field.
    let patch = v1::UpdateUserRequest {
        id: user.id.clone(),
        first_name: Some("Alice".into()),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["first_name".into(), "phone".into()],
        }),
        ..Default::default()
    };
    let updated = edge
        .users()
        .update_user(with_token(&reg.access_token, patch))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.first_name.as_deref(), Some("Alice"));
    assert_eq!(updated.email, "alice@example.com");
    let s = edge
        .users()
        .get_user(with_token(
            &reg.access_token,
            v1::GetUserRequest { id: "42".into() },
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert_eq!(error_code(&s), "VALIDATION_FAILED");
    let details = s.metadata().get(rpc::status::ERROR_DETAILS).unwrap();
    assert!(details.to_str().unwrap().contains("\"id\""), "{details:?}");

    // Refresh rotates; the new access token works.
    let rotated = edge
        .auth()
        .refresh(v1::RefreshRequest {
            refresh_token: reg.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    edge.auth()
        .me(with_token(&rotated.access_token, v1::MeRequest {}))
        .await
        .unwrap();

    // Logout drops the liveness cache: the token stops at once, not after 2 s.
    edge.auth()
        .logout(with_token(&rotated.access_token, v1::LogoutRequest {}))
        .await
        .unwrap();
    let s = edge
        .auth()
        .me(with_token(&rotated.access_token, v1::MeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn admin_calls_and_immediate_revocation() {
    let edge = Edge::new(60).await;
    edge.users
        .create_admin("root", "root@example.com", PASSWORD)
        .await
        .unwrap();
    let admin = edge.login("root", PASSWORD).await.unwrap();
    let bob = edge.register("bob").await;
    let bob_id = bob.user.clone().unwrap().id;

    // Bob is not an admin: listing is forbidden, others' users are 404.
    let s = edge
        .users()
        .list_users(with_token(
            &bob.access_token,
            v1::ListUsersRequest::default(),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied);
    let s = edge
        .users()
        .get_user(with_token(
            &bob.access_token,
            v1::GetUserRequest {
                id: admin.user.clone().unwrap().id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::NotFound);

    let page = edge
        .users()
        .list_users(with_token(
            &admin.access_token,
            v1::ListUsersRequest {
                sort: Some("username".into()),
                order: Some("asc".into()),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let names: Vec<_> = page.items.iter().map(|u| u.username.as_str()).collect();
    assert_eq!(names, ["bob", "root"]);
    let p = page.pagination.unwrap();
    assert_eq!((p.keyset, p.total, p.page), (false, Some(2), Some(1)));

    // Bob's token works (and is cached as live) until his role changes.
    edge.auth()
        .me(with_token(&bob.access_token, v1::MeRequest {}))
        .await
        .unwrap();
    let changed = edge
        .users()
        .set_role(with_token(
            &admin.access_token,
            v1::SetRoleRequest {
                id: bob_id,
                role: "guest".into(),
            },
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(changed.role, "guest");
    let s = edge
        .auth()
        .me(with_token(&bob.access_token, v1::MeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // The last admin cannot demote themselves.
    let s = edge
        .users()
        .set_role(with_token(
            &admin.access_token,
            v1::SetRoleRequest {
                id: admin.user.unwrap().id,
                role: "user".into(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::FailedPrecondition);
    assert_eq!(error_code(&s), "CONFLICT");
}

#[tokio::test]
async fn login_register_and_refresh_are_rate_limited_per_ip() {
    let edge = Edge::new(3).await;
    for _ in 0..3 {
        let s = edge.login("nobody", "Wrong-password-1").await.unwrap_err();
        assert_eq!(error_code(&s), "INVALID_CREDENTIALS");
    }
    let s = edge.login("nobody", "Wrong-password-1").await.unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    assert_eq!(error_code(&s), "RATE_LIMITED");
    let details = s.metadata().get(rpc::status::ERROR_DETAILS).unwrap();
    assert!(
        details.to_str().unwrap().contains("retry_after_seconds"),
        "{details:?}"
    );
    // Each endpoint has its own budget.
    let reg = edge.register("carol").await;
    for _ in 0..2 {
        let s = edge
            .auth()
            .refresh(v1::RefreshRequest {
                refresh_token: "bogus".into(),
            })
            .await
            .unwrap_err();
        assert_eq!(s.code(), Code::Unauthenticated);
    }
    edge.auth()
        .refresh(v1::RefreshRequest {
            refresh_token: reg.refresh_token,
        })
        .await
        .unwrap();
    let s = edge
        .auth()
        .refresh(v1::RefreshRequest {
            refresh_token: "bogus".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::ResourceExhausted);
    // Bearer calls are not part of the auth budgets.
    edge.auth()
        .me(with_token(&reg.access_token, v1::MeRequest {}))
        .await
        .unwrap();
}

#[tokio::test]
async fn health_is_served() {
    let edge = Edge::new(60).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(edge.channel.clone());
    // NOT_SERVING until the readiness tracker's first check has passed, then SERVING.
    let mut status = 0;
    for _ in 0..250 {
        status = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status;
        if status == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(status, 1, "SERVING");
}
