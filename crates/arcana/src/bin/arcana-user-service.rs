//! `arcana-user-service`: the user service (user administration). Serves its part of `arcana.v1` on :50051 to
//! gateways holding the internal credential, and reaches the repository layer over gRPC.
#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

fn main() -> std::process::ExitCode {
    arcana::layers::service_main("arcana-user-service", false, true)
}
