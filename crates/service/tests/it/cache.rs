//! The user read cache (`service::cache::CachedUsers`, in process and in Redis) over a real
//! SQLite database: writes
//! through it are read back at once, a read that raced a write is not kept, and writes made
//! elsewhere (another replica) show within the cache's lifetime.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::Utc;
use domain::{
    AttemptReservation, AuditEvent, LoginAttempt, LoginBegun, LoginCompletion, LoginStart, NewUser,
    PasswordChange, Result, Status, User, UserChange, UserCredentials, UserDeletion, UserId,
    UserPage, UserQuery, UserRepository, UserUpdate,
};
use repository::testing::TestDb;
use service::cache::{CachedUsers, InProcess, USER_CACHE_TTL, UserStore};
use service::shared_cache::Shared;
use tokio::sync::Semaphore;

fn new_user(username: &str) -> NewUser {
    crate::common::new_user(username, "pbkdf2:sha256:1000$salt$hash")
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
    let cached = CachedUsers::in_process(Arc::new(t.db().clone()), 100);
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
    let here = CachedUsers::in_process(Arc::new(t.db().clone()), 100);
    let elsewhere = CachedUsers::in_process(Arc::new(t.db().clone()), 100);
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
    async fn create_user(&self, user: NewUser, audit: Vec<AuditEvent>) -> Result<User> {
        self.db.create_user(user, audit).await
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
    async fn change_user(&self, change: UserChange) -> Result<Option<User>> {
        self.db.change_user(change).await
    }
    async fn delete_user(&self, deletion: UserDeletion) -> Result<bool> {
        self.db.delete_user(deletion).await
    }
    async fn begin_login(&self, start: LoginStart) -> Result<Option<LoginBegun>> {
        self.db.begin_login(start).await
    }
    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        self.db.reserve_login_attempt(r).await
    }
    async fn complete_login(&self, completion: LoginCompletion) -> Result<()> {
        self.db.complete_login(completion).await
    }
    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        self.db.change_password(change).await
    }
    async fn count_active_admins(&self) -> Result<u64> {
        self.db.count_active_admins().await
    }
}

/// The shared store of ARCANA_TEST_REDIS_URL under a key prefix of its own.
fn redis_store() -> Option<Arc<dyn UserStore>> {
    let url = std::env::var("ARCANA_TEST_REDIS_URL").ok()?;
    let prefix = format!("arcana-test-{}:", uuid::Uuid::new_v4().simple());
    let store = Shared::new(&url, &prefix, Duration::from_secs(30)).unwrap();
    Some(Arc::new(store))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_a_write_is_not_kept() {
    read_racing_a_write(Arc::new(InProcess::new(100))).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_that_raced_a_write_is_not_kept_in_redis() {
    match redis_store() {
        Some(store) => read_racing_a_write(store).await,
        None => repository::testing::skipped(
            "a_read_that_raced_a_write_is_not_kept_in_redis",
            "ARCANA_TEST_REDIS_URL not set",
        ),
    }
}

/// The one decorator over either store: every write command invalidates.
#[tokio::test]
async fn every_write_command_invalidates_in_either_store() {
    let mut stores: Vec<Arc<dyn UserStore>> = vec![Arc::new(InProcess::new(100))];
    match redis_store() {
        Some(store) => stores.push(store),
        None => repository::testing::skipped(
            "every_write_command_invalidates_in_either_store (redis)",
            "ARCANA_TEST_REDIS_URL not set",
        ),
    }
    for store in stores {
        let t = TestDb::sqlite();
        let cached = CachedUsers::new(Arc::new(t.db().clone()), store);
        let u = cached.create(new_user("dora")).await.unwrap();
        assert_eq!(
            cached.find_by_id(u.id).await.unwrap().unwrap().first_name,
            None
        );
        // Behind the cache's back, then through a write command of the port.
        UserRepository::update(t.db(), u.id, rename("Dora"), Utc::now())
            .await
            .unwrap();
        assert_eq!(
            cached.find_by_id(u.id).await.unwrap().unwrap().first_name,
            None
        );
        let start = LoginStart {
            login: "dora".into(),
            network: "unknown".into(),
            policy: domain::LockoutPolicy::default(),
            now: Utc::now(),
        };
        cached.begin_login(start).await.unwrap().unwrap();
        let fresh = cached.find_by_id(u.id).await.unwrap().unwrap();
        assert_eq!(fresh.first_name.as_deref(), Some("Dora"));
    }
}

async fn read_racing_a_write(store: Arc<dyn UserStore>) {
    let t = TestDb::sqlite();
    let (gate, read) = (Arc::new(Semaphore::new(0)), Arc::new(Semaphore::new(0)));
    let cached = Arc::new(CachedUsers::new(
        Arc::new(LateReads {
            db: t.db().clone(),
            gate: gate.clone(),
            read: read.clone(),
        }),
        store,
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
