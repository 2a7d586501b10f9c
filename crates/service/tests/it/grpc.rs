//! The service layer across its gRPC boundary: the internal port (AuthGrpc/UserGrpc/SessionCheck
//! with forwarded principals, behind the internal credential) served on a real socket over the
//! in-process services and real SQLite, driven through the client adapters — the same domain
//! traits a gateway holds.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use domain::{
    AuthService, CreateUserInput, Error, LoginInput, PageInfo, PasswordInput, Principal,
    RawUserQuery, RegisterInput, Role, UserPatch, UserService,
};
use rpc::client::Upstream;
use rpc::credential::InternalCredential;
use rpc::service::{self as grpc, AuthClient, UserClient};
use rpc::v1::{
    self, auth_service_client::AuthServiceClient, user_service_client::UserServiceClient,
};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::Code;
use tonic::metadata::MetadataValue;

const TOKEN: &str = "grpc-tests-internal-credential-0123456789";

/// The in-process services behind a real internal gRPC port, and clients of that port.
struct Remote {
    app: TestApp,
    auth: Arc<dyn AuthService>,
    users: Arc<dyn UserService>,
    upstream: Upstream,
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<Result<(), tonic::transport::Error>>>,
}

impl Remote {
    async fn new() -> Self {
        let app = TestApp::new().await;
        let credential = InternalCredential::new(TOKEN).unwrap();
        let callers = grpc::VerifiedPrincipal::new(app.token_check(), app.auth.clone());
        let (router, health) = grpc::internal_router(
            Some(grpc::AuthContext {
                auth: app.auth.clone(),
                clients: app.oidc_clients.clone(),
                provider: app.oidc.clone(),
            }),
            Some(grpc::UserContext {
                users: app.users.clone(),
                webhooks: app.webhooks.clone(),
            }),
            callers,
            credential.clone(),
        );
        tokio::spawn(grpc::track_readiness(
            health,
            Some(app.auth.clone()),
            Some(app.users.clone()),
            Duration::from_millis(50),
        ));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(router.serve(listener, async {
            let _ = stopped.await;
        }));
        let upstream = Upstream::new(
            &format!("http://{addr}"),
            credential,
            Duration::from_secs(5),
        )
        .unwrap();
        Self {
            app,
            auth: Arc::new(AuthClient::new(upstream.clone())),
            users: Arc::new(UserClient::new(upstream.clone())),
            upstream,
            addr,
            stop: Some(stop),
            server: Some(server),
        }
    }

    async fn register(&self, username: &str) -> domain::AuthSession {
        self.auth
            .register(&ctx(), register_input(username))
            .await
            .unwrap()
    }

    async fn login(&self, login: &str, password: &str) -> domain::Result<domain::AuthSession> {
        self.auth
            .login(
                &ctx(),
                LoginInput {
                    username_or_email: login.into(),
                    password: password.into(),
                },
            )
            .await
            .map(|o| o.session().expect("an account without a second factor"))
    }

    /// A signed-in user (through the gRPC clients) and its principal.
    async fn user(&self, username: &str) -> (domain::AuthSession, Principal) {
        let s = self.register(username).await;
        let p = self.app.principal(&s);
        (s, p)
    }

    async fn admin(&self, username: &str) -> (domain::AuthSession, Principal) {
        self.app
            .users
            .create_admin(username, &format!("{username}@example.com"), PASSWORD)
            .await
            .unwrap();
        let s = self.login(username, PASSWORD).await.unwrap();
        let p = self.app.principal(&s);
        (s, p)
    }

    /// A raw generated-client request carrying the credential and `who`'s forwarded token.
    fn raw<T>(&self, who: &Principal, msg: T) -> tonic::Request<T> {
        let mut req = self.upstream.request(msg);
        let caller = self.app.caller(who);
        grpc::forward(req.metadata_mut(), Some(&ctx()), caller.token.as_ref());
        req
    }
}

fn register_input(username: &str) -> RegisterInput {
    RegisterInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        first_name: None,
        last_name: None,
    }
}

