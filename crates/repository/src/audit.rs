//! `AuditRepository` on [`Database`].
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{AuditEvent, AuditRepository, Result, UserId};

use crate::database::Database;
use crate::models::AuditRow;
use crate::schema::audit_events;

/// Upper bound on one `list_for_subject` answer, whatever the caller asks for.
const MAX_EVENTS: u32 = 1000;

#[async_trait]
impl AuditRepository for Database {
    async fn record(&self, event: AuditEvent) -> Result<()> {
        let row = AuditRow::from_event(event);
        self.run(move |conn| {
            diesel::insert_into(audit_events::table)
                .values(&row)
                .execute(conn)?;
            Ok(())
        })
        .await
    }

    async fn list_for_subject(&self, subject_id: UserId, limit: u32) -> Result<Vec<AuditEvent>> {
        let subject = subject_id.to_string();
        let limit = i64::from(limit.min(MAX_EVENTS));
        self.run(move |conn| {
            audit_events::table
                .filter(audit_events::subject_id.eq(&subject))
                .order_by((audit_events::at.desc(), audit_events::id.desc()))
                .limit(limit)
                .select(AuditRow::as_select())
                .load(conn)?
                .into_iter()
                .map(AuditRow::into_event)
                .collect()
        })
        .await
    }
}
