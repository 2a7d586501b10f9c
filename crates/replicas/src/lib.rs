//! The one connection to the optional Redis that replicas share (`ARCANA_REDIS_URL`), and the
//! fail-open rule every use of it follows: a call Redis does not answer within [`TIMEOUT`] is
//! given up, counted in `redis_fallbacks_total{use}` and warned about at most once a minute, and
//! the caller decides with what it has locally. Connections are made lazily and re-made in the
//! background; nothing here ever fails a request.
use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use redis;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long a Redis call may take before the caller's local fallback answers instead.
pub const TIMEOUT: Duration = Duration::from_millis(250);
const WARN_EVERY: Duration = Duration::from_secs(60);

pub struct Link {
    client: redis::Client,
    conn: ConnectionManager,
    prefix: String,
    last_warning: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Link {
    /// A link to `url` (`redis://` or `rediss://`, credentials and database in the URL); every
    /// key and channel starts with `prefix`. Nothing is connected yet.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|e| format!("ARCANA_REDIS_URL: {e}"))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(TIMEOUT))
            .set_response_timeout(Some(TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), config)
            .map_err(|e| format!("ARCANA_REDIS_URL: {e}"))?;
        Ok(Self {
            client,
            conn,
            prefix: prefix.to_owned(),
            last_warning: Mutex::new(None),
        })
    }

    /// `<prefix><name>`.
    pub fn key(&self, name: impl std::fmt::Display) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A handle on the shared, self-healing connection (cheap).
    pub fn conn(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// For what a multiplexed connection cannot do (subscriptions).
    pub fn client(&self) -> &redis::Client {
        &self.client
    }

    /// Run one Redis call for `use_`: its answer, or `None` (counted, warned about) when Redis
    /// failed or did not answer within [`TIMEOUT`].
    pub async fn call<T>(
        &self,
        use_: &'static str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> Option<T> {
        match tokio::time::timeout(TIMEOUT, call).await {
            Ok(Ok(v)) => Some(v),
            Ok(Err(e)) => {
                self.unavailable(use_, &e);
                None
            }
            Err(_) => {
                self.unavailable(use_, &format_args!("no answer within {TIMEOUT:?}"));
                None
            }
        }
    }

    /// Redis did not serve `use_`: count it, warn at most once a minute.
    pub fn unavailable(&self, use_: &'static str, e: &dyn std::fmt::Display) {
        metrics::counter!("redis_fallbacks_total", "use" => use_).increment(1);
        let Ok(mut last) = self.last_warning.lock() else {
            return;
        };
        if last.is_none_or(|t| t.elapsed() >= WARN_EVERY) {
            *last = Some(Instant::now());
            tracing::warn!(error = %e, use_,
                "Redis unavailable: deciding locally until it is back (rate limits per replica, \
                 other replicas' revocations within the 2 s liveness window, user reads from \
                 storage)");
        }
    }
}
