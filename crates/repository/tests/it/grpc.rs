//! The repository's gRPC boundary beyond the shared contract (which `contract.rs` also runs
//! through it): the internal credential, health and reflection, errors and request ids crossing
//! the wire.
// Test code: a failed expectation panics. (clippy's allow-*-in-tests only covers #[test] fns.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AuditEvent, AuditPage, AuditQuery, AuditRepository, Error, PageRequest, SortOrder, Status,
    UserQuery, UserRepository, UserSort, UserUpdate,
};
use repository::Database;
use repository::testing::TestDb;
use rpc::client::Upstream;
use rpc::credential::InternalCredential;
use rpc::internal as pb;
use rpc::internal::repository_service_client::RepositoryServiceClient;
use rpc::repository::RepositoryClient;
use rpc::status::ERROR_CODE;
use tonic::{Code, Request};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
use uuid::Uuid;

use crate::support::*;

const SERVICE: &str = "arcana.internal.v1.RepositoryService";

fn with_credential<T>(msg: T, credential: &InternalCredential) -> Request<T> {
    let mut req = Request::new(msg);
    credential.attach(req.metadata_mut());
    req
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_internal_calls_are_refused() {
    let server = GrpcServer::start().await;
    let mut raw = RepositoryServiceClient::new(server.channel().await);
    let wrong = InternalCredential::new("not-the-internal-token-0123456789abcdef").unwrap();
    let user = new_user("mallory");
    let msg = pb::NewUser::from(user.clone());

    // a write, without and with a wrong credential
    let e = raw
        .create_user(Request::new(msg.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    let e = raw
        .create_user(with_credential(msg.clone(), &wrong))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    // the read that hands out password hashes, and the cheapest call
    let login = pb::FindCredentialsRequest {
        login: "mallory".into(),
    };
    let e = raw
        .find_credentials(Request::new(login.clone()))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = raw
        .find_credentials(with_credential(login, &wrong))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = raw.ping(Request::new(pb::Empty {})).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    // the client adapter with a wrong credential gets the domain's answer
    let impostor = server.client_with(wrong);
    assert!(matches!(
        impostor.create(new_user("mallory2")).await,
        Err(Error::Unauthorized)
    ));

    // nothing was written
    let db: &dyn UserRepository = server.db.db();
    assert_eq!(db.find_by_id(user.id).await.unwrap(), None);
    assert!(
        db.list(&UserQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );

    // the same call with the credential is served
    let created = raw
        .create_user(with_credential(msg, &credential()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.id, user.id.to_string());
    drop(raw);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_answer_without_the_credential() {
    let server = GrpcServer::start().await;
    let channel = server.channel().await;

    let mut health = HealthClient::new(channel.clone());
    for service in ["", SERVICE] {
        let r = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(r.status(), ServingStatus::Serving, "{service:?}");
    }

    let mut reflection = ServerReflectionClient::new(channel);
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures_util::stream::iter(vec![ask]))
        .await
        .unwrap()
        .into_inner();
    let answer = answers.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer {answer:?}")
    };
    let names: Vec<&str> = list.service.iter().map(|s| s.name.as_str()).collect();
    assert!(names.contains(&SERVICE), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health"), "{names:?}");
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_survive_the_round_trip() {
    let server = GrpcServer::start().await;
    let client = server.client();

    // Conflict keeps its message; on the wire it is ALREADY_EXISTS with the contract's code
    let bob = client.create(new_user("Bob")).await.unwrap();
    let mut again = new_user("bob");
    again.email = "other@example.com".into();
    match client.create(again.clone()).await {
        Err(Error::Conflict { message: m, .. }) => assert_eq!(m, "username already taken"),
        other => panic!("expected a conflict, got {other:?}"),
    }
    let mut raw = RepositoryServiceClient::new(server.channel().await);
    let s = raw
        .create_user(with_credential(pb::NewUser::from(again), &credential()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::AlreadyExists);
    assert_eq!(s.message(), "username already taken");
    assert_eq!(s.metadata().get(ERROR_CODE).unwrap(), "CONFLICT");

    // Validation keeps its field names, from the implementation ...
    let delete = UserUpdate {
        status: Some(Status::Deleted),
        ..Default::default()
    };
    match client.update(bob.id, delete, at(1)).await {
        Err(Error::Validation(f)) => assert!(f.0.contains_key("status"), "{f:?}"),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let keyset_by_last_login = UserQuery {
        page: PageRequest::Keyset { after: None },
        sort: UserSort::LastLoginAt,
        order: SortOrder::Asc,
        ..UserQuery::default()
    };
    match client.list(&keyset_by_last_login).await {
        Err(Error::Validation(f)) => assert_eq!(f.0.keys().collect::<Vec<_>>(), ["cursor"]),
        other => panic!("expected a validation error, got {other:?}"),
    }
    // ... and from decoding the request
    let bad_id = pb::IdRequest { id: "nope".into() };
    let s = raw
        .find_user_by_id(with_credential(bad_id, &credential()))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::InvalidArgument);
    match rpc::status::to_error(s) {
        Error::Validation(f) => assert_eq!(f.0.keys().collect::<Vec<_>>(), ["id"]),
        other => panic!("expected a validation error, got {other:?}"),
    }
    let mut bad_query = pb::UserQuery::from(&UserQuery::default());
    bad_query.keyset = true;
    bad_query.after = "garbage".into();
    let s = raw
        .list_users(with_credential(bad_query, &credential()))
        .await
        .unwrap_err();
    assert!(matches!(
        rpc::status::to_error(s),
        Error::Validation(f) if f.0.contains_key("cursor")
    ));

    // NotFound stays NotFound
    assert!(matches!(
        client
            .record_login_success(success(Uuid::new_v4(), at(1), 1, None))
            .await,
        Err(Error::NotFound)
    ));

    // an internal failure is INTERNAL without its cause
    drop_table(&server.db, "audit_events");
    let e = client.record(event(Some(bob.id))).await.unwrap_err();
    assert!(matches!(e, Error::Internal(_)), "{e:?}");
    let s = raw
        .record_audit(with_credential(
            rpc::v1::AuditEvent::from(event(Some(bob.id))),
            &credential(),
        ))
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::Internal);
    assert_eq!(s.message(), "internal server error");
    assert!(!format!("{s:?}").contains("audit_events"), "{s:?}");
    drop(raw);
    drop(client);
    server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_repository_is_unavailable() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let upstream = Upstream::new(
        &format!("127.0.0.1:{port}"),
        credential(),
        Duration::from_secs(2),
    )
    .unwrap();
    let client = RepositoryClient::new(upstream);
    let started = std::time::Instant::now();
    assert!(matches!(client.ping().await, Err(Error::Unavailable)));
    assert!(matches!(
        client.create(new_user("nobody")).await,
        Err(Error::Unavailable)
    ));
    assert!(started.elapsed() < Duration::from_secs(15));
}

/// Wraps the real audit repository and notes the request id in scope of each `record`.
struct RequestIds {
    inner: Database,
    seen: Mutex<Vec<Option<String>>>,
}

#[async_trait]
impl AuditRepository for RequestIds {
    async fn record_all(&self, events: Vec<AuditEvent>) -> domain::Result<()> {
        self.seen.lock().unwrap().push(rpc::context::request_id());
        self.inner.record_all(events).await
    }
    async fn list_events(&self, query: &AuditQuery) -> domain::Result<AuditPage> {
        self.inner.list_events(query).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_ids_reach_the_repository() {
    let db = TestDb::sqlite();
    let spy = Arc::new(RequestIds {
        inner: db.db().clone(),
        seen: Mutex::new(Vec::new()),
    });
    let mut ports = domain::Repositories::from_one(db.db().clone());
    ports.audit = spy.clone();
    let server = GrpcServer::start_with(db, ports).await;
    let client = server.client();
    let subject = Uuid::new_v4();
    rpc::context::with_request_id(
        Some("req-42.a_b".into()),
        client.record(event(Some(subject))),
    )
    .await
    .unwrap();
    client.record(event(Some(subject))).await.unwrap();
    // an id that is not a sane token is dropped, not trusted
    rpc::context::with_request_id(Some("x".repeat(200)), client.record(event(Some(subject))))
        .await
        .unwrap();
    assert_eq!(
        *spy.seen.lock().unwrap(),
        [Some("req-42.a_b".to_owned()), None, None]
    );
    let page = client
        .list_events(&AuditQuery::about(subject, 10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 3);
    drop(client);
    server.stop().await;
}

fn event(subject: Option<Uuid>) -> AuditEvent {
    AuditEvent {
        id: Uuid::now_v7(),
        at: at(1),
        actor_id: None,
        subject_id: subject,
        r#type: "auth.login".into(),
        outcome: "success".into(),
        ip: None,
        request_id: None,
        details: None,
    }
}

/// Break the schema under a running server (to provoke an internal error).
fn drop_table(db: &TestDb, table: &str) {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let path = db.url().strip_prefix("sqlite://").unwrap();
    let mut conn = diesel::SqliteConnection::establish(path).unwrap();
    conn.batch_execute(&format!("DROP TABLE {table}")).unwrap();
}

/// `RotateSession`, which services of the previous release call during a rolling update, still
/// swaps (and answers whether it did) with the live-session rules of `RotateLiveSession`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_previous_release_rotation_rpc_still_swaps() {
    use domain::SessionRepository;
    let server = GrpcServer::start().await;
    let u = UserRepository::create(server.db.db(), new_user("rolling"))
        .await
        .unwrap();
    let sessions: &dyn SessionRepository = server.db.db();
    let s = sessions.create(new_session(u.id, 0, 3600)).await.unwrap();
    let mut raw = RepositoryServiceClient::new(server.channel().await);
    let swap = |expected: char, new: char| {
        pb::Rotation::from(rotation(s.id, &hash(expected), &hash(new), at(10)))
    };
    let ok = raw
        .rotate_session(with_credential(swap('a', 'b'), &credential()))
        .await
        .unwrap()
        .into_inner();
    assert!(ok.value);
    let stale = raw
        .rotate_session(with_credential(swap('a', 'c'), &credential()))
        .await
        .unwrap()
        .into_inner();
    assert!(!stale.value, "the hash is no longer current");
    let now = sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!((now.refresh_token_hash, now.generation), (hash('b'), 1));
    drop(raw);
    server.stop().await;
}
