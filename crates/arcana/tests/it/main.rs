//! The integration tests of `arcana`, one test binary (one link) for all of them: each
//! module below was a test binary of its own.
// Test code: a failed expectation panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#[macro_use]
mod common;
mod api;
mod console;
mod grpc;
mod hardening;
mod machines;
mod mfa;
mod oidc;
mod oidc_flow;
mod ops;
mod passkeys;
mod recovery;
mod redis;
mod tokens;
mod webhooks;
