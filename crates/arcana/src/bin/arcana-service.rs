//! `arcana-service`: the service layer with auth and users, over internal gRPC (see
//! `programs/service.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::service::main(arcana::layers::service::Contexts::Both)
}
