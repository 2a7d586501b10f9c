//! `arcana`: the monolith. Gateway, service and repository layers in one process, wired with the
//! in-process adapters; SQLite in `./data` when nothing is configured.

use std::io::BufRead;
use std::sync::Arc;

use crate::config::{DbArgs, EdgeArgs, OpsArgs, ProcessArgs, ServiceArgs, describe, secret_env};
use crate::layers;
use crate::runtime::{self, Shutdown};
use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use secrecy::ExposeSecret;

#[derive(Debug, Parser)]
#[command(
    name = "arcana",
    version,
    about = "arcana monolith: REST + gRPC over all layers in one process"
)]
struct Cli {
    #[command(flatten)]
    log: ProcessArgs,
    #[command(flatten)]
    db: DbArgs,
    #[command(flatten)]
    edge: EdgeArgs,
    #[command(flatten)]
    service: ServiceArgs,
    #[command(flatten)]
    ops: OpsArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve REST and gRPC (the default).
    Serve,
    /// Run database migrations and exit (`migrate status`: list them, apply nothing).
    Migrate {
        #[command(subcommand)]
        action: Option<MigrateAction>,
    },
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
    /// Print the OpenAPI document and exit.
    Openapi,
    /// OpenID Connect clients: the applications that log in through arcana.
    OidcClient {
        #[command(subcommand)]
        command: OidcClientCommand,
    },
    /// Service accounts: the principals other services call with (client_credentials).
    ServiceAccount {
        #[command(subcommand)]
        command: ServiceAccountCommand,
    },
    /// Import the users of an arcana-cloud-python deployment from its database (new ids, the
    /// password hashes kept and upgraded at each user's first login); prints a report.
    Import(crate::import::ImportArgs),
    /// Lifecycle webhooks: the endpoints other systems hear about users through.
    Webhook {
        #[command(subcommand)]
        command: WebhookCommand,
    },
    /// OpenID Connect signing keys.
    OidcKeys {
        #[command(subcommand)]
        command: OidcKeysCommand,
    },
    /// The data key that encrypts TOTP secrets at rest (ARCANA_DATA_KEY_FILE).
    DataKey {
        #[command(subcommand)]
        command: DataKeyCommand,
    },
}

#[derive(Debug, Subcommand)]
enum DataKeyCommand {
    /// Print a new key file (one AES-256 key, base64). To rotate, put the new file's line first
    /// and keep the old lines after it: old secrets still open, new ones use the first key.
    Generate,
}

#[derive(Debug, Subcommand)]
enum OidcKeysCommand {
    /// Print a new key file (RSA-2048 and Ed25519, PKCS#8 PEM) for ARCANA_OIDC_SIGNING_KEY_FILE.
    /// To rotate, append the current file to the new one: the previous keys stay published.
    Generate,
    /// Print the JWK Set of ARCANA_OIDC_SIGNING_KEY(_FILE), for ARCANA_OIDC_JWKS(_FILE) of a
    /// gateway that publishes the keys without holding them.
    Jwks,
}

#[derive(Debug, Subcommand)]
enum OidcClientCommand {
    /// Register a client and print it as JSON, with its `client_secret` (shown once) unless
    /// `--public`.
    Create {
        #[arg(long)]
        name: String,
        /// An exact redirect URI (https, or http on localhost); repeat for several.
        #[arg(long = "redirect-uri", required = true)]
        redirect_uris: Vec<String>,
        /// Where RP-initiated logout may return to; repeat for several.
        #[arg(long = "post-logout-redirect-uri")]
        post_logout_redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE S256 mandatory).
        #[arg(long)]
        public: bool,
        /// Allowed scopes, space-separated (default: openid profile email offline_access roles).
        #[arg(long)]
        scopes: Option<String>,
        /// Log in without asking the user's consent (first-party applications).
        #[arg(long)]
        skip_consent: bool,
        /// RS256 (default) or EdDSA.
        #[arg(long)]
        id_token_alg: Option<String>,
    },
    /// Print every registered client as JSON lines.
    List,
    /// Delete a client.
    Delete { client_id: String },
    /// Give a confidential client a new secret (printed once); the old one stops working.
    RotateSecret { client_id: String },
}

/// A service account's id (a UUID).
type AccountId = domain::UserId;

#[derive(Debug, Subcommand)]
enum ServiceAccountCommand {
    /// Create a service account and print it as JSON, with its `client_secret` (shown once).
    Create {
        #[arg(long)]
        name: String,
        /// guest, user or admin.
        #[arg(long)]
        role: String,
        /// A scope (users:read, users:write, audit:read, admin); repeat for several.
        #[arg(long = "scope", required = true)]
        scopes: Vec<String>,
    },
    /// Print every service account as JSON lines.
    List,
    /// Give an account a new secret (printed once); the old one keeps working for the overlap.
    RotateSecret {
        id: AccountId,
        /// Seconds the old secret keeps working (0 to 604800; default 86400).
        #[arg(long)]
        overlap_seconds: Option<u64>,
    },
    /// Delete an account (its access tokens stop working within seconds).
    Delete { id: AccountId },
}

