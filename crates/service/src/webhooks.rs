//! Lifecycle webhooks: the admin API ([`WebhookService`]) and the dispatcher that delivers the
//! queued events.
//!
//! Events are queued by the repository in the transaction of the change they report (see
//! `domain::webhook_event`). Every process holding the service layer runs one dispatcher: it
//! leases due deliveries (each the oldest pending event of its user for its endpoint, so one
//! user's events arrive in commit order), POSTs them signed per Standard Webhooks, at most
//! [`WebhookConfig::concurrency`] at a time, and records the outcome. A failure is retried with
//! exponential back-off; three days after its first attempt the delivery is given up, its
//! endpoint disabled and the admins mailed, in one transaction. A dispatcher killed mid-delivery
//! loses its lease and another one sends again with the same `webhook-id`: at least once.
//!
//! Delivery is SSRF-safe: `https` (plain `http` only to loopback), no redirects followed, every
//! address the host resolves to checked against [`domain::WebhookNetworkPolicy`] (and only the
//! checked ones connected to: no DNS rebinding between check and connect), no proxy, 5 s to
//! connect and 10 s for the answer, at most 1 KiB of it kept.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use domain::{
    Caller, DeliveryClaim, DeliveryOutcome, DeliveryPage, DeliverySettlement, Error, IssuedWebhook,
    QueuedDelivery, RawDeliveryQuery, Result, Role, Status, StoredWebhook, TEST_EVENT,
    TestDelivery, Timestamp, UserQuery, Webhook, WebhookDelivery, WebhookInput,
    WebhookNetworkPolicy, WebhookPatch, WebhookService,
};
use serde_json::json;
use uuid::Uuid;

use crate::audit::{Event, SUCCESS};
use crate::core::{Core, chrono_duration};
use crate::oidc::Operator;

/// Tunables of webhook delivery. `Default` is the production configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub policy: WebhookNetworkPolicy,
    /// The first retry waits this long, every further one twice as long (at most six hours).
    pub retry_base: Duration,
    /// A delivery still failing this long after its first attempt is given up.
    pub give_up_after: Duration,
    /// Deliveries in flight per process.
    pub concurrency: usize,
    /// Look for due deliveries at least this often.
    pub poll: Duration,
    /// A leased delivery is another dispatcher's to take after this long.
    pub lease: Duration,
    /// Delivered and failed deliveries are deleted after this long.
    pub retention: Duration,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            policy: WebhookNetworkPolicy::default(),
            retry_base: Duration::from_secs(5),
            give_up_after: Duration::from_secs(3 * 24 * 3600),
            concurrency: 8,
            poll: Duration::from_secs(1),
            lease: Duration::from_secs(60),
            retention: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(10);
const MAX_BACKOFF: Duration = Duration::from_secs(6 * 3600);
const EXCERPT_BYTES: usize = 1024;
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// The data key context a secret is sealed under: a sealed secret moved to another endpoint's
/// row does not open.
fn secret_context(id: Uuid) -> String {
    format!("webhook:{id}")
}

