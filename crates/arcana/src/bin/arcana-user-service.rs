//! `arcana-user-service`: the service layer with user administration, over internal gRPC (see
//! `programs/service.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::service::main(arcana::layers::service::Contexts::Users)
}
