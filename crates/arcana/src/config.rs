//! Flags shared by the binaries. Every flag has an `ARCANA_*` env fallback; every secret can also
//! come from a file named by `<ENV>_FILE` (Kubernetes Secrets). Each binary flattens only the
//! groups it needs.
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// What every process takes: logging and how it stops.
#[derive(Debug, Clone, Args)]
pub struct ProcessArgs {
    /// Log format: human-readable or one JSON object per line.
    #[arg(long, env = "ARCANA_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    pub log_format: LogFormat,
    /// After SIGTERM: milliseconds the process still serves while its health says NOT_SERVING
    /// (readiness 503), so load balancers and the layer above stop sending before it closes.
    #[arg(
        long,
        env = "ARCANA_DRAIN_DELAY_MS",
        default_value_t = 5000,
        global = true
    )]
    pub drain_delay_ms: u64,
    /// Then: milliseconds the calls in flight get to finish before the process exits anyway.
    #[arg(
        long,
        env = "ARCANA_SHUTDOWN_TIMEOUT_MS",
        default_value_t = 20000,
        global = true
    )]
    pub shutdown_timeout_ms: u64,
}

/// Where a process keeps its files.
#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Where the process keeps its files: the SQLite file (monolith and repository, unless
    /// `ARCANA_DATABASE_URL`), the generated signing key (monolith) and, without SMTP, the
    /// `.eml` mails (monolith and service layers: `<data-dir>/mail` unless `ARCANA_MAIL_DIR`).
    #[arg(long, env = "ARCANA_DATA_DIR", default_value = "./data", global = true)]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct DbArgs {
    #[command(flatten)]
    pub data: DataArgs,
    /// Maximum database connections (1–1000).
    #[arg(long, env = "ARCANA_DB_POOL_SIZE", default_value_t = 16, global = true,
        value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub db_pool_size: u32,
}

impl DbArgs {
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(u) = secret_env("ARCANA_DATABASE_URL")? {
            return Ok(u.expose_secret().to_owned());
        }
        Ok(format!(
            "sqlite://{}",
            self.data.data_dir.join("arcana.db").display()
        ))
    }
}

#[derive(Debug, Clone, Args)]
pub struct JwtArgs {
    /// Ed25519 public keys (PEM, concatenated) accepted for verification (rotation).
    #[arg(long, env = "ARCANA_JWT_PUBLIC_KEYS", global = true)]
    pub jwt_public_keys: Option<String>,
    /// `iss` of the access tokens (issued and required).
    #[arg(
        long,
        env = "ARCANA_JWT_ISSUER",
        default_value = "arcana",
        global = true
    )]
    pub jwt_issuer: String,
    /// `aud` of the access tokens (issued and required).
    #[arg(
        long,
        env = "ARCANA_JWT_AUDIENCE",
        default_value = "arcana",
        global = true
    )]
    pub jwt_audience: String,
}

/// What a process holding the service layer is configured with (the monolith and the service
/// binaries flatten it into their flags).
#[derive(Debug, Clone, Args)]
pub struct ServiceArgs {
    #[command(flatten)]
    pub jwt: JwtArgs,
    #[command(flatten)]
    pub auth: AuthArgs,
    #[command(flatten)]
    pub bootstrap: BootstrapArgs,
    #[command(flatten)]
    pub mail: MailArgs,
    #[command(flatten)]
    pub redis: RedisArgs,
    #[command(flatten)]
    pub webhooks: WebhookArgs,
}

/// Lifecycle webhooks: where deliveries may go and how they are retried.
#[derive(Debug, Clone, Args)]
pub struct WebhookArgs {
    /// Networks (CIDR, comma-separated) webhook endpoints may be in although they are not public
    /// internet: loopback, private, link-local (cloud metadata) addresses are refused otherwise.
    /// E.g. `10.20.0.0/16` for an internal CRM, `127.0.0.0/8` for a receiver on this host.
    #[arg(
        long,
        env = "ARCANA_WEBHOOK_ALLOWED_NETWORKS",
        value_delimiter = ',',
        global = true
    )]
    pub webhook_allowed_networks: Vec<ipnet::IpNet>,
    /// Allow plain `http://` endpoints off loopback (their events and signatures cross the
    /// network in plaintext).
    #[arg(long, env = "ARCANA_WEBHOOK_ALLOW_HTTP", default_value_t = false, global = true,
        num_args = 0..=1, default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new())]
    pub webhook_allow_http: bool,
    /// First retry of a failed delivery after this many milliseconds, doubling per attempt (at
    /// most six hours apart).
    #[arg(long, env = "ARCANA_WEBHOOK_RETRY_BASE_MS", default_value_t = 5000, global = true,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub webhook_retry_base_ms: u64,
    /// A delivery still failing this many seconds after its first attempt is given up, its
    /// endpoint disabled and the admins mailed (default three days).
    #[arg(long, env = "ARCANA_WEBHOOK_GIVE_UP_SECONDS", default_value_t = 3 * 86_400, global = true,
        value_parser = clap::value_parser!(u64).range(1..=30 * 86_400))]
    pub webhook_give_up_seconds: u64,
    /// Deliveries in flight per process.
    #[arg(long, env = "ARCANA_WEBHOOK_CONCURRENCY", default_value_t = 8, global = true,
        value_parser = clap::value_parser!(u64).range(1..=256))]
    pub webhook_concurrency: u64,
    /// Look for due deliveries at least this often (milliseconds).
    #[arg(long, env = "ARCANA_WEBHOOK_POLL_MS", default_value_t = 1000, global = true,
        value_parser = clap::value_parser!(u64).range(50..=60_000))]
    pub webhook_poll_ms: u64,
    /// A delivery being sent is another process's to take after this many seconds (a process
    /// killed mid-delivery): longer than a delivery may take (15 s).
    #[arg(long, env = "ARCANA_WEBHOOK_LEASE_SECONDS", default_value_t = 60, global = true,
        value_parser = clap::value_parser!(u64).range(20..=3600))]
    pub webhook_lease_seconds: u64,
}

