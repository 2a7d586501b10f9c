//! The time the rules read (lock expiry, session expiry, token `iat`). A trait so tests can
//! move time forward instead of sleeping through a 15-minute lock.
use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use domain::Timestamp;

pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> Timestamp;
    /// Wait `d` (the login slowdown). A test clock records the wait instead of sleeping.
    fn pause(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(d))
    }
}

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        chrono::Utc::now()
    }
}

/// A clock that moves only when told to (tests); its pauses are recorded, not slept.
#[derive(Debug)]
pub struct ManualClock(Mutex<Timestamp>, Mutex<Vec<Duration>>);

impl ManualClock {
    pub fn new(start: Timestamp) -> Self {
        Self(Mutex::new(start), Mutex::new(Vec::new()))
    }
    pub fn set(&self, t: Timestamp) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = t;
    }
    /// The pauses asked for so far, in order.
    pub fn paused(&self) -> Vec<Duration> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
    /// The pauses asked for so far, forgotten.
    pub fn take_paused(&self) -> Vec<Duration> {
        std::mem::take(&mut *self.1.lock().unwrap_or_else(|p| p.into_inner()))
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
    fn pause(&self, d: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        self.1.lock().unwrap_or_else(|p| p.into_inner()).push(d);
        Box::pin(std::future::ready(()))
    }
}
