//! `arcana-repository`: the repository layer alone. Owns the database (migrations on start) and
//! serves `arcana.internal.v1.RepositoryService` on :50052 to callers holding the internal credential.

use std::net::SocketAddr;

use std::sync::Arc;

use crate::config::{DbArgs, InternalArgs, OpsArgs, ProcessArgs};
use crate::layers;
use crate::runtime::{self, Shutdown};
use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "arcana-repository",
    version,
    about = "arcana repository layer (internal gRPC)"
)]
struct Cli {
    #[command(flatten)]
    log: ProcessArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    internal: InternalArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[arg(long, env = "ARCANA_GRPC_ADDR", default_value = "0.0.0.0:50052")]
    grpc_addr: SocketAddr,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve internal gRPC (the default).
    Serve,
    /// Run database migrations and exit (Helm pre-install/pre-upgrade Job); `migrate status`
    /// lists them as applied or pending and applies nothing.
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Import the users of an arcana-cloud-python deployment from its database (new ids, the
    /// password hashes kept and upgraded at each user's first login); prints a report. Runs
    /// the migrations first.
    Import(crate::import::ImportArgs),
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// List every migration of the backend as applied or pending; apply nothing.
    Status,
}

#[tokio::main]
pub async fn main() -> std::process::ExitCode {
    let cli: Cli = crate::config::parse_args("arcana-repository");
    // `migrate status` prints its answer on stdout: its log goes to stderr.
    let status = matches!(
        cli.command,
        Some(Command::Migrate { action: Some(_) } | Command::Import(_))
    );
    runtime::init_logging_to(cli.log.log_format, status);
    runtime::exit(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Migrate {
            action: Some(MigrateAction::Status),
        }) => {
            layers::repository::print_migration_status(&cli.db).await?;
            return Ok(());
        }
        Some(Command::Migrate { action: None }) => {
            layers::repository::open_database(&cli.db).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        Some(Command::Import(args)) => {
            let db = layers::repository::open_database(&cli.db).await?;
            return crate::import::run(&db, &args).await;
        }
        Some(Command::Serve) | None => {}
    }
    let shutdown = Shutdown::on_signals(&cli.log);
    // Only the service layers' credential: a compromised gateway cannot read password hashes.
    let credential = cli.internal.repository_credential()?;
    let db = layers::repository::open_database(&cli.db).await?;
    let tls = cli.internal.server_tls()?;
    let gauges = layers::repository::ops_gauges(db.clone());
    let ping = db.clone();
    let ready: rpc::ops::ReadyFn = Arc::new(move || {
        let db = ping.clone();
        Box::pin(async move { domain::UserRepository::ping(&db).await.is_ok() })
    });
    runtime::serve_ops(&cli.ops, "arcana-repository", gauges, ready, &shutdown).await?;
    layers::repository::serve(db, cli.grpc_addr, credential, tls, shutdown).await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
