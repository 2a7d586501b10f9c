//! The integration tests of `service`, one test binary (one link) for all of them: each
//! module below was a test binary of its own.
// Test code: a failed expectation panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[macro_use]
mod common;
mod auth;
mod cache;
mod fuzz;
mod grpc;
mod maintenance;
mod mfa;
mod security;
mod tokens;
mod users;
