//! Fixtures, the per-backend test generator for the contract suite, and a repository gRPC server
//! on a free local port.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use chrono::TimeDelta;
use domain::{
    AttemptReservation, LockoutPolicy, LoginSuccess, NewSession, NewUser, Rehash, RevokeReason,
    Role, Rotation, SessionId, Timestamp, UserId, UserRevocation,
};
use repository::testing::TestDb;
use repository::{Backend, Database};
use rpc::client::Upstream;
use rpc::credential::InternalCredential;
use rpc::repository::{self as grpc, RepositoryClient};
use rpc::server::GrpcRouter;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use uuid::Uuid;

/// Generate the contract tests:
///
/// - every body in `ports` takes a [`Repos`] and runs once per backend as `sqlite::<name>`,
///   `postgres::<name>`, `mysql::<name>` (the diesel `Database` itself), and once as
///   `grpc::<name>` (a `RepositoryClient` talking to a `RepositoryGrpc` over a SQLite `Database`
///   on a local port), so both adapters of the boundary keep the same contract;
/// - every body in `database` takes a `Database` (it needs what only the diesel adapter has) and
///   runs per backend only.
///
/// A backend that is not configured prints `SKIPPED <test>: <reason>` and passes (fails with
/// `CI` set: see `repository::testing::skipped`).
#[macro_export]
macro_rules! contract_tests {
    (ports: [$($port:ident),* $(,)?], database: [$($db:ident),* $(,)?] $(,)?) => {
        $crate::contract_tests!(@backend sqlite, Sqlite, [$($port),*], [$($db),*]);
        $crate::contract_tests!(@backend postgres, Postgres, [$($port),*], [$($db),*]);
        $crate::contract_tests!(@backend mysql, Mysql, [$($port),*], [$($db),*]);
        mod grpc {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $port() {
                    $crate::support::run_grpc(super::$port).await;
                }
            )*
        }
    };
    (@backend $module:ident, $backend:ident, [$($port:ident),*], [$($db:ident),*]) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $port() {
                    $crate::support::run(
                        ::repository::Backend::$backend,
                        concat!(stringify!($module), "::", stringify!($port)),
                        |db| super::$port($crate::support::Repos::from_one(db)),
                    )
                    .await;
                }
            )*
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $db() {
                    $crate::support::run(
                        ::repository::Backend::$backend,
                        concat!(stringify!($module), "::", stringify!($db)),
                        super::$db,
                    )
                    .await;
                }
            )*
        }
    };
}

/// The repository ports, whichever adapter is behind.
pub type Repos = domain::Repositories;

pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(t) = TestDb::from_env(backend) else {
        let reason = TestDb::skip_reason(backend).unwrap_or_default();
        repository::testing::skipped(test, &reason);
        return;
    };
    assert_eq!(t.db().backend(), backend);
    body(t.db().clone()).await;
}

/// Run `body` against a `RepositoryClient` whose server keeps its data in a fresh SQLite
/// database.
pub async fn run_grpc<F, Fut>(body: F)
where
    F: FnOnce(Repos) -> Fut,
    Fut: Future<Output = ()>,
{
    let server = GrpcServer::start().await;
    body(Repos::from_one(server.client())).await;
    server.stop().await;
}

/// The internal credential of the test servers.
pub const TOKEN: &str = "test-internal-token-0123456789abcdefghij";

pub fn credential() -> InternalCredential {
    InternalCredential::new(TOKEN).unwrap()
}

/// Generous: the concurrency tests queue many writes on a small shared machine.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// `RepositoryService` (with health and reflection) over a fresh SQLite database, on
/// `127.0.0.1:<free port>`, served by `rpc::server::GrpcRouter` in a spawned task.
pub struct GrpcServer {
    pub db: TestDb,
    pub addr: SocketAddr,
    shutdown: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
}

impl GrpcServer {
    pub async fn start() -> GrpcServer {
        let db = TestDb::sqlite();
        let ports = domain::Repositories::from_one(db.db().clone());
        Self::start_with(db, ports).await
    }

    /// Serve the given ports (the `TestDb` is kept alive for as long as the server).
    pub async fn start_with(db: TestDb, ports: domain::Repositories) -> GrpcServer {
        let service = grpc::server(ports, credential());
        let (router, health) = GrpcRouter::new()
            .add_raw(service)
            .with_health_and_reflection();
        let name = rpc::internal::repository_service_rpcs::NAME;
        health
            .set_service_status(name, tonic_health::ServingStatus::Serving)
            .await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(router.serve(listener, async move {
            let _ = rx.await;
        }));
        GrpcServer {
            db,
            addr,
            shutdown: Some(tx),
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client with the right credential.
    pub fn client(&self) -> RepositoryClient {
        self.client_with(credential())
    }

    pub fn client_with(&self, credential: InternalCredential) -> RepositoryClient {
        RepositoryClient::new(Upstream::new(&self.url(), credential, DEADLINE).unwrap())
    }

    /// A plain channel (no credential, no deadline) for the raw generated clients.
    pub async fn channel(&self) -> tonic::transport::Channel {
        tonic::transport::Endpoint::from_shared(self.url())
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Stop serving and wait (briefly) for the server task, before the database goes.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        match tokio::time::timeout(Duration::from_secs(5), &mut self.task).await {
            Ok(result) => result.unwrap().unwrap(),
            Err(_) => self.task.abort(),
        }
    }
}

pub use domain::testing::{at, audit_event, new_user};

pub fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

pub fn with_role(mut u: NewUser, role: Role) -> NewUser {
    u.role = role;
    u
}

/// A 64-hex-digit stand-in for a SHA-256 refresh-token hash.
pub fn success(
    user_id: UserId,
    now: Timestamp,
    attempt: u32,
    rehash: Option<Rehash>,
) -> LoginSuccess {
    LoginSuccess {
        user_id,
        network: NET.into(),
        attempt,
        rehash,
        now,
    }
}

pub fn rotation(id: SessionId, expected_hash: &str, new_hash: &str, now: Timestamp) -> Rotation {
    Rotation {
        id,
        expected_hash: expected_hash.to_owned(),
        new_hash: new_hash.to_owned(),
        now,
    }
}

/// The client network of the helpers' attempts.
pub const NET: &str = "192.0.2.0/24";

pub fn reservation(user_id: UserId, now: Timestamp, policy: LockoutPolicy) -> AttemptReservation {
    reservation_from(NET, user_id, now, policy)
}

/// An attempt from the client network `network`.
pub fn reservation_from(
    network: &str,
    user_id: UserId,
    now: Timestamp,
    policy: LockoutPolicy,
) -> AttemptReservation {
    AttemptReservation {
        user_id,
        network: network.into(),
        policy,
        now,
    }
}

pub fn user_revocation(
    user_id: UserId,
    reason: RevokeReason,
    now: Timestamp,
    keep: Option<SessionId>,
) -> UserRevocation {
    UserRevocation {
        audit: Vec::new(),
        user_id,
        reason,
        now,
        keep,
    }
}

pub fn hash(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

pub fn new_session(user_id: UserId, created: i64, expires: i64) -> NewSession {
    NewSession {
        id: Uuid::new_v4(),
        user_id,
        credential_version: 0,
        refresh_token_hash: hash('a'),
        user_agent: Some("test-agent/1.0".into()),
        ip: Some("127.0.0.1".into()),
        created_at: at(created),
        expires_at: at(expires),
        max_live: 0,
        amr: vec!["pwd".into()],
    }
}
