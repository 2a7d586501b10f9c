//! Delivery of the outbox: [`DeliveryWorker`] leases due mails through
//! [`domain::RecoveryRepository`], hands them to SMTP (or writes `.eml` files when no SMTP is
//! configured), and records the outcome, retrying with exponential backoff.
//!
//! Every process that holds the service layer runs one worker; a mail is leased to one worker at
//! a time (`FOR UPDATE SKIP LOCKED` on PostgreSQL/MySQL, the write lock on SQLite), so replicas
//! deliver each mail once. A worker that dies mid-delivery loses its lease after
//! [`WorkerConfig::lease`] and another one takes the mail: delivery is at least once, and exactly
//! once unless a process dies between SMTP accepting a mail and the outcome being recorded.
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use domain::{Error, MailClaim, MailSettlement, QueuedMail, RecoveryRepository, Result, Timestamp};
pub use lettre::message::Mailbox;
use lettre::message::header::ContentTransferEncoding;
use lettre::message::{Body, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransport;
use lettre::{AsyncTransport, Message, Tokio1Executor};

use crate::clock::Clock;
use crate::core::chrono_duration;

/// Where mails go.
#[derive(Clone)]
pub enum Transport {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    /// One `<uuid>.eml` file per mail in this directory.
    Files(PathBuf),
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Transport::Smtp(_) => f.write_str("Smtp"),
            Transport::Files(dir) => f.debug_tuple("Files").field(dir).finish(),
        }
    }
}

/// How long one SMTP conversation may take.
const SMTP_TIMEOUT: Duration = Duration::from_secs(20);

impl Transport {
    /// `smtps://…` (implicit TLS), or `smtp://[user:pass@]host[:port]` with STARTTLS required
    /// (`?tls=required`, the default off loopback). Plaintext only on loopback without
    /// credentials, or explicitly with `?tls=none` (warned about; refused with credentials:
    /// they never travel without TLS). `?tls=opportunistic` is refused off loopback: an attacker
    /// on the path strips the STARTTLS offer.
    pub fn smtp(url: &str) -> Result<Self> {
        let bad = |m: &str| Error::validation("smtp_url", m);
        let mut parsed = url::Url::parse(url).map_err(|e| bad(&format!("is not a URL: {e}")))?;
        let loopback = match parsed.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            // smtp: is not a special scheme: its host stays text, an IP literal included.
            Some(url::Host::Domain(d)) => {
                d.eq_ignore_ascii_case("localhost")
                    || d.trim_matches(['[', ']'])
                        .parse::<std::net::IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback())
            }
            None => return Err(bad("names no host")),
        };
        let credentials = !parsed.username().is_empty() || parsed.password().is_some();
        if parsed.scheme() == "smtp" {
            let tls = parsed
                .query_pairs()
                .find(|(k, _)| k == "tls")
                .map(|(_, v)| v.into_owned());
            let others: Vec<(String, String)> = parsed
                .query_pairs()
                .filter(|(k, _)| k != "tls")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let tls = match tls.as_deref() {
                None if loopback && !credentials => None,
                None | Some("required") => Some("required"),
                Some("none") if credentials => {
                    return Err(bad(
                        "carries credentials with tls=none: credentials are never sent without \
                         TLS (use tls=required, the default, or smtps://)",
                    ));
                }
                Some("none") => {
                    if !loopback {
                        tracing::warn!(
                            "ARCANA_SMTP_URL has tls=none: mails (with their reset and \
                             verification links) cross the network in plaintext"
                        );
                    }
                    None
                }
                Some("opportunistic") if loopback => Some("opportunistic"),
                Some("opportunistic") => {
                    return Err(bad(
                        "has tls=opportunistic off loopback, which an attacker on the path turns \
                         into plaintext: use tls=required (the default), smtps://, or tls=none \
                         to send in plaintext deliberately",
                    ));
                }
                Some(_) => {
                    return Err(bad("has a tls= other than required, opportunistic or none"));
                }
            };
            parsed.set_query(None);
            if !others.is_empty() || tls.is_some() {
                let mut q = parsed.query_pairs_mut();
                for (k, v) in &others {
                    q.append_pair(k, v);
                }
                if let Some(tls) = tls {
                    q.append_pair("tls", tls);
                }
            }
        }
        let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(parsed.as_str())
            .map_err(|e| bad(&e.to_string()))?
            .timeout(Some(SMTP_TIMEOUT))
            .build();
        Ok(Transport::Smtp(transport))
    }

    /// A short description without credentials, for the log.
    pub fn describe(&self) -> String {
        match self {
            Transport::Smtp(_) => "SMTP".into(),
            Transport::Files(dir) => format!(".eml files in {}", dir.display()),
        }
    }
}

