//! The password-hash pool: a fixed set of OS threads fed by a bounded queue.
//!
//! PBKDF2 at production cost takes tens of milliseconds of pure CPU. Run on the async workers it
//! would stall every other request; run through `spawn_blocking` it would queue without bound
//! under a login flood. Here at most `workers` hashes run at once, at most `queue` wait, and
//! anything beyond that is refused immediately with `Error::Unavailable` (503), which the
//! client can retry.
//!
//! Logins have priority: other hash work (registration, password changes, admin-created users,
//! re-hashes) may occupy only half of the queue, so an authenticated user flooding password
//! changes cannot starve the logins of everyone else.
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};

use crypto::Verified;
use domain::{Error, Result};
use secrecy::{ExposeSecret, SecretString};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// Who asks for hash work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Priority {
    /// Password checks at login: may use the whole queue.
    Login,
    /// Everything else: at most half of the queue.
    Other,
}

pub struct Hasher {
    tx: SyncSender<Job>,
    /// Jobs accepted but not yet picked up by a thread.
    waiting: Arc<AtomicUsize>,
    /// Password verifications run so far (a password was evaluated).
    verifications: Arc<AtomicU64>,
    /// New hashes computed so far.
    hashes: Arc<AtomicU64>,
    capacity: usize,
    workers: usize,
    iterations: u32,
}

impl std::fmt::Debug for Hasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hasher")
            .field("workers", &self.workers)
            .field("capacity", &self.capacity)
            .field("queue_depth", &self.queue_depth())
            .field("iterations", &self.iterations)
            .finish()
    }
}

impl Hasher {
    /// Start `workers` threads (at least one) behind a queue of `queue` waiting jobs. The
    /// threads end when the `Hasher` is dropped.
    pub fn new(workers: usize, queue: usize, iterations: u32) -> Result<Self> {
        let workers = workers.max(1);
        let (tx, rx) = sync_channel::<Job>(queue);
        let rx = Arc::new(Mutex::new(rx));
        let waiting = Arc::new(AtomicUsize::new(0));
        for i in 0..workers {
            let rx = rx.clone();
            let waiting = waiting.clone();
            std::thread::Builder::new()
                .name(format!("arcana-hash-{i}"))
                .spawn(move || work(&rx, &waiting))
                .map_err(|e| Error::internal(format_args!("starting hash worker: {e}")))?;
        }
        Ok(Self {
            tx,
            waiting,
            verifications: Arc::new(AtomicU64::new(0)),
            hashes: Arc::new(AtomicU64::new(0)),
            capacity: queue,
            workers,
            iterations,
        })
    }

    /// PBKDF2 iterations of new hashes.
    pub fn iterations(&self) -> u32 {
        self.iterations
    }

    /// Jobs waiting for a thread right now (the `password-hash queue depth` metric).
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    pub fn queue_capacity(&self) -> usize {
        self.capacity
    }

    /// Passwords verified so far (each one evaluated guess).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// New password hashes computed so far.
    pub fn hashes(&self) -> u64 {
        self.hashes.load(Ordering::Relaxed)
    }

    /// Hash a new password with the current parameters.
    pub async fn hash(&self, password: &str, priority: Priority) -> Result<String> {
        let password = SecretString::from(password);
        let iterations = self.iterations;
        let hashes = self.hashes.clone();
        self.run_as(priority, move || {
            hashes.fetch_add(1, Ordering::Relaxed);
            crypto::hash_password(password.expose_secret(), iterations)
        })
        .await
    }

    /// Check a password against a stored hash.
    pub async fn verify(
        &self,
        password: &str,
        encoded: &str,
        priority: Priority,
    ) -> Result<Verified> {
        let password = SecretString::from(password);
        let encoded = SecretString::from(encoded);
        let iterations = self.iterations;
        let verifications = self.verifications.clone();
        self.run_as(priority, move || {
            verifications.fetch_add(1, Ordering::Relaxed);
            crypto::verify_password(
                password.expose_secret(),
                encoded.expose_secret(),
                iterations,
            )
        })
        .await
    }

