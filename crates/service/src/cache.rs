//! [`CachedUsers`]: a short-lived cache of user records in front of [`UserRepository`].
//!
//! Hot reads (`GET /users/{id}`, `GET /auth/me`, their gRPC twins) ask for the same few users
//! over and over; each answer from storage costs a blocking-thread hop and a query (monolith) or
//! a gRPC call (layered). The cache keeps found users for [`USER_CACHE_TTL`] — the same window the
//! gateway trusts a session-liveness answer — so:
//!
//! - **read-your-writes in this process:** every write through this port drops the user's entry,
//!   and a read that raced a write is not kept (a write counter taken before the read must be
//!   unchanged after the entry went in, or the entry is dropped again);
//! - **other processes' writes** (another replica, the other microservice) show within
//!   [`USER_CACHE_TTL`]: a suspended or deleted user is served for at most that long, the
//!   same bound the gateway's liveness cache already gives for revoked sessions;
//! - credentials (`find_credentials*`), lists and counts always go to storage.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AttemptReservation, LoginAttempt, LoginSuccess, NewUser, PasswordChange, Result, Timestamp,
    User, UserCredentials, UserId, UserPage, UserQuery, UserRepository, UserUpdate,
};

/// How long a cached user is served. Equal to the gateway's session-liveness window.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(2);

pub struct CachedUsers {
    inner: Arc<dyn UserRepository>,
    users: moka::sync::Cache<UserId, User>,
    /// Bumped after every write; a read keeps its answer only if no write ended meanwhile.
    writes: AtomicU64,
}

impl CachedUsers {
    /// At most `capacity` users are kept (least recently used go first).
    pub fn new(inner: Arc<dyn UserRepository>, capacity: u64) -> Self {
        Self {
            inner,
            users: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(USER_CACHE_TTL)
                .build(),
            writes: AtomicU64::new(0),
        }
    }

    /// `id` was written through another port: drop its entry, and tell reads in flight.
    pub fn forget(&self, id: UserId) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate(&id);
    }

    /// After a write of `id` (successful or not): drop its entry, and tell reads in flight.
    fn wrote<T>(&self, id: UserId, result: Result<T>) -> Result<T> {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate(&id);
        result
    }
}

/// A cache of user records that must hear of writes made through other ports (a token
/// redemption changes the user through the recovery port).
#[async_trait]
pub trait UserCache: Send + Sync {
    async fn forget(&self, id: UserId);
}

#[async_trait]
impl UserCache for CachedUsers {
    async fn forget(&self, id: UserId) {
        CachedUsers::forget(self, id);
    }
}

#[async_trait]
impl UserRepository for CachedUsers {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn create(&self, user: NewUser) -> Result<User> {
        // A new id: nothing of it is cached (only found users are).
        self.inner.create(user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        if let Some(user) = self.users.get(&id) {
            return Ok(Some(user));
        }
        let seen = self.writes.load(Ordering::Acquire);
        let found = self.inner.find_by_id(id).await?;
        if let Some(user) = &found {
            self.users.insert(id, user.clone());
            // A write that ended after `seen` may have been read before it committed.
            if self.writes.load(Ordering::Acquire) != seen {
                self.users.invalidate(&id);
            }
        }
        Ok(found)
    }

    async fn find_credentials(&self, login: &str) -> Result<Option<UserCredentials>> {
        self.inner.find_credentials(login).await
    }

    async fn find_credentials_by_id(&self, id: UserId) -> Result<Option<UserCredentials>> {
        self.inner.find_credentials_by_id(id).await
    }

    async fn list(&self, query: &UserQuery) -> Result<UserPage> {
        self.inner.list(query).await
    }

    async fn update(&self, id: UserId, update: UserUpdate, now: Timestamp) -> Result<Option<User>> {
        let r = self.inner.update(id, update, now).await;
        self.wrote(id, r)
    }

    async fn soft_delete(&self, id: UserId, now: Timestamp) -> Result<bool> {
        let r = self.inner.soft_delete(id, now).await;
        self.wrote(id, r)
    }

    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        let id = r.user_id;
        let result = self.inner.reserve_login_attempt(r).await;
        self.wrote(id, result)
    }

    async fn record_login_success(&self, success: LoginSuccess) -> Result<()> {
        let id = success.user_id;
        let r = self.inner.record_login_success(success).await;
        self.wrote(id, r)
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let id = change.user_id;
        let r = self.inner.change_password(change).await;
        self.wrote(id, r)
    }

    async fn count_active_admins(&self) -> Result<u64> {
        self.inner.count_active_admins().await
    }
}