impl WebhookArgs {
    pub fn config(&self) -> service::WebhookConfig {
        service::WebhookConfig {
            policy: domain::WebhookNetworkPolicy {
                allowed_networks: self.webhook_allowed_networks.clone(),
                allow_http: self.webhook_allow_http,
            },
            retry_base: Duration::from_millis(self.webhook_retry_base_ms),
            give_up_after: Duration::from_secs(self.webhook_give_up_seconds),
            concurrency: usize::try_from(self.webhook_concurrency).unwrap_or(8),
            poll: Duration::from_millis(self.webhook_poll_ms),
            lease: Duration::from_secs(self.webhook_lease_seconds),
            ..service::WebhookConfig::default()
        }
    }
}

/// The admin a fresh installation starts with (processes that hold the user context create it
/// on start when no active admin exists).
#[derive(Debug, Clone, Args)]
pub struct BootstrapArgs {
    #[arg(long, env = "ARCANA_BOOTSTRAP_ADMIN_USERNAME", global = true)]
    pub bootstrap_admin_username: Option<String>,
    #[arg(long, env = "ARCANA_BOOTSTRAP_ADMIN_EMAIL", global = true)]
    pub bootstrap_admin_email: Option<String>,
}

impl BootstrapArgs {
    /// (username, email, password) when all three are given.
    pub fn admin(&self) -> anyhow::Result<Option<(String, String, SecretString)>> {
        let password = secret_env("ARCANA_BOOTSTRAP_ADMIN_PASSWORD")?;
        let nonempty = |v: &Option<String>| v.clone().filter(|s| !s.is_empty());
        Ok(
            match (
                nonempty(&self.bootstrap_admin_username),
                nonempty(&self.bootstrap_admin_email),
                password,
            ) {
                (Some(u), Some(e), Some(p)) => Some((u, e, p)),
                _ => None,
            },
        )
    }
}

impl JwtArgs {
    /// The configured keys: EdDSA when a private or public key is given, else the HS256 secret,
    /// else (`generate_in`, monolith only) a secret generated and kept in that directory.
    pub fn keys(&self, generate_in: Option<&Path>) -> anyhow::Result<crypto::JwtKeys> {
        let private = secret_env("ARCANA_JWT_PRIVATE_KEY")?;
        let publics = secret(self.jwt_public_keys.as_deref(), "ARCANA_JWT_PUBLIC_KEYS")?;
        if private.is_some() || publics.is_some() {
            let publics = publics
                .map(|p| p.expose_secret().to_owned())
                .unwrap_or_default();
            let refs: Vec<&str> = if publics.is_empty() {
                vec![]
            } else {
                vec![publics.as_str()]
            };
            return crypto::JwtKeys::ed25519(private.as_ref().map(|p| p.expose_secret()), &refs)
                .map_err(describe)
                .context("loading the Ed25519 keys");
        }
        let secret = match (secret_env("ARCANA_JWT_SECRET")?, generate_in) {
            (Some(s), _) => s,
            (None, Some(dir)) => data_dir_jwt_secret(dir)?,
            (None, None) => {
                bail!(
                    "ARCANA_JWT_SECRET (or ARCANA_JWT_SECRET_FILE, or ARCANA_JWT_PRIVATE_KEY/PUBLIC_KEYS) is required"
                )
            }
        };
        crypto::JwtKeys::hs256(secret.expose_secret().as_bytes())
            .map_err(describe)
            .context("ARCANA_JWT_SECRET")
    }
}

