//! Builds and serves each layer. Which functions exist depends on the layers this binary links
//! (Cargo features); the binaries only choose in-process or gRPC adapters and call these.
#[cfg(any(
    feature = "gateway",
    feature = "auth",
    feature = "users",
    feature = "repository"
))]
use std::net::SocketAddr;
#[cfg(any(feature = "gateway", feature = "auth", feature = "users"))]
use std::sync::Arc;
#[cfg(any(feature = "auth", feature = "users", feature = "repository"))]
use std::time::Duration;

#[cfg(any(
    feature = "gateway",
    feature = "auth",
    feature = "users",
    feature = "repository"
))]
use anyhow::Context;

#[cfg(any(feature = "auth", feature = "users", feature = "repository"))]
use crate::config::describe;
#[cfg(any(
    feature = "gateway",
    feature = "auth",
    feature = "users",
    feature = "repository"
))]
use crate::runtime::Shutdown;

#[cfg(any(
    feature = "gateway",
    feature = "auth",
    feature = "users",
    feature = "repository"
))]
async fn bind(addr: SocketAddr, what: &str) -> anyhow::Result<tokio::net::TcpListener> {
    let l = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding {what} on {addr}"))?;
    tracing::info!(addr = %l.local_addr()?, "{what} listening");
    Ok(l)
}

#[cfg(feature = "repository")]
pub async fn open_database(args: &crate::config::DbArgs) -> anyhow::Result<repository::Database> {
    let db = repository::Database::connect(&args.database_url()?, args.db_pool_size)
        .map_err(describe)
        .context("opening the database")?;
    db.run_migrations()
        .await
        .map_err(describe)
        .context("running migrations")?;
    tracing::info!(backend = %db.backend(), "database ready");
    Ok(db)
}

/// The repository layer's internal gRPC port: `RepositoryService` behind the credential.
#[cfg(feature = "repository")]
pub async fn serve_repository(
    db: repository::Database,
    addr: SocketAddr,
    credential: proto::credential::InternalCredential,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    use proto::internal::repository_service_server::RepositoryServiceServer;
    use tonic::server::NamedService;
    let repo = Arc::new(db.clone());
    let (router, reporter) = proto::server::GrpcRouter::new()
        .add(repository::grpc::server(
            repo.clone(),
            repo.clone(),
            repo,
            credential,
        ))
        .with_health_and_reflection();
    tokio::spawn(proto::server::track_health(
        reporter,
        vec![<RepositoryServiceServer<repository::grpc::RepositoryGrpc> as NamedService>::NAME],
        Duration::from_secs(2),
        move || {
            let db = db.clone();
            async move { domain::UserRepository::ping(&db).await }
        },
    ));
    let listener = bind(addr, "internal gRPC (repository)").await?;
    router
        .serve_tls(listener, tls, shutdown.wait())
        .await
        .context("serving gRPC")
}

/// Repositories reached over gRPC (service layers outside the monolith).
#[cfg(any(feature = "auth", feature = "users"))]
pub fn remote_repositories(upstream: proto::client::Upstream) -> service::Repositories {
    service::Repositories::from_one(repository::grpc::RepositoryClient::new(upstream))
}

#[cfg(any(feature = "auth", feature = "users"))]
pub fn build_services(
    repos: service::Repositories,
    args: &crate::config::AuthArgs,
    keys: &crypto::JwtKeys,
) -> anyhow::Result<service::Services> {
    service::build(repos, args.service_config(), keys).map_err(describe)
}

