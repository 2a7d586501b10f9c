//! What the replicas of the edge share through Redis (optional, `ARCANA_REDIS_URL`):
//!
//! - **rate limits**: one GCRA budget per key, kept and decided atomically in Redis by one
//!   script (Redis's clock), so N gateways hold the configured rate in total, not N times it;
//! - **revocations**: every revocation a gateway sees (logout, logout-all, session delete,
//!   password change or reset, suspension, role change, deletion) is published on one channel,
//!   and every gateway evicts the session or user from its liveness cache at once.
//!
//! Redis is never required: each use fails open, on its own terms ([`replicas::Link`]). A
//! rate-limit check that Redis cannot answer within [`replicas::TIMEOUT`] falls back to the local
//! limiter (counted in `redis_fallbacks_total`, one warning per minute); while the subscription is down, other
//! replicas' revocations take effect when the liveness cache entry expires (2 s). Connections
//! are re-established in the background; readiness never depends on Redis.
use std::sync::Arc;
use std::time::Duration;

use domain::{RevocationListener, Revoked};
use futures_util::StreamExt;
use replicas::redis::{self, Script};
use replicas::{Link, TIMEOUT};

/// GCRA over one key. ARGV: emission interval and burst tolerance in ms. Answers 0 when the
/// request is allowed (and counted), else the milliseconds until it would be.
const GCRA: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1])) or now
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > burst then
  return math.ceil(new_tat - now - burst)
end
redis.call('SET', KEYS[1], new_tat, 'PX', math.ceil(new_tat - now))
return 0
";

#[derive(Debug)]
pub struct Shared {
    link: Link,
    gcra: Script,
}

impl Shared {
    /// A client of `url` (`redis://` or `rediss://`, settings and credentials in the URL);
    /// connects lazily and reconnects by itself. Keys and the channel start with `prefix`.
    pub fn new(url: &str, prefix: &str) -> Result<Arc<Self>, String> {
        Ok(Arc::new(Self {
            link: Link::new(url, prefix)?,
            gcra: Script::new(GCRA),
        }))
    }

    /// One GCRA step for `key` at `per_minute`: `Some(Ok)` allowed, `Some(Err(retry_after))`
    /// refused, `None` when Redis could not answer (the caller decides locally).
    pub async fn check(&self, key: &str, per_minute: u32) -> Option<Result<(), Duration>> {
        let interval = 60_000.0 / f64::from(per_minute.max(1));
        let burst = interval * f64::from(per_minute.max(1));
        let mut conn = self.link.conn();
        let mut call = self.gcra.key(self.link.key(format_args!("rl:{key}")));
        call.arg(interval).arg(burst);
        let wait = self
            .link
            .call("rate_limit", call.invoke_async::<i64>(&mut conn))
            .await?;
        Some(match wait {
            0 => Ok(()),
            ms => Err(Duration::from_millis(u64::try_from(ms).unwrap_or(1))),
        })
    }

    /// Tell every replica (in the background; a lost message costs at most the 2 s window).
    pub fn publish(self: &Arc<Self>, what: Revoked) {
        let me = self.clone();
        tokio::spawn(async move {
            let message = match what {
                Revoked::Session(id) => format!("s:{id}"),
                Revoked::User(id) => format!("u:{id}"),
            };
            let mut conn = me.link.conn();
            let mut publish = redis::cmd("PUBLISH");
            publish.arg(me.link.key("revocations")).arg(message);
            let sent = publish.query_async::<i64>(&mut conn);
            me.link.call("revocation_publish", sent).await;
        });
    }

    /// Follow the revocation channel until the process ends, telling `listener` of every
    /// revocation any replica published; resubscribes after a lost connection.
    pub fn subscribe(self: &Arc<Self>, listener: Arc<dyn RevocationListener>) {
        let me = self.clone();
        tokio::spawn(async move {
            let channel = me.link.key("revocations");
            loop {
                let subscribed = async {
                    let mut pubsub = me.link.client().get_async_pubsub().await?;
                    pubsub.subscribe(&channel).await?;
                    Ok::<_, redis::RedisError>(pubsub)
                };
                let Some(pubsub) = me.link.call("revocation_subscribe", subscribed).await else {
                    tokio::time::sleep(TIMEOUT * 2).await;
                    continue;
                };
                tracing::info!(channel, "following revocations of every replica");
                let mut messages = pubsub.into_on_message();
                while let Some(msg) = messages.next().await {
                    if let Some(what) = msg
                        .get_payload::<String>()
                        .ok()
                        .as_deref()
                        .and_then(parse_revocation)
                    {
                        listener.revoked(what);
                    }
                }
                me.link
                    .unavailable("revocation_subscribe", &"the subscription ended");
            }
        });
    }
}

fn parse_revocation(payload: &str) -> Option<Revoked> {
    let (kind, id) = payload.split_once(':')?;
    let id = uuid::Uuid::parse_str(id).ok()?;
    match kind {
        "s" => Some(Revoked::Session(id)),
        "u" => Some(Revoked::User(id)),
        _ => None,
    }
}

/// The edge's revocation listener with Redis: evict here, and tell the other replicas.
pub struct Broadcast {
    pub local: Arc<dyn RevocationListener>,
    pub shared: Arc<Shared>,
}

impl RevocationListener for Broadcast {
    fn revoked(&self, what: Revoked) {
        self.local.revoked(what);
        self.shared.publish(what);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revocation_messages_round_trip() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            parse_revocation(&format!("s:{id}")),
            Some(Revoked::Session(id))
        );
        assert_eq!(
            parse_revocation(&format!("u:{id}")),
            Some(Revoked::User(id))
        );
        for bad in ["", "s", "x:1", &format!("x:{id}"), "u:not-a-uuid"] {
            assert_eq!(parse_revocation(bad), None, "{bad}");
        }
    }
}
