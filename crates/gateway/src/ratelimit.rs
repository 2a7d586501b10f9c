//! Request budgets at the edge: per client IP for the unauthenticated auth endpoints (login,
//! register, refresh, and the recovery routes: forgot, reset, verify), so password guessing and account spraying are slowed, and per user AND
//! per IP for password changes, which cost two password hashes each.
//!
//! IPv6 clients are keyed by their /64: one host usually owns a whole /64, so keying by the
//! full address would hand it 2^64 budgets. IPv4-mapped IPv6 addresses count as IPv4.
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use domain::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};

use crate::shared::Shared;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Bucket {
    Login,
    Register,
    Refresh,
    PasswordChange,
    /// Forgot password, reset password, verify email.
    Recovery,
}

/// Entries kept before stale ones are dropped (bounds memory under address spraying).
const MAX_KEYS: usize = 100_000;

impl Bucket {
    fn as_str(self) -> &'static str {
        match self {
            Bucket::Login => "login",
            Bucket::Register => "register",
            Bucket::Refresh => "refresh",
            Bucket::PasswordChange => "password_change",
            Bucket::Recovery => "recovery",
        }
    }
}

pub struct AuthRateLimit {
    per_ip: Option<DefaultKeyedRateLimiter<(Bucket, IpAddr)>>,
    per_user: Option<DefaultKeyedRateLimiter<(Bucket, UserId)>>,
    /// Requests per personal access token (by its id), whatever it calls.
    per_token: Option<DefaultKeyedRateLimiter<uuid::Uuid>>,
    per_token_per_minute: u32,
    clock: DefaultClock,
    per_ip_per_minute: u32,
    per_user_per_minute: u32,
    /// Budgets shared by every replica (Redis); the local limiters answer when it cannot.
    shared: Option<Arc<Shared>>,
}

