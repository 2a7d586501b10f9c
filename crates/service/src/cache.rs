//! [`CachedUsers`]: the one read cache of user records in front of [`UserRepository`], over a
//! [`UserStore`]: in this process ([`InProcess`], moka) or shared by every process of the
//! service layer through Redis ([`crate::shared_cache::Shared`]).
//!
//! Hot reads (`GET /users/{id}`, `GET /auth/me`, their gRPC twins) ask for the same few users
//! over and over; each answer from storage costs a blocking-thread hop and a query (monolith) or
//! a gRPC call (layered). The rules, the same whatever the store:
//!
//! - **only `find_by_id` is cached**; credentials, lists and counts always go to storage;
//! - **every write invalidates**: each write command of the port drops the user's entry once
//!   it ended (successful or not), as does [`UserCache::forget`] for writes made through another
//!   port (a token redemption);
//! - **a read that raced a write is not kept**: the store's generation is taken before storage
//!   is read, and the answer is stored only if it did not move;
//! - **other processes' writes** show within the store's time to live ([`USER_CACHE_TTL`] in
//!   process — the same window the gateway trusts a session-liveness answer); the shared store
//!   sees every replica's writes at once.
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AttemptReservation, AuditEvent, LoginAttempt, LoginBegun, LoginCompletion, LoginStart, NewUser,
    PasswordChange, Result, User, UserChange, UserCredentials, UserDeletion, UserId, UserPage,
    UserQuery, UserRepository,
};

/// How long a user is served from the in-process store. Equal to the gateway's
/// session-liveness window.
pub const USER_CACHE_TTL: Duration = Duration::from_secs(2);

/// What the store answered for one user.
pub enum Lookup {
    Hit(User),
    /// Not cached; store the answer from storage only if the generation is still this one.
    Miss(String),
    /// The store could not answer: read storage, store nothing.
    Unavailable,
}

/// Where [`CachedUsers`] keeps users.
#[async_trait]
pub trait UserStore: Send + Sync {
    async fn get(&self, id: UserId) -> Lookup;
    /// Keep `user` unless `id` was written since `seen` was answered.
    async fn put(&self, id: UserId, user: &User, seen: String);
    /// `id` was written: drop its entry and move its generation.
    async fn forget(&self, id: UserId);
}

/// A cache of user records that must hear of writes made through other ports (a token
/// redemption changes the user through the recovery port).
#[async_trait]
pub trait UserCache: Send + Sync {
    async fn forget(&self, id: UserId);
}

/// The read cache decorator: reads through the store, every write invalidates.
pub struct CachedUsers {
    inner: Arc<dyn UserRepository>,
    store: Arc<dyn UserStore>,
}

impl CachedUsers {
    pub fn new(inner: Arc<dyn UserRepository>, store: Arc<dyn UserStore>) -> Self {
        Self { inner, store }
    }

    /// In this process: at most `capacity` users (least recently used go first) for
    /// [`USER_CACHE_TTL`].
    pub fn in_process(inner: Arc<dyn UserRepository>, capacity: u64) -> Self {
        Self::new(inner, Arc::new(InProcess::new(capacity)))
    }

    /// After a write of `id` (successful or not): drop its entry.
    async fn wrote<T>(&self, id: UserId, result: Result<T>) -> Result<T> {
        self.store.forget(id).await;
        result
    }
}

#[async_trait]
impl UserCache for CachedUsers {
    async fn forget(&self, id: UserId) {
        self.store.forget(id).await;
    }
}

#[async_trait]
impl UserRepository for CachedUsers {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        let seen = match self.store.get(id).await {
            Lookup::Hit(user) => return Ok(Some(user)),
            Lookup::Miss(seen) => seen,
            Lookup::Unavailable => return self.inner.find_by_id(id).await,
        };
        let found = self.inner.find_by_id(id).await?;
        if let Some(user) = &found {
            self.store.put(id, user, seen).await;
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

    async fn count_active_admins(&self) -> Result<u64> {
        self.inner.count_active_admins().await
    }

    // ---- every write invalidates ------------------------------------------------------------

    async fn create_user(&self, user: NewUser, audit: Vec<AuditEvent>) -> Result<User> {
        let id = user.id;
        let r = self.inner.create_user(user, audit).await;
        self.wrote(id, r).await
    }

    async fn change_user(&self, change: UserChange) -> Result<Option<User>> {
        let id = change.id;
        let r = self.inner.change_user(change).await;
        self.wrote(id, r).await
    }

    async fn delete_user(&self, deletion: UserDeletion) -> Result<bool> {
        let id = deletion.id;
        let r = self.inner.delete_user(deletion).await;
        self.wrote(id, r).await
    }

    async fn begin_login(&self, start: LoginStart) -> Result<Option<LoginBegun>> {
        let r = self.inner.begin_login(start).await;
        match &r {
            Ok(Some(begun)) => self.wrote(begun.credentials.user.id, r).await,
            _ => r,
        }
    }

    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        let id = r.user_id;
        let result = self.inner.reserve_login_attempt(r).await;
        self.wrote(id, result).await
    }

    async fn complete_login(&self, completion: LoginCompletion) -> Result<()> {
        let id = completion.success.user_id;
        let r = self.inner.complete_login(completion).await;
        self.wrote(id, r).await
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let id = change.user_id;
        let r = self.inner.change_password(change).await;
        self.wrote(id, r).await
    }
}

/// The store in this process (moka): a process-wide write counter is the generation.
pub struct InProcess {
    users: moka::sync::Cache<UserId, User>,
    /// Bumped by every write; a read keeps its answer only if no write ended meanwhile.
    writes: AtomicU64,
}

impl InProcess {
    pub fn new(capacity: u64) -> Self {
        Self {
            users: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(USER_CACHE_TTL)
                .build(),
            writes: AtomicU64::new(0),
        }
    }
}

#[async_trait]
impl UserStore for InProcess {
    async fn get(&self, id: UserId) -> Lookup {
        match self.users.get(&id) {
            Some(user) => Lookup::Hit(user),
            None => Lookup::Miss(self.writes.load(Ordering::Acquire).to_string()),
        }
    }

    async fn put(&self, id: UserId, user: &User, seen: String) {
        self.users.insert(id, user.clone());
        // A write that ended after `seen` may have been read before it committed.
        if self.writes.load(Ordering::Acquire).to_string() != seen {
            self.users.invalidate(&id);
        }
    }

    async fn forget(&self, id: UserId) {
        self.writes.fetch_add(1, Ordering::AcqRel);
        self.users.invalidate(&id);
    }
}
