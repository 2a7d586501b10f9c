//! Lifecycle webhooks: endpoints other systems register to hear about users the moment they
//! change. Events are derived from the audit records a change carries, so they are written in
//! the change's own transaction (the transactional outbox); [`webhook_event`] is the one mapping.
//! Delivery follows the Standard Webhooks specification (`webhook-id`, `webhook-timestamp`,
//! `webhook-signature`).
use std::net::IpAddr;

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::error::{FieldErrors, Result};
use crate::model::{AuditEvent, Timestamp, User};
use crate::pagination::{DEFAULT_PER_PAGE, MAX_PER_PAGE, PageInfo, int};
use crate::{AuditCursor, Error};

/// Every event type an endpoint may ask for.
pub const WEBHOOK_EVENTS: [&str; 13] = [
    "user.created",
    "user.updated",
    "user.deleted",
    "user.status_changed",
    "user.role_changed",
    "user.email_verified",
    "user.password_changed",
    "session.created",
    "session.revoked",
    "auth.login_failed",
    "auth.account_locked",
    "mfa.enabled",
    "mfa.disabled",
];

/// The type of the event `POST /webhooks/{id}/test` sends (never produced by a change).
pub const TEST_EVENT: &str = "webhook.test";
/// Signing secrets are `whsec_` and the base64 of 32 random bytes (Standard Webhooks).
pub const WEBHOOK_SECRET_PREFIX: &str = "whsec_";
/// The most endpoints one installation may register.
pub const MAX_WEBHOOKS: usize = 50;
const MAX_URL: usize = 2048;
const MAX_DESCRIPTION: usize = 500;

/// The webhook event an audit record reports, if any: the one place that says which changes
/// other systems hear about.
pub fn webhook_event(record: &AuditEvent) -> Option<&'static str> {
    let ok = record.outcome == "success";
    Some(match (record.r#type.as_str(), ok) {
        ("user.created" | "auth.register" | "user.imported", true) => "user.created",
        ("user.updated" | "user.email_reverted" | "user.import_updated", true) => "user.updated",
        ("user.deleted", true) => "user.deleted",
        ("user.status_changed", true) => "user.status_changed",
        ("user.role_changed", true) => "user.role_changed",
        ("auth.email_verified" | "user.verified", true) => "user.email_verified",
        ("user.password_changed" | "auth.password_reset", true) => "user.password_changed",
        ("auth.login", true) => "session.created",
        ("auth.logout" | "auth.logout_all" | "auth.session_revoked", true) => "session.revoked",
        ("auth.refresh_reuse", _) if record.outcome == "failure" => "session.revoked",
        ("auth.login", false) if record.outcome == "failure" => "auth.login_failed",
        ("auth.lockout", _) if record.outcome == "locked" => "auth.account_locked",
        ("mfa.totp_enabled" | "mfa.passkey_added", true) => "mfa.enabled",
        ("mfa.totp_disabled" | "mfa.passkey_deleted" | "mfa.removed", true) => "mfa.disabled",
        _ => return None,
    })
}

/// The body of a delivery: `{type, timestamp, data}`. `data` holds the user the event is about
/// (`user_id`), who acted (`actor_id`), the account as it is after the change (`user`; not for
/// a deletion), `sequence` (the user's event counter: increasing in the order the changes
/// committed, so a receiver can tell a replay from news) and the audit record's details (which
/// never hold a secret). No hash, no token.
pub fn webhook_payload(
    event_type: &str,
    record: &AuditEvent,
    user: Option<&User>,
    sequence: Option<i64>,
) -> String {
    let details = record
        .details
        .as_deref()
        .and_then(|d| serde_json::from_str::<Value>(d).ok())
        .unwrap_or_else(|| json!({}));
    let user = user.filter(|_| event_type != "user.deleted").map(|u| {
        json!({
            "id": u.id,
            "username": u.username,
            "email": u.email,
            "first_name": u.first_name,
            "last_name": u.last_name,
            "role": u.role.as_str(),
            "status": u.status.as_str(),
            "email_verified": u.is_verified,
            "created_at": u.created_at,
            "updated_at": u.updated_at,
        })
    });
    json!({
        "type": event_type,
        "timestamp": record.at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "data": {
            "event_id": record.id,
            "user_id": record.subject_id,
            "actor_id": record.actor_id,
            "user": user,
            "sequence": sequence,
            "details": details,
        },
    })
    .to_string()
}

