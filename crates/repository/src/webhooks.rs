//! `WebhookRepository` on [`Database`]: endpoints, and their deliveries as a transactional
//! outbox. [`queue_events`] runs inside every command that writes audit records, so an event
//! is queued exactly when its change commits.
use async_trait::async_trait;
use chrono::TimeDelta;
use diesel::prelude::*;
use domain::{
    AuditEvent, ConflictKind, DeliveryClaim, DeliveryOutcome, DeliveryPage, DeliveryQuery,
    DeliverySettlement, DeliveryStatus, Error, MAX_PER_PAGE, MAX_WEBHOOKS, QueuedDelivery, Result,
    StoredWebhook, TestDelivery, Timestamp, Webhook, WebhookDelivery, WebhookRepository,
    message_id, webhook_event, webhook_payload,
};
use uuid::Uuid;

use crate::audit::insert_events;
use crate::connection::{AnyConnection, MultiBackend};
use crate::database::{Database, write_transaction};
use crate::error::DbError;
use crate::models::{UserRow, from_micros, micros, parse_id};
use crate::recovery::queue_mail;
use crate::schema::{users, webhook_deliveries, webhooks};

/// Longest delivery error kept (the column's width).
const ERROR_CHARS: usize = 500;
/// Most of a receiver's answer kept.
const EXCERPT_BYTES: usize = 1024;
const PENDING: &str = "pending";
const DELIVERED: &str = "delivered";
const FAILED: &str = "failed";

#[derive(Clone, Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = webhooks)]
#[diesel(treat_none_as_null = true)]
struct WebhookRow {
    id: String,
    url: String,
    description: String,
    events: String,
    secret_enc: String,
    enabled: bool,
    disabled_reason: Option<String>,
    created_at: i64,
    updated_at: i64,
}

impl WebhookRow {
    fn from_stored(w: StoredWebhook) -> Self {
        let mut row = Self::fields(w.webhook);
        row.secret_enc = w.secret_enc;
        row
    }
    /// The row of `w` with an empty secret (not written by an update).
    fn fields(w: Webhook) -> Self {
        Self {
            id: w.id.to_string(),
            url: w.url,
            description: w.description,
            events: w.events.join(","),
            secret_enc: String::new(),
            enabled: w.enabled,
            disabled_reason: w.disabled_reason,
            created_at: micros(w.created_at),
            updated_at: micros(w.updated_at),
        }
    }
    fn subscribes(&self, event: &str) -> bool {
        self.events.split(',').any(|e| e == event)
    }
    fn into_stored(self) -> Result<StoredWebhook, DbError> {
        Ok(StoredWebhook {
            webhook: Webhook {
                id: parse_id(&self.id)?,
                url: self.url,
                events: self
                    .events
                    .split(',')
                    .filter(|e| !e.is_empty())
                    .map(str::to_owned)
                    .collect(),
                description: self.description,
                enabled: self.enabled,
                disabled_reason: self.disabled_reason,
                created_at: from_micros(self.created_at)?,
                updated_at: from_micros(self.updated_at)?,
            },
            secret_enc: self.secret_enc,
        })
    }
}

#[derive(Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = webhook_deliveries)]
struct DeliveryRow {
    id: String,
    webhook_id: String,
    message_id: String,
    event_type: String,
    payload: String,
    ordering_key: String,
    seq: i64,
    status: String,
    attempts: i32,
    next_attempt_at: i64,
    first_attempt_at: Option<i64>,
    leased_by: Option<String>,
    lease_until: Option<i64>,
    last_error: Option<String>,
    last_status: Option<i32>,
    response_excerpt: Option<String>,
    created_at: i64,
    delivered_at: Option<i64>,
}