/// The business layer's knobs.
#[derive(Debug, Clone, Args)]
pub struct AuthArgs {
    /// PBKDF2 iterations for new password hashes (1–20,000,000; below 100,000 is weak and
    /// logged as such at start).
    #[arg(
        long,
        env = "ARCANA_PASSWORD_ITERATIONS",
        default_value_t = 600_000,
        global = true,
        value_parser = clap::value_parser!(u32).range(1..=20_000_000)
    )]
    pub password_iterations: u32,
    /// Access-token lifetime in seconds (1 s – 1 day).
    #[arg(long, env = "ARCANA_ACCESS_TTL", default_value_t = 900, global = true,
        value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub access_ttl: u64,
    /// Refresh-token (session) lifetime in seconds (1 s – 365 days).
    #[arg(long, env = "ARCANA_REFRESH_TTL", default_value_t = 30 * 24 * 3600, global = true,
        value_parser = clap::value_parser!(u64).range(1..=365 * 24 * 3600))]
    pub refresh_ttl: u64,
    /// Threads that compute password hashes (1–1024; default: the number of cores).
    #[arg(long, env = "ARCANA_HASH_WORKERS", global = true,
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1024))]
    pub hash_workers: Option<usize>,
    /// Seconds after a refresh during which the just-replaced refresh token is accepted once
    /// more (two tabs, a lost answer); 0 = any reuse revokes the session (0–60).
    #[arg(long, env = "ARCANA_REFRESH_REUSE_GRACE", default_value_t = 0, global = true,
        value_parser = clap::value_parser!(u64).range(0..=60))]
    pub refresh_reuse_grace: u64,
    /// Users the service layer keeps in its read cache for up to 2 s (writes through this
    /// process drop their entry at once); 0 turns the cache off (0–10,000,000).
    #[arg(long, env = "ARCANA_USER_CACHE_SIZE", default_value_t = 10_000, global = true,
        value_parser = clap::value_parser!(u64).range(0..=10_000_000))]
    pub user_cache_size: u64,
    /// Live sessions per user; opening one more revokes the oldest (0 = no cap; 0–10,000).
    #[arg(long, env = "ARCANA_MAX_SESSIONS_PER_USER", default_value_t = 100, global = true,
        value_parser = clap::value_parser!(u32).range(0..=10_000))]
    pub max_sessions_per_user: u32,
    /// Sessions expired or revoked this many days ago are deleted (1–3650).
    #[arg(long, env = "ARCANA_SESSION_RETENTION_DAYS", default_value_t = 30, global = true,
        value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub session_retention_days: u64,
    /// Audit events older than this many days are deleted (1–3650).
    #[arg(long, env = "ARCANA_AUDIT_RETENTION_DAYS", default_value_t = 90, global = true,
        value_parser = clap::value_parser!(u64).range(1..=3650))]
    pub audit_retention_days: u64,
    /// The key that encrypts TOTP secrets at rest (a file of base64 AES-256 keys, one per line:
    /// the first encrypts, all decrypt; `arcana data-key generate` prints one). Unset, a process
    /// that holds the service layer uses `<data-dir>/data-key`, created (0600) on first start:
    /// replicas must share one file.
    #[arg(long, env = "ARCANA_DATA_KEY_FILE", global = true)]
    pub data_key_file: Option<PathBuf>,
    /// Admin endpoints answer 403 MFA_REQUIRED to an admin without a second factor.
    #[arg(long, env = "ARCANA_REQUIRE_MFA_FOR_ADMINS", default_value_t = false, global = true,
        action = clap::ArgAction::Set)]
    pub require_mfa_for_admins: bool,
}

/// The ops listener every binary serves beside its public or internal ports.
#[derive(Debug, Clone, Args)]
pub struct OpsArgs {
    /// Where `GET /metrics` (Prometheus), `/health/live` and `/health/ready` are served: never
    /// on the public ports. Loopback by default, one port per binary (arcana 9100, gateway 9101,
    /// service 9102, repository 9103, auth-service 9104, user-service 9105), so the binaries run
    /// side by side on one host; the chart and compose files bind the pod's address and restrict
    /// it with a NetworkPolicy. `ARCANA_METRICS_TOKEN` (or `_FILE`, env only), when set, is
    /// required as `Authorization: Bearer` to read `/metrics`.
    // No default here: `parse_args` gives each binary its own (`healthcheck::DEFAULT_OPS_ADDRS`).
    // (Not `required` either: clap refuses a required global argument.)
    #[arg(long, env = "ARCANA_METRICS_ADDR", global = true, required = false)]
    pub metrics_addr: SocketAddr,
}

/// The command line of `binary` (its name in `--help`), parsed with that binary's own defaults
/// (`with_binary_defaults`); exits with clap's message on bad usage, as `clap::Parser::parse`
/// does.
pub fn parse_args<C: clap::Parser>(binary: &'static str) -> C {
    let mut command = with_binary_defaults(C::command().name(binary), binary);
    let mut matches = command.clone().get_matches();
    C::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.format(&mut command).exit())
}