/// The `webhook-id` of the message reporting audit record `id` (the same on every attempt and
/// for every endpoint: receivers deduplicate by it).
pub fn message_id(id: Uuid) -> String {
    format!("msg_{}", id.simple())
}

/// Where deliveries may go: `https` anywhere public; plain `http` only to loopback (or
/// anywhere with `allow_http`); loopback, private, link-local (cloud metadata included) and
/// other non-public addresses only inside `allowed_networks` (SSRF).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookNetworkPolicy {
    pub allowed_networks: Vec<IpNet>,
    pub allow_http: bool,
}

/// Addresses that are not the public internet.
const NON_PUBLIC_TEXT: [&str; 17] = [
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "224.0.0.0/3",
    "::/127",
    "::ffff:0:0/96",
    "64:ff9b::/96",
    "fc00::/7",
    "fe80::/10",
    "ff00::/8",
];

/// [`NON_PUBLIC_TEXT`] parsed once (every delivery and every resolved address is checked).
static NON_PUBLIC: std::sync::LazyLock<Vec<IpNet>> = std::sync::LazyLock::new(|| {
    NON_PUBLIC_TEXT
        .iter()
        .filter_map(|n| n.parse().ok())
        .collect()
});

impl WebhookNetworkPolicy {
    /// Whether a delivery may connect to `ip`.
    pub fn allows(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            // An IPv4-mapped address is judged as the IPv4 address it is.
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        let public = !NON_PUBLIC.iter().any(|n| n.contains(&ip));
        public || self.allowed_networks.iter().any(|n| n.contains(&ip))
    }

    /// A URL endpoints may be registered with: absolute `https` (or `http` to loopback), no
    /// credentials, no fragment, and not naming a refused address.
    pub fn check_url(&self, raw: &str) -> std::result::Result<url::Url, String> {
        if raw.len() > MAX_URL {
            return Err(format!("must be at most {MAX_URL} characters"));
        }
        let url = url::Url::parse(raw.trim()).map_err(|e| format!("is not a URL: {e}"))?;
        if !url.username().is_empty() || url.password().is_some() {
            return Err("must not carry credentials".into());
        }
        if url.fragment().is_some() {
            return Err("must not have a fragment".into());
        }
        let ip = match url.host() {
            Some(url::Host::Ipv4(v4)) => Some(IpAddr::V4(v4)),
            Some(url::Host::Ipv6(v6)) => Some(IpAddr::V6(v6)),
            Some(url::Host::Domain(d)) if d.eq_ignore_ascii_case("localhost") => {
                Some(IpAddr::from([127, 0, 0, 1]))
            }
            Some(url::Host::Domain(_)) => None,
            None => return Err("must name a host".into()),
        };
        match url.scheme() {
            "https" => {}
            "http" if self.allow_http || ip.is_some_and(|ip| ip.is_loopback()) => {}
            "http" => return Err("must be https (plain http only to loopback)".into()),
            _ => return Err("must be an https URL".into()),
        }
        if let Some(ip) = ip
            && !self.allows(ip)
        {
            return Err(format!(
                "names {ip}, a private, loopback or link-local address, which is refused \
                 (ARCANA_WEBHOOK_ALLOWED_NETWORKS allows chosen networks)"
            ));
        }
        Ok(url)
    }
}

/// `POST /webhooks`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookInput {
    /// Where events are POSTed: `https://…` (plain `http` only to loopback).
    #[cfg_attr(
        feature = "openapi",
        schema(example = "https://crm.example.com/hooks/arcana")
    )]
    pub url: String,
    /// The event types to send, at least one (see the list in the docs).
    #[cfg_attr(feature = "openapi", schema(min_items = 1, example = json!(["user.created", "user.updated"])))]
    pub events: Vec<String>,
    /// What it is for (up to 500 characters).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(max_length = 500, example = "CRM sync"))]
    pub description: String,
}

