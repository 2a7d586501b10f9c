//! arcana repository layer: storage for users, sessions and audit events.
//!
//! Owns the diesel schema and row models, the `MultiConnection` over SQLite, PostgreSQL and
//! MySQL/MariaDB, the embedded migrations (`migrations/{sqlite,postgres,mysql}`) and the
//! in-process implementations of the domain's repository ports on [`Database`]. Every query runs
//! on a blocking thread (`tokio::task::spawn_blocking`) with a pooled (r2d2) connection.
//!
//! [`grpc`] carries the same ports over the internal gRPC boundary: `grpc::server` serves any
//! implementation of them (normally [`Database`]) as `arcana.internal.v1.RepositoryService`, and
//! `grpc::RepositoryClient` implements them by calling such a server. Everything diesel sits
//! behind the `db` feature (implied by `sqlite`, `postgres` and `mysql`), so a service-layer
//! binary can link the client without diesel.
//!
//! It must not know about HTTP or gRPC presentation (no axum) and holds no business rules beyond
//! the invariants the ports promise (case-insensitive uniqueness, the last-admin guard, atomic
//! lockout counting, compare-and-swap rotation).
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

#[cfg(feature = "db")]
mod audit;
#[cfg(feature = "db")]
mod connection;
#[cfg(feature = "db")]
mod database;
#[cfg(feature = "db")]
mod error;
#[cfg(feature = "db")]
mod models;
#[cfg(feature = "db")]
mod schema;
#[cfg(feature = "db")]
mod sessions;
#[cfg(feature = "db")]
mod url;
#[cfg(feature = "db")]
mod users;

pub mod grpc;
#[cfg(feature = "db")]
pub mod testing;

#[cfg(feature = "db")]
pub use database::{Backend, Database};