fn error_code(s: &tonic::Status) -> &str {
    s.metadata()
        .get(rpc::status::ERROR_CODE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

// ---- auth ----------------------------------------------------------------------------------

#[tokio::test]
async fn register_login_me_refresh_and_reuse_detection() {
    let r = Remote::new().await;
    let registered = r.register("alice").await;
    assert_eq!(registered.user.username, "alice");
    assert_eq!(registered.tokens.token_type, "Bearer");

    let session = r.login("alice@example.com", PASSWORD).await.unwrap();
    let who = r.app.principal(&session);
    assert_eq!(who.user_id, registered.user.id);
    let me = r.auth.me(&r.app.caller(&who)).await.unwrap();
    assert_eq!(me, r.app.fetch(who.user_id).await);

    // The client facts and request id crossed the hop into the session and the audit log.
    let sessions = r.auth.list_sessions(&r.app.caller(&who)).await.unwrap();
    assert_eq!(sessions.len(), 2);
    let current = sessions.iter().find(|s| s.current).unwrap();
    assert_eq!(current.id, who.session_id);
    assert_eq!(current.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(current.user_agent.as_deref(), Some("service-tests"));
    let login_event = r
        .app
        .audit(who.user_id)
        .await
        .into_iter()
        .find(|e| e.r#type == "auth.login")
        .unwrap();
    assert_eq!(login_event.request_id.as_deref(), Some("test-request"));
    assert_eq!(login_event.ip.as_deref(), Some("192.0.2.7"));

    let rotated = r
        .auth
        .refresh(&ctx(), &session.tokens.refresh_token)
        .await
        .unwrap();
    assert_ne!(rotated.tokens.refresh_token, session.tokens.refresh_token);
    assert!(r.auth.session_live(&who).await.unwrap());

    // Presenting the rotated-away token again: theft detection kills the whole family.
    let err = r
        .auth
        .refresh(&ctx(), &session.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized), "{err:?}");
    assert!(!r.auth.session_live(&who).await.unwrap());
    let err = r
        .auth
        .refresh(&ctx(), &rotated.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized), "{err:?}");

    // The other session (from registration) is untouched; logout-all ends it.
    let first = r.app.principal(&registered);
    assert!(r.auth.session_live(&first).await.unwrap());
    assert_eq!(r.auth.logout_all(&r.app.caller(&first)).await.unwrap(), 1);
    assert!(!r.auth.session_live(&first).await.unwrap());
}

#[tokio::test]
async fn logout_and_revoke_session_end_sessions() {
    let r = Remote::new().await;
    let (_, a) = r.user("bob").await;
    let b = r.app.principal(&r.login("bob", PASSWORD).await.unwrap());
    r.auth
        .revoke_session(&r.app.caller(&a), b.session_id)
        .await
        .unwrap();
    assert!(!r.auth.session_live(&b).await.unwrap());
    let err = r
        .auth
        .revoke_session(&r.app.caller(&a), uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    r.auth.logout(&r.app.caller(&a)).await.unwrap();
    assert!(!r.auth.session_live(&a).await.unwrap());
    // An unknown session is simply not live.
    assert!(
        !r.auth
            .session_live(&domain::Principal {
                session_id: uuid::Uuid::new_v4(),
                ..a
            })
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn domain_errors_survive_the_hop() {
    let r = Remote::new().await;
    let err = r
        .auth
        .register(
            &ctx(),
            RegisterInput {
                username: "x".into(),
                email: "not-an-email".into(),
                password: "short".into(),
                first_name: Some("y".repeat(51)),
                last_name: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        field_errors(&err),
        ["email", "first_name", "password", "username"]
    );

    r.register("carol").await;
    let err = r
        .auth
        .register(&ctx(), register_input("carol"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    let err = r.login("carol", "Wrong-password-1").await.unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    for _ in 0..4 {
        r.login("carol", "Wrong-password-1").await.unwrap_err();
    }
    match r.login("carol", PASSWORD).await.unwrap_err() {
        Error::Locked { retry_after } => assert_eq!(retry_after, Duration::from_secs(30)),
        other => panic!("expected Locked, got {other:?}"),
    }
}

// ---- users ---------------------------------------------------------------------------------

#[tokio::test]
async fn non_admins_see_only_themselves() {
    let r = Remote::new().await;
    let (_, alice) = r.user("alice").await;
    let (_, bob) = r.user("bob").await;
    let own = r
        .users
        .get_user(&r.app.caller(&alice), alice.user_id)
        .await
        .unwrap();
    assert_eq!(own.username, "alice");
    let err = r
        .users
        .get_user(&r.app.caller(&alice), bob.user_id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    let err = r
        .users
        .update_user(&r.app.caller(&alice), bob.user_id, UserPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    let err = r
        .users
        .list_users(&r.app.caller(&alice), RawUserQuery::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    let err = r
        .users
        .set_role(&r.app.caller(&alice), alice.user_id, "admin")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
}

#[tokio::test]
async fn admin_lists_with_offsets_and_cursors() {
    let r = Remote::new().await;
    let (_, admin) = r.admin("root").await;
    for name in ["user1", "user2", "user3", "user4", "user5"] {
        r.users
            .create_user(
                &r.app.caller(&admin),
                CreateUserInput {
                    username: name.into(),
                    email: format!("{name}@example.com"),
                    password: PASSWORD.into(),
                    role: Some("guest".into()),
                    is_verified: Some(true),
                    ..CreateUserInput::default()
                },
            )
            .await
            .unwrap();
    }
    let page = r
        .users
        .list_users(
            &r.app.caller(&admin),
            RawUserQuery {
                per_page: Some("4".into()),
                role: Some("guest".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 4);
    assert!(
        page.items
            .iter()
            .all(|u| u.role == Role::Guest && u.is_verified)
    );
    assert_eq!(page.pagination, PageInfo::offset(1, 4, 5));

    let mut cursor = Some(String::new());
    let mut seen = Vec::new();
    while let Some(c) = cursor {
        let page = r
            .users
            .list_users(
                &r.app.caller(&admin),
                RawUserQuery {
                    per_page: Some("2".into()),
                    sort: Some("username".into()),
                    order: Some("asc".into()),
                    cursor: Some(c),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.into_iter().map(|u| u.username));
        let PageInfo::Keyset {
            per_page,
            next_cursor,
        } = page.pagination
        else {
            panic!("expected keyset pagination")
        };
        assert_eq!(per_page, 2);
        cursor = next_cursor;
    }
    assert_eq!(seen, ["root", "user1", "user2", "user3", "user4", "user5"]);

    let err = r
        .users
        .list_users(
            &r.app.caller(&admin),
            RawUserQuery {
                per_page: Some("0".into()),
                cursor: Some("garbage".into()),
                ..Default::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["cursor", "per_page"]);
}

#[tokio::test]
async fn put_and_patch_semantics() {
    let r = Remote::new().await;
    let (_, me) = r.user("dave").await;
    let id = me.user_id;
    // PUT through the client adapter: every field given, absent ones cleared.
    let put = UserPatch {
        current_password: None,
        email: Some("Dave@Example.com".into()),
        first_name: Some(Some("Dave".into())),
        last_name: Some(Some("Jones".into())),
        phone: Some(Some("+44 20 7946 0000".into())),
        avatar_url: Some(None),
    };
    let u = r
        .users
        .update_user(&r.app.caller(&me), id, put)
        .await
        .unwrap();
    assert_eq!(u.email, "dave@example.com");
    assert_eq!(
        (
            u.first_name.as_deref(),
            u.last_name.as_deref(),
            u.avatar_url.as_deref()
        ),
        (Some("Dave"), Some("Jones"), None)
    );
    // PATCH: only what is named; `Some(None)` clears.
    let patch = UserPatch {
        current_password: None,
        last_name: Some(None),
        avatar_url: Some(Some("https://example.com/d.png".into())),
        ..Default::default()
    };
    let u = r
        .users
        .update_user(&r.app.caller(&me), id, patch)
        .await
        .unwrap();
    assert_eq!(u.first_name.as_deref(), Some("Dave"));
    assert_eq!(u.phone.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(u.last_name, None);
    assert_eq!(u.avatar_url.as_deref(), Some("https://example.com/d.png"));

    // The raw wire: no update_mask is a PUT — email required, absent fields cleared.
    let mut raw = UserServiceClient::new(r.upstream.channel());
    let put = v1::UpdateUserRequest {
        id: id.to_string(),
        email: Some("dave@example.com".into()),
        first_name: Some("David".into()),
        ..Default::default()
    };
    let u = raw.update_user(r.raw(&me, put)).await.unwrap().into_inner();
    assert_eq!(u.first_name.as_deref(), Some("David"));
    assert_eq!((u.phone, u.avatar_url), (None, None));
    let no_email = v1::UpdateUserRequest {
        id: id.to_string(),
        ..Default::default()
    };
    let s = raw.update_user(r.raw(&me, no_email)).await.unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    assert!(matches!(rpc::status::to_error(s), Error::Validation(f) if f.0.contains_key("email")));
    // An update_mask naming something else is refused on `update_mask`.
    let bad_mask = v1::UpdateUserRequest {
        id: id.to_string(),
        update_mask: Some(prost_types::FieldMask {
            paths: vec!["role".into()],
        }),
        ..Default::default()
    };
    let s = raw.update_user(r.raw(&me, bad_mask)).await.unwrap_err();
    let e = rpc::status::to_error(s);
    assert_eq!(field_errors(&e), ["update_mask"]);
    // Invalid values keep their field names across the hop.
    let bad = UserPatch {
        current_password: None,
        email: Some("nope".into()),
        avatar_url: Some(Some("ftp://x".into())),
        ..Default::default()
    };
    let err = r
        .users
        .update_user(&r.app.caller(&me), id, bad)
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["avatar_url", "email"]);
}

#[tokio::test]
async fn admin_operations_and_password_change() {
    let r = Remote::new().await;
    let (_, admin) = r.admin("root").await;
    let (_, erin) = r.user("erin").await;
    let u = r
        .users
        .verify_user(&r.app.caller(&admin), erin.user_id)
        .await
        .unwrap();
    assert!(u.is_verified);
    let u = r
        .users
        .set_role(&r.app.caller(&admin), erin.user_id, "guest")
        .await
        .unwrap();
    assert_eq!(u.role, Role::Guest);
    assert!(!r.auth.session_live(&erin).await.unwrap());
    let err = r
        .users
        .set_status(&r.app.caller(&admin), erin.user_id, "frozen")
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["status"]);
    let err = r
        .users
        .set_status(&r.app.caller(&admin), admin.user_id, "suspended")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");

    let erin = r.app.principal(&r.login("erin", PASSWORD).await.unwrap());
    let err = r
        .users
        .change_password(
            &r.app.caller(&erin),
            erin.user_id,
            PasswordInput {
                current_password: Some("Wrong-password-1".into()),
                new_password: "New-password-2".into(),
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    r.users
        .change_password(
            &r.app.caller(&admin),
            erin.user_id,
            PasswordInput {
                current_password: None,
                new_password: "New-password-2".into(),
            },
        )
        .await
        .unwrap();
    r.login("erin", "New-password-2").await.unwrap();
    r.users
        .delete_user(&r.app.caller(&admin), erin.user_id)
        .await
        .unwrap();
    let err = r.users.get_user(&r.app.caller(&admin), erin.user_id).await;
    // Soft-deleted: still visible to an admin, with status deleted.
    assert_eq!(err.unwrap().status, domain::Status::Deleted);
}

// ---- the internal credential and health ----------------------------------------------------

#[tokio::test]
async fn calls_without_the_internal_credential_are_refused() {
    let r = Remote::new().await;
    let (_, alice) = r.user("alice").await;
    let mut raw = AuthServiceClient::connect(format!("http://{}", r.addr))
        .await
        .unwrap();

    // No credential, but a valid forwarded token: refused before any handler runs.
    let token = r.app.caller(&alice).token;
    let mut req = tonic::Request::new(v1::MeRequest {});
    grpc::forward(req.metadata_mut(), None, token.as_ref());
    let s = raw.me(req).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // A wrong credential.
    let mut req = tonic::Request::new(v1::MeRequest {});
    grpc::forward(req.metadata_mut(), None, token.as_ref());
    req.metadata_mut().insert(
        rpc::credential::INTERNAL_TOKEN,
        MetadataValue::from_static("grpc-tests-internal-credential-XXXXXXXXXX"),
    );
    let s = raw.me(req).await.unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // The session check is internal too.
    let mut check = rpc::internal::session_check_service_client::SessionCheckServiceClient::new(
        r.upstream.channel(),
    );
    let s = check
        .session_live(rpc::internal::SessionLiveRequest {
            user_id: alice.user_id.to_string(),
            session_id: alice.session_id.to_string(),
            role: "user".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);

    // With the credential but no forwarded identity: UNAUTHENTICATED with the contract code.
    let s = raw
        .me(r.upstream.request(v1::MeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Unauthenticated);
    assert_eq!(error_code(&s), "UNAUTHORIZED");

    // The right credential and identity work, and the request id is echoed.
    let mut req = r.raw(&alice, v1::MeRequest {});
    req.metadata_mut()
        .insert("x-request-id", MetadataValue::from_static("trace-me-42"));
    let resp = raw.me(req).await.unwrap();
    assert_eq!(resp.metadata().get("x-request-id").unwrap(), "trace-me-42");
    assert_eq!(resp.into_inner().username, "alice");
}

#[tokio::test]
async fn ready_until_the_server_stops() {
    let mut r = Remote::new().await;
    // NOT_SERVING until the readiness tracker's first check has passed.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while r.auth.ready().await.is_err() || r.users.ready().await.is_err() {
        assert!(std::time::Instant::now() < deadline, "never became ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Health answers without the credential (probes carry none).
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", r.addr))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    // Each served service is reported once the readiness tracker has run.
    let mut status = None;
    for _ in 0..100 {
        let answer = health
            .check(tonic_health::pb::HealthCheckRequest {
                service: "arcana.v1.UserService".into(),
            })
            .await;
        if let Ok(a) = answer {
            status = Some(a.into_inner().status);
            if status == Some(1) {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, Some(1), "SERVING");
    drop(health);

    r.stop.take().unwrap().send(()).unwrap();
    r.server.take().unwrap().await.unwrap().unwrap();
    let started = std::time::Instant::now();
    let err = tokio::time::timeout(Duration::from_secs(20), r.auth.ready())
        .await
        .expect("ready() must not hang when the upstream is gone")
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
    let err = r.users.ready().await.unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
    let err = r
        .users
        .get_user(&by(&fake_principal()), uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unavailable), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(20));
}

fn fake_principal() -> Principal {
    Principal {
        user_id: uuid::Uuid::new_v4(),
        session_id: uuid::Uuid::new_v4(),
        role: Role::Admin,
        scopes: domain::Scopes::SESSION,
    }
}