/// `PATCH /webhooks/{id}`: the fields given change; `enabled: true` resumes a disabled endpoint
/// (its queued events go out, in order).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookPatch {
    pub url: Option<String>,
    pub events: Option<Vec<String>>,
    #[cfg_attr(feature = "openapi", schema(max_length = 500))]
    pub description: Option<String>,
    pub enabled: Option<bool>,
}

/// A registered endpoint (never its secret).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: Uuid,
    pub url: String,
    pub events: Vec<String>,
    pub description: String,
    /// Whether events are being delivered (they are queued either way).
    pub enabled: bool,
    /// Why delivery stopped, when it did.
    pub disabled_reason: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub updated_at: Timestamp,
}

/// `201` of `POST /webhooks`: the endpoint and its signing secret, shown this once.
#[derive(Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IssuedWebhook {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verify every delivery's `webhook-signature` with it.
    pub secret: String,
}

/// An endpoint as stored: its secret sealed with the data key.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredWebhook {
    pub webhook: Webhook,
    pub secret_enc: String,
}

crate::services::redacted_debug!(IssuedWebhook, webhook);
crate::services::redacted_debug!(StoredWebhook, webhook);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum DeliveryStatus {
    /// Not delivered yet: waiting for its turn, its endpoint or its next attempt.
    Pending,
    Delivered,
    /// Given up after three days of failures (retry it by hand).
    Failed,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pending" => Some(Self::Pending),
            "delivered" => Some(Self::Delivered),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

/// One event for one endpoint, as the delivery log shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookDelivery {
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub id: Uuid,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Uuid))]
    pub webhook_id: Uuid,
    /// The `webhook-id` header: the same on every attempt.
    pub message_id: String,
    pub event_type: String,
    pub status: DeliveryStatus,
    pub attempts: u32,
    /// The HTTP status of the last answer, if one came.
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    /// The start of the last answer's body (at most 1 KiB).
    pub response_excerpt: Option<String>,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub created_at: Timestamp,
    /// When it is tried next (while pending).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub next_attempt_at: Option<Timestamp>,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub delivered_at: Option<Timestamp>,
}

/// A page of deliveries, newest first (keyset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeliveryPage {
    pub items: Vec<WebhookDelivery>,
    pub pagination: PageInfo,
}

/// `GET /webhooks/{id}/deliveries` as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams))]
#[cfg_attr(feature = "openapi", into_params(parameter_in = Query))]
pub struct RawDeliveryQuery {
    /// Deliveries per page (default 20, at most 100).
    pub per_page: Option<String>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// A validated delivery query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryQuery {
    pub after: Option<AuditCursor>,
    pub per_page: u32,
}

impl RawDeliveryQuery {
    pub fn parse(&self) -> Result<DeliveryQuery> {
        let mut errs = FieldErrors::new();
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let per_page = given(&self.per_page)
            .and_then(|v| errs.check("per_page", int(&v, 1, MAX_PER_PAGE)))
            .unwrap_or(DEFAULT_PER_PAGE);
        let after = given(&self.cursor).and_then(|v| errs.check("cursor", AuditCursor::decode(&v)));
        errs.into_result()?;
        Ok(DeliveryQuery { after, per_page })
    }
}

impl DeliveryPage {
    /// The page of `per_page` deliveries from `items`, which holds up to one more.
    pub fn of(mut items: Vec<WebhookDelivery>, per_page: u32) -> Self {
        let more = items.len() > per_page as usize;
        items.truncate(per_page as usize);
        let next_cursor = more
            .then(|| {
                items.last().map(|d| {
                    AuditCursor {
                        at: d.created_at.timestamp_micros(),
                        id: d.id,
                    }
                    .encode()
                })
            })
            .flatten();
        Self {
            items,
            pagination: PageInfo::Keyset {
                per_page,
                next_cursor,
            },
        }
    }
}

/// A delivery leased to a worker: everything needed to send it.
#[derive(Clone, PartialEq, Eq)]
pub struct QueuedDelivery {
    pub id: Uuid,
    pub webhook_id: Uuid,
    pub url: String,
    pub secret_enc: String,
    pub message_id: String,
    pub event_type: String,
    pub payload: String,
    /// Including the one this lease is for.
    pub attempts: u32,
    /// When it was first tried (this attempt, for a first one): three days after, it is given up.
    pub first_attempt_at: Timestamp,
}
crate::services::redacted_debug!(
    QueuedDelivery,
    id,
    webhook_id,
    url,
    message_id,
    event_type,
    attempts
);