    #[cfg(test)]
    async fn run<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        self.run_as(Priority::Login, f).await
    }

    async fn run_as<T, F>(&self, priority: Priority, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            // The caller may have gone away; nothing to do then.
            let _ = done.send(f());
        });
        let ahead = self.waiting.fetch_add(1, Ordering::Relaxed);
        if priority == Priority::Other && ahead >= (self.capacity / 2).max(1) {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            tracing::warn!(
                capacity = self.capacity,
                "password hash queue half full; keeping the rest for logins"
            );
            return Err(Error::Unavailable);
        }
        match self.tx.try_send(job) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                tracing::warn!(
                    capacity = self.capacity,
                    "password hash queue full; refusing request"
                );
                return Err(Error::Unavailable);
            }
            Err(TrySendError::Disconnected(_)) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                return Err(Error::internal("password hash workers are gone"));
            }
        }
        result
            .await
            .map_err(|_| Error::internal("password hash job was dropped"))
    }
}

fn work(rx: &Mutex<Receiver<Job>>, waiting: &AtomicUsize) {
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(|p| p.into_inner());
            guard.recv()
        };
        let Ok(job) = job else { return };
        waiting.fetch_sub(1, Ordering::Relaxed);
        // A panicking job must not shrink the pool; its caller sees the dropped channel.
        if std::panic::catch_unwind(AssertUnwindSafe(job)).is_err() {
            tracing::error!("password hash job panicked");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_and_verifies_off_the_runtime() {
        let h = Hasher::new(2, 8, 1000).unwrap();
        let hash = h.hash("Secret123", Priority::Other).await.unwrap();
        assert!(hash.starts_with("pbkdf2:sha256:1000$"));
        assert_eq!(
            h.verify("Secret123", &hash, Priority::Login).await.unwrap(),
            Verified::Valid {
                needs_rehash: false
            }
        );
        assert_eq!(
            h.verify("nope", &hash, Priority::Login).await.unwrap(),
            Verified::Invalid
        );
        assert_eq!(h.queue_depth(), 0);
        assert_eq!(h.verifications(), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn full_queue_answers_unavailable_immediately() {
        let h = Arc::new(Hasher::new(1, 1, 1000).unwrap());
        // Occupy the only worker, then fill the one queue slot.
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move {
                h.run(move || {
                    let _ = started_tx.send(());
                    let _ = gate.recv();
                })
                .await
            })
        };
        while started.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(h.queue_depth(), 0);
        let queued = {
            let h = h.clone();
            tokio::spawn(async move { h.hash("Secret123", Priority::Login).await })
        };
        while h.queue_depth() != 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let started = std::time::Instant::now();
        assert!(matches!(
            h.hash("Secret123", Priority::Login).await,
            Err(Error::Unavailable)
        ));
        assert!(started.elapsed() < Duration::from_millis(100));
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        assert!(queued.await.unwrap().is_ok());
        assert_eq!(h.queue_depth(), 0);
    }

    #[tokio::test]
    async fn a_panicking_job_does_not_kill_the_pool() {
        let h = Hasher::new(1, 4, 1000).unwrap();
        let r: Result<()> = h.run(|| panic!("boom")).await;
        assert!(matches!(r, Err(Error::Internal(_))));
        assert!(h.hash("Secret123", Priority::Login).await.is_ok());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn other_work_keeps_half_the_queue_free_for_logins() {
        let h = Arc::new(Hasher::new(1, 4, 1000).unwrap());
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let (started_tx, started) = std::sync::mpsc::channel::<()>();
        let busy = {
            let h = h.clone();
            tokio::spawn(async move {
                h.run(move || {
                    let _ = started_tx.send(());
                    let _ = gate.recv();
                })
                .await
            })
        };
        while started.try_recv().is_err() {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        // Password changes fill half of the queue, then are refused...
        let mut queued = Vec::new();
        for _ in 0..2 {
            let h = h.clone();
            queued.push(tokio::spawn(async move {
                h.hash("Secret123", Priority::Other).await
            }));
        }
        while h.queue_depth() != 2 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(matches!(
            h.hash("Secret123", Priority::Other).await,
            Err(Error::Unavailable)
        ));
        // ...while logins still get in.
        for _ in 0..2 {
            let h = h.clone();
            queued.push(tokio::spawn(async move {
                h.hash("Secret123", Priority::Login).await
            }));
        }
        while h.queue_depth() != 4 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).unwrap();
        busy.await.unwrap().unwrap();
        for q in queued {
            assert!(q.await.unwrap().is_ok());
        }
    }
}