/// `command` (of a binary flattening `OpsArgs`) with the defaults that differ per binary: the
/// ops address. An unknown binary gets none (`--metrics-addr` is then required).
pub fn with_binary_defaults(command: clap::Command, binary: &str) -> clap::Command {
    match healthcheck::default_ops_addr(binary) {
        Some(addr) => command.mut_arg("metrics_addr", |a| a.default_value(addr)),
        None => command,
    }
}

impl OpsArgs {
    /// The scrape token (`ARCANA_METRICS_TOKEN` or `ARCANA_METRICS_TOKEN_FILE`), if any.
    pub fn scrape_token(&self) -> anyhow::Result<rpc::ops::ScrapeToken> {
        let token = secret_env("ARCANA_METRICS_TOKEN")?;
        Ok(rpc::ops::ScrapeToken::new(
            token.as_ref().map(|t| t.expose_secret()),
        ))
    }
}

/// Password reset and email verification: the mails and their links.
#[derive(Debug, Clone, Args)]
pub struct MailArgs {
    /// Sender of the mails.
    #[arg(
        long,
        env = "ARCANA_MAIL_FROM",
        default_value = "arcana <no-reply@localhost>",
        global = true
    )]
    pub mail_from: String,
    /// Base URL of the links in mails (`<url>/reset-password#token=…`, `<url>/verify-email#token=…`).
    /// Required with `ARCANA_SMTP_URL` (mails sent to people must not link to localhost);
    /// without SMTP (`.eml` files) it defaults to `http://localhost:8080`.
    #[arg(long, env = "ARCANA_PUBLIC_URL", global = true)]
    pub public_url: Option<String>,
    /// Product name in mails.
    #[arg(
        long,
        env = "ARCANA_PRODUCT_NAME",
        default_value = "arcana",
        global = true
    )]
    pub product_name: String,
    /// Refuse logins of accounts whose email address is not verified (403 EMAIL_NOT_VERIFIED).
    #[arg(long, env = "ARCANA_REQUIRE_VERIFIED_EMAIL", default_value_t = false, global = true,
        num_args = 0..=1, default_missing_value = "true",
        value_parser = clap::builder::BoolishValueParser::new())]
    pub require_verified_email: bool,
    /// Lifetime of a password-reset link in seconds (60 s – 1 day).
    #[arg(long, env = "ARCANA_RESET_TOKEN_TTL", default_value_t = 30 * 60, global = true,
        value_parser = clap::value_parser!(u64).range(60..=86_400))]
    pub reset_token_ttl: u64,
    /// Lifetime of an email-verification link in seconds (60 s – 30 days).
    #[arg(long, env = "ARCANA_VERIFY_TOKEN_TTL", default_value_t = 24 * 3600, global = true,
        value_parser = clap::value_parser!(u64).range(60..=30 * 86_400))]
    pub verify_token_ttl: u64,
    /// Where `.eml` files go when no SMTP is set (default: `<data-dir>/mail`, created readable
    /// by this user only).
    #[arg(long, env = "ARCANA_MAIL_DIR", global = true)]
    pub mail_dir: Option<PathBuf>,
    /// Delivered mails and spent tokens are deleted after this many days (1–365).
    #[arg(long, env = "ARCANA_OUTBOX_RETENTION_DAYS", default_value_t = 7, global = true,
        value_parser = clap::value_parser!(u64).range(1..=365))]
    pub outbox_retention_days: u64,
    /// First retry of a failed delivery after this many milliseconds, doubling per attempt.
    #[arg(long, env = "ARCANA_MAIL_RETRY_BASE_MS", default_value_t = 1000, global = true,
        value_parser = clap::value_parser!(u64).range(100..=600_000))]
    pub mail_retry_base_ms: u64,
}

impl MailArgs {
    /// The SMTP URL from the flag, `ARCANA_SMTP_URL` or `ARCANA_SMTP_URL_FILE`.
    pub fn smtp_url(&self) -> anyhow::Result<Option<SecretString>> {
        // An empty ARCANA_SMTP_URL_FILE means "no SMTP" (the compose files always mount one).
        let value = std::env::var("ARCANA_SMTP_URL")
            .ok()
            .filter(|v| !v.is_empty());
        read_secret(value.as_deref(), "ARCANA_SMTP_URL", true)
    }
}

/// Below this many PBKDF2 iterations a warning is logged at start (OWASP asks for 600,000).
pub const WEAK_ITERATIONS: u32 = 100_000;