/// The address a budget is kept for: IPv4 as is, IPv6 by its /64.
pub fn rate_key(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

fn keyed<K: Clone + Eq + std::hash::Hash>(per_minute: u32) -> Option<DefaultKeyedRateLimiter<K>> {
    NonZeroU32::new(per_minute).map(|n| DefaultKeyedRateLimiter::keyed(Quota::per_minute(n)))
}

impl AuthRateLimit {
    /// `per_ip_per_minute` requests per IP and endpoint (0 disables), and
    /// `password_changes_per_user` per user and minute (0 disables).
    pub fn new(per_ip_per_minute: u32, password_changes_per_user: u32) -> Self {
        Self {
            per_ip: keyed(per_ip_per_minute),
            per_user: keyed(password_changes_per_user),
            per_token: None,
            per_token_per_minute: 0,
            clock: DefaultClock::default(),
            per_ip_per_minute,
            per_user_per_minute: password_changes_per_user,
            shared: None,
        }
    }

    /// The same budgets, kept in Redis for every replica (local when Redis cannot answer).
    pub fn shared(mut self, shared: Option<Arc<Shared>>) -> Self {
        self.shared = shared;
        self
    }

    /// `per_minute` requests per personal access token (0 disables).
    pub fn per_token(mut self, per_minute: u32) -> Self {
        self.per_token = keyed(per_minute);
        self.per_token_per_minute = per_minute;
        self
    }

    /// Take one request of token `id`'s budget: shared when Redis answers, else local.
    pub async fn admit_token(&self, id: uuid::Uuid) -> Result<(), Duration> {
        if let Some(shared) = &self.shared
            && self.per_token_per_minute > 0
            && let Some(answer) = shared
                .check(&format!("token:{id}"), self.per_token_per_minute)
                .await
        {
            return answer;
        }
        let Some(l) = &self.per_token else {
            return Ok(());
        };
        if l.len() > MAX_KEYS {
            l.retain_recent();
        }
        l.check_key(&id)
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// Take one request of `ip`'s budget for `bucket`: shared when Redis answers, else local.
    pub async fn admit(&self, bucket: Bucket, ip: IpAddr) -> Result<(), Duration> {
        if let Some(shared) = &self.shared
            && self.per_ip_per_minute > 0
        {
            let key = format!("{}:{}", bucket.as_str(), rate_key(ip));
            if let Some(answer) = shared.check(&key, self.per_ip_per_minute).await {
                return answer;
            }
        }
        self.check(bucket, ip)
    }

    /// A password change by `user` from `ip` (see [`Self::check_password_change`]), shared
    /// when Redis answers.
    pub async fn admit_password_change(
        &self,
        user: UserId,
        ip: Option<IpAddr>,
    ) -> Result<(), Duration> {
        if let Some(shared) = &self.shared
            && self.per_user_per_minute > 0
        {
            let key = format!("{}:user:{user}", Bucket::PasswordChange.as_str());
            match shared.check(&key, self.per_user_per_minute).await {
                Some(answer) => answer?,
                None => self.check_user(Bucket::PasswordChange, user)?,
            }
        } else {
            self.check_user(Bucket::PasswordChange, user)?;
        }
        match ip {
            Some(ip) => self.admit(Bucket::PasswordChange, ip).await,
            None => Ok(()),
        }
    }

    /// `Err(retry_after)` when the budget of `ip` for `bucket` is spent.
    pub fn check(&self, bucket: Bucket, ip: IpAddr) -> Result<(), Duration> {
        let Some(l) = &self.per_ip else { return Ok(()) };
        if l.len() > MAX_KEYS {
            l.retain_recent();
        }
        l.check_key(&(bucket, rate_key(ip)))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// `Err(retry_after)` when the budget of `user` for `bucket` is spent.
    pub fn check_user(&self, bucket: Bucket, user: UserId) -> Result<(), Duration> {
        let Some(l) = &self.per_user else {
            return Ok(());
        };
        if l.len() > MAX_KEYS {
            l.retain_recent();
        }
        l.check_key(&(bucket, user))
            .map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// A password change by `user` from `ip`: both budgets must allow it.
    pub fn check_password_change(&self, user: UserId, ip: Option<IpAddr>) -> Result<(), Duration> {
        self.check_user(Bucket::PasswordChange, user)?;
        match ip {
            Some(ip) => self.check(Bucket::PasswordChange, ip),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_is_per_ip_and_endpoint() {
        let rl = AuthRateLimit::new(2, 0);
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
        let off = AuthRateLimit::new(0, 0);
        for _ in 0..100 {
            assert!(off.check(Bucket::Login, a).is_ok());
        }
    }

    #[tokio::test]
    async fn each_token_has_its_own_budget() {
        let rl = AuthRateLimit::new(0, 0).per_token(2);
        let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        assert!(rl.admit_token(a).await.is_ok());
        assert!(rl.admit_token(a).await.is_ok());
        assert!(rl.admit_token(a).await.is_err());
        assert!(rl.admit_token(b).await.is_ok());
        let off = AuthRateLimit::new(0, 0);
        for _ in 0..100 {
            assert!(off.admit_token(a).await.is_ok());
        }
    }

    #[test]
    fn ipv6_clients_share_the_budget_of_their_64() {
        let rl = AuthRateLimit::new(2, 0);
        let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(rl.check(Bucket::Login, a).is_ok());
        assert!(rl.check(Bucket::Login, b).is_ok());
        assert!(rl.check(Bucket::Login, a).is_err(), "same /64");
        assert!(rl.check(Bucket::Login, other).is_ok(), "another /64");
    }

    #[test]
    fn ipv4_mapped_addresses_count_as_ipv4() {
        assert_eq!(
            rate_key("::ffff:192.0.2.7".parse().unwrap()),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        let rl = AuthRateLimit::new(1, 0);
        assert!(
            rl.check(Bucket::Login, "192.0.2.7".parse().unwrap())
                .is_ok()
        );
        assert!(
            rl.check(Bucket::Login, "::ffff:192.0.2.7".parse().unwrap())
                .is_err()
        );
    }

    #[test]
    fn password_changes_are_limited_per_user_and_per_ip() {
        let rl = AuthRateLimit::new(3, 2);
        let (alice, bob) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        assert!(rl.check_password_change(alice, Some(ip)).is_ok());
        assert!(rl.check_password_change(alice, Some(ip)).is_ok());
        assert!(rl.check_password_change(alice, Some(ip)).is_err(), "user");
        assert!(rl.check_password_change(bob, Some(ip)).is_ok());
        assert!(rl.check_password_change(bob, Some(ip)).is_err(), "ip");
        // The login budget of that IP is separate.
        assert!(rl.check(Bucket::Login, ip).is_ok());
    }
}
