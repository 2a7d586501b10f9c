//! `arcana-repository`: the repository layer alone (see `programs/repository.rs`).
fn main() -> std::process::ExitCode {
    arcana::programs::repository::main()
}