/// The public edge (gateway, monolith).
#[derive(Debug, Clone, Args)]
pub struct EdgeArgs {
    #[arg(
        long,
        env = "ARCANA_HTTP_ADDR",
        default_value = "0.0.0.0:8080",
        global = true
    )]
    pub http_addr: SocketAddr,
    /// Public gRPC.
    #[arg(
        long,
        env = "ARCANA_GRPC_ADDR",
        default_value = "0.0.0.0:9090",
        global = true
    )]
    pub grpc_addr: SocketAddr,
    /// Requests per minute per client IP on login, register, refresh and password change
    /// (0 disables).
    #[arg(
        long,
        env = "ARCANA_AUTH_RATE_LIMIT",
        default_value_t = 60,
        global = true
    )]
    pub auth_rate_limit: u32,
    /// Password changes per minute per calling user (each costs two password hashes; 0 disables).
    #[arg(
        long,
        env = "ARCANA_PASSWORD_CHANGE_RATE_LIMIT",
        default_value_t = 5,
        global = true
    )]
    pub password_change_rate_limit: u32,
    /// Requests per minute per personal access token, whatever it calls (0 disables).
    #[arg(
        long,
        env = "ARCANA_TOKEN_RATE_LIMIT",
        default_value_t = 600,
        global = true
    )]
    pub token_rate_limit: u32,
    /// CIDRs whose X-Forwarded-For is believed for the client IP (comma-separated).
    #[arg(
        long,
        env = "ARCANA_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Origins allowed by CORS (comma-separated; none by default). `*` alone allows any
    /// origin (without credentials).
    #[arg(
        long,
        env = "ARCANA_CORS_ORIGINS",
        value_delimiter = ',',
        global = true
    )]
    pub cors_origins: Vec<String>,
    /// Seconds a request may take before it answers 503 (gRPC: DEADLINE_EXCEEDED) (1–3600).
    #[arg(
        long,
        env = "ARCANA_REQUEST_TIMEOUT",
        default_value_t = 30,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub request_timeout: u64,
    /// Seconds an HTTP/1 connection may take to send a request head, and may stay idle between
    /// requests (1–300).
    #[arg(
        long,
        env = "ARCANA_HTTP_HEADER_TIMEOUT",
        default_value_t = 10,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=300)
    )]
    pub http_header_timeout: u64,
    /// Seconds between HTTP/2 keep-alive pings (REST h2c and public gRPC); a peer silent for 10 s
    /// after a ping is disconnected (1–3600).
    #[arg(
        long,
        env = "ARCANA_HTTP2_KEEPALIVE",
        default_value_t = 30,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub http2_keepalive: u64,
    /// Concurrent streams per HTTP/2 connection (public gRPC, REST over h2c) (1–10000).
    #[arg(
        long,
        env = "ARCANA_MAX_CONCURRENT_STREAMS",
        default_value_t = 100,
        global = true,
        value_parser = clap::value_parser!(u32).range(1..=10_000)
    )]
    pub max_concurrent_streams: u32,
}

/// CORS origins as given, checked: `*` alone, or origins such as `https://app.example.com`.
/// Optional Redis shared by the replicas: at the edge, rate limits held in total and
/// revocations broadcast; in the service layer, a shared cache of user records.
#[derive(Debug, Clone, Args)]
pub struct RedisArgs {
    /// Prefix of every Redis key and channel (several deployments may share one Redis).
    #[arg(
        long,
        env = "ARCANA_REDIS_PREFIX",
        default_value = "arcana:",
        global = true
    )]
    pub redis_prefix: String,
    /// Seconds a user record stays in the shared cache (every write through the service layer
    /// drops it at once); 0 turns the shared user cache off (0–3600).
    #[arg(long, env = "ARCANA_REDIS_USER_CACHE_TTL", default_value_t = 30, global = true,
        value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub redis_user_cache_ttl: u64,
}

impl RedisArgs {
    /// The Redis URL from the flag, `ARCANA_REDIS_URL` or `ARCANA_REDIS_URL_FILE`.
    pub fn redis_url(&self) -> anyhow::Result<Option<SecretString>> {
        secret_env("ARCANA_REDIS_URL")
    }
}

pub fn cors_origins(given: &[String]) -> anyhow::Result<Vec<String>> {
    let origins: Vec<String> = given
        .iter()
        .map(|o| o.trim().to_owned())
        .filter(|o| !o.is_empty())
        .collect();
    if origins.iter().any(|o| o == "*") {
        if origins.len() > 1 {
            bail!(
                "ARCANA_CORS_ORIGINS: `*` allows every origin and cannot be combined with a list"
            );
        }
        return Ok(origins);
    }
    for o in &origins {
        let (scheme, host) = o.split_once("://").unwrap_or(("", ""));
        let valid = matches!(scheme, "http" | "https")
            && !host.is_empty()
            && !host.contains('/')
            && o.bytes().all(|b| b.is_ascii_graphic());
        if !valid {
            bail!(
                "ARCANA_CORS_ORIGINS: {o:?} is not an origin (expected scheme://host[:port], e.g. https://app.example.com, or `*`)"
            );
        }
    }
    Ok(origins)
}

