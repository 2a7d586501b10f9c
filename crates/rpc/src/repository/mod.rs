//! The repository ports over internal gRPC (`arcana.internal.v1.RepositoryService`), both
//! adapters of the boundary:
//!
//! - [`server`] / [`RepositoryGrpc`]: serves any implementation of the three ports (normally the
//!   diesel `Database`) to callers holding the repository credential only;
//! - [`RepositoryClient`]: implements the three ports by calling such a server, so the service
//!   layer cannot tell it from the in-process implementation.
mod client;
mod server;

pub use client::RepositoryClient;
pub use server::{RepositoryGrpc, server};
