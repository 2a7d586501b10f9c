//! Per-client-IP request budgets for the unauthenticated auth endpoints (login, register,
//! refresh), so password guessing and account spraying are slowed at the edge.
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Login,
    Register,
    Refresh,
}

pub struct AuthRateLimit {
    limiter: DefaultKeyedRateLimiter<(Bucket, IpAddr)>,
    clock: DefaultClock,
}

impl AuthRateLimit {
    /// `per_minute` requests per IP and endpoint; `None` when 0 (disabled).
    pub fn new(per_minute: u32) -> Option<Self> {
        let n = NonZeroU32::new(per_minute)?;
        Some(Self {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)),
            clock: DefaultClock::default(),
        })
    }

    /// `Err(retry_after)` when the budget of `ip` for `bucket` is spent.
    pub fn check(&self, bucket: Bucket, ip: IpAddr) -> Result<(), Duration> {
        if self.limiter.len() > 100_000 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(&(bucket, ip))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_ip_and_endpoint() {
        let rl = AuthRateLimit::new(2).unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        assert!(rl.check(Bucket::Login, a).is_ok());
        assert!(rl.check(Bucket::Login, a).is_ok());
        let wait = rl.check(Bucket::Login, a).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        assert!(rl.check(Bucket::Login, b).is_ok());
        assert!(rl.check(Bucket::Register, a).is_ok());
        assert!(AuthRateLimit::new(0).is_none());
    }
}
