//! The integration tests of `repository`, one test binary (one link) for all of them: each
//! module below was a test binary of its own.
// Test code: a failed expectation panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod commands;
#[macro_use]
mod support;
mod contract;
mod exit;
mod grpc;
mod maintenance;
mod mfa;
mod oidc;
mod recovery;
mod tokens;
mod webhooks;
