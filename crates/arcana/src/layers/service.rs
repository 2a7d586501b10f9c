//! The service layer: the business rules over the repository ports, and its internal gRPC port.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rpc::credential::InternalCredential;
use secrecy::ExposeSecret;

use crate::config::{
    AuthArgs, BootstrapArgs, JwtArgs, MailArgs, RedisArgs, ServiceArgs, WEAK_ITERATIONS, describe,
};
use crate::runtime::{Shutdown, bind};

/// Which bounded contexts a service-layer process holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Contexts {
    /// `arcana-auth-service`: registration, login, tokens, sessions.
    Auth,
    /// `arcana-user-service`: user administration.
    Users,
    /// `arcana-service` (and the monolith): both.
    Both,
}

impl Contexts {
    pub fn auth(self) -> bool {
        matches!(self, Contexts::Auth | Contexts::Both)
    }
    pub fn users(self) -> bool {
        matches!(self, Contexts::Users | Contexts::Both)
    }
}

/// Repositories reached over gRPC (service layers outside the monolith).
pub fn remote_repositories(upstream: rpc::client::Upstream) -> service::Repositories {
    service::Repositories::from_one(rpc::repository::RepositoryClient::new(upstream))
}

/// The service layer's settings from its flags.
pub fn config(
    auth: &AuthArgs,
    jwt: &JwtArgs,
    mail: &MailArgs,
    redis: &RedisArgs,
) -> anyhow::Result<service::ServiceConfig> {
    if auth.password_iterations < WEAK_ITERATIONS {
        tracing::warn!(
            iterations = auth.password_iterations,
            recommended = 600_000,
            "ARCANA_PASSWORD_ITERATIONS is below {WEAK_ITERATIONS}: password hashes are WEAK \
             and cheap to brute-force; use this only for tests"
        );
    }
    let shared_user_cache = match redis.redis_url()? {
        Some(url) if redis.redis_user_cache_ttl > 0 => {
            tracing::info!(
                ttl_s = redis.redis_user_cache_ttl,
                "user records cached in Redis"
            );
            Some(service::shared_cache::SharedCacheConfig {
                url: url.expose_secret().to_owned(),
                prefix: redis.redis_prefix.clone(),
                ttl: Duration::from_secs(redis.redis_user_cache_ttl),
            })
        }
        _ => None,
    };
    Ok(service::ServiceConfig {
        password_iterations: auth.password_iterations,
        access_ttl: Duration::from_secs(auth.access_ttl),
        refresh_ttl: Duration::from_secs(auth.refresh_ttl),
        refresh_reuse_grace: Duration::from_secs(auth.refresh_reuse_grace),
        user_cache_size: auth.user_cache_size,
        hash_workers: auth
            .hash_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        issuer: jwt.jwt_issuer.clone(),
        audience: jwt.jwt_audience.clone(),
        recovery: service::recovery::RecoveryConfig {
            product_name: mail.product_name.clone(),
            public_url: public_url(mail)?,
            reset_ttl: Duration::from_secs(mail.reset_token_ttl),
            verify_ttl: Duration::from_secs(mail.verify_token_ttl),
            require_verified_email: mail.require_verified_email,
            ..service::recovery::RecoveryConfig::default()
        },
        shared_user_cache,
        max_sessions_per_user: auth.max_sessions_per_user,
        ..service::ServiceConfig::default()
    })
}

/// The base of the links in mails: `ARCANA_PUBLIC_URL`, required when mails really go out (SMTP).
fn public_url(mail: &MailArgs) -> anyhow::Result<String> {
    match (&mail.public_url, mail.smtp_url()?) {
        (Some(url), _) => Ok(url.clone()),
        (None, None) => Ok("http://localhost:8080".into()),
        (None, Some(_)) => anyhow::bail!(
            "ARCANA_PUBLIC_URL is required with ARCANA_SMTP_URL: the links in the mails point at it \
             (e.g. https://id.example.com), and a default would mail links to localhost"
        ),
    }
}

pub fn build(
    repos: service::Repositories,
    args: &ServiceArgs,
    signing: Option<&crypto::JwtKeys>,
    oidc: Option<Arc<crypto::OidcKeys>>,
    data_dir: Option<&std::path::Path>,
) -> anyhow::Result<service::Services> {
    let mut config = config(&args.auth, &args.jwt, &args.mail, &args.redis)?;
    config.oidc_keys = service::OidcSigning(oidc);
    let data_key = crate::config::data_key(args.auth.data_key_file.as_deref(), data_dir)?;
    config.mfa = service::MfaConfig {
        data_key: service::DataKeyHandle(data_key.map(Arc::new)),
        require_for_admins: args.auth.require_mfa_for_admins,
    };
    config.webhooks = args.webhooks.config();
    service::build(repos, config, signing).map_err(describe)
}

