//! Generated gRPC code for everything in `proto/`: the public `arcana.v1` API and the internal
//! `arcana.internal.v1` services between layers, plus the encoded descriptor set for reflection.

pub mod client;
pub mod context;
pub mod convert;
pub mod credential;
pub mod endpoints;
pub mod ops;
pub mod raw;
pub mod repository;
pub mod server;
pub mod service;
pub mod status;
pub mod tls;
pub mod trace;
pub mod wire;

#[allow(clippy::all, clippy::pedantic)]
pub mod arcana {
    pub mod v1 {
        tonic::include_proto!("arcana.v1");
    }
    pub mod internal {
        pub mod v1 {
            tonic::include_proto!("arcana.internal.v1");
        }
    }
}

/// Every file of `proto/` (and its imports) as an encoded `FileDescriptorSet`, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("arcana_descriptor");

pub use arcana::internal::v1 as internal;
pub use arcana::v1;