/// Calls between layers.
#[derive(Debug, Clone, Args)]
pub struct InternalArgs {
    /// PEM certificate chain of this process for mutual TLS between layers (with --tls-key, --tls-ca).
    #[arg(long, env = "ARCANA_TLS_CERT", global = true)]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key matching --tls-cert.
    #[arg(long, env = "ARCANA_TLS_KEY", global = true)]
    pub tls_key: Option<PathBuf>,
    /// PEM CA that signs every layer's certificate (servers require client certificates from it).
    #[arg(long, env = "ARCANA_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Name upstream certificates are checked against (default: the host of each URL).
    #[arg(long, env = "ARCANA_TLS_SERVER_NAME", global = true)]
    pub tls_server_name: Option<String>,
    /// Deadline of one internal call, in milliseconds (1–600000).
    #[arg(
        long,
        env = "ARCANA_UPSTREAM_DEADLINE_MS",
        default_value_t = 5000,
        global = true,
        value_parser = clap::value_parser!(u64).range(1..=600_000)
    )]
    pub upstream_deadline_ms: u64,
}

impl InternalArgs {
    /// The credential between the gateway and the service layers.
    pub fn credential(&self) -> anyhow::Result<rpc::credential::InternalCredential> {
        let token = secret_env("ARCANA_INTERNAL_TOKEN")?
            .context("ARCANA_INTERNAL_TOKEN (or ARCANA_INTERNAL_TOKEN_FILE) is required outside the monolith")?;
        rpc::credential::InternalCredential::new(token.expose_secret())
            .map_err(|e| anyhow::anyhow!("ARCANA_INTERNAL_TOKEN: {e}"))
    }

    /// The credential between the service layers and the repository (see `--repository-token`).
    pub fn repository_credential(&self) -> anyhow::Result<rpc::credential::InternalCredential> {
        let own = secret_env("ARCANA_REPOSITORY_TOKEN")?;
        let internal = secret_env("ARCANA_INTERNAL_TOKEN")?;
        let token = match (own, internal) {
            (Some(own), internal) => {
                if internal.is_some_and(|i| i.expose_secret() == own.expose_secret()) {
                    tracing::warn!(
                        "ARCANA_REPOSITORY_TOKEN equals ARCANA_INTERNAL_TOKEN: whoever holds the \
                         gateway's credential can call the repository layer; give them different secrets"
                    );
                }
                own
            }
            (None, Some(internal)) => {
                tracing::warn!(
                    "ARCANA_REPOSITORY_TOKEN is not set: the repository layer accepts \
                     ARCANA_INTERNAL_TOKEN, which the gateway holds too; set a separate secret"
                );
                internal
            }
            (None, None) => bail!(
                "ARCANA_REPOSITORY_TOKEN (or ARCANA_REPOSITORY_TOKEN_FILE) is required outside the monolith"
            ),
        };
        rpc::credential::InternalCredential::new(token.expose_secret())
            .map_err(|e| anyhow::anyhow!("ARCANA_REPOSITORY_TOKEN: {e}"))
    }

    /// Mutual TLS files, when configured (all three of cert, key and CA, or none).
    pub fn tls(&self) -> anyhow::Result<Option<rpc::tls::TlsFiles>> {
        match (&self.tls_cert, &self.tls_key, &self.tls_ca) {
            (None, None, None) => Ok(None),
            (Some(cert), Some(key), Some(ca)) => Ok(Some(rpc::tls::TlsFiles {
                cert: cert.clone(),
                key: key.clone(),
                ca: ca.clone(),
                server_name: self.tls_server_name.clone(),
            })),
            _ => bail!("mutual TLS needs all of ARCANA_TLS_CERT, ARCANA_TLS_KEY and ARCANA_TLS_CA"),
        }
    }

    /// Server-side TLS of an internal port, when configured.
    pub fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        self.tls()?
            .map(|t| t.server().map_err(|e| anyhow::anyhow!(e)))
            .transpose()
    }

    /// The endpoints `urls` of the layer below, called with `credential`.
    pub fn upstream(
        &self,
        urls: &str,
        what: &str,
        credential: rpc::credential::InternalCredential,
    ) -> anyhow::Result<rpc::client::Upstream> {
        let tls = self
            .tls()?
            .map(|t| t.client().map_err(|e| anyhow::anyhow!(e)))
            .transpose()?;
        let deadline = Duration::from_millis(self.upstream_deadline_ms);
        rpc::client::Upstream::with_tls(urls, credential, deadline, tls)
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))
    }
}

