//! The repository layer: the database (pool + migrations) and its internal gRPC port.
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use rpc::credential::InternalCredential;

use crate::config::{DbArgs, describe};
use crate::runtime::{Shutdown, bind};

/// Open the pool and apply pending migrations.
pub async fn open_database(args: &DbArgs) -> anyhow::Result<repository::Database> {
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

/// The repository's gauges, refreshed before each scrape: the database pool.
pub fn ops_gauges(db: repository::Database) -> Vec<rpc::ops::GaugeFn> {
    vec![Arc::new(move || {
        let (connections, idle) = db.pool_state();
        metrics::gauge!("db_pool_connections").set(f64::from(connections));
        metrics::gauge!("db_pool_idle_connections").set(f64::from(idle));
    })]
}

/// Print every migration of the database's backend as `applied` or `pending` (applies
/// nothing); `Ok(pending count)`.
pub async fn print_migration_status(args: &DbArgs) -> anyhow::Result<usize> {
    let db = repository::Database::connect(&args.database_url()?, 1)
        .map_err(describe)
        .context("opening the database")?;
    let status = db
        .migration_status()
        .await
        .map_err(describe)
        .context("reading the applied migrations")?;
    let pending = status.iter().filter(|(_, applied)| !applied).count();
    for (name, applied) in &status {
        println!("{}  {name}", if *applied { "applied" } else { "pending" });
    }
    println!(
        "{}: {} applied, {pending} pending",
        db.backend(),
        status.len() - pending
    );
    Ok(pending)
}

/// The internal gRPC port (:50052): `RepositoryService` behind `credential` (the service layers'
/// own), plus health (following the database) and reflection.
pub async fn serve(
    db: repository::Database,
    addr: SocketAddr,
    credential: InternalCredential,
    tls: Option<tonic::transport::ServerTlsConfig>,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let (router, reporter) = rpc::server::GrpcRouter::new()
        .add_raw(rpc::repository::server(
            domain::Repositories::from_one(db.clone()),
            credential,
        ))
        .with_health_and_reflection();
    tokio::spawn(rpc::server::track_health(
        reporter,
        vec![rpc::internal::repository_service_rpcs::NAME],
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
