//! `arcana-auth-service`: the service layer with registration, login, tokens, sessions, over internal gRPC (see
//! `programs/service.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::service::main(arcana::layers::service::Contexts::Auth)
}