/// A webhook endpoint's or delivery's id (a UUID).
type WebhookId = domain::UserId;

#[derive(Debug, Subcommand)]
enum WebhookCommand {
    /// Register an endpoint and print it as JSON, with its signing `secret` (shown once).
    Create {
        /// https://… (plain http only to loopback).
        #[arg(long)]
        url: String,
        /// An event type (user.created, session.revoked, …); repeat for several.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Print every endpoint as JSON lines.
    List,
    /// Change an endpoint: the options given.
    Update {
        id: WebhookId,
        #[arg(long)]
        url: Option<String>,
        /// The new event list; repeat for several.
        #[arg(long = "event")]
        events: Vec<String>,
        #[arg(long)]
        description: Option<String>,
        /// Resume delivery (the events queued meanwhile go out, in order).
        #[arg(long, conflicts_with = "disable")]
        enable: bool,
        /// Pause delivery (events keep being queued).
        #[arg(long)]
        disable: bool,
    },
    /// Delete an endpoint and everything queued for it.
    Delete { id: WebhookId },
    /// Send a webhook.test event now and print how it went.
    Test { id: WebhookId },
    /// Print the endpoint's latest deliveries as JSON lines, newest first.
    Deliveries {
        id: WebhookId,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
    /// Make a delivery due now (a failed one too).
    Retry { id: WebhookId, delivery: WebhookId },
}

#[derive(Debug, Subcommand)]
enum MigrateAction {
    /// List every migration of the backend as applied or pending; apply nothing.
    Status,
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Create an active, verified admin. Password from ARCANA_ADMIN_PASSWORD(_FILE) or stdin.
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Print a one-time password-reset link for a user (no mail is sent): for when SMTP is
    /// down. The link's base is ARCANA_PUBLIC_URL; it expires after ARCANA_RESET_TOKEN_TTL.
    ResetLink {
        /// Username (or email address) of the account.
        #[arg(long)]
        username: String,
    },
}

#[tokio::main]
pub async fn main() -> std::process::ExitCode {
    let cli: Cli = crate::config::parse_args("arcana");
    // Admin commands print their result on stdout: their log goes to stderr.
    let admin = matches!(
        cli.command,
        Some(
            Command::Admin { .. }
                | Command::Migrate { action: Some(_) }
                | Command::OidcKeys { .. }
                | Command::DataKey { .. }
                | Command::OidcClient { .. }
                | Command::ServiceAccount { .. }
                | Command::Webhook { .. }
                | Command::Import(_)
        )
    );
    runtime::init_logging_to(cli.log.log_format, admin);
    runtime::exit(run(cli).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Some(Command::Openapi) => {
            println!(
                "{}",
                gateway::openapi()
                    .to_pretty_json()
                    .context("rendering OpenAPI")?
            );
            Ok(())
        }
        Some(Command::Migrate {
            action: Some(MigrateAction::Status),
        }) => {
            layers::repository::print_migration_status(&cli.db).await?;
            Ok(())
        }
        Some(Command::Migrate { action: None }) => {
            layers::repository::open_database(&cli.db).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Some(Command::Admin {
            command: AdminCommand::Create { username, email },
        }) => {
            let password = match secret_env("ARCANA_ADMIN_PASSWORD")? {
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
            let services = admin_services(&cli).await?;
            let user = services
                .users
                .create_admin(username, email, &password)
                .await
                .map_err(describe)?;
            println!("created admin {} ({})", user.username, user.id);
            Ok(())
        }
        Some(Command::Admin {
            command: AdminCommand::ResetLink { username },
        }) => {
            let services = admin_services(&cli).await?;
            let link = services
                .auth
                .reset_link(username)
                .await
                .map_err(|e| match e {
                    domain::Error::NotFound => anyhow::anyhow!("no user {username:?}"),
                    other => describe(other),
                })?;
            println!("{link}");
            Ok(())
        }
        Some(Command::OidcKeys {
            command: OidcKeysCommand::Generate,
        }) => {
            let pem = crypto::oidc::generate_pem().map_err(describe)?;
            print!("{}", pem.expose_secret());
            Ok(())
        }
        Some(Command::OidcKeys {
            command: OidcKeysCommand::Jwks,
        }) => {
            let keys = crate::config::oidc_signing_keys(None)?
                .context("ARCANA_OIDC_SIGNING_KEY or ARCANA_OIDC_SIGNING_KEY_FILE is required")?;
            println!("{:#}", keys.jwks());
            Ok(())
        }
        Some(Command::DataKey {
            command: DataKeyCommand::Generate,
        }) => {
            print!("{}", crypto::mfa::DataKey::generate_file().expose_secret());
            Ok(())
        }
        Some(Command::OidcClient { command }) => oidc_client(&cli, command).await,
        Some(Command::ServiceAccount { command }) => service_account(&cli, command).await,
        Some(Command::Webhook { command }) => webhook(&cli, command).await,
        Some(Command::Import(args)) => {
            let db = layers::repository::open_database(&cli.db).await?;
            crate::import::run(&db, args).await
        }
        Some(Command::Serve) | None => serve(cli).await,
    }
}

/// `arcana oidc-client …`: straight to the database, audited as done through the CLI.
async fn oidc_client(cli: &Cli, command: &OidcClientCommand) -> anyhow::Result<()> {
    let services = admin_services(cli).await?;
    let clients = &services.oidc_clients;
    let op = service::Operator::cli();
    match command {
        OidcClientCommand::Create {
            name,
            redirect_uris,
            post_logout_redirect_uris,
            public,
            scopes,
            skip_consent,
            id_token_alg,
        } => {
            let input = domain::OidcClientInput {
                name: name.clone(),
                redirect_uris: redirect_uris.clone(),
                post_logout_redirect_uris: Some(post_logout_redirect_uris.clone()),
                public: Some(*public),
                allowed_scopes: scopes
                    .as_ref()
                    .map(|s| s.split_whitespace().map(str::to_owned).collect()),
                require_consent: Some(!skip_consent),
                id_token_signed_response_alg: id_token_alg.clone(),
            };
            let issued = clients.create(&op, input).await.map_err(describe)?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        OidcClientCommand::List => {
            let mut query = domain::RawClientQuery {
                per_page: Some(domain::MAX_PER_PAGE.to_string()),
                cursor: None,
            };
            loop {
                let page = clients.list(query.clone()).await.map_err(describe)?;
                for c in &page.items {
                    println!("{}", serde_json::to_string(c)?);
                }
                match page.pagination {
                    domain::PageInfo::Keyset {
                        next_cursor: Some(next),
                        ..
                    } => query.cursor = Some(next),
                    _ => break,
                }
            }
        }
        OidcClientCommand::Delete { client_id } => {
            clients.delete(&op, client_id).await.map_err(|e| match e {
                domain::Error::NotFound => anyhow::anyhow!("no client {client_id:?}"),
                other => describe(other),
            })?;
            println!("deleted client {client_id}");
        }
        OidcClientCommand::RotateSecret { client_id } => {
            let issued = clients
                .rotate_secret(&op, client_id)
                .await
                .map_err(|e| match e {
                    domain::Error::NotFound => anyhow::anyhow!("no client {client_id:?}"),
                    other => describe(other),
                })?;
            println!("{}", serde_json::to_string(&issued)?);
        }
    }
    Ok(())
}

/// `arcana service-account …`: straight to the database, audited as done through the CLI.
async fn service_account(cli: &Cli, command: &ServiceAccountCommand) -> anyhow::Result<()> {
    let services = admin_services(cli).await?;
    let clients = &services.oidc_clients;
    let op = service::Operator::cli();
    let missing = |id: &AccountId| {
        let id = *id;
        move |e| match e {
            domain::Error::NotFound => anyhow::anyhow!("no service account {id}"),
            other => describe(other),
        }
    };
    match command {
        ServiceAccountCommand::Create { name, role, scopes } => {
            let input = domain::ServiceAccountInput {
                name: name.clone(),
                role: role.clone(),
                scopes: scopes.clone(),
            };
            let issued = clients.create_account(&op, input).await.map_err(describe)?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        ServiceAccountCommand::List => {
            for a in clients.accounts().await.map_err(describe)? {
                println!("{}", serde_json::to_string(&a)?);
            }
        }
        ServiceAccountCommand::RotateSecret {
            id,
            overlap_seconds,
        } => {
            let input = domain::SecretRotationInput {
                overlap_seconds: *overlap_seconds,
            };
            let issued = clients
                .rotate_account_secret(&op, *id, input)
                .await
                .map_err(missing(id))?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        ServiceAccountCommand::Delete { id } => {
            clients
                .delete_account(&op, *id)
                .await
                .map_err(missing(id))?;
            println!("deleted service account {id}");
        }
    }
    Ok(())
}

/// `arcana webhook …`: straight to the database, audited as done through the CLI. Secrets are
/// sealed with the servers' data key: `ARCANA_DATA_KEY_FILE`, else `<data-dir>/data-key` if it
/// exists (never a new one, which the servers would not have).
async fn webhook(cli: &Cli, command: &WebhookCommand) -> anyhow::Result<()> {
    let mut args = cli.service.clone();
    let kept = cli.db.data.data_dir.join("data-key");
    if args.auth.data_key_file.is_none() && kept.exists() {
        args.auth.data_key_file = Some(kept);
    }
    let db = layers::repository::open_database(&cli.db).await?;
    let services =
        layers::service::build(service::Repositories::from_one(db), &args, None, None, None)?;
    let hooks = &services.webhooks;
    let op = service::Operator::cli();
    let missing = |id: &WebhookId| {
        let id = *id;
        move |e| match e {
            domain::Error::NotFound => anyhow::anyhow!("no webhook endpoint {id}"),
            other => describe(other),
        }
    };
    match command {
        WebhookCommand::Create {
            url,
            events,
            description,
        } => {
            let input = domain::WebhookInput {
                url: url.clone(),
                events: events.clone(),
                description: description.clone(),
            };
            let issued = hooks.create(&op, input).await.map_err(describe)?;
            println!("{}", serde_json::to_string(&issued)?);
        }
        WebhookCommand::List => {
            for w in hooks.list().await.map_err(describe)? {
                println!("{}", serde_json::to_string(&w)?);
            }
        }
        WebhookCommand::Update {
            id,
            url,
            events,
            description,
            enable,
            disable,
        } => {
            let patch = domain::WebhookPatch {
                url: url.clone(),
                events: (!events.is_empty()).then(|| events.clone()),
                description: description.clone(),
                enabled: (*enable || *disable).then_some(*enable),
            };
            let w = hooks.update(&op, *id, patch).await.map_err(missing(id))?;
            println!("{}", serde_json::to_string(&w)?);
        }
        WebhookCommand::Delete { id } => {
            hooks.delete(&op, *id).await.map_err(missing(id))?;
            println!("deleted webhook endpoint {id}");
        }
        WebhookCommand::Test { id } => {
            let d = hooks.test(*id).await.map_err(missing(id))?;
            println!("{}", serde_json::to_string(&d)?);
        }
        WebhookCommand::Deliveries { id, limit } => {
            let query = domain::RawDeliveryQuery {
                per_page: Some(limit.to_string()),
                cursor: None,
            };
            let page = hooks.deliveries(*id, query).await.map_err(missing(id))?;
            for d in page.items {
                println!("{}", serde_json::to_string(&d)?);
            }
        }
        WebhookCommand::Retry { id, delivery } => {
            let d = hooks
                .retry(&op, *id, *delivery)
                .await
                .map_err(missing(id))?;
            println!("{}", serde_json::to_string(&d)?);
        }
    }
    Ok(())
}

/// The service layer over the database, for an admin command: it creates users and mails
/// links, and signs no token (no key is loaded or made).
async fn admin_services(cli: &Cli) -> anyhow::Result<service::Services> {
    let db = layers::repository::open_database(&cli.db).await?;
    let s = &cli.service;
    let repos = service::Repositories::from_one(db);
    layers::service::build(repos, s, None, None, None)
}

async fn serve(cli: Cli) -> anyhow::Result<()> {
    let mut config = layers::gateway::config(&cli.edge)?;
    config.oidc_keys = crate::config::oidc_signing_keys(Some(&cli.db.data.data_dir))?.map(Arc::new);
    let shutdown = Shutdown::on_signals(&cli.log);
    let db = layers::repository::open_database(&cli.db).await?;
    let keys = cli.service.jwt.keys(Some(&cli.db.data.data_dir))?;
    let repos = service::Repositories::from_one(db.clone());
    let layer = layers::service::ServiceLayer::start(
        repos,
        &cli.service,
        Some(&keys),
        config.oidc_keys.clone(),
        &cli.db.data.data_dir,
    )?;
    config.issuer = layer.services.issuer().to_owned();
    config.product_name = cli.service.mail.product_name.clone();
    // `/metrics` (on the ops listener) also shows what the monolith holds in its process: the
    // pool, the hash queue and the mail outbox (the ops gauges of the layers it embeds).
    let gauges = [layers::repository::ops_gauges(db), layer.gauges].concat();
    let ports = gateway::Ports {
        auth: layer.services.auth.clone(),
        users: layer.services.users.clone(),
        oidc_clients: layer.services.oidc_clients.clone(),
        webhooks: layer.services.webhooks.clone(),
        oidc: Some(layer.services.oidc.clone()),
    };
    layers::gateway::serve(
        &cli.edge,
        &cli.service.redis,
        &cli.ops,
        config,
        ports,
        layers::gateway::verifier(&keys, &cli.service.jwt),
        gauges,
        "arcana",
        shutdown,
    )
    .await?;
    tracing::info!("shut down cleanly");
    Ok(())
}
