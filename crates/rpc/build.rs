//! Compile proto/ with protox (pure Rust), so building needs no system `protoc`.
//!
//! Beside tonic's code, every service gets a module `<service>_rpcs`: its `NAME`, one typed
//! `crate::raw::Rpc` per method and `server(impl)`, a `crate::raw::RawServer` routing every method
//! of the service trait (see `src/raw.rs`: tonic's codec and body code compiled once, not per rpc).
use std::fmt::Write;
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
    // Clients and servers stay generated for other programs (tests, the bench); this crate
    // serves and calls through the raw modules.
    let tonic = tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .service_generator();
    let mut config = prost_build::Config::new();
    config.service_generator(Box::new(Rpcs(tonic)));
    config.compile_fds(fds)?;
    println!("cargo:rerun-if-changed={}", root.display());
    Ok(())
}

/// tonic's generator, plus the typed rpcs and the raw server of each service.
struct Rpcs(Box<dyn prost_build::ServiceGenerator>);

impl prost_build::ServiceGenerator for Rpcs {
    fn generate(&mut self, service: prost_build::Service, buf: &mut String) {
        let full = format!("{}.{}", service.package, service.proto_name);
        let module = snake(&service.name);
        let ty = |t: &str| {
            if t.starts_with("::") || t.starts_with('(') {
                t.to_owned()
            } else {
                format!("super::{t}")
            }
        };
        let mut consts = String::new();
        let mut routes = String::new();
        for m in &service.methods {
            assert!(
                !m.client_streaming && !m.server_streaming,
                "{full}.{}: only unary rpcs are served raw",
                m.proto_name
            );
            let _ = writeln!(
                consts,
                "    pub const {name}: crate::raw::Rpc<{i}, {o}> = crate::raw::Rpc::new(\"/{full}/{proto}\", \"{name}\");",
                name = m.name,
                i = ty(&m.input_type),
                o = ty(&m.output_type),
                proto = m.proto_name,
            );
            let _ = writeln!(
                routes,
                "            .route({name}, {{ let s = svc.clone(); move |r| {{ let s = s.clone(); async move {{ s.{name}(r).await }} }} }})",
                name = m.name,
            );
        }
        self.0.generate(service.clone(), buf);
        let _ = write!(
            buf,
            "/// The rpcs of `{full}`, typed, and its server over [`crate::raw`].
#[allow(non_upper_case_globals)]
pub mod {module}_rpcs {{
    pub const NAME: &str = \"{full}\";
{consts}
    /// Every rpc of the service, served by `svc`.
    pub fn server<T: super::{module}_server::{name}>(svc: T) -> crate::raw::RawServer {{
        let svc = std::sync::Arc::new(svc);
        crate::raw::RawServer::new(NAME)
{routes}    }}
}}
",
            name = service.name,
        );
    }

    fn finalize(&mut self, buf: &mut String) {
        self.0.finalize(buf);
    }

    fn finalize_package(&mut self, package: &str, buf: &mut String) {
        self.0.finalize_package(package, buf);
    }
}

/// tonic's module name of a service (`UserService` → `user_service`).
fn snake(name: &str) -> String {
    let mut s = String::new();
    let mut it = name.chars().peekable();
    while let Some(c) = it.next() {
        s.push(c.to_ascii_lowercase());
        if it.peek().is_some_and(|n| n.is_uppercase()) {
            s.push('_');
        }
    }
    s
}