/// Create the `ARCANA_BOOTSTRAP_ADMIN_*` admin if configured and no admin exists. Retries in the
/// background while the layer below is unreachable, so start order does not matter.
#[cfg(any(feature = "auth", feature = "users"))]
pub fn bootstrap_admin(users: Arc<service::Users>) -> anyhow::Result<()> {
    use secrecy::ExposeSecret;
    let username = std::env::var("ARCANA_BOOTSTRAP_ADMIN_USERNAME")
        .ok()
        .filter(|s| !s.is_empty());
    let email = std::env::var("ARCANA_BOOTSTRAP_ADMIN_EMAIL")
        .ok()
        .filter(|s| !s.is_empty());
    let password = crate::config::secret_env("ARCANA_BOOTSTRAP_ADMIN_PASSWORD")?;
    let (Some(username), Some(email), Some(password)) = (username, email, password) else {
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

/// Gauges for `/metrics` in a process that holds the database and the hasher.
#[cfg(all(feature = "gateway", feature = "repository", feature = "service"))]
pub fn monolith_gauges(
    db: repository::Database,
    hasher: Arc<service::Hasher>,
) -> Vec<gateway::metrics::GaugeFn> {
    vec![Arc::new(move || {
        let (connections, idle) = db.pool_state();
        gateway::metrics::set_gauge("db_pool_connections", f64::from(connections));
        gateway::metrics::set_gauge("db_pool_idle_connections", f64::from(idle));
        gateway::metrics::set_gauge("password_hash_queue_depth", hasher.queue_depth() as f64);
    })]
}

/// A service layer's internal gRPC port (:50051): the public contracts `arcana.v1.AuthService`
/// and/or `arcana.v1.UserService` (+ session checks), each behind the internal credential.
#[cfg(any(feature = "auth", feature = "users"))]
pub async fn serve_service_layer(
    addr: SocketAddr,
    services: &service::Services,
    serve_auth: bool,
    serve_users: bool,
    credential: proto::credential::InternalCredential,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let auth: Option<Arc<dyn domain::AuthService>> =
        serve_auth.then(|| services.auth.clone() as Arc<dyn domain::AuthService>);
    let users: Option<Arc<dyn domain::UserService>> =
        serve_users.then(|| services.users.clone() as Arc<dyn domain::UserService>);
    let (router, reporter) =
        service::grpc::internal_router(auth.clone(), users.clone(), credential);
    tokio::spawn(service::grpc::track_readiness(
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

/// The public edge: REST on `http_addr` and public gRPC on `grpc_addr`, until shutdown.
#[cfg(feature = "gateway")]
pub async fn serve_edge(
    args: &crate::config::EdgeArgs,
    config: gateway::GatewayConfig,
    auth: Arc<dyn domain::AuthService>,
    users: Arc<dyn domain::UserService>,
    verifier: crypto::TokenVerifier,
    gauges: Vec<gateway::metrics::GaugeFn>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let state = gateway::AppState::new(auth, users, Arc::new(verifier), config, gauges);
    let http = bind(args.http_addr, "REST").await?;
    let grpc = bind(args.grpc_addr, "public gRPC").await?;
    let rest = gateway::serve(
        http,
        gateway::router(state.clone()),
        &state.config,
        shutdown.wait(),
    );
    let public = gateway::grpc::serve(grpc, state.clone(), shutdown.wait());
    let (r, g) = tokio::join!(rest, public);
    r.context("serving REST")?;
    g.context("serving public gRPC")?;
    Ok(())
}

/// Default issuer/audience of access tokens.
#[cfg(any(feature = "gateway", feature = "auth", feature = "users"))]
pub fn verifier(keys: &crypto::JwtKeys) -> crypto::TokenVerifier {
    let d = service::ServiceConfig::default();
    keys.verifier(&d.issuer, &d.audience)
}

#[cfg(any(feature = "auth", feature = "users"))]
#[derive(Debug, clap::Parser)]
#[command(version, about = "arcana service layer (internal gRPC)")]
struct ServiceCli {
    #[command(flatten)]
    log: crate::config::LogArgs,
    #[command(flatten)]
    jwt: crate::config::JwtArgs,
    #[command(flatten)]
    auth: crate::config::AuthArgs,
    #[command(flatten)]
    internal: crate::config::InternalArgs,
    #[arg(long, env = "ARCANA_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    grpc_addr: SocketAddr,
    /// Repository layer endpoints (comma-separated).
    #[arg(long, env = "ARCANA_REPOSITORY_URL")]
    repository_url: String,
}

/// `main` of the service-layer binaries: `arcana-service` (both contexts), `arcana-auth-service`
/// and `arcana-user-service` (one each).
#[cfg(any(feature = "auth", feature = "users"))]
pub fn service_main(
    name: &'static str,
    serve_auth: bool,
    serve_users: bool,
) -> std::process::ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = ServiceCli::command().name(name).get_matches();
    let cli = match ServiceCli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    crate::runtime::init_logging(cli.log.log_format);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => return crate::runtime::exit(Err(e.into())),
    };
    crate::runtime::exit(rt.block_on(async move {
        let shutdown = Shutdown::on_signals();
        let credential = cli.internal.credential()?;
        let repos = remote_repositories(cli.internal.upstream(
            &cli.repository_url,
            "ARCANA_REPOSITORY_URL",
            cli.internal.repository_credential()?,
        )?);
        // Only the auth context signs tokens; the user context never issues one.
        let keys = if serve_auth {
            cli.jwt.keys(None)?
        } else {
            crypto::JwtKeys::hs256(crypto::new_refresh_token().as_bytes()).map_err(describe)?
        };
        let services = build_services(repos, &cli.auth, &keys)?;
        bootstrap_admin(services.users.clone())?;
        serve_service_layer(
            cli.grpc_addr,
            &services,
            serve_auth,
            serve_users,
            credential,
            cli.internal.server_tls()?,
            shutdown,
        )
        .await?;
        tracing::info!("shut down cleanly");
        Ok(())
    }))
}
