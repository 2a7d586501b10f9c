//! Compile proto/ with protox (pure Rust), so building needs no system `protoc`.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [
        "arcana/v1/common.proto",
        "arcana/v1/auth.proto",
        "arcana/v1/users.proto",
        "arcana/v1/oidc.proto",
        "arcana/v1/webhooks.proto",
        "arcana/internal/v1/repository.proto",
        "arcana/internal/v1/session.proto",
        "arcana/internal/v1/oidc.proto",
    ];
    let fds = protox::compile(files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("arcana_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}
