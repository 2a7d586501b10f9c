//! `arcana`: the monolith. Gateway, service and repository layers in one process, wired with the
//! in-process adapters; SQLite in `./data` when nothing is configured.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::todo,
        clippy::unimplemented
    )
)]

mod config;
mod wiring;

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Parser;
use secrecy::ExposeSecret;

use crate::config::{AdminCommand, Cli, Command};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    wiring::init_logging(cli.common.log_format);
    match run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "arcana stopped");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let common = cli.common;
    match cli.command {
        Some(Command::Openapi) => {
            println!(
                "{}",
                gateway::openapi()
                    .to_pretty_json()
                    .context("rendering OpenAPI")?
            );
            Ok(())
        }
        Some(Command::Migrate) => {
            wiring::open_database(&common).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Admin {
            command: AdminCommand::Create { username, email },
        }) => {
            let password = match config::secret_env("ARCANA_ADMIN_PASSWORD")? {
                Some(p) => p.expose_secret().to_owned(),
                None => {
                    eprintln!("admin password (one line on stdin):");
                    let mut line = String::new();
                    std::io::stdin()
                        .lock()
                        .read_line(&mut line)
                        .context("reading the password from stdin")?;
                    line.trim_end_matches(['\n', '\r']).to_owned()
                }
            };
            if password.is_empty() {
                bail!(
                    "no password given (ARCANA_ADMIN_PASSWORD, ARCANA_ADMIN_PASSWORD_FILE or stdin)"
                );
            }
            let db = wiring::open_database(&common).await?;
            // Creating a user issues no token: a throwaway key is enough.
            let keys = crypto::JwtKeys::hs256(&rand_secret()).map_err(wiring::describe)?;
            let layers = wiring::service_layer(&common, &cli.serve, db, &keys).await?;
            let user = layers
                .users
                .create_admin(&username, &email, &password)
                .await
                .map_err(wiring::describe)?;
            println!("created admin {} ({})", user.username, user.id);
            Ok(())
        }
        Some(Command::Serve) | None => wiring::serve_monolith(common, cli.serve).await,
    }
}

fn rand_secret() -> [u8; 32] {
    let mut b = [0u8; 32];
    rand::Rng::fill(&mut rand::rngs::OsRng, &mut b[..]);
    b
}