impl DeliveryRow {
    fn queued(webhook: &WebhookRow, event_type: &str, event_id: Uuid, payload: String) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            webhook_id: webhook.id.clone(),
            message_id: message_id(event_id),
            event_type: event_type.to_owned(),
            payload,
            ordering_key: String::new(),
            seq: 0,
            status: PENDING.into(),
            attempts: 0,
            next_attempt_at: 0,
            first_attempt_at: None,
            leased_by: None,
            lease_until: None,
            last_error: None,
            last_status: None,
            response_excerpt: None,
            created_at: 0,
            delivered_at: None,
        }
    }

    fn into_delivery(self) -> Result<WebhookDelivery, DbError> {
        let status = DeliveryStatus::parse(&self.status)
            .ok_or_else(|| DbError::from(Error::internal("a delivery has an unknown status")))?;
        Ok(WebhookDelivery {
            id: parse_id(&self.id)?,
            webhook_id: parse_id(&self.webhook_id)?,
            message_id: self.message_id,
            event_type: self.event_type,
            status,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            last_status: self.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: self.last_error,
            response_excerpt: self.response_excerpt,
            created_at: from_micros(self.created_at)?,
            next_attempt_at: (status == DeliveryStatus::Pending)
                .then(|| from_micros(self.next_attempt_at))
                .transpose()?,
            delivered_at: self.delivered_at.map(from_micros).transpose()?,
        })
    }

    fn into_queued(self, webhook: &WebhookRow, now: i64) -> Result<QueuedDelivery, DbError> {
        Ok(QueuedDelivery {
            id: parse_id(&self.id)?,
            webhook_id: parse_id(&self.webhook_id)?,
            url: webhook.url.clone(),
            secret_enc: webhook.secret_enc.clone(),
            message_id: self.message_id,
            event_type: self.event_type,
            payload: self.payload,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
            first_attempt_at: from_micros(self.first_attempt_at.unwrap_or(now))?,
        })
    }
}

