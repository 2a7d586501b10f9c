//! The integration tests of `gateway`, one test binary (one link) for all of them: each
//! module below was a test binary of its own.
// Test code: a failed expectation panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod authn;
mod fuzz;
mod grpc;
mod openapi;
mod rest;