/// Tunables of a worker.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub from: Mailbox,
    /// Look for due mails at least this often (a mail queued by this process wakes it at once).
    pub poll: Duration,
    /// A leased mail is another worker's to take after this long.
    pub lease: Duration,
    /// The first retry waits this long, every further one twice as long (at most an hour).
    pub retry_base: Duration,
    /// Attempts before a mail is given up on.
    pub max_attempts: u32,
    /// Delivered mails, given-up mails and spent tokens are deleted after this long.
    pub retention: Duration,
}

impl WorkerConfig {
    /// The production configuration, sending as `from`.
    pub fn new(from: Mailbox) -> Self {
        Self {
            from,
            poll: Duration::from_secs(2),
            lease: Duration::from_secs(120),
            retry_base: Duration::from_secs(1),
            max_attempts: 12,
            retention: Duration::from_secs(7 * 24 * 3600),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct DeliveryStats {
    /// Mails waiting (due or backing off), as last counted.
    pub pending: AtomicU64,
    /// Mails given up on, as last counted.
    pub given_up: AtomicU64,
    pub sent_total: AtomicU64,
    /// Delivery attempts that failed (each retry counts).
    pub failures_total: AtomicU64,
}

pub struct DeliveryWorker {
    repo: Arc<dyn RecoveryRepository>,
    transport: Transport,
    config: WorkerConfig,
    clock: Arc<dyn Clock>,
    wake: Arc<tokio::sync::Notify>,
    stats: Arc<DeliveryStats>,
    id: String,
}

impl DeliveryWorker {
    pub fn new(
        repo: Arc<dyn RecoveryRepository>,
        transport: Transport,
        config: WorkerConfig,
        clock: Arc<dyn Clock>,
        wake: Arc<tokio::sync::Notify>,
    ) -> Self {
        Self {
            repo,
            transport,
            config,
            clock,
            wake,
            stats: Arc::new(DeliveryStats::default()),
            id: format!("worker-{}", uuid::Uuid::new_v4().simple()),
        }
    }

    pub fn stats(&self) -> Arc<DeliveryStats> {
        self.stats.clone()
    }

    /// Deliver until the process ends.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(self.run())
    }

    async fn run(self) {
        let mut last_purge: Option<std::time::Instant> = None;
        loop {
            // Armed before the round, so a mail queued during it is not missed.
            let woken = self.wake.notified();
            tokio::pin!(woken);
            woken.as_mut().enable();
            match self.round().await {
                // A full batch: there may be more due right away.
                Ok(n) if n >= BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "mail outbox unreachable; retrying"),
            }
            if last_purge.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
                last_purge = Some(std::time::Instant::now());
                self.purge().await;
            }
            self.count().await;
            tokio::select! {
                () = &mut woken => {}
                () = tokio::time::sleep(self.config.poll) => {}
            }
        }
    }

    /// Lease the due mails and deliver them; how many were leased.
    pub async fn round(&self) -> Result<usize> {
        let claim = MailClaim {
            worker: self.id.clone(),
            now: self.clock.now(),
            lease: self.config.lease,
            limit: BATCH,
        };
        let mails = self.repo.claim_mail(claim).await?;
        let n = mails.len();
        for mail in mails {
            self.deliver(mail).await;
        }
        Ok(n)
    }

    async fn deliver(&self, mail: QueuedMail) {
        let (id, attempts) = (mail.id, mail.attempts);
        let outcome = self.send(mail).await;
        let now = self.clock.now();
        let settlement = match outcome {
            Ok(()) => {
                self.stats.sent_total.fetch_add(1, Ordering::Relaxed);
                tracing::info!(mail_id = %id, attempts, "mail delivered");
                MailSettlement {
                    id,
                    worker: self.id.clone(),
                    sent: true,
                    retry_at: None,
                    error: None,
                    now,
                }
            }
            Err(failure) => {
                self.stats.failures_total.fetch_add(1, Ordering::Relaxed);
                let retry_at = (!failure.permanent && attempts < self.config.max_attempts)
                    .then(|| now + chrono_duration(self.backoff(attempts)));
                tracing::warn!(mail_id = %id, attempts, error = %failure.message,
                    retry_at = ?retry_at, "mail not delivered");
                MailSettlement {
                    id,
                    worker: self.id.clone(),
                    sent: false,
                    retry_at,
                    error: Some(failure.message),
                    now,
                }
            }
        };
        match self.repo.settle_mail(settlement).await {
            Ok(true) => {}
            Ok(false) => {
                tracing::warn!(mail_id = %id, "mail lease lost before its outcome was recorded")
            }
            // The lease runs out and the mail is tried again: at least once.
            Err(e) => tracing::warn!(mail_id = %id, error = %e, "mail outcome not recorded"),
        }
    }

    /// `retry_base × 2^(attempts-1)`, at most an hour.
    fn backoff(&self, attempts: u32) -> Duration {
        let factor = 1u32 << attempts.saturating_sub(1).min(20);
        self.config
            .retry_base
            .saturating_mul(factor)
            .min(Duration::from_secs(3600))
    }