/// Resolves a host only to the addresses the policy allows; those are the ones connected to.
struct GuardedResolver(WebhookNetworkPolicy);

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.0.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let allowed: Vec<SocketAddr> =
                all.into_iter().filter(|a| policy.allows(a.ip())).collect();
            if allowed.is_empty() {
                let refused: Box<dyn std::error::Error + Send + Sync> = format!(
                    "{host} resolves only to private, loopback or link-local addresses, which \
                     are refused"
                )
                .into();
                return Err(refused);
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

/// How one attempt went.
#[derive(Debug, Default)]
struct Attempt {
    delivered: bool,
    status: Option<u16>,
    error: Option<String>,
    excerpt: Option<String>,
}

/// The HTTP side of delivery.
pub(crate) struct Sender {
    client: reqwest::Client,
    policy: WebhookNetworkPolicy,
}

/// TLS for deliveries: rustls over aws-lc-rs (the provider of every other TLS client and server
/// here) with the webpki roots, TLS 1.2 and 1.3.
fn tls_config() -> Result<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(Error::internal)?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

impl Sender {
    fn new(policy: WebhookNetworkPolicy) -> Result<Self> {
        let client = reqwest::Client::builder()
            .use_preconfigured_tls(tls_config()?)
            .dns_resolver(Arc::new(GuardedResolver(policy.clone())))
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(CONNECT_TIMEOUT + RESPONSE_TIMEOUT)
            .user_agent(concat!("arcana-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(Error::internal)?;
        Ok(Self { client, policy })
    }

    /// POST `d` signed with `secret` (the clear `whsec_…`), at `now`.
    async fn send(&self, d: &QueuedDelivery, secret: &str, now: Timestamp) -> Attempt {
        let failed = |e: String| Attempt {
            error: Some(e),
            ..Attempt::default()
        };
        // An IP literal never reaches the resolver: checked here (the policy may have changed
        // since the endpoint was registered).
        if let Err(e) = self.policy.check_url(&d.url) {
            return failed(format!("the URL {e}"));
        }
        let ts = now.timestamp();
        let Some(signature) =
            crypto::webhooks::webhook_signature(secret, &d.message_id, ts, &d.payload)
        else {
            return failed("the endpoint's secret is malformed".into());
        };
        let sent = self
            .client
            .post(&d.url)
            .header("content-type", "application/json")
            .header("webhook-id", &d.message_id)
            .header("webhook-timestamp", ts.to_string())
            .header("webhook-signature", signature)
            .body(d.payload.clone())
            .send()
            .await;
        let mut response = match sent {
            Ok(r) => r,
            Err(e) => return failed(describe(&e)),
        };
        let status = response.status();
        let mut body: Vec<u8> = Vec::new();
        while body.len() < EXCERPT_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => body.extend_from_slice(&chunk),
                Ok(None) | Err(_) => break,
            }
        }
        body.truncate(EXCERPT_BYTES);
        let excerpt = (!body.is_empty()).then(|| String::from_utf8_lossy(&body).into_owned());
        let delivered = status.is_success();
        Attempt {
            delivered,
            status: Some(status.as_u16()),
            error: (!delivered).then(|| match status.as_u16() {
                300..=399 => format!("answered {status} (redirects are not followed)"),
                _ => format!("answered {status}"),
            }),
            excerpt,
        }
    }
}

/// A transport error without the URL (it may carry a token in its path), with its causes.
fn describe(e: &reqwest::Error) -> String {
    let kind = if e.is_connect() {
        "could not connect"
    } else if e.is_timeout() {
        "timed out"
    } else {
        "request failed"
    };
    let mut text = kind.to_owned();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// The in-process [`WebhookService`], and the dispatcher of this process.
pub struct Webhooks {
    core: Arc<Core>,
    sender: Sender,
    /// Wakes this process's dispatcher (a manual retry).
    wake: Arc<tokio::sync::Notify>,
    worker: String,
}

impl std::fmt::Debug for Webhooks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Webhooks")
            .field("worker", &self.worker)
            .finish_non_exhaustive()
    }
}

impl Webhooks {
    pub(crate) fn new(core: Arc<Core>) -> Result<Self> {
        let sender = Sender::new(core.config.webhooks.policy.clone())?;
        Ok(Self {
            core,
            sender,
            wake: Arc::new(tokio::sync::Notify::new()),
            worker: format!("webhooks-{}", Uuid::new_v4().simple()),
        })
    }

    /// Whether this process holds the data key that opens the signing secrets.
    pub fn can_sign(&self) -> bool {
        self.core.data_key().is_ok()
    }

    fn config(&self) -> &WebhookConfig {
        &self.core.config.webhooks
    }

