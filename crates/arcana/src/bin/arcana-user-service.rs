//! `arcana-user-service`: the user service: user administration, over internal gRPC (see `service_main.rs`).
include!("../service_main.rs");
