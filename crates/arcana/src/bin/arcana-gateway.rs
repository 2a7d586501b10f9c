//! `arcana-gateway`: the public edge alone (see `programs/gateway.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::gateway::main()
}
