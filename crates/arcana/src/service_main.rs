// The service-layer binaries, one source included by three (src/bin/arcana-service.rs,
// arcana-auth-service.rs, arcana-user-service.rs): auth + users, auth only, users only. Each
// serves its part of `arcana.v1` on :50051 to gateways holding the internal credential and
// reaches the repository layer over gRPC with the repository credential. What a build holds is
// decided by the name Cargo builds it under (no flags).
use std::net::SocketAddr;

use arcana::config::{DataArgs, InternalArgs, OpsArgs, ProcessArgs, ServiceArgs, parse_args};
use arcana::layers::service::{self, Contexts, ServiceLayer};
use arcana::runtime::{self, Shutdown};
use clap::Parser;

/// Which contexts this build holds, from the name Cargo builds it under.
const CONTEXTS: Contexts = match env!("CARGO_BIN_NAME").as_bytes() {
    b"arcana-auth-service" => Contexts::Auth,
    b"arcana-user-service" => Contexts::Users,
    _ => Contexts::Both,
};

#[derive(Debug, Parser)]
#[command(name = env!("CARGO_BIN_NAME"), version, about = "arcana service layer (internal gRPC)")]
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

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli: Cli = parse_args(env!("CARGO_BIN_NAME"));
    runtime::init_logging(cli.log.log_format);
    runtime::exit(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
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
    let signing = CONTEXTS.auth().then_some(&jwt_keys);
    // The auth context signs ID tokens with the key file it is given (never a generated one:
    // every replica must sign with the keys the gateway publishes); the user context verifies
    // service accounts' access tokens with the published half (ARCANA_OIDC_JWKS) alone.
    let oidc = if CONTEXTS.auth() {
        arcana::config::oidc_signing_keys(None)?
    } else {
        arcana::config::oidc_published_keys()?
    }
    .map(std::sync::Arc::new);
    let layer = ServiceLayer::start(repos, &cli.service, signing, oidc, &cli.data.data_dir)?;
    let services = layer.services;
    runtime::serve_ops(
        &cli.ops,
        env!("CARGO_BIN_NAME"),
        layer.gauges,
        service::ops_ready(&services, CONTEXTS),
        &shutdown,
    )
    .await?;
    service::serve(
        cli.grpc_addr,
        &services,
        CONTEXTS,
        verify,
        credential,
        cli.internal.server_tls()?,
        shutdown,
    )
    .await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
