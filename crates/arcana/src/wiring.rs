//! Composition: builds each layer from configuration and connects them with in-process adapters.
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow};
use secrecy::ExposeSecret;
use tracing_subscriber::EnvFilter;

use crate::config::{self, Common, LogFormat, ServeArgs};

pub fn init_logging(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}

/// A domain error as a startup/CLI failure (never includes secrets).
pub fn describe(e: domain::Error) -> anyhow::Error {
    match e {
        domain::Error::Validation(f) => anyhow!("invalid input: {:?}", f.0),
        other => anyhow!("{other}"),
    }
}

pub async fn open_database(common: &Common) -> anyhow::Result<repository::Database> {
    let url = common.database_url();
    let db = repository::Database::connect(&url, common.db_pool_size)
        .map_err(describe)
        .context("opening the database")?;
    db.run_migrations()
        .await
        .map_err(describe)
        .context("running migrations")?;
    tracing::info!(backend = ?db.backend(), "database ready");
    Ok(db)
}

/// The signing/verification keys: EdDSA when a private key is configured, else the HS256 secret
/// (flag/env/file), else — monolith only — a secret generated and kept in the data dir.
pub fn jwt_keys(
    common: &Common,
    args: &ServeArgs,
    may_generate: bool,
) -> anyhow::Result<crypto::JwtKeys> {
    let private = config::secret(args.jwt_private_key.as_deref(), "ARCANA_JWT_PRIVATE_KEY")?;
    let publics = config::secret(args.jwt_public_keys.as_deref(), "ARCANA_JWT_PUBLIC_KEYS")?;
    let public_pems: Vec<String> = publics
        .as_ref()
        .map(|p| config::pem_blocks(p.expose_secret()))
        .unwrap_or_default();
    if private.is_some() || !public_pems.is_empty() {
        let refs: Vec<&str> = public_pems.iter().map(String::as_str).collect();
        return crypto::JwtKeys::ed25519(private.as_ref().map(|p| p.expose_secret()), &refs)
            .map_err(describe)
            .context("loading the Ed25519 keys");
    }
    let secret = match config::secret(args.jwt_secret.as_deref(), "ARCANA_JWT_SECRET")? {
        Some(s) => s,
        None if may_generate => config::data_dir_jwt_secret(&common.data_dir)?,
        None => {
            anyhow::bail!("ARCANA_JWT_SECRET (or _FILE, or ARCANA_JWT_PRIVATE_KEY) is required")
        }
    };
    crypto::JwtKeys::hs256(secret.expose_secret().as_bytes())
        .map_err(describe)
        .context("ARCANA_JWT_SECRET")
}

pub async fn service_layer(
    common: &Common,
    args: &ServeArgs,
    db: repository::Database,
    keys: &crypto::JwtKeys,
) -> anyhow::Result<service::Services> {
    let cfg = service::ServiceConfig {
        password_iterations: common.password_iterations,
        access_ttl: Duration::from_secs(args.access_ttl),
        refresh_ttl: Duration::from_secs(args.refresh_ttl),
        hash_workers: args
            .hash_workers
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        ..service::ServiceConfig::default()
    };
    service::build(service::Repositories::from_one(db), cfg, keys).map_err(describe)
}

/// Create the bootstrap admin from `ARCANA_BOOTSTRAP_ADMIN_*` when set and no admin exists.
async fn bootstrap_admin(users: &service::Users) -> anyhow::Result<()> {
    let username = std::env::var("ARCANA_BOOTSTRAP_ADMIN_USERNAME")
        .ok()
        .filter(|s| !s.is_empty());
    let email = std::env::var("ARCANA_BOOTSTRAP_ADMIN_EMAIL")
        .ok()
        .filter(|s| !s.is_empty());
    let password = config::secret_env("ARCANA_BOOTSTRAP_ADMIN_PASSWORD")?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
        return Ok(());
    };
    if let Some(user) = users
        .bootstrap_admin(&username, &email, password.expose_secret())
        .await
        .map_err(describe)
        .context("creating the bootstrap admin")?
    {
        tracing::info!(username = %user.username, "bootstrap admin created");
    }
    Ok(())
}

pub async fn serve_monolith(common: Common, args: ServeArgs) -> anyhow::Result<()> {
    let db = open_database(&common).await?;
    let keys = jwt_keys(&common, &args, true)?;
    let layers = service_layer(&common, &args, db.clone(), &keys).await?;
    bootstrap_admin(&layers.users).await?;
    let defaults = service::ServiceConfig::default();
    let verifier = Arc::new(keys.verifier(&defaults.issuer, &defaults.audience));
    let pool = db.clone();
    let hasher = layers.hasher.clone();
    let gauges: Vec<gateway::metrics::GaugeFn> = vec![Arc::new(move || {
        let (connections, idle) = pool.pool_state();
        metrics_gauge("db_pool_connections", f64::from(connections));
        metrics_gauge("db_pool_idle_connections", f64::from(idle));
        metrics_gauge("password_hash_queue_depth", hasher.queue_depth() as f64);
    })];
    let state = gateway::AppState::new(
        layers.auth.clone(),
        layers.users.clone(),
        verifier,
        gateway::GatewayConfig {
            cors_origins: args.cors_origins.clone(),
            auth_rate_limit: args.auth_rate_limit,
            trusted_proxies: args.trusted_proxies.clone(),
            request_timeout: Duration::from_secs(args.request_timeout),
        },
        gauges,
    );
    let app = gateway::router(state);
    let listener = tokio::net::TcpListener::bind(args.http_addr)
        .await
        .with_context(|| format!("binding {}", args.http_addr))?;
    tracing::info!(addr = %listener.local_addr()?, "REST listening");
    gateway::serve(listener, app, shutdown_signal())
        .await
        .context("serving HTTP")?;
    tracing::info!("shut down cleanly");
    Ok(())
}

fn metrics_gauge(name: &'static str, value: f64) {
    gateway::metrics::set_gauge(name, value);
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