    /// The caller, once known to be an admin (and verified, when that is required).
    async fn admin<'a>(&self, caller: &'a Caller) -> Result<Operator<'a>> {
        self.core.require_verified(&caller.who).await?;
        self.core.require_admin(&caller.who).await?;
        Ok(Operator::admin(caller))
    }

    async fn stored(&self, id: Uuid) -> Result<StoredWebhook> {
        self.core
            .repos
            .webhooks
            .find_webhook(id)
            .await?
            .ok_or(Error::NotFound)
    }

    fn records(&self, op: &Operator<'_>, id: Uuid, event: Event) -> Vec<domain::AuditEvent> {
        let event = op.event(event).detail("webhook_id", id.to_string());
        self.core.records(op.ctx(), vec![event])
    }

    fn secret(&self, webhook_id: Uuid, sealed: &str) -> Result<String> {
        let clear = self
            .core
            .data_key()?
            .open(sealed, &secret_context(webhook_id))
            .map_err(|e| Error::internal(format!("secret of webhook {webhook_id}: {e}")))?;
        String::from_utf8(clear).map_err(Error::internal)
    }

    /// `retry_base × 2^(attempts-1)`, at most six hours.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.config()
            .retry_base
            .saturating_mul(factor)
            .min(MAX_BACKOFF)
    }

    /// Send one leased delivery and record how it went; whether it was delivered.
    async fn deliver(&self, d: QueuedDelivery, may_give_up: bool) -> bool {
        let now = self.core.now();
        let attempt = match self.secret(d.webhook_id, &d.secret_enc) {
            Ok(secret) => self.sender.send(&d, &secret, now).await,
            Err(e) => {
                tracing::error!(webhook_id = %d.webhook_id, error = %e, "webhook secret unreadable");
                Attempt {
                    error: Some("the endpoint's secret cannot be read here".into()),
                    ..Attempt::default()
                }
            }
        };
        let now = self.core.now();
        let delivered = attempt.delivered;
        let outcome = if delivered {
            DeliveryOutcome::Delivered
        } else if may_give_up
            && now - d.first_attempt_at >= chrono_duration(self.config().give_up_after)
        {
            self.give_up(&d, now).await
        } else {
            DeliveryOutcome::Retry(now + chrono_duration(self.backoff(d.attempts)))
        };
        if delivered {
            metrics::counter!("webhook_deliveries_total", "outcome" => "delivered").increment(1);
        } else {
            metrics::counter!("webhook_deliveries_total", "outcome" => "failed_attempt")
                .increment(1);
            tracing::warn!(delivery_id = %d.id, webhook_id = %d.webhook_id,
                attempts = d.attempts, status = ?attempt.status, error = ?attempt.error,
                "webhook delivery failed");
        }
        let gave_up = matches!(outcome, DeliveryOutcome::GiveUp { .. });
        let settlement = DeliverySettlement {
            id: d.id,
            worker: self.worker.clone(),
            now,
            outcome,
            status: attempt.status,
            error: attempt.error,
            response_excerpt: attempt.excerpt,
        };
        match self.core.repos.webhooks.settle_delivery(settlement).await {
            // The admins' notices are queued: this process's mail worker sends them now.
            Ok(true) if gave_up => self.core.mail_queued.notify_waiters(),
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(delivery_id = %d.id, "webhook lease lost before its outcome was recorded")
            }
            // The lease runs out and it is sent again (same webhook-id): at least once.
            Err(e) => {
                tracing::warn!(delivery_id = %d.id, error = %e, "webhook outcome not recorded")
            }
        }
        delivered
    }

    /// Three days of failures: the endpoint is disabled and every active admin mailed.
    async fn give_up(&self, d: &QueuedDelivery, now: Timestamp) -> DeliveryOutcome {
        tracing::error!(webhook_id = %d.webhook_id, delivery_id = %d.id,
            "webhook deliveries failed for the give-up period: endpoint disabled");
        let admins = UserQuery {
            role: Some(Role::Admin),
            status: Some(Status::Active),
            per_page: domain::MAX_PER_PAGE,
            ..UserQuery::default()
        };
        let change = format!(
            "the webhook endpoint {} was disabled: its deliveries failed for {}. Events keep \
             being queued for it; resume it with PATCH /api/v1/webhooks/{} {{\"enabled\": true}}.",
            d.webhook_id,
            crate::recovery::spoken(self.config().give_up_after),
            d.webhook_id
        );
        let notices = match self.core.repos.users.list(&admins).await {
            Ok(page) => page
                .items
                .iter()
                .map(|admin| {
                    crate::recovery::security_notice(
                        &self.core.config.recovery,
                        admin,
                        &change,
                        now,
                    )
                })
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, "admins not found to tell of a disabled webhook");
                Vec::new()
            }
        };
        let event = Event::new("webhook.disabled", SUCCESS)
            .detail("webhook_id", d.webhook_id.to_string())
            .detail("delivery_id", d.id.to_string());
        let audit = self
            .core
            .records(&domain::RequestContext::default(), vec![event]);
        DeliveryOutcome::GiveUp { notices, audit }
    }

    /// Lease what is due and deliver it, [`WebhookConfig::concurrency`] at a time; how many
    /// were leased.
    pub async fn round(self: &Arc<Self>) -> Result<usize> {
        let concurrency = self.config().concurrency.max(1);
        let claim = DeliveryClaim {
            worker: self.worker.clone(),
            now: self.core.now(),
            lease: self.config().lease,
            limit: u32::try_from(concurrency * 4).unwrap_or(100),
        };
        let due = self.core.repos.webhooks.claim_deliveries(claim).await?;
        let n = due.len();
        let gate = Arc::new(tokio::sync::Semaphore::new(concurrency));
        let mut running = tokio::task::JoinSet::new();
        for d in due {
            let this = self.clone();
            let gate = gate.clone();
            running.spawn(async move {
                let _permit = gate.acquire_owned().await;
                this.deliver(d, true).await
            });
        }
        while running.join_next().await.is_some() {}
        Ok(n)
    }

    /// Deliver until the process ends.
    pub fn spawn_dispatcher(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let this = self.clone();
        tokio::spawn(async move {
            let mut last_purge: Option<std::time::Instant> = None;
            loop {
                let woken = this.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                match this.round().await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "webhook outbox unreachable; retrying"),
                }
                if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                    last_purge = Some(std::time::Instant::now());
                    let before = this.core.now() - chrono_duration(this.config().retention);
                    match this.core.repos.webhooks.purge_deliveries(before).await {
                        Ok(0) => {}
                        Ok(n) => tracing::info!(rows = n, "purged old webhook deliveries"),
                        Err(e) => tracing::warn!(error = %e, "webhook delivery purge failed"),
                    }
                }
                tokio::select! {
                    () = &mut woken => {}
                    () = tokio::time::sleep(this.config().poll) => {}
                }
            }
        })
    }
}

