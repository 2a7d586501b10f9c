//! `arcana`: the monolith (see `programs/monolith.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::monolith::main()
}