/// A domain error as a startup/CLI failure (never includes secrets).
pub fn describe(e: domain::Error) -> anyhow::Error {
    match e {
        domain::Error::Validation(f) => anyhow::anyhow!("invalid input: {:?}", f.0),
        other => anyhow::anyhow!("{other}"),
    }
}

/// A secret from `value` (flag or env), else from the file named by `<env>_FILE`.
pub fn secret(value: Option<&str>, env: &str) -> anyhow::Result<Option<SecretString>> {
    read_secret(value, env, false)
}

/// [`secret`]; an empty `<env>_FILE` is `None` when `empty_file_is_unset`, else an error.
fn read_secret(
    value: Option<&str>,
    env: &str,
    empty_file_is_unset: bool,
) -> anyhow::Result<Option<SecretString>> {
    if let Some(v) = value.filter(|v| !v.is_empty()) {
        return Ok(Some(SecretString::from(v.to_owned())));
    }
    let file_var = format!("{env}_FILE");
    match std::env::var_os(&file_var) {
        None => Ok(None),
        Some(path) => {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {file_var} ({})", Path::new(&path).display()))?;
            let text = text.trim_end_matches(['\n', '\r']).to_owned();
            if text.is_empty() {
                if empty_file_is_unset {
                    return Ok(None);
                }
                bail!("{file_var} names an empty file");
            }
            Ok(Some(SecretString::from(text)))
        }
    }
}

/// A secret only configurable through the environment: `<env>` or the file named by `<env>_FILE`.
pub fn secret_env(env: &str) -> anyhow::Result<Option<SecretString>> {
    let value = std::env::var(env).ok().filter(|v| !v.is_empty());
    secret(value.as_deref(), env)
}

/// The OpenID Connect keys of a process that signs ID tokens: `ARCANA_OIDC_SIGNING_KEY[_FILE]`
/// (PEM: the current RSA key, optionally an Ed25519 key, then previous keys to keep publishing),
/// else — the zero-config monolith, `generate_in` — `oidc-signing-key.pem` in the data dir,
/// created (0600, with a warning) on first start.
pub fn oidc_signing_keys(generate_in: Option<&Path>) -> anyhow::Result<Option<crypto::OidcKeys>> {
    let pem = match (secret_env("ARCANA_OIDC_SIGNING_KEY")?, generate_in) {
        (Some(pem), _) => pem,
        (None, Some(dir)) => data_dir_oidc_key(dir)?,
        (None, None) => return Ok(None),
    };
    crypto::OidcKeys::from_pem(pem.expose_secret())
        .map(Some)
        .map_err(describe)
        .context("ARCANA_OIDC_SIGNING_KEY")
}

/// The OpenID Connect keys an edge publishes without signing (the gateway of a layered or
/// microservices deployment): `ARCANA_OIDC_JWKS[_FILE]`, the JWK Set that
/// `arcana oidc-keys jwks` prints for the signing key file.
pub fn oidc_published_keys() -> anyhow::Result<Option<crypto::OidcKeys>> {
    let Some(json) = secret_env("ARCANA_OIDC_JWKS")? else {
        return Ok(None);
    };
    crypto::OidcKeys::from_jwks(json.expose_secret())
        .map(Some)
        .map_err(describe)
        .context("ARCANA_OIDC_JWKS")
}

fn data_dir_oidc_key(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("oidc-signing-key.pem");
    if let Ok(text) = std::fs::read_to_string(&path) {
        return Ok(SecretString::from(text));
    }
    domain::files::create_private_dir(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let pem = crypto::oidc::generate_pem().map_err(describe)?;
    write_private(&path, pem.expose_secret())?;
    tracing::warn!(
        path = %path.display(),
        "generated an OpenID Connect signing key (RSA-2048 + Ed25519) in the data dir; production \
         deployments must supply their own (ARCANA_OIDC_SIGNING_KEY_FILE)"
    );
    Ok(pem)
}

/// The data key of `ARCANA_DATA_KEY_FILE`, else — a process holding the service layer,
/// `generate_in` — `data-key` in the data dir, created (0600, with a warning) on first start;
/// `None` for a process that neither names nor keeps one (an admin command).
pub fn data_key(
    file: Option<&Path>,
    generate_in: Option<&Path>,
) -> anyhow::Result<Option<crypto::mfa::DataKey>> {
    let text = match (file, generate_in) {
        (Some(path), _) => std::fs::read_to_string(path)
            .with_context(|| format!("reading ARCANA_DATA_KEY_FILE ({})", path.display()))?,
        (None, Some(dir)) => {
            let path = dir.join("data-key");
            match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(_) => {
                    domain::files::create_private_dir(dir)
                        .with_context(|| format!("creating {}", dir.display()))?;
                    let text = crypto::mfa::DataKey::generate_file();
                    write_private(&path, text.expose_secret())?;
                    tracing::warn!(
                        path = %path.display(),
                        "generated the data key that encrypts TOTP secrets in the data dir; \
                         production deployments supply their own, shared by every replica \
                         (ARCANA_DATA_KEY_FILE)"
                    );
                    text.expose_secret().to_owned()
                }
            }
        }
        (None, None) => return Ok(None),
    };
    crypto::mfa::DataKey::from_file_text(&text)
        .map(Some)
        .context("ARCANA_DATA_KEY_FILE")
}

