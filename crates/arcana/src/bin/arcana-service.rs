//! `arcana-service`: the service layer: auth and users, over internal gRPC (see `service_main.rs`).
include!("../service_main.rs");
