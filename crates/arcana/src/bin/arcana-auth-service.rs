//! `arcana-auth-service`: the auth service: registration, login, tokens, sessions, over internal gRPC (see `service_main.rs`).
include!("../service_main.rs");