/// The service layer as a process holds it (the monolith, the service binaries): built over
/// `repos` and its background work started: housekeeping (one replica at a time), the mail
/// worker (every process holding the layer delivers the outbox; leases keep replicas, and the
/// auth and user services, from sending a mail twice), the bootstrap admin. `signing`: the key
/// tokens are signed with, only where they are issued.
pub struct ServiceLayer {
    pub services: service::Services,
    /// The layer's ops gauges (hash queue, mail outbox), for the ops listener.
    pub gauges: Vec<rpc::ops::GaugeFn>,
}

impl ServiceLayer {
    /// `oidc`: the keys ID tokens are signed with (the auth context).
    pub fn start(
        repos: service::Repositories,
        args: &ServiceArgs,
        signing: Option<&crypto::JwtKeys>,
        oidc: Option<Arc<crypto::OidcKeys>>,
        data_dir: &std::path::Path,
    ) -> anyhow::Result<Self> {
        let recovery = repos.recovery.clone();
        start_maintenance(repos.maintenance.clone(), &args.auth);
        let services = build(repos, args, signing, oidc, Some(data_dir))?;
        bootstrap_admin(services.users.clone(), &args.bootstrap)?;
        let mail = start_mail_worker(&services, recovery, &args.mail, data_dir.join("mail"))?;
        start_webhook_dispatcher(&services);
        let gauges = ops_gauges(&services, mail);
        Ok(Self { services, gauges })
    }
}

/// Start this process's mail delivery worker over `recovery` (see `service::mail`): SMTP when
/// configured, else `.eml` files under `mail_dir` (or `default_dir`, `<data-dir>/mail`) with one
/// warning; that directory is created at start, readable by this user only (a directory that
/// cannot be created is warned about: the worker retries each mail until it can write it).
pub fn start_mail_worker(
    services: &service::Services,
    recovery: Arc<dyn domain::RecoveryRepository>,
    mail: &MailArgs,
    default_dir: std::path::PathBuf,
) -> anyhow::Result<Arc<service::mail::DeliveryStats>> {
    use service::mail::{DeliveryWorker, Mailbox, Transport, WorkerConfig};
    let from: Mailbox = mail
        .mail_from
        .parse()
        .map_err(|e| anyhow::anyhow!("ARCANA_MAIL_FROM {:?}: {e}", mail.mail_from))?;
    let transport = match mail.smtp_url()? {
        Some(url) => Transport::smtp(url.expose_secret())
            .map_err(describe)
            .context("ARCANA_SMTP_URL")?,
        None => {
            let dir = mail.mail_dir.clone().unwrap_or(default_dir);
            tracing::warn!(
                dir = %dir.display(),
                "ARCANA_SMTP_URL is not set: password-reset and verification mails are written \
                 as .eml files instead of being sent"
            );
            if let Err(e) = domain::files::create_private_dir(&dir) {
                tracing::warn!(
                    dir = %dir.display(),
                    error = %e,
                    "cannot create the mail directory: mails stay queued until it can be written \
                     (set ARCANA_MAIL_DIR or ARCANA_DATA_DIR to a writable directory)"
                );
            }
            domain::files::warn_if_shared(&dir, "the mail directory");
            Transport::Files(dir)
        }
    };
    tracing::info!(transport = %transport.describe(), "mail delivery worker started");
    let config = WorkerConfig {
        retry_base: Duration::from_millis(mail.mail_retry_base_ms),
        retention: Duration::from_secs(mail.outbox_retention_days * 24 * 3600),
        ..WorkerConfig::new(from)
    };
    let worker = DeliveryWorker::new(
        recovery,
        transport,
        config,
        Arc::new(service::SystemClock),
        services.mail_queued.clone(),
    );
    let stats = worker.stats();
    worker.spawn();
    Ok(stats)
}

/// Start this process's webhook dispatcher (see `service::webhooks`): only where the data key
/// is, since it opens the endpoints' signing secrets.
pub fn start_webhook_dispatcher(services: &service::Services) {
    if services.webhooks.can_sign() {
        services.webhooks.spawn_dispatcher();
        tracing::info!("webhook dispatcher started");
    } else {
        tracing::warn!(
            "no data key (ARCANA_DATA_KEY_FILE) in this process: it does not deliver webhooks"
        );
    }
}

