//! Housekeeping: sessions that expired or were revoked more than
//! [`MaintenanceConfig::session_retention`] ago and audit events older than
//! [`MaintenanceConfig::audit_retention`] are deleted, in batches of [`BATCH`], by one replica at
//! a time: every process that holds the service layer runs a [`Maintainer`], and the one that
//! holds the database lease `purge` does the work (the lease outlives a round, so a replica that
//! dies mid-purge hands over after [`LEASE`]). Rows purged are counted in
//! `maintenance_purged_rows_total{what}`.
use std::sync::Arc;
use std::time::Duration;

use domain::{MaintenanceRepository, Result};

use crate::clock::Clock;
use crate::core::chrono_duration;

/// Rows deleted per statement (short transactions; other writers are not held up).
pub const BATCH: u32 = 1000;
/// How long a round may hold the job for itself.
pub const LEASE: Duration = Duration::from_secs(600);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaintenanceConfig {
    pub session_retention: Duration,
    pub audit_retention: Duration,
    /// Between two rounds.
    pub every: Duration,
}

impl Default for MaintenanceConfig {
    fn default() -> Self {
        Self {
            session_retention: Duration::from_secs(30 * 24 * 3600),
            audit_retention: Duration::from_secs(90 * 24 * 3600),
            every: Duration::from_secs(3600),
        }
    }
}

/// What one round deleted (`None`: another replica holds the job).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: u64,
    pub audit_events: u64,
}

pub struct Maintainer {
    repo: Arc<dyn MaintenanceRepository>,
    clock: Arc<dyn Clock>,
    config: MaintenanceConfig,
    holder: String,
}

impl Maintainer {
    pub fn new(
        repo: Arc<dyn MaintenanceRepository>,
        clock: Arc<dyn Clock>,
        config: MaintenanceConfig,
    ) -> Self {
        Self {
            repo,
            clock,
            config,
            holder: format!("maintainer-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// One round: take the lease, then purge in batches until nothing old is left. `Ok(None)`
    /// when another replica holds the job.
    pub async fn run_once(&self) -> Result<Option<Purged>> {
        let now = self.clock.now();
        if !self
            .repo
            .try_lease("purge", &self.holder, now, now + chrono_duration(LEASE))
            .await?
        {
            return Ok(None);
        }
        let mut purged = Purged::default();
        let sessions_before = now - chrono_duration(self.config.session_retention);
        loop {
            let n = self.repo.purge_sessions(sessions_before, BATCH).await?;
            purged.sessions += n;
            metrics::counter!("maintenance_purged_rows_total", "what" => "sessions").increment(n);
            if n < u64::from(BATCH) {
                break;
            }
        }
        let audit_before = now - chrono_duration(self.config.audit_retention);
        loop {
            let n = self.repo.purge_audit(audit_before, BATCH).await?;
            purged.audit_events += n;
            metrics::counter!("maintenance_purged_rows_total", "what" => "audit_events")
                .increment(n);
            if n < u64::from(BATCH) {
                break;
            }
        }
        Ok(Some(purged))
    }

    /// A round now and every [`MaintenanceConfig::every`] after, until the process ends.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                match self.run_once().await {
                    Ok(Some(p)) if p != Purged::default() => tracing::info!(
                        sessions = p.sessions,
                        audit_events = p.audit_events,
                        "purged old sessions and audit events"
                    ),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "maintenance round failed; next round retries")
                    }
                }
                tokio::time::sleep(self.config.every).await;
            }
        })
    }
}
