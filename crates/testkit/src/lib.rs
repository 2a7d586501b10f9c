//! The test kit of arcana, written once for every suite and the benchmark:
//!
//! - [`cluster`]: starts the real binaries of a deployment mode (monolith, layered,
//!   microservices) on free loopback ports, each process with the environment of its layer
//!   (one credential per caller), logs to files, and stops, restarts or kills them;
//! - [`rest`]: a REST client with typed answers ([`rest::Resp`]) and the fixtures every suite
//!   needs (register, login, the bootstrap admin's token);
//! - [`snapshot`]: answer bodies with their ids, instants and tokens replaced, for insta;
//! - [`app`]: the REST router over the in-process layers and a fresh SQLite database, called
//!   without any process or socket, for fine-grained contract tests;
//! - [`webhooks`]: a webhook receiver and the Standard Webhooks signature check.
// A test kit: a failed expectation panics, which is how the calling test fails.
#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

pub mod app;
pub mod cluster;
pub mod otlp;
pub mod rest;
pub mod smtp;
pub mod snapshot;
pub mod webhooks;

/// A loopback port free right now (a process started later may still lose it: the launcher
/// retries on fresh ports).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
