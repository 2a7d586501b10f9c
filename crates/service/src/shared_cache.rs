//! [`Shared`]: the [`UserStore`] in Redis, shared by every process of the service layer
//! (replicas, the auth and user services), behind [`crate::cache::CachedUsers`]. In the layered
//! modes a hit answers `GET /users/{id}` without the second gRPC hop (service → repository).
//!
//! - **Generations**: each user has a counter; [`UserStore::forget`] bumps it and deletes the
//!   entry in one atomic step, and a read stores what it found only if the counter is still the
//!   one it saw before reading storage (a Lua script), so a read that raced a write never puts
//!   the old record back.
//! - **Bounded staleness when Redis fails**: entries live [`Shared::new`]'s `ttl` at most; a
//!   write whose invalidation cannot reach Redis is logged and counted, and the entry it missed
//!   expires with its TTL.
//! - **Fail-open**: a read Redis cannot answer within [`replicas::TIMEOUT`] goes to storage
//!   (`redis_fallbacks_total`, one warning per minute); never an error because of Redis.
use std::time::Duration;

use async_trait::async_trait;
use domain::{User, UserId};
use replicas::Link;
use replicas::redis::{self, Script};

use crate::cache::{Lookup, UserStore};

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

pub struct Shared {
    link: Link,
    ttl: Duration,
    store: Script,
}

impl Shared {
    /// Users cached in the Redis at `url` under `prefix` for `ttl` at most; connects lazily
    /// and reconnects by itself.
    pub fn new(url: &str, prefix: &str, ttl: Duration) -> std::result::Result<Self, String> {
        Ok(Self {
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
impl UserStore for Shared {
    async fn get(&self, id: UserId) -> Lookup {
        let (key, generation) = self.keys(id);
        let mut conn = self.link.conn();
        let mut mget = redis::cmd("MGET");
        mget.arg(&key).arg(&generation);
        let read = mget.query_async::<(Option<String>, Option<String>)>(&mut conn);
        match self.link.call("user_cache_read", read).await {
            Some((Some(json), _)) => match serde_json::from_str::<User>(&json) {
                Ok(user) => Lookup::Hit(user),
                Err(_) => Lookup::Unavailable,
            },
            Some((None, generation)) => Lookup::Miss(generation.unwrap_or_default()),
            None => Lookup::Unavailable,
        }
    }

    async fn put(&self, id: UserId, user: &User, seen: String) {
        let Ok(json) = serde_json::to_string(user) else {
            return;
        };
        let (key, generation) = self.keys(id);
        let mut conn = self.link.conn();
        let mut call = self.store.key(&key);
        call.key(&generation)
            .arg(json)
            .arg(seen)
            .arg(self.ttl.as_secs().max(1));
        self.link
            .call("user_cache_store", call.invoke_async::<i64>(&mut conn))
            .await;
    }

    async fn forget(&self, id: UserId) {
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
}
