//! Builds and serves each layer. One module per layer, each compiled only into the binaries that
//! hold that layer (Cargo features); the binaries choose in-process or gRPC adapters and call
//! these.
#[cfg(feature = "gateway")]
pub mod gateway;
#[cfg(feature = "repository")]
pub mod repository;
#[cfg(any(feature = "auth", feature = "users"))]
pub mod service;
