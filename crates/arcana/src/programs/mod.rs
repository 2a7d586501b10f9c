//! The programs behind the binaries. Each binary in `src/bin/` is one call into this module, so
//! what they share (the runtime, the command-line parsing, the layers' futures) is compiled once,
//! into this library, instead of once per binary; the three service binaries are one program.
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "monolith")]
pub mod monolith;
#[cfg(feature = "repository")]
pub mod repository;
#[cfg(any(feature = "auth", feature = "users"))]
pub mod service;