/// Create the bootstrap admin if configured and no admin exists. Retries in the background while
/// the layer below is unreachable, so start order does not matter.
pub fn bootstrap_admin(users: Arc<service::Users>, args: &BootstrapArgs) -> anyhow::Result<()> {
    let Some((username, email, password)) = args.admin()? else {
        return Ok(());
    };
    tokio::spawn(async move {
        for attempt in 0u32.. {
            match users
                .bootstrap_admin(&username, &email, password.expose_secret())
                .await
            {
                Ok(Some(user)) => {
                    tracing::info!(username = %user.username, "bootstrap admin created");
                    return;
                }
                Ok(None) => return,
                Err(domain::Error::Unavailable) if attempt < 600 => {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
                // Another replica won the race, or the input is invalid: nothing more to do here.
                Err(e) => {
                    tracing::warn!(error = %e, "bootstrap admin not created");
                    return;
                }
            }
        }
    });
    Ok(())
}

/// Checks a forwarded access token's signature and claims with `keys` (the verifying half) for
/// the configured issuer and audience.
pub fn token_check(keys: &crypto::JwtKeys, jwt: &JwtArgs) -> rpc::service::VerifyToken {
    let verifier = keys.verifier(&jwt.jwt_issuer, &jwt.jwt_audience);
    Arc::new(move |token: &str| verifier.verify(token))
}

/// The internal gRPC port (:50051): the contracts of `contexts` (`arcana.v1.AuthService` +
/// session checks, `arcana.v1.UserService`), each behind `credential`, acting only for callers
/// whose forwarded access token passes `verify` and whose session is live.
pub async fn serve(
    addr: SocketAddr,
    services: &service::Services,
    contexts: Contexts,
    verify: rpc::service::VerifyToken,
    credential: InternalCredential,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let auth: Option<Arc<dyn domain::AuthService>> = contexts
        .auth()
        .then(|| services.auth.clone() as Arc<dyn domain::AuthService>);
    let auth_context = contexts.auth().then(|| rpc::service::AuthContext {
        auth: services.auth.clone(),
        clients: services.oidc_clients.clone(),
        provider: services.oidc.clone(),
    });
    let users: Option<Arc<dyn domain::UserService>> = contexts
        .users()
        .then(|| services.users.clone() as Arc<dyn domain::UserService>);
    let user_context = users.clone().map(|users| rpc::service::UserContext {
        users,
        webhooks: services.webhooks.clone(),
    });
    // Session liveness is asked of this process's own auth context (the user context's
    // processes build one too, over the same repository).
    let callers = rpc::service::VerifiedPrincipal::new(verify, services.auth.clone());
    let (router, reporter) =
        rpc::service::internal_router(auth_context, user_context, callers, credential);
    tokio::spawn(rpc::service::track_readiness(
        reporter,
        auth,
        users,
        Duration::from_secs(2),
    ));
    let listener = bind(addr, "internal gRPC (service)").await?;
    router
        .serve_tls(listener, tls, shutdown.wait())
        .await
        .context("serving gRPC")
}

/// The service layer's gauges, refreshed before each scrape: the hash queue and the mail outbox.
pub fn ops_gauges(
    services: &service::Services,
    mail: Arc<service::mail::DeliveryStats>,
) -> Vec<rpc::ops::GaugeFn> {
    use std::sync::atomic::Ordering::Relaxed;
    let hasher = services.hasher.clone();
    vec![Arc::new(move || {
        metrics::gauge!("password_hash_queue_depth").set(hasher.queue_depth() as f64);
        metrics::gauge!("mail_outbox_pending").set(mail.pending.load(Relaxed) as f64);
        metrics::gauge!("mail_outbox_given_up").set(mail.given_up.load(Relaxed) as f64);
        metrics::counter!("mail_sent_total").absolute(mail.sent_total.load(Relaxed));
        metrics::counter!("mail_delivery_failures_total")
            .absolute(mail.failures_total.load(Relaxed));
    })]
}

/// Ready when the contexts this process holds answer (and through them the repository).
pub fn ops_ready(services: &service::Services, contexts: Contexts) -> rpc::ops::ReadyFn {
    let (auth, users) = (services.auth.clone(), services.users.clone());
    Arc::new(move || {
        let (auth, users) = (auth.clone(), users.clone());
        Box::pin(async move {
            let a = !contexts.auth() || domain::AuthService::ready(auth.as_ref()).await.is_ok();
            let u = !contexts.users() || domain::UserService::ready(users.as_ref()).await.is_ok();
            a && u
        })
    })
}

/// Start this process's housekeeping (see `service::maintenance`): one replica at a time purges
/// old sessions and audit events.
pub fn start_maintenance(maintenance: Arc<dyn domain::MaintenanceRepository>, auth: &AuthArgs) {
    let config = service::maintenance::MaintenanceConfig {
        session_retention: Duration::from_secs(auth.session_retention_days * 24 * 3600),
        audit_retention: Duration::from_secs(auth.audit_retention_days * 24 * 3600),
        ..service::maintenance::MaintenanceConfig::default()
    };
    service::maintenance::Maintainer::new(maintenance, Arc::new(service::SystemClock), config)
        .spawn();
}
