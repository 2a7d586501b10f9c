//! Fixtures and the per-backend test generator for the contract suite.
#![allow(dead_code)]

use std::future::Future;

use chrono::{DateTime, TimeDelta};
use domain::{NewSession, NewUser, Role, Status, Timestamp, UserId};
use repository::testing::TestDb;
use repository::{Backend, Database};
use uuid::Uuid;

/// Generate one `#[tokio::test]` per backend for every listed body:
/// `sqlite::<name>`, `postgres::<name>`, `mysql::<name>`. Each runs `<name>(db)` against a fresh
/// database, or prints `SKIPPED <test>: <reason>` and passes when the backend is not configured.
#[macro_export]
macro_rules! contract_tests {
    ($($name:ident),* $(,)?) => {
        $crate::contract_tests!(@backend sqlite, Sqlite, $($name),*);
        $crate::contract_tests!(@backend postgres, Postgres, $($name),*);
        $crate::contract_tests!(@backend mysql, Mysql, $($name),*);
    };
    (@backend $module:ident, $backend:ident, $($name:ident),*) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    $crate::support::run(
                        ::repository::Backend::$backend,
                        concat!(stringify!($module), "::", stringify!($name)),
                        super::$name,
                    )
                    .await;
                }
            )*
        }
    };
}

pub async fn run<F, Fut>(backend: Backend, test: &str, body: F)
where
    F: FnOnce(Database) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(t) = TestDb::from_env(backend) else {
        let reason = TestDb::skip_reason(backend).unwrap_or_default();
        println!("SKIPPED {test}: {reason}");
        return;
    };
    assert_eq!(t.db().backend(), backend);
    body(t.db().clone()).await;
}

/// 2025-01-01T00:00:00Z plus `secs` seconds.
pub fn at(secs: i64) -> Timestamp {
    DateTime::from_timestamp(1_735_689_600 + secs, 0).unwrap()
}

pub fn secs(s: i64) -> TimeDelta {
    TimeDelta::seconds(s)
}

pub fn new_user(username: &str) -> NewUser {
    NewUser {
        id: Uuid::new_v4(),
        username: username.to_owned(),
        email: format!("{}@example.com", username.to_lowercase()),
        password_hash: format!("pbkdf2:sha256:1000$salt${username}"),
        first_name: None,
        last_name: None,
        phone: None,
        avatar_url: None,
        role: Role::User,
        status: Status::Active,
        is_verified: false,
        created_at: at(0),
    }
}

pub fn with_role(mut u: NewUser, role: Role) -> NewUser {
    u.role = role;
    u
}

/// A 64-hex-digit stand-in for a SHA-256 refresh-token hash.
pub fn hash(c: char) -> String {
    std::iter::repeat_n(c, 64).collect()
}

pub fn new_session(user_id: UserId, created: i64, expires: i64) -> NewSession {
    NewSession {
        id: Uuid::new_v4(),
        user_id,
        refresh_token_hash: hash('a'),
        user_agent: Some("test-agent/1.0".into()),
        ip: Some("127.0.0.1".into()),
        created_at: at(created),
        expires_at: at(expires),
    }
}
