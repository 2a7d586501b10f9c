//! [`SharedUsers`]: an optional read-through cache of user records in Redis, shared by every
//! process of the service layer (replicas, the auth and user services), in front of
//! [`UserRepository`]. In the layered modes a hit answers `GET /users/{id}` without the second
//! gRPC hop (service → repository).
//!
//! - **Invalidated on every write**: each write through this port (update, delete, login,
//!   password change; token redemptions through [`SharedUsers::forget`]) bumps the user's
//!   generation counter and deletes the entry in one atomic step. A read stores what it found
//!   only if the generation is still the one it saw before reading storage, so a read that raced
//!   a write never puts the old record back.
//! - **Bounded staleness when Redis fails**: entries live [`SharedUsers::new`]'s `ttl` at most;
//!   a write whose invalidation cannot reach Redis is logged and counted, and the entry it missed
//!   expires with its TTL.
//! - **Fail-open**: a read Redis cannot answer within [`replicas::TIMEOUT`] goes to storage
//!   (`redis_fallbacks_total`, one warning per minute); never an error because of Redis.
//! - Credentials, lists and counts always go to storage.
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    AttemptReservation, LoginAttempt, LoginSuccess, NewUser, PasswordChange, Result, Timestamp,
    User, UserCredentials, UserId, UserPage, UserQuery, UserRepository, UserUpdate,
};
use replicas::Link;
use replicas::redis::{self, Script};

/// KEYS: entry, generation. ARGV: record, the generation seen before reading storage ('' when
/// none), TTL in seconds. Stores only if the generation did not move.
const STORE: &str = r"
local g = redis.call('GET', KEYS[2])
if (g == false and ARGV[2] == '') or g == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
  return 1
end
return 0
";

pub struct SharedUsers {
    inner: Arc<dyn UserRepository>,
    link: Link,
    ttl: Duration,
    store: Script,
}

impl SharedUsers {
    /// Users of `inner` cached in the Redis at `url` under `prefix` for `ttl` at most; connects
    /// lazily and reconnects by itself.
    pub fn new(
        inner: Arc<dyn UserRepository>,
        url: &str,
        prefix: &str,
        ttl: Duration,
    ) -> std::result::Result<Self, String> {
        Ok(Self {
            inner,
            link: Link::new(url, prefix)?,
            ttl,
            store: Script::new(STORE),
        })
    }

    fn keys(&self, id: UserId) -> (String, String) {
        (
            self.link.key(format_args!("user:{id}")),
            self.link.key(format_args!("user-gen:{id}")),
        )
    }

    /// `id` changed (through this port or another): bump its generation, drop its entry.
    pub async fn forget(&self, id: UserId) {
        let (key, generation) = self.keys(id);
        let mut conn = self.link.conn();
        let gen_ttl = i64::try_from(self.ttl.as_secs().saturating_mul(4).max(60)).unwrap_or(3600);
        let mut pipe = redis::pipe();
        pipe.atomic()
            .incr(&generation, 1)
            .ignore()
            .expire(&generation, gen_ttl)
            .ignore()
            .del(&key)
            .ignore();
        let invalidate = pipe.query_async::<()>(&mut conn);
        self.link.call("user_cache_invalidate", invalidate).await;
    }

    async fn wrote<T>(&self, id: UserId, r: Result<T>) -> Result<T> {
        self.forget(id).await;
        r
    }
}

/// Where the shared cache lives. `Debug` hides the URL (it may hold a password).
#[derive(Clone, PartialEq, Eq)]
pub struct SharedCacheConfig {
    pub url: String,
    pub prefix: String,
    pub ttl: Duration,
}

impl std::fmt::Debug for SharedCacheConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedCacheConfig")
            .field("prefix", &self.prefix)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl crate::cache::UserCache for SharedUsers {
    async fn forget(&self, id: UserId) {
        SharedUsers::forget(self, id).await;
    }
}

#[async_trait]
impl UserRepository for SharedUsers {
    async fn ping(&self) -> Result<()> {
        self.inner.ping().await
    }

    async fn create(&self, user: NewUser) -> Result<User> {
        self.inner.create(user).await
    }

    async fn find_by_id(&self, id: UserId) -> Result<Option<User>> {
        let (key, generation) = self.keys(id);
        let mut conn = self.link.conn();
        let mut mget = redis::cmd("MGET");
        mget.arg(&key).arg(&generation);
        let read = mget.query_async::<(Option<String>, Option<String>)>(&mut conn);
        let seen = match self.link.call("user_cache_read", read).await {
            Some((Some(json), _)) => match serde_json::from_str::<User>(&json) {
                Ok(user) => return Ok(Some(user)),
                Err(_) => return self.inner.find_by_id(id).await,
            },
            Some((None, generation)) => generation.unwrap_or_default(),
            None => return self.inner.find_by_id(id).await,
        };
        let found = self.inner.find_by_id(id).await?;
        if let Some(user) = &found
            && let Ok(json) = serde_json::to_string(user)
        {
            let mut call = self.store.key(&key);
            call.key(&generation)
                .arg(json)
                .arg(seen)
                .arg(self.ttl.as_secs().max(1));
            self.link
                .call("user_cache_store", call.invoke_async::<i64>(&mut conn))
                .await;
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
        self.wrote(id, r).await
    }

    async fn soft_delete(&self, id: UserId, now: Timestamp) -> Result<bool> {
        let r = self.inner.soft_delete(id, now).await;
        self.wrote(id, r).await
    }

    async fn reserve_login_attempt(&self, r: AttemptReservation) -> Result<LoginAttempt> {
        // Lockout counters are not part of the cached record.
        self.inner.reserve_login_attempt(r).await
    }

    async fn record_login_success(&self, success: LoginSuccess) -> Result<()> {
        let id = success.user_id;
        let r = self.inner.record_login_success(success).await;
        self.wrote(id, r).await
    }

    async fn change_password(&self, change: PasswordChange) -> Result<Option<u64>> {
        let id = change.user_id;
        let r = self.inner.change_password(change).await;
        self.wrote(id, r).await
    }

    async fn count_active_admins(&self) -> Result<u64> {
        self.inner.count_active_admins().await
    }
}