/// Lease up to `limit` due deliveries of enabled endpoints (each the oldest pending one of its
/// user for its endpoint) to `worker` until `now + lease`.
#[derive(Debug, Clone)]
pub struct DeliveryClaim {
    pub worker: String,
    pub now: Timestamp,
    pub lease: std::time::Duration,
    pub limit: u32,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    Delivered,
    /// Try again at this time.
    Retry(Timestamp),
    /// Three days of failures: the delivery fails and its endpoint is disabled, the admins told
    /// by `notices` (mails) and the audit `records`, in the same transaction.
    GiveUp {
        notices: Vec<crate::OutgoingMail>,
        audit: Vec<AuditEvent>,
    },
}

/// The outcome of one attempt, recorded only while `worker` still holds the lease.
#[derive(Debug, Clone)]
pub struct DeliverySettlement {
    pub id: Uuid,
    pub worker: String,
    pub now: Timestamp,
    pub outcome: DeliveryOutcome,
    pub status: Option<u16>,
    pub error: Option<String>,
    pub response_excerpt: Option<String>,
}

/// `POST /webhooks/{id}/test`: a `webhook.test` delivery, queued already leased to `worker`
/// so the request that made it sends it at once.
#[derive(Debug, Clone)]
pub struct TestDelivery {
    pub webhook_id: Uuid,
    pub event_id: Uuid,
    pub payload: String,
    pub worker: String,
    pub now: Timestamp,
    pub lease: std::time::Duration,
}

/// What an endpoint's fields must be; `None`: the input is valid.
pub fn check_events(events: &[String], errs: &mut FieldErrors) -> Option<Vec<String>> {
    if events.is_empty() {
        errs.add("events", "must name at least one event");
        return None;
    }
    let mut out: Vec<String> = Vec::new();
    for e in events {
        let e = e.trim();
        if !WEBHOOK_EVENTS.contains(&e) {
            errs.add(
                "events",
                format!(
                    "{e:?} is not an event (one of {})",
                    WEBHOOK_EVENTS.join(", ")
                ),
            );
            return None;
        }
        if !out.iter().any(|o| o == e) {
            out.push(e.to_owned());
        }
    }
    Some(out)
}

/// A description: at most 500 characters, no control characters.
pub fn check_description(d: &str, errs: &mut FieldErrors) -> Option<String> {
    let d = d.trim();
    if d.chars().count() > MAX_DESCRIPTION || d.chars().any(char::is_control) {
        errs.add(
            "description",
            format!("must be at most {MAX_DESCRIPTION} characters, none a control character"),
        );
        return None;
    }
    Some(d.to_owned())
}

impl WebhookInput {
    /// The validated (url, events, description).
    pub fn validate(&self, policy: &WebhookNetworkPolicy) -> Result<(String, Vec<String>, String)> {
        let mut errs = FieldErrors::new();
        let url = errs.check("url", policy.check_url(&self.url));
        let events = check_events(&self.events, &mut errs);
        let description = check_description(&self.description, &mut errs);
        errs.into_result()?;
        match (url, events, description) {
            (Some(u), Some(e), Some(d)) => Ok((u.to_string(), e, d)),
            _ => Err(Error::internal("validated webhook input lost a field")),
        }
    }
}

