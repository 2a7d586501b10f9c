//! Domain ↔ wire for lifecycle webhooks: `arcana.v1.WebhookService` (the admin API) and the
//! `domain::WebhookRepository` calls of `arcana.internal.v1`.
use domain::{
    AuditCursor, AuditEvent, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliverySettlement,
    DeliveryStatus, Error, IssuedWebhook, OutgoingMail, QueuedDelivery, RawDeliveryQuery, Result,
    StoredWebhook, TestDelivery, Timestamp, Webhook, WebhookDelivery, WebhookInput, WebhookPatch,
};
use uuid::Uuid;

use crate::wire::Wire;
use crate::{internal as pb, message, request, v1, wrapper};

impl Wire for DeliveryStatus {
    type Wire = String;
    fn to_wire(self) -> String {
        self.as_str().to_owned()
    }
    fn from_wire(w: String, field: &str) -> Result<Self> {
        DeliveryStatus::parse(&w)
            .ok_or_else(|| Error::validation(field, "must be pending, delivered or failed"))
    }
}

/// An HTTP status travels as a `uint32`.
impl Wire for Option<u16> {
    type Wire = Option<u32>;
    fn to_wire(self) -> Self::Wire {
        self.map(u32::from)
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        w.map(|s| u16::try_from(s).map_err(|_| Error::validation(field, "is not an HTTP status")))
            .transpose()
    }
}

// ---- arcana.v1.WebhookService --------------------------------------------------------------

message!(Webhook => v1::Webhook {
    id, url, events, description, enabled, disabled_reason, created_at, updated_at,
});
message!(IssuedWebhook => v1::IssuedWebhook { webhook, secret });
message!(WebhookInput => v1::CreateWebhookRequest { url, events, description });
message!(WebhookDelivery => v1::WebhookDelivery {
    id, webhook_id, message_id, event_type, status, attempts, last_status, last_error,
    response_excerpt, created_at, next_attempt_at, delivered_at,
});
wrapper!(v1::ListWebhooksResponse { webhooks: Vec<Webhook> });
request!(v1::WebhookIdRequest { id: Uuid });
request!(v1::UpdateWebhookRequest {
    id: Uuid,
    url: Option<String>,
    events: Option<Vec<String>>,
    description: Option<String>,
    enabled: Option<bool>
});
request!(v1::ListWebhookDeliveriesRequest {
    id: Uuid,
    per_page: Option<String>,
    cursor: Option<String>
});
request!(v1::RetryWebhookDeliveryRequest {
    id: Uuid,
    delivery: Uuid
});

impl v1::UpdateWebhookRequest {
    pub fn of(id: Uuid, p: WebhookPatch) -> Self {
        Self::new(id, p.url, p.events, p.description, p.enabled)
    }
    pub fn patch(self) -> Result<(Uuid, WebhookPatch)> {
        let (id, url, events, description, enabled) = self.parse()?;
        Ok((
            id,
            WebhookPatch {
                url,
                events,
                description,
                enabled,
            },
        ))
    }
}

impl v1::ListWebhookDeliveriesRequest {
    pub fn of(id: Uuid, q: RawDeliveryQuery) -> Self {
        Self::new(id, q.per_page, q.cursor)
    }
    pub fn query(self) -> Result<(Uuid, RawDeliveryQuery)> {
        let (id, per_page, cursor) = self.parse()?;
        Ok((id, RawDeliveryQuery { per_page, cursor }))
    }
}

// ---- arcana.internal.v1: domain::WebhookRepository -----------------------------------------

message!(StoredWebhook => pb::StoredWebhook { webhook, secret_enc });
wrapper!(pb::OptionalStoredWebhook { webhook: Option<StoredWebhook> });
wrapper!(pb::StoredWebhookList { webhooks: Vec<StoredWebhook> });
wrapper!(pb::OptionalDelivery { delivery: Option<WebhookDelivery> });
request!(pb::WebhookCreation {
    webhook: StoredWebhook,
    audit: Vec<AuditEvent>
});
request!(pb::WebhookWrite {
    webhook: Webhook,
    audit: Vec<AuditEvent>
});
request!(pb::WebhookDeletion {
    id: Uuid,
    audit: Vec<AuditEvent>
});
request!(pb::DeliveryListRequest {
    webhook_id: Uuid,
    after: Option<AuditCursor>,
    per_page: u32
});
request!(pb::DeliveryRetryRequest {
    webhook_id: Uuid,
    id: Uuid,
    now: Timestamp,
    audit: Vec<AuditEvent>
});
request!(pb::DeliveryIdRequest {
    webhook_id: Uuid,
    id: Uuid
});
message!(TestDelivery => pb::TestDelivery { webhook_id, event_id, payload, worker, now, lease });
message!(QueuedDelivery => pb::QueuedDelivery {
    id, webhook_id, url, secret_enc, message_id, event_type, payload, attempts, first_attempt_at,
});
wrapper!(pb::OptionalQueuedDelivery { delivery: Option<QueuedDelivery> });
wrapper!(pb::QueuedDeliveryList { deliveries: Vec<QueuedDelivery> });
message!(DeliveryClaim => pb::DeliveryClaim { worker, now, lease, limit });
message!(DeliverySettlement => pb::DeliverySettlement {
    id, worker, now, outcome, status, error, response_excerpt,
});

impl pb::DeliveryListRequest {
    pub fn of(webhook_id: Uuid, q: DeliveryQuery) -> Self {
        Self::new(webhook_id, q.after, q.per_page)
    }
    pub fn query(self) -> Result<(Uuid, DeliveryQuery)> {
        let (webhook_id, after, per_page) = self.parse()?;
        Ok((webhook_id, DeliveryQuery { after, per_page }))
    }
}

impl Wire for DeliveryOutcome {
    type Wire = Option<pb::DeliveryOutcome>;
    fn to_wire(self) -> Self::Wire {
        use pb::delivery_outcome::Kind;
        let kind = match self {
            DeliveryOutcome::Delivered => Kind::Delivered(pb::Empty {}),
            DeliveryOutcome::Retry(at) => Kind::RetryAt(at.to_wire().unwrap_or_default()),
            DeliveryOutcome::GiveUp { notices, audit } => Kind::GiveUp(pb::GiveUp {
                notices: notices.to_wire(),
                audit: audit.to_wire(),
            }),
        };
        Some(pb::DeliveryOutcome { kind: Some(kind) })
    }
    fn from_wire(w: Self::Wire, field: &str) -> Result<Self> {
        use pb::delivery_outcome::Kind;
        match w.and_then(|o| o.kind) {
            Some(Kind::Delivered(_)) => Ok(DeliveryOutcome::Delivered),
            Some(Kind::RetryAt(at)) => Ok(DeliveryOutcome::Retry(Timestamp::from_wire(
                Some(at),
                field,
            )?)),
            Some(Kind::GiveUp(g)) => Ok(DeliveryOutcome::GiveUp {
                notices: Vec::<OutgoingMail>::from_wire(g.notices, "notices")?,
                audit: Vec::<AuditEvent>::from_wire(g.audit, "audit")?,
            }),
            None => Err(Error::validation(field, "is required")),
        }
    }
}
