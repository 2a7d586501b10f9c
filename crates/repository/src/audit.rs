//! `AuditRepository` on [`Database`].
use async_trait::async_trait;
use diesel::prelude::*;
use domain::{AuditEvent, AuditPage, AuditQuery, AuditRepository, MAX_PER_PAGE, Result};

use crate::connection::{AnyConnection, MultiBackend, insert_rows};
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{AuditRow, micros};
use crate::schema::audit_events;

/// Write `events` in the caller's transaction (if any), and queue the webhook deliveries they
/// report (see [`crate::webhooks::queue_events`]).
pub(crate) fn insert_events(
    conn: &mut AnyConnection,
    events: &[AuditEvent],
) -> Result<(), DbError> {
    let rows: Vec<AuditRow> = events.iter().cloned().map(AuditRow::from_event).collect();
    insert_rows!(conn, audit_events::table, &rows);
    crate::webhooks::queue_events(conn, events)
}

#[async_trait]
impl AuditRepository for Database {
    async fn record_all(&self, events: Vec<AuditEvent>) -> Result<()> {
        self.run(move |conn| write_transaction(conn, |conn| insert_events(conn, &events)))
            .await
    }

    async fn list_events(&self, query: &AuditQuery) -> Result<AuditPage> {
        let q = query.clone();
        let per_page = q.per_page.clamp(1, MAX_PER_PAGE);
        self.run(move |conn| {
            let mut sel = audit_events::table
                .select(AuditRow::as_select())
                .into_boxed::<MultiBackend>();
            if let Some(user) = q.user_id.map(|u| u.to_string()) {
                sel = sel.filter(
                    audit_events::subject_id
                        .eq(user.clone())
                        .or(audit_events::actor_id.eq(user)),
                );
            }
            if let Some(action) = q.r#type {
                sel = sel.filter(audit_events::action.eq(action));
            }
            if let Some(outcome) = q.outcome {
                sel = sel.filter(audit_events::outcome.eq(outcome));
            }
            if let Some(t) = q.since {
                sel = sel.filter(audit_events::at.ge(micros(t)));
            }
            if let Some(t) = q.until {
                sel = sel.filter(audit_events::at.lt(micros(t)));
            }
            // Strictly older than the cursor, written so an index range scan can start at it.
            if let Some(c) = q.after {
                sel = sel.filter(
                    audit_events::at.le(c.at).and(
                        audit_events::at
                            .lt(c.at)
                            .or(audit_events::id.lt(c.id.to_string())),
                    ),
                );
            }
            // One row more than asked tells whether there is a next page.
            let rows = sel
                .order_by((audit_events::at.desc(), audit_events::id.desc()))
                .limit(i64::from(per_page) + 1)
                .load::<AuditRow>(conn)?;
            let events = rows
                .into_iter()
                .map(AuditRow::into_event)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(AuditPage::of(events, per_page))
        })
        .await
    }
}