impl WebhookPatch {
    /// `webhook` with the patch applied (validated).
    pub fn apply(&self, mut webhook: Webhook, policy: &WebhookNetworkPolicy) -> Result<Webhook> {
        let mut errs = FieldErrors::new();
        if let Some(url) = &self.url
            && let Some(u) = errs.check("url", policy.check_url(url))
        {
            webhook.url = u.to_string();
        }
        if let Some(events) = &self.events
            && let Some(e) = check_events(events, &mut errs)
        {
            webhook.events = e;
        }
        if let Some(d) = &self.description
            && let Some(d) = check_description(d, &mut errs)
        {
            webhook.description = d;
        }
        errs.into_result()?;
        if let Some(enabled) = self.enabled {
            webhook.enabled = enabled;
            webhook.disabled_reason = (!enabled).then(|| "disabled by an admin".to_owned());
        }
        Ok(webhook)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(t: &str, outcome: &str) -> AuditEvent {
        AuditEvent {
            id: Uuid::now_v7(),
            at: chrono::Utc::now(),
            actor_id: None,
            subject_id: Some(Uuid::now_v7()),
            r#type: t.into(),
            outcome: outcome.into(),
            ip: None,
            request_id: None,
            details: Some(r#"{"reason":"bad_password"}"#.into()),
        }
    }

    #[test]
    fn audit_records_map_to_the_events_of_the_contract() {
        for (t, o, e) in [
            ("auth.register", "success", Some("user.created")),
            ("auth.login", "success", Some("session.created")),
            ("auth.login", "failure", Some("auth.login_failed")),
            ("auth.lockout", "locked", Some("auth.account_locked")),
            ("auth.refresh_reuse", "failure", Some("session.revoked")),
            ("auth.refresh_reuse", "grace_accepted", None),
            ("mfa.passkey_added", "success", Some("mfa.enabled")),
            ("mfa.removed", "success", Some("mfa.disabled")),
            ("oidc.client.created", "success", None),
            ("user.updated", "failure", None),
        ] {
            assert_eq!(webhook_event(&record(t, o)), e, "{t} {o}");
        }
        // Every event of the contract is produced by some record.
        let produced: Vec<&str> = [
            "user.created",
            "user.updated",
            "user.deleted",
            "user.status_changed",
            "user.role_changed",
            "auth.email_verified",
            "user.password_changed",
            "auth.login",
            "auth.logout",
            "mfa.totp_enabled",
            "mfa.totp_disabled",
        ]
        .iter()
        .filter_map(|t| webhook_event(&record(t, "success")))
        .chain(["auth.login_failed", "auth.account_locked"])
        .collect();
        for e in WEBHOOK_EVENTS {
            assert!(produced.contains(&e), "{e} is never produced");
        }
    }

    #[test]
    fn the_payload_has_no_secret_and_no_user_after_a_deletion() {
        let r = record("auth.login", "failure");
        let body: Value =
            serde_json::from_str(&webhook_payload("auth.login_failed", &r, None, Some(3))).unwrap();
        assert_eq!(body["type"], "auth.login_failed");
        assert_eq!(body["data"]["details"]["reason"], "bad_password");
        assert_eq!(body["data"]["user_id"], json!(r.subject_id));
        assert!(body["data"]["user"].is_null());
        assert_eq!(body["data"]["sequence"], 3);
        assert_eq!(message_id(r.id).len(), 36);
    }

    #[test]
    fn urls_need_https_and_a_public_address_unless_allowed() {
        assert_eq!(
            NON_PUBLIC.len(),
            NON_PUBLIC_TEXT.len(),
            "a range does not parse"
        );
        let strict = WebhookNetworkPolicy::default();
        assert!(strict.check_url("https://hooks.example.com/x").is_ok());
        for bad in [
            "http://hooks.example.com/x",
            "ftp://hooks.example.com/x",
            "https://user:pw@hooks.example.com/",
            "https://10.1.2.3/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::ffff:10.0.0.1]/",
            "https://[fd00:ec2::254]/",
            "http://127.0.0.1:9/x",
            "https://localhost/x",
            "not a url",
        ] {
            assert!(strict.check_url(bad).is_err(), "{bad} accepted");
        }
        let loopback = WebhookNetworkPolicy {
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap()],
            allow_http: false,
        };
        assert!(loopback.check_url("http://127.0.0.1:9/x").is_ok());
        assert!(loopback.check_url("http://localhost:9/x").is_ok());
        assert!(loopback.check_url("http://10.0.0.1/x").is_err());
        assert!(loopback.allows("8.8.8.8".parse().unwrap()));
        assert!(!loopback.allows("::ffff:169.254.169.254".parse().unwrap()));
    }

    #[test]
    fn events_are_checked_and_deduplicated() {
        let mut errs = FieldErrors::new();
        let e = check_events(&["user.created".into(), "user.created".into()], &mut errs);
        assert_eq!(e, Some(vec!["user.created".to_owned()]));
        assert!(check_events(&["user.exploded".into()], &mut errs).is_none());
        assert!(check_events(&[], &mut errs).is_none());
    }
}
