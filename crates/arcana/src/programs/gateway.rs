//! `arcana-gateway`: the public edge alone (REST :8080, gRPC :9090). Verifies tokens locally and
//! reaches the service layer over gRPC: one upstream list (layered) or separate auth and user
//! upstreams (microservices).

use std::sync::Arc;

use crate::config::{EdgeArgs, InternalArgs, JwtArgs, OpsArgs, ProcessArgs, RedisArgs};
use crate::layers;
use crate::runtime::{self, Shutdown};
use anyhow::bail;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "arcana-gateway",
    version,
    about = "arcana gateway (REST + public gRPC)"
)]
struct Cli {
    #[command(flatten)]
    log: ProcessArgs,
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    redis: RedisArgs,
    #[command(flatten)]
    jwt: JwtArgs,
    #[command(flatten)]
    internal: InternalArgs,
    #[command(flatten)]
    ops: OpsArgs,
    /// Layered: service layer endpoints (comma-separated).
    #[arg(long, env = "ARCANA_SERVICE_URL")]
    service_url: Option<String>,
    /// Microservices: auth service endpoints (comma-separated).
    #[arg(long, env = "ARCANA_AUTH_SERVICE_URL")]
    auth_service_url: Option<String>,
    /// Microservices: user service endpoints (comma-separated).
    #[arg(long, env = "ARCANA_USER_SERVICE_URL")]
    user_service_url: Option<String>,
}

#[tokio::main]
pub async fn main() -> std::process::ExitCode {
    let cli: Cli = crate::config::parse_args("arcana-gateway");
    runtime::init_logging(cli.log.log_format);
    runtime::exit(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = layers::gateway::config(&cli.edge)?;
    config.oidc_keys = crate::config::oidc_published_keys()?.map(Arc::new);
    let shutdown = Shutdown::on_signals(&cli.log);
    let (auth_url, user_url) = match (
        &cli.service_url,
        &cli.auth_service_url,
        &cli.user_service_url,
    ) {
        (_, Some(a), Some(u)) => (a.clone(), u.clone()),
        (Some(s), None, None) => (s.clone(), s.clone()),
        _ => bail!(
            "set ARCANA_SERVICE_URL (layered) or both ARCANA_AUTH_SERVICE_URL and ARCANA_USER_SERVICE_URL (microservices)"
        ),
    };
    let credential = cli.internal.credential()?;
    let auth_upstream = cli
        .internal
        .upstream(&auth_url, "auth upstream", credential.clone())?;
    let user_upstream = cli
        .internal
        .upstream(&user_url, "user upstream", credential)?;
    // The OpenID Connect clients live with the auth context.
    let ports = gateway::Ports {
        auth: Arc::new(rpc::service::AuthClient::new(auth_upstream.clone())),
        users: Arc::new(rpc::service::UserClient::new(user_upstream.clone())),
        webhooks: Arc::new(rpc::service::WebhookClient::new(user_upstream)),
        oidc_clients: Arc::new(rpc::service::OidcClientClient::new(auth_upstream.clone())),
        oidc: Some(Arc::new(rpc::service::OidcProviderClient::new(
            auth_upstream,
        ))),
    };
    let keys = cli.jwt.keys(None)?;
    layers::gateway::serve(
        &cli.edge,
        &cli.redis,
        &cli.ops,
        config,
        ports,
        layers::gateway::verifier(&keys, &cli.jwt),
        vec![],
        "arcana-gateway",
        shutdown,
    )
    .await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