/// The admin operations, for an admin through the API or the operator through the CLI
/// (`arcana webhook …`).
impl Webhooks {
    pub async fn create(&self, op: &Operator<'_>, input: WebhookInput) -> Result<IssuedWebhook> {
        let (url, events, description) = input.validate(&self.config().policy)?;
        let key = self.core.data_key()?;
        let now = self.core.now();
        let webhook = Webhook {
            id: Uuid::new_v4(),
            url,
            events,
            description,
            enabled: true,
            disabled_reason: None,
            created_at: now,
            updated_at: now,
        };
        let secret = crypto::webhooks::new_webhook_secret();
        let stored = StoredWebhook {
            webhook: webhook.clone(),
            secret_enc: key.seal(secret.as_bytes(), &secret_context(webhook.id)),
        };
        let event =
            Event::new("webhook.created", SUCCESS).detail("events", webhook.events.join(","));
        let audit = self.records(op, webhook.id, event);
        self.core
            .repos
            .webhooks
            .create_webhook(stored, audit)
            .await?;
        Ok(IssuedWebhook { webhook, secret })
    }

    pub async fn list(&self) -> Result<Vec<Webhook>> {
        let all = self.core.repos.webhooks.list_webhooks().await?;
        Ok(all.into_iter().map(|w| w.webhook).collect())
    }

