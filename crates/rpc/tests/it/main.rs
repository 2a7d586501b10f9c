//! The integration tests of `rpc`, one test binary (one link) for all of them: each
//! module below was a test binary of its own.
// Test code: a failed expectation panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
mod convert;
mod endpoints;
