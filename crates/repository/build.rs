//! `embed_migrations!` reads ../../migrations at compile time; rebuild when a migration changes
//! or a new one is added.
fn main() {
    println!("cargo:rerun-if-changed=../../migrations");
}