/// Queue a delivery of every audit record in `records` that reports a webhook event, for every
/// endpoint subscribed to it, in the caller's transaction. An event about a user takes the
/// next number of the user's counter (under the row's lock: in commit order).
pub(crate) fn queue_events(
    conn: &mut AnyConnection,
    records: &[AuditEvent],
) -> Result<(), DbError> {
    let events: Vec<(&AuditEvent, &'static str)> = records
        .iter()
        .filter_map(|r| webhook_event(r).map(|e| (r, e)))
        .collect();
    if events.is_empty() {
        return Ok(());
    }
    let endpoints: Vec<WebhookRow> = webhooks::table.select(WebhookRow::as_select()).load(conn)?;
    for (record, event_type) in events {
        let targets: Vec<&WebhookRow> = endpoints
            .iter()
            .filter(|w| w.subscribes(event_type))
            .collect();
        if targets.is_empty() {
            continue;
        }
        let (key, seq, user) = match record.subject_id {
            Some(id) => {
                let id = id.to_string();
                // The next number of the user's counter, under the row's lock, and the row.
                let bump = diesel::update(users::table.filter(users::id.eq(&id)))
                    .set(users::event_seq.eq(users::event_seq + 1));
                let row: Option<(i64, UserRow)> = match conn {
                    AnyConnection::Sqlite(c) => bump
                        .returning((users::event_seq, UserRow::as_returning()))
                        .get_result(c)
                        .optional()?,
                    AnyConnection::Postgres(c) => bump
                        .returning((users::event_seq, UserRow::as_returning()))
                        .get_result(c)
                        .optional()?,
                    // No RETURNING: the transaction reads its own write.
                    #[cfg(feature = "mysql")]
                    AnyConnection::Mysql(c) => {
                        if bump.execute(c)? == 1 {
                            users::table
                                .filter(users::id.eq(&id))
                                .select((users::event_seq, UserRow::as_select()))
                                .first(c)
                                .optional()?
                        } else {
                            None
                        }
                    }
                };
                match row {
                    Some((seq, user)) => (id, Some(seq), Some(user.into_user()?)),
                    None => (id, None, None),
                }
            }
            None => (String::new(), None, None),
        };
        let payload = webhook_payload(event_type, record, user.as_ref(), seq);
        let at = micros(record.at);
        for w in targets {
            let mut row = DeliveryRow::queued(w, event_type, record.id, payload.clone());
            row.ordering_key = key.clone();
            row.seq = seq.unwrap_or(0);
            row.next_attempt_at = at;
            row.created_at = at;
            diesel::insert_into(webhook_deliveries::table)
                .values(&row)
                .execute(conn)?;
        }
    }
    Ok(())
}

fn clip(s: &str, max_bytes: usize) -> String {
    let mut end = s.len().min(max_bytes);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn find_row(conn: &mut AnyConnection, id: &str) -> Result<Option<WebhookRow>, DbError> {
    Ok(webhooks::table
        .filter(webhooks::id.eq(id))
        .select(WebhookRow::as_select())
        .first(conn)
        .optional()?)
}

fn find_delivery_row(
    conn: &mut AnyConnection,
    webhook_id: &str,
    id: &str,
) -> Result<Option<DeliveryRow>, DbError> {
    Ok(webhook_deliveries::table
        .filter(webhook_deliveries::id.eq(id))
        .filter(webhook_deliveries::webhook_id.eq(webhook_id))
        .select(DeliveryRow::as_select())
        .first(conn)
        .optional()?)
}

#[async_trait]
impl WebhookRepository for Database {
    async fn create_webhook(&self, webhook: StoredWebhook, audit: Vec<AuditEvent>) -> Result<()> {
        let row = WebhookRow::from_stored(webhook);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n: i64 = webhooks::table.count().get_result(conn)?;
                if usize::try_from(n).unwrap_or(usize::MAX) >= MAX_WEBHOOKS {
                    return Err(Error::conflict(
                        ConflictKind::NotApplicable,
                        format!("at most {MAX_WEBHOOKS} webhook endpoints: delete one first"),
                    )
                    .into());
                }
                diesel::insert_into(webhooks::table)
                    .values(&row)
                    .execute(conn)?;
                insert_events(conn, &audit)
            })
        })
        .await
    }

    async fn find_webhook(&self, id: Uuid) -> Result<Option<StoredWebhook>> {
        let id = id.to_string();
        self.run(move |conn| {
            find_row(conn, &id)?
                .map(WebhookRow::into_stored)
                .transpose()
        })
        .await
    }

    async fn list_webhooks(&self) -> Result<Vec<StoredWebhook>> {
        self.run(|conn| {
            webhooks::table
                .select(WebhookRow::as_select())
                .order((webhooks::created_at.asc(), webhooks::id.asc()))
                .load::<WebhookRow>(conn)?
                .into_iter()
                .map(WebhookRow::into_stored)
                .collect()
        })
        .await
    }

    async fn update_webhook(&self, webhook: Webhook, audit: Vec<AuditEvent>) -> Result<bool> {
        let row = WebhookRow::fields(webhook);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(webhooks::table.filter(webhooks::id.eq(&row.id)))
                    .set((
                        webhooks::url.eq(&row.url),
                        webhooks::description.eq(&row.description),
                        webhooks::events.eq(&row.events),
                        webhooks::enabled.eq(row.enabled),
                        webhooks::disabled_reason.eq(&row.disabled_reason),
                        webhooks::updated_at.eq(row.updated_at),
                    ))
                    .execute(conn)?;
                if n == 1 {
                    insert_events(conn, &audit)?;
                }
                Ok(n == 1)
            })
        })
        .await
    }

    async fn delete_webhook(&self, id: Uuid, audit: Vec<AuditEvent>) -> Result<bool> {
        let id = id.to_string();
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                diesel::delete(
                    webhook_deliveries::table.filter(webhook_deliveries::webhook_id.eq(&id)),
                )
                .execute(conn)?;
                let n =
                    diesel::delete(webhooks::table.filter(webhooks::id.eq(&id))).execute(conn)?;
                if n == 1 {
                    insert_events(conn, &audit)?;
                }
                Ok(n == 1)
            })
        })
        .await
    }

    async fn list_deliveries(
        &self,
        webhook_id: Uuid,
        query: DeliveryQuery,
    ) -> Result<DeliveryPage> {
        let webhook_id = webhook_id.to_string();
        let per_page = query.per_page.clamp(1, MAX_PER_PAGE);
        self.run(move |conn| {
            let mut sel = webhook_deliveries::table
                .select(DeliveryRow::as_select())
                .filter(webhook_deliveries::webhook_id.eq(&webhook_id))
                .into_boxed::<MultiBackend>();
            if let Some(c) = query.after {
                sel = sel.filter(
                    webhook_deliveries::created_at.le(c.at).and(
                        webhook_deliveries::created_at
                            .lt(c.at)
                            .or(webhook_deliveries::id.lt(c.id.to_string())),
                    ),
                );
            }
            let rows = sel
                .order_by((
                    webhook_deliveries::created_at.desc(),
                    webhook_deliveries::id.desc(),
                ))
                .limit(i64::from(per_page) + 1)
                .load::<DeliveryRow>(conn)?;
            let items = rows
                .into_iter()
                .map(DeliveryRow::into_delivery)
                .collect::<Result<Vec<_>, _>>()?;
            Ok(DeliveryPage::of(items, per_page))
        })
        .await
    }

    async fn retry_delivery(
        &self,
        webhook_id: Uuid,
        id: Uuid,
        now: Timestamp,
        audit: Vec<AuditEvent>,
    ) -> Result<Option<WebhookDelivery>> {
        let (webhook_id, id, now) = (webhook_id.to_string(), id.to_string(), micros(now));
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let n = diesel::update(
                    webhook_deliveries::table
                        .filter(webhook_deliveries::id.eq(&id))
                        .filter(webhook_deliveries::webhook_id.eq(&webhook_id)),
                )
                .set((
                    webhook_deliveries::status.eq(PENDING),
                    webhook_deliveries::next_attempt_at.eq(now),
                    webhook_deliveries::first_attempt_at.eq(None::<i64>),
                    webhook_deliveries::leased_by.eq(None::<String>),
                    webhook_deliveries::lease_until.eq(None::<i64>),
                    webhook_deliveries::delivered_at.eq(None::<i64>),
                ))
                .execute(conn)?;
                if n == 0 {
                    return Ok(None);
                }
                insert_events(conn, &audit)?;
                find_delivery_row(conn, &webhook_id, &id)?
                    .map(DeliveryRow::into_delivery)
                    .transpose()
            })
        })
        .await
    }

    async fn queue_test_delivery(&self, test: TestDelivery) -> Result<Option<QueuedDelivery>> {
        let now_ts = test.now;
        let now = micros(now_ts);
        let until = lease_end(now_ts, test.lease)?;
        let webhook_id = test.webhook_id.to_string();
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let Some(w) = find_row(conn, &webhook_id)? else {
                    return Ok(None);
                };
                let mut row = DeliveryRow::queued(
                    &w,
                    domain::TEST_EVENT,
                    test.event_id,
                    test.payload.clone(),
                );
                row.attempts = 1;
                row.next_attempt_at = now;
                row.first_attempt_at = Some(now);
                row.leased_by = Some(test.worker.clone());
                row.lease_until = Some(until);
                row.created_at = now;
                diesel::insert_into(webhook_deliveries::table)
                    .values(&row)
                    .execute(conn)?;
                row.into_queued(&w, now).map(Some)
            })
        })
        .await
    }

    async fn find_delivery(&self, webhook_id: Uuid, id: Uuid) -> Result<Option<WebhookDelivery>> {
        let (webhook_id, id) = (webhook_id.to_string(), id.to_string());
        self.run(move |conn| {
            find_delivery_row(conn, &webhook_id, &id)?
                .map(DeliveryRow::into_delivery)
                .transpose()
        })
        .await
    }

    async fn claim_deliveries(&self, claim: DeliveryClaim) -> Result<Vec<QueuedDelivery>> {
        let now = micros(claim.now);
        let until = lease_end(claim.now, claim.lease)?;
        let limit = i64::from(claim.limit.clamp(1, 100));
        let worker = claim.worker;
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let earlier = diesel::alias!(webhook_deliveries as earlier);
                macro_rules! due {
                    () => {
                        webhook_deliveries::table
                            .select(webhook_deliveries::id)
                            .filter(webhook_deliveries::status.eq(PENDING))
                            .filter(webhook_deliveries::next_attempt_at.le(now))
                            .filter(
                                webhook_deliveries::lease_until
                                    .is_null()
                                    .or(webhook_deliveries::lease_until.le(now)),
                            )
                            .filter(
                                webhook_deliveries::webhook_id.eq_any(
                                    webhooks::table
                                        .select(webhooks::id)
                                        .filter(webhooks::enabled.eq(true)),
                                ),
                            )
                            // The oldest pending event of its user for its endpoint only.
                            .filter(diesel::dsl::not(diesel::dsl::exists(
                                earlier
                                    .select(earlier.field(webhook_deliveries::id))
                                    .filter(
                                        earlier
                                            .field(webhook_deliveries::webhook_id)
                                            .eq(webhook_deliveries::webhook_id),
                                    )
                                    .filter(
                                        earlier
                                            .field(webhook_deliveries::ordering_key)
                                            .eq(webhook_deliveries::ordering_key),
                                    )
                                    .filter(webhook_deliveries::ordering_key.ne(""))
                                    .filter(earlier.field(webhook_deliveries::status).eq(PENDING))
                                    .filter(
                                        earlier
                                            .field(webhook_deliveries::seq)
                                            .lt(webhook_deliveries::seq),
                                    ),
                            )))
                            .order(webhook_deliveries::next_attempt_at)
                            .limit(limit)
                    };
                }
                // Rows another worker is claiming right now are skipped, not waited for.
                let ids: Vec<String> = match conn {
                    AnyConnection::Sqlite(c) => due!().load(c)?,
                    AnyConnection::Postgres(c) => due!().for_update().skip_locked().load(c)?,
                    #[cfg(feature = "mysql")]
                    AnyConnection::Mysql(c) => due!().for_update().skip_locked().load(c)?,
                };
                if ids.is_empty() {
                    return Ok(Vec::new());
                }
                let mine = webhook_deliveries::table.filter(webhook_deliveries::id.eq_any(&ids));
                diesel::update(mine.clone())
                    .set((
                        webhook_deliveries::leased_by.eq(Some(&worker)),
                        webhook_deliveries::lease_until.eq(Some(until)),
                        webhook_deliveries::attempts.eq(webhook_deliveries::attempts + 1),
                    ))
                    .execute(conn)?;
                diesel::update(mine.filter(webhook_deliveries::first_attempt_at.is_null()))
                    .set(webhook_deliveries::first_attempt_at.eq(Some(now)))
                    .execute(conn)?;
                let rows: Vec<(DeliveryRow, WebhookRow)> = webhook_deliveries::table
                    .inner_join(webhooks::table)
                    .filter(webhook_deliveries::id.eq_any(&ids))
                    .order(webhook_deliveries::next_attempt_at)
                    .select((DeliveryRow::as_select(), WebhookRow::as_select()))
                    .load(conn)?;
                rows.into_iter()
                    .map(|(d, w)| d.into_queued(&w, now))
                    .collect()
            })
        })
        .await
    }

    async fn settle_delivery(&self, s: DeliverySettlement) -> Result<bool> {
        let now = micros(s.now);
        let id = s.id.to_string();
        let error = s.error.as_deref().map(|e| clip(e, ERROR_CHARS));
        let excerpt = s
            .response_excerpt
            .as_deref()
            .map(|e| clip(e, EXCERPT_BYTES));
        let last_status = s.status.map(i32::from);
        self.run(move |conn| {
            write_transaction(conn, |conn| {
                let mine = webhook_deliveries::table
                    .filter(webhook_deliveries::id.eq(&id))
                    .filter(webhook_deliveries::leased_by.eq(&s.worker))
                    .filter(webhook_deliveries::status.eq(PENDING));
                let common = (
                    webhook_deliveries::lease_until.eq(None::<i64>),
                    webhook_deliveries::last_status.eq(last_status),
                    webhook_deliveries::last_error.eq(&error),
                    webhook_deliveries::response_excerpt.eq(&excerpt),
                );
                let n = match &s.outcome {
                    DeliveryOutcome::Delivered => diesel::update(mine)
                        .set((
                            common,
                            webhook_deliveries::status.eq(DELIVERED),
                            webhook_deliveries::delivered_at.eq(Some(now)),
                        ))
                        .execute(conn)?,
                    DeliveryOutcome::Retry(at) => diesel::update(mine)
                        .set((common, webhook_deliveries::next_attempt_at.eq(micros(*at))))
                        .execute(conn)?,
                    DeliveryOutcome::GiveUp { notices, audit } => {
                        let n = diesel::update(mine)
                            .set((common, webhook_deliveries::status.eq(FAILED)))
                            .execute(conn)?;
                        if n == 1 {
                            let webhook_id: String = webhook_deliveries::table
                                .filter(webhook_deliveries::id.eq(&id))
                                .select(webhook_deliveries::webhook_id)
                                .first(conn)?;
                            let reason = format!(
                                "three days of failed deliveries (last: {})",
                                error.as_deref().unwrap_or("no answer")
                            );
                            diesel::update(webhooks::table.filter(webhooks::id.eq(&webhook_id)))
                                .set((
                                    webhooks::enabled.eq(false),
                                    webhooks::disabled_reason.eq(Some(clip(&reason, ERROR_CHARS))),
                                    webhooks::updated_at.eq(now),
                                ))
                                .execute(conn)?;
                            for mail in notices {
                                queue_mail(conn, mail.clone())?;
                            }
                            insert_events(conn, audit)?;
                        }
                        n
                    }
                };
                Ok(n == 1)
            })
        })
        .await
    }

    async fn purge_deliveries(&self, before: Timestamp) -> Result<u64> {
        let before = micros(before);
        self.run(move |conn| {
            let n = diesel::delete(
                webhook_deliveries::table
                    .filter(webhook_deliveries::status.ne(PENDING))
                    .filter(webhook_deliveries::created_at.lt(before)),
            )
            .execute(conn)?;
            Ok(u64::try_from(n).unwrap_or(0))
        })
        .await
    }
}

fn lease_end(now: Timestamp, lease: std::time::Duration) -> Result<i64> {
    TimeDelta::from_std(lease)
        .ok()
        .and_then(|d| now.checked_add_signed(d))
        .map(micros)
        .ok_or_else(|| Error::validation("lease", "is out of range"))
}