    pub async fn get(&self, id: Uuid) -> Result<Webhook> {
        Ok(self.stored(id).await?.webhook)
    }

    pub async fn update(
        &self,
        op: &Operator<'_>,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<Webhook> {
        let mut webhook = patch.apply(self.stored(id).await?.webhook, &self.config().policy)?;
        webhook.updated_at = self.core.now();
        let mut event = Event::new("webhook.updated", SUCCESS)
            .detail("enabled", webhook.enabled)
            .detail("events", webhook.events.join(","));
        if patch.url.is_some() {
            event = event.detail("url_changed", true);
        }
        let audit = self.records(op, id, event);
        if !self
            .core
            .repos
            .webhooks
            .update_webhook(webhook.clone(), audit)
            .await?
        {
            return Err(Error::NotFound);
        }
        if webhook.enabled {
            self.wake.notify_one();
        }
        Ok(webhook)
    }

    pub async fn delete(&self, op: &Operator<'_>, id: Uuid) -> Result<()> {
        let audit = self.records(op, id, Event::new("webhook.deleted", SUCCESS));
        if self.core.repos.webhooks.delete_webhook(id, audit).await? {
            Ok(())
        } else {
            Err(Error::NotFound)
        }
    }

    pub async fn test(&self, id: Uuid) -> Result<WebhookDelivery> {
        let now = self.core.now();
        let event_id = Uuid::now_v7();
        let payload = json!({
            "type": TEST_EVENT,
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "data": {"event_id": event_id, "webhook_id": id},
        })
        .to_string();
        let test = TestDelivery {
            webhook_id: id,
            event_id,
            payload,
            worker: self.worker.clone(),
            now,
            lease: self.config().lease,
        };
        let queued = self
            .core
            .repos
            .webhooks
            .queue_test_delivery(test)
            .await?
            .ok_or(Error::NotFound)?;
        let delivery_id = queued.id;
        // A test is retried like any delivery but never disables its endpoint.
        self.deliver(queued, false).await;
        self.core
            .repos
            .webhooks
            .find_delivery(id, delivery_id)
            .await?
            .ok_or(Error::NotFound)
    }

    pub async fn deliveries(&self, id: Uuid, query: RawDeliveryQuery) -> Result<DeliveryPage> {
        let query = query.parse()?;
        self.stored(id).await?;
        self.core.repos.webhooks.list_deliveries(id, query).await
    }

    pub async fn retry(
        &self,
        op: &Operator<'_>,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<WebhookDelivery> {
        let event = Event::new("webhook.delivery_retried", SUCCESS)
            .detail("delivery_id", delivery.to_string());
        let audit = self.records(op, id, event);
        let now = self.core.now();
        let retried = self
            .core
            .repos
            .webhooks
            .retry_delivery(id, delivery, now, audit)
            .await?
            .ok_or(Error::NotFound)?;
        self.wake.notify_one();
        Ok(retried)
    }
}

#[async_trait]
impl WebhookService for Webhooks {
    async fn create_webhook(&self, caller: &Caller, input: WebhookInput) -> Result<IssuedWebhook> {
        let op = self.admin(caller).await?;
        self.create(&op, input).await
    }
    async fn list_webhooks(&self, caller: &Caller) -> Result<Vec<Webhook>> {
        self.admin(caller).await?;
        self.list().await
    }
    async fn get_webhook(&self, caller: &Caller, id: Uuid) -> Result<Webhook> {
        self.admin(caller).await?;
        self.get(id).await
    }
    async fn update_webhook(
        &self,
        caller: &Caller,
        id: Uuid,
        patch: WebhookPatch,
    ) -> Result<Webhook> {
        let op = self.admin(caller).await?;
        self.update(&op, id, patch).await
    }
    async fn delete_webhook(&self, caller: &Caller, id: Uuid) -> Result<()> {
        let op = self.admin(caller).await?;
        self.delete(&op, id).await
    }
    async fn test_webhook(&self, caller: &Caller, id: Uuid) -> Result<WebhookDelivery> {
        self.admin(caller).await?;
        self.test(id).await
    }
    async fn list_webhook_deliveries(
        &self,
        caller: &Caller,
        id: Uuid,
        query: RawDeliveryQuery,
    ) -> Result<DeliveryPage> {
        self.admin(caller).await?;
        self.deliveries(id, query).await
    }
    async fn retry_webhook_delivery(
        &self,
        caller: &Caller,
        id: Uuid,
        delivery: Uuid,
    ) -> Result<WebhookDelivery> {
        let op = self.admin(caller).await?;
        self.retry(&op, id, delivery).await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
    use std::str::FromStr;

    use reqwest::dns::{Name, Resolve};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    fn loopback() -> WebhookNetworkPolicy {
        WebhookNetworkPolicy {
            allowed_networks: vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()],
            allow_http: false,
        }
    }

