//! arcana composition roots. One codebase, several binaries; which layers a binary links is
//! chosen at build time by Cargo features (`gateway`, `auth`, `users`, `service`, `repository`,
//! `monolith`), and each binary wires the layers it holds with in-process adapters and the layer
//! below it with gRPC clients. The binaries' programs live here too (`programs`); `src/bin/`
//! only names them.

pub mod config;
#[cfg(feature = "repository")]
pub mod import;
pub mod layers;
pub mod programs;
pub mod runtime;
