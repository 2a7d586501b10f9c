//! arcana domain: the vocabulary every layer shares.
//!
//! Owns the entities (`User`, `Session`, `AuditEvent`), the validated value objects, the one error
//! enum and the port traits that each layer boundary is made of. It performs no I/O and knows
//! nothing of HTTP, gRPC, SQL or a particular async runtime.

pub mod audit;
pub mod error;
pub mod files;
pub mod import;
pub mod machines;
pub mod mfa;
pub mod model;
pub mod oidc;
pub mod pagination;
pub mod ports;
pub mod profile;
pub mod provider;
pub mod recovery;
pub mod revocation;
pub mod services;
#[cfg(feature = "testing")]
pub mod testing;
pub mod tokens;
pub mod values;
pub mod webhooks;

pub use audit::*;
pub use error::{ConflictKind, Error, FieldErrors, Result};
pub use import::*;
pub use machines::*;
pub use mfa::*;
pub use model::*;
pub use oidc::*;
pub use pagination::*;
pub use ports::*;
pub use profile::*;
pub use provider::*;
pub use recovery::*;
pub use revocation::*;
pub use services::*;
pub use tokens::*;
pub use values::*;
pub use webhooks::*;