    fn delivery(url: &str) -> QueuedDelivery {
        QueuedDelivery {
            id: Uuid::now_v7(),
            webhook_id: Uuid::new_v4(),
            url: url.into(),
            secret_enc: String::new(),
            message_id: "msg_1".into(),
            event_type: "user.created".into(),
            payload: "{}".into(),
            attempts: 1,
            first_attempt_at: chrono::Utc::now(),
        }
    }

    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    /// One delivery to `url`, by a sender that may reach loopback.
    async fn send_to(url: &str) -> Attempt {
        let sender = Sender::new(loopback()).unwrap();
        sender
            .send(&delivery(url), SECRET, chrono::Utc::now())
            .await
    }

    #[tokio::test]
    async fn names_resolving_to_refused_addresses_are_not_connected_to() {
        let strict = GuardedResolver(WebhookNetworkPolicy::default());
        let e = strict
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .unwrap();
        assert!(e.to_string().contains("refused"), "{e}");
        let allowed: Vec<SocketAddr> = GuardedResolver(loopback())
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .unwrap()
            .collect();
        assert!(allowed.iter().all(|a| a.ip().is_loopback()) && !allowed.is_empty());
    }

    #[tokio::test]
    async fn refused_addresses_and_redirects_are_failures() {
        let sender = Sender::new(WebhookNetworkPolicy::default()).unwrap();
        for url in [
            "https://10.0.0.1/in",
            "https://169.254.169.254/",
            "http://127.0.0.1:9/",
        ] {
            let a = sender
                .send(&delivery(url), SECRET, chrono::Utc::now())
                .await;
            assert!(!a.delivered && a.status.is_none(), "{url}");
            assert!(a.error.unwrap().starts_with("the URL"), "{url}");
        }
        // A receiver that redirects (to the metadata service): not followed.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf).await;
            let answer = "HTTP/1.1 302 Found\r\nLocation: http://169.254.169.254/\r\n\
                          Content-Length: 5\r\n\r\nmoved";
            s.write_all(answer.as_bytes()).await.unwrap();
        });
        let a = send_to(&format!("http://{addr}/in")).await;
        assert!(!a.delivered);
        assert_eq!(a.status, Some(302));
        assert!(a.error.unwrap().contains("redirects are not followed"));
        assert_eq!(a.excerpt.as_deref(), Some("moved"));
    }

    /// An `https://` receiver gets a TLS ClientHello from the client's own configuration (no
    /// process-wide provider is needed), and a receiver that hangs up is a failed attempt.
    #[tokio::test]
    async fn https_receivers_are_spoken_to_in_tls() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let hello = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut head = [0u8; 6];
            s.read_exact(&mut head).await.unwrap();
            head
        });
        let a = send_to(&format!("https://{addr}/in")).await;
        // A TLS record of type handshake (22), version 3.x, whose first message is a ClientHello (1).
        let head = hello.await.unwrap();
        assert_eq!((head[0], head[1], head[5]), (22, 3, 1), "{head:?}");
        assert!(!a.delivered && a.status.is_none());
        assert!(a.error.is_some());
    }
}
