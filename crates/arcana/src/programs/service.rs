//! The service-layer binaries: `arcana-service` (auth + users), `arcana-auth-service` (auth
//! only) and `arcana-user-service` (users only) are this one program. Each serves its part of
//! `arcana.v1` on :50051 to gateways holding the internal credential and reaches the repository
//! layer over gRPC with the repository credential. Which contexts a process holds is decided by
//! the binary it runs as (no flags).
use std::net::SocketAddr;

use crate::config::{DataArgs, InternalArgs, OpsArgs, ProcessArgs, ServiceArgs, parse_args};
use crate::layers::service::{self, Contexts, ServiceLayer};
use crate::runtime::{self, Shutdown};
use clap::Parser;

/// The binary that holds `contexts`.
fn binary(contexts: Contexts) -> &'static str {
    match contexts {
        Contexts::Auth => "arcana-auth-service",
        Contexts::Users => "arcana-user-service",
        Contexts::Both => "arcana-service",
    }
}

#[derive(Debug, Parser)]
#[command(version, about = "arcana service layer (internal gRPC)")]
struct Cli {
    #[command(flatten)]
    log: ProcessArgs,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    internal: InternalArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(flatten)]
    data: DataArgs,
    #[arg(long, env = "ARCANA_GRPC_ADDR", default_value = "0.0.0.0:50051")]
    grpc_addr: SocketAddr,
    /// Repository layer endpoints (comma-separated).
    #[arg(long, env = "ARCANA_REPOSITORY_URL")]
    repository_url: String,
}

/// The `main` of the binary that holds `contexts` (`#[tokio::main]`, which takes no arguments).
pub fn main(contexts: Contexts) -> std::process::ExitCode {
    let tokio = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(tokio) => tokio,
        Err(e) => {
            eprintln!("{}: cannot start the Tokio runtime: {e}", binary(contexts));
            return std::process::ExitCode::FAILURE;
        }
    };
    tokio.block_on(async {
        let cli: Cli = parse_args(binary(contexts));
        runtime::init_logging(cli.log.log_format);
        runtime::exit(run(cli, contexts).await)
    })
}

async fn run(cli: Cli, contexts: Contexts) -> anyhow::Result<()> {
    let shutdown = Shutdown::on_signals(&cli.log);
    let credential = cli.internal.credential()?;
    let repos = service::remote_repositories(cli.internal.upstream(
        &cli.repository_url,
        "ARCANA_REPOSITORY_URL",
        cli.internal.repository_credential()?,
    )?);
    // Every context verifies the access token its callers forward (the user context needs only
    // the public keys); only the auth context signs tokens, the user context never issues one.
    let jwt_keys = cli.service.jwt.keys(None)?;
    let verify = service::token_check(&jwt_keys, &cli.service.jwt);
    let signing = contexts.auth().then_some(&jwt_keys);
    // The auth context signs ID tokens with the key file it is given (never a generated one:
    // every replica must sign with the keys the gateway publishes); the user context verifies
    // service accounts' access tokens with the published half (ARCANA_OIDC_JWKS) alone.
    let oidc = if contexts.auth() {
        crate::config::oidc_signing_keys(None)?
    } else {
        crate::config::oidc_published_keys()?
    }
    .map(std::sync::Arc::new);
    let layer = ServiceLayer::start(repos, &cli.service, signing, oidc, &cli.data.data_dir)?;
    let services = layer.services;
    runtime::serve_ops(
        &cli.ops,
        binary(contexts),
        layer.gauges,
        service::ops_ready(&services, contexts),
        &shutdown,
    )
    .await?;
    service::serve(
        cli.grpc_addr,
        &services,
        contexts,
        verify,
        credential,
        cli.internal.server_tls()?,
        shutdown,
    )
    .await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
