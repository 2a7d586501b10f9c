//! arcana repository layer: storage for users, sessions and audit events.
//!
//! Owns the diesel schema and row models, the `MultiConnection` over SQLite, PostgreSQL and
//! MySQL/MariaDB, the embedded migrations (`migrations/{sqlite,postgres,mysql}`) and the
//! in-process implementations of the domain's repository ports on [`Database`]. Every query runs
//! on a blocking thread (`tokio::task::spawn_blocking`) with a pooled (r2d2) connection; at most
//! as many run at once as the pool has connections (the rest wait as futures, not as parked
//! threads). Single-row lookups use `get_result` (no `LIMIT ?`): SQLite re-prepares a cached
//! statement whenever a bound LIMIT changes, which cost ~18 % of a read's CPU.
//!
//! The same ports cross the internal gRPC boundary through the adapters in the `rpc` crate; this
//! crate knows nothing of gRPC or HTTP (no tonic, no axum) and holds no business rules beyond
//! the invariants the ports promise (case-insensitive uniqueness, the last-admin guard, atomic
//! lockout counting, compare-and-swap rotation).

mod audit;
mod connection;
mod database;
mod error;
mod import;
mod lockout;
mod machines;
mod maintenance;
mod mfa;
mod models;
mod oidc;
mod recovery;
mod schema;
mod sessions;
mod tokens;
mod url;
mod users;
mod webhooks;

#[cfg(feature = "testing")]
pub mod testing;

pub use database::Database;
pub use import::LegacySource;
pub use url::Backend;
