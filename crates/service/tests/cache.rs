//! The user read cache (`service::cache::CachedUsers`) over a real SQLite database: writes
//! through it are read back at once, a read that raced a write is not kept, and writes made
//! elsewhere (another replica) show within the cache's lifetime.
#![allow(clippy::unwrap_used, clippy::panic)]
mod common;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{
    AttemptReservation, LoginAttempt, LoginSuccess, NewUser, PasswordChange, Result, Status,
    Timestamp, User, UserCredentials, UserId, UserPage, UserQuery, UserRepository, UserUpdate,
};
use repository::testing::TestDb;
use service::cache::{CachedUsers, USER_CACHE_TTL};
use tokio::sync::Semaphore;

fn new_user(username: &str) -> NewUser {
    common::new_user(username, "pbkdf2:sha256:1000$salt$hash")
}

fn rename(first: &str) -> UserUpdate {
    UserUpdate {
        first_name: Some(Some(first.into())),
        ..UserUpdate::default()
    }
}

#[tokio::test]
async fn writes_through_the_cache_are_read_back_at_once() {
    let t = TestDb::sqlite();
    let cached = CachedUsers::new(Arc::new(t.db().clone()), 100);
    let u = cached.create(new_user("ann")).await.unwrap();
    assert_eq!(cached.find_by_id(u.id).await.unwrap().unwrap(), u);

    cached
        .update(u.id, rename("Ann"), Utc::now())
        .await
        .unwrap();
    let read = cached.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(read.first_name.as_deref(), Some("Ann"));

    cached
        .update(
            u.id,
            UserUpdate {
                status: Some(Status::Suspended),
                ..UserUpdate::default()
            },
            Utc::now(),
        )
        .await
        .unwrap();
    assert_eq!(
        cached.find_by_id(u.id).await.unwrap().unwrap().status,
        Status::Suspended
    );

    assert!(cached.soft_delete(u.id, Utc::now()).await.unwrap());
    assert_eq!(
        cached.find_by_id(u.id).await.unwrap().unwrap().status,
        Status::Deleted
    );
}

#[tokio::test]
async fn another_replicas_write_shows_within_the_cache_lifetime() {
    let t = TestDb::sqlite();
    let here = CachedUsers::new(Arc::new(t.db().clone()), 100);
    let elsewhere = CachedUsers::new(Arc::new(t.db().clone()), 100);
    let u = here.create(new_user("bob")).await.unwrap();
    assert_eq!(
        here.find_by_id(u.id).await.unwrap().unwrap().first_name,
        None
    );

    elsewhere
        .update(u.id, rename("Bob"), Utc::now())
        .await
        .unwrap();
    // Within the window this replica may still answer from its cache ...
    let early = here.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(early.first_name, None, "the entry should still be cached");
    // ... and no longer after it.
    tokio::time::sleep(USER_CACHE_TTL + Duration::from_millis(200)).await;
    let late = here.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(late.first_name.as_deref(), Some("Bob"));
}

/// A real database whose `find_by_id` reads, then waits for a permit before answering: a read
/// that took its data before a write committed and returns after it.
struct LateReads {
    db: repository::Database,
    gate: Arc<Semaphore>,
    read: Arc<Semaphore>,
}

#[async_trait]
impl UserRepository for LateReads {
    async fn ping(&self) -> Result<()> {
        self.db.ping().await
    }
    async fn create(&self, user: NewUser) -> Result<User> {
        UserRepository::create(&self.db, user).await
    }
    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        let found = self.db.find_by_id(id).await;
        self.read.add_permits(1);
        self.gate.acquire().await.unwrap().forget();
        found
    }
    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>> {
        self.db.find_credentials(login).await
    }
    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>> {
        self.db.find_credentials_by_id(id).await
    }
    async fn list(&self, query: &UserQuery) -> Result<UserPage> {
        self.db.list(query).await
    }
    async fn update(&self, id: UserId, update: UserUpdate, now: Timestamp) -> Result<Option<User>> {
        self.db.update(id, update, now).await
    }
    async fn soft_delete(&self, id: UserId, now: Timestamp) -> Result<bool> {
        self.db.soft_delete(id, now).await
    }
    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        self.db.reserve_login_attempt(r).await
    }
    async fn record_login_success(&self, success: LoginSuccess) -> Result<()> {
        self.db.record_login_success(success).await
    }
    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        self.db.change_password(change).await
    }
    async fn count_active_admins(&self) -> Result<u64> {
        self.db.count_active_admins().await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_a_write_is_not_kept() {
    let t = TestDb::sqlite();
    let (gate, read) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let cached = Arc::new(CachedUsers::new(
        Arc::new(LateReads {
            db: t.db().clone(),
            gate: gate.clone(),
            read: read.clone(),
        }),
        100,
    ));
    let u = UserRepository::create(t.db(), new_user("cat"))
        .await
        .unwrap();

    // A read takes the old record, the write commits, then the read answers.
    let slow = tokio::spawn({
        let cached = cached.clone();
        async move { cached.find_by_id(u.id).await }
    });
    read.acquire().await.unwrap().forget();
    cached
        .update(u.id, rename("Cat"), Utc::now())
        .await
        .unwrap();
    gate.add_permits(1);
    let old = slow.await.unwrap().unwrap().unwrap();
    assert_eq!(old.first_name, None, "the racing read saw the old record");

    // The next read must not be served that old record from the cache.
    gate.add_permits(1);
    let next = cached.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(next.first_name.as_deref(), Some("Cat"));
}