    async fn send(&self, mail: QueuedMail) -> std::result::Result<(), Failure> {
        let to: Mailbox = mail.recipient.parse().map_err(|e| Failure {
            permanent: true,
            message: format!("recipient address: {e}"),
        })?;
        let message = Message::builder()
            .from(self.config.from.clone())
            .to(to)
            .subject(mail.subject)
            .date(std::time::SystemTime::from(mail.created_at))
            .multipart(MultiPart::alternative_plain_html(
                readable(mail.text_body),
                readable(mail.html_body),
            ))
            .map_err(|e| Failure {
                permanent: true,
                message: format!("building the message: {e}"),
            })?;
        match &self.transport {
            Transport::Smtp(smtp) => smtp.send(message).await.map(|_| ()).map_err(|e| Failure {
                permanent: e.is_permanent(),
                message: format!("SMTP: {e}"),
            }),
            Transport::Files(dir) => {
                let failed = |what: String| Failure {
                    permanent: false,
                    message: what,
                };
                domain::files::create_private_dir(dir)
                    .map_err(|e| failed(format!("creating {}: {e}", dir.display())))?;
                // The mail holds a live link: readable by this user only from its first byte
                // (the directory is too).
                let path = dir.join(format!("{}.eml", uuid::Uuid::new_v4()));
                let bytes = message.formatted();
                tokio::task::spawn_blocking(move || domain::files::write_private(&path, &bytes))
                    .await
                    .map_err(|e| failed(format!("writing the mail file: {e}")))?
                    .map_err(|e| failed(format!("writing the mail file: {e}")))
            }
        }
    }

    async fn purge(&self) {
        let before: Timestamp = self.clock.now() - chrono_duration(self.config.retention);
        match self.repo.purge_recovery(before).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(rows = n, "purged delivered mails and spent tokens"),
            Err(e) => tracing::warn!(error = %e, "outbox purge failed"),
        }
    }

    async fn count(&self) {
        if let Ok(s) = self.repo.outbox_stats().await {
            self.stats.pending.store(s.pending, Ordering::Relaxed);
            self.stats.given_up.store(s.failed, Ordering::Relaxed);
        }
    }
}

/// A body sent as it is (7bit: ASCII, no NUL, lines within RFC 5322's 998 characters) when it
/// can be, so the link stays whole in any mail client and in the `.eml` files (lettre would
/// quote-print anything above 76 characters a line); quoted-printable or base64 otherwise
/// (a non-ASCII product name, say).
fn readable(text: String) -> Body {
    let plain = text.is_ascii() && !text.contains('\0') && text.lines().all(|l| l.len() <= 998);
    if plain {
        let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
        Body::dangerous_pre_encoded(crlf.into_bytes(), ContentTransferEncoding::SevenBit)
    } else {
        Body::new(text)
    }
}

struct Failure {
    permanent: bool,
    message: String,
}

/// Mails leased per round.
const BATCH: u32 = 16;
const PURGE_EVERY: Duration = Duration::from_secs(3600);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn smtp_urls_need_tls_off_loopback_and_for_credentials() {
        for ok in [
            "smtps://u:p@mail.example.com",
            "smtp://mail.example.com:587",
            "smtp://u:p@mail.example.com:587?tls=required",
            "smtp://mail.example.com:25?tls=none",
            "smtp://127.0.0.1:2525",
            "smtp://localhost:2525?tls=opportunistic",
            "smtp://u:p@127.0.0.1:2525",
            "smtp://[::1]:2525?tls=opportunistic",
        ] {
            assert!(Transport::smtp(ok).is_ok(), "{ok}");
        }
        for refused in [
            "smtp://u:p@mail.example.com:25?tls=none",
            "smtp://u:p@127.0.0.1:25?tls=none",
            "smtp://mail.example.com:25?tls=opportunistic",
            "smtp://192.0.2.25:25?tls=opportunistic",
            "smtp://mail.example.com:25?tls=maybe",
            "not a url",
        ] {
            let Err(e) = Transport::smtp(refused) else {
                panic!("{refused} was accepted")
            };
            assert!(!e.to_string().contains(":p@"), "{e}");
        }
    }

    #[test]
    fn ascii_bodies_go_out_as_they_are() {
        let link = format!(
            "https://id.example.test/reset-password#token={}",
            "a".repeat(43)
        );
        let body = readable(format!("Hello,\nopen {link}\n-- x\n"));
        assert_eq!(body.encoding(), ContentTransferEncoding::SevenBit);
        let text = String::from_utf8(body.into_vec()).unwrap_or_default();
        assert!(text.contains(&link), "{text}");
        assert!(text.contains("Hello,\r\nopen"), "CRLF line ends");
        // Non-ASCII falls back to a transfer encoding.
        let body = readable("Grüße\n".into());
        assert_ne!(body.encoding(), ContentTransferEncoding::SevenBit);
    }
}
