//! The time the rules read (lock expiry, session expiry, token `iat`). A trait so tests can
//! move time forward instead of sleeping through a 15-minute lock.
use std::sync::Mutex;
use std::time::Duration;

use domain::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start))
    }
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }
    pub fn advance(&self, by: Duration) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(next) = chrono::Duration::from_std(by)
            .ok()
            .and_then(|d| t.checked_add_signed(d))
        {
            *t = next;
        }
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new(chrono::Utc::now())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Timestamp {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