/// The HS256 secret kept in the data dir: read it, or create it (0600) on first start.
pub fn data_dir_jwt_secret(data_dir: &Path) -> anyhow::Result<SecretString> {
    let path = data_dir.join("jwt-secret");
    if let Ok(text) = std::fs::read_to_string(&path) {
        let text = text.trim().to_owned();
        if text.len() >= 32 {
            return Ok(SecretString::from(text));
        }
        bail!(
            "{} holds fewer than 32 bytes; delete it to generate a new one",
            path.display()
        );
    }
    domain::files::create_private_dir(data_dir)
        .with_context(|| format!("creating {}", data_dir.display()))?;
    let mut bytes = [0u8; 48];
    rand::Rng::fill(
        &mut rand::TryRngCore::unwrap_err(rand::rngs::OsRng),
        &mut bytes[..],
    );
    let secret = hex::encode(bytes);
    write_private(&path, &secret)?;
    tracing::warn!(
        path = %path.display(),
        "generated a JWT signing secret in the data dir; production deployments must supply their own \
         (ARCANA_JWT_SECRET[_FILE] or ARCANA_JWT_PRIVATE_KEY[_FILE])"
    );
    Ok(SecretString::from(secret))
}

fn write_private(path: &Path, content: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.write_all(content.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_prefers_value_then_file() {
        let v = secret(Some("x"), "ARCANA_TEST_NOPE").unwrap().unwrap();
        assert_eq!(v.expose_secret(), "x");
        assert!(secret(None, "ARCANA_TEST_NOPE").unwrap().is_none());
    }

    #[test]
    fn cors_origins_are_checked() {
        let v = |xs: &[&str]| xs.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        assert_eq!(cors_origins(&v(&["*"])).unwrap(), v(&["*"]));
        assert_eq!(
            cors_origins(&v(&["https://a.example", " http://b.example:8080 "])).unwrap(),
            v(&["https://a.example", "http://b.example:8080"])
        );
        for bad in [
            &["*", "https://a.example"][..],
            &["a.example"],
            &["https://"],
            &["https://a.example/path"],
            &["ftp://a"],
        ] {
            assert!(cors_origins(&v(bad)).is_err(), "{bad:?}");
        }
    }

    /// A command line flattening `OpsArgs`, as every binary's does.
    #[derive(Debug, clap::Parser)]
    struct OpsCli {
        #[command(flatten)]
        ops: OpsArgs,
    }

    #[test]
    fn every_binary_has_its_own_default_ops_address() {
        use clap::{CommandFactory, FromArgMatches};
        // The names Cargo builds the binaries under (their CARGO_BIN_NAME).
        let bins: Vec<&str> = include_str!("../Cargo.toml")
            .split("[[bin]]")
            .skip(1)
            .filter_map(|b| {
                b.lines()
                    .find_map(|l| l.trim().strip_prefix("name = \"")?.strip_suffix('"'))
            })
            .collect();
        assert_eq!(bins.len(), 6, "{bins:?}");
        let mut ports = Vec::new();
        for bin in bins {
            let want = healthcheck::default_ops_addr(bin).unwrap();
            let command = with_binary_defaults(OpsCli::command(), bin);
            // --help tells the truth.
            let help = command.clone().render_long_help().to_string();
            assert!(
                help.contains(&format!("[default: {want}]")),
                "{bin}: {help}"
            );
            let matches = command.try_get_matches_from([bin]).unwrap();
            let addr = OpsCli::from_arg_matches(&matches).unwrap().ops.metrics_addr;
            assert_eq!(addr.to_string(), want, "{bin}");
            assert!(addr.ip().is_loopback(), "{bin}");
            ports.push(addr.port());
        }
        ports.sort_unstable();
        ports.dedup();
        assert_eq!(ports.len(), 6, "two binaries share a default ops port");
        // A binary without a default must be given the address.
        let unknown = with_binary_defaults(OpsCli::command(), "arcana-unknown")
            .try_get_matches_from(["arcana-unknown"])
            .unwrap();
        assert!(OpsCli::from_arg_matches(&unknown).is_err());
    }

    #[test]
    fn generated_secret_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let a = data_dir_jwt_secret(dir.path()).unwrap();
        let b = data_dir_jwt_secret(dir.path()).unwrap();
        assert_eq!(a.expose_secret(), b.expose_secret());
        assert!(a.expose_secret().len() >= 64);
    }
}
