//! The servers under test as real child processes on loopback: the two bare baselines (this
//! binary, hidden subcommands) and the three arcana deployments, started by the test kit's
//! launcher with the environment of the e2e suites (production hash cost, no rate limits). Every
//! child is killed when its `Cluster` is dropped.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use testkit::cluster::{Binaries, Mode};

pub use testkit::cluster::{ADMIN_PASSWORD, ADMIN_USER};

/// What is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AxumHello,
    TonicHello,
    /// arcana, deployed in one of the modes the black-box tests start.
    Arcana(Mode),
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::AxumHello => "bare axum",
            Kind::TonicHello => "bare tonic",
            Kind::Arcana(mode) => mode.name(),
        }
    }
}

/// Paths of the release executables.
#[derive(Debug, Clone)]
pub struct Bins {
    pub arcana: Binaries,
    pub bench: PathBuf,
    /// Extra environment for every arcana process.
    pub extra_env: Vec<(String, String)>,
}

impl Bins {
    /// Build the arcana binaries in release mode (unless `skip`) and find them.
    pub fn build(workspace: &Path, skip: bool) -> Result<Self> {
        let bench = std::env::current_exe()?;
        let names = testkit::cluster::BINARIES;
        let mut arcana = HashMap::new();
        if skip {
            let dir = bench.parent().context("bench has no directory")?;
            for n in names {
                arcana.insert(n.to_owned(), dir.join(n));
            }
        } else {
            let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
            eprintln!("building: cargo build --release -p arcana --bins");
            let mut cmd = Command::new(cargo);
            without_cargo_run_env(&mut cmd);
            let out = cmd
                .current_dir(workspace)
                .args([
                    "build",
                    "--release",
                    "-p",
                    "arcana",
                    "--bins",
                    "--message-format=json-render-diagnostics",
                ])
                .stderr(Stdio::inherit())
                .output()
                .context("running cargo build")?;
            if !out.status.success() {
                bail!("cargo build --release -p arcana --bins failed");
            }
            for line in String::from_utf8_lossy(&out.stdout).lines() {
                let Ok(msg) = serde_json::from_str::<serde_json::Value>(line) else {
                    continue;
                };
                if msg["reason"] == "compiler-artifact"
                    && let (Some(name), Some(exe)) =
                        (msg["target"]["name"].as_str(), msg["executable"].as_str())
                {
                    arcana.insert(name.to_owned(), PathBuf::from(exe));
                }
            }
        }
        for n in names {
            let p = arcana
                .get(n)
                .with_context(|| format!("{n} was not built"))?;
            if !p.exists() {
                bail!(
                    "{} not found (build with `cargo build --release -p arcana --bins`)",
                    p.display()
                );
            }
        }
        Ok(Self {
            arcana: Binaries::new(
                arcana
                    .iter()
                    .map(|(n, p)| (n.as_str(), p.to_str().unwrap_or_default())),
            ),
            bench,
            extra_env: Vec::new(),
        })
    }
}

/// `cargo run` gives the bench variables meant for it (OUT_DIR, CARGO_MANIFEST_DIR, CARGO_PKG_*,
/// its directories in LD_LIBRARY_PATH). Passed on to `cargo build`, some build scripts see them
/// (ring tracks OUT_DIR and CARGO_MANIFEST_DIR) and everything above them is rebuilt each time.
fn without_cargo_run_env(cmd: &mut Command) {
    for (key, value) in std::env::vars_os() {
        let Some(k) = key.to_str() else { continue };
        if k.starts_with("CARGO_PKG_")
            || matches!(
                k,
                "OUT_DIR"
                    | "CARGO_MANIFEST_DIR"
                    | "CARGO_MANIFEST_PATH"
                    | "CARGO_CRATE_NAME"
                    | "CARGO_BIN_NAME"
                    | "CARGO_PRIMARY_PACKAGE"
                    | "CARGO_TARGET_TMPDIR"
            )
        {
            cmd.env_remove(&key);
        } else if k == "LD_LIBRARY_PATH" {
            let kept: Vec<PathBuf> = std::env::split_paths(&value)
                .filter(|p| {
                    let p = p.to_string_lossy();
                    !p.contains("/target/") && !p.contains("/toolchains/")
                })
                .collect();
            match std::env::join_paths(kept) {
                Ok(v) if !v.is_empty() => {
                    cmd.env(&key, v);
                }
                _ => {
                    cmd.env_remove(&key);
                }
            }
        }
    }
}

/// A running server set: a baseline (one child of this binary) or an arcana deployment.
pub struct Cluster {
    pub kind: Kind,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    run: Run,
}

enum Run {
    /// The child and the directory of its log.
    Baseline(Child, #[allow(dead_code)] tempfile::TempDir),
    Arcana(testkit::cluster::Cluster),
}

/// `ARCANA_PUBLIC_URL`, `ARCANA_OIDC_SIGNING_KEY` and `ARCANA_OIDC_JWKS` of a fresh key.
fn oidc_env() -> Result<Vec<(String, String)>> {
    let pem = crypto::oidc::generate_pem().map_err(|e| anyhow!("{e}"))?;
    let pem = secrecy::ExposeSecret::expose_secret(&pem).to_owned();
    let jwks = crypto::OidcKeys::from_pem(&pem)
        .map_err(|e| anyhow!("{e}"))?
        .jwks()
        .to_string();
    Ok(vec![
        ("ARCANA_PUBLIC_URL".into(), "http://{http}".into()),
        ("ARCANA_OIDC_SIGNING_KEY".into(), pem),
        ("ARCANA_OIDC_JWKS".into(), jwks),
    ])
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

impl Cluster {
    /// Start `kind` with `RUST_LOG=rust_log` and wait until it serves.
    pub async fn start(kind: Kind, bins: &Bins, rust_log: &str) -> Result<Cluster> {
        let mode = match kind {
            Kind::AxumHello | Kind::TonicHello => return Self::baseline(kind, bins).await,
            Kind::Arcana(mode) => mode,
        };
        // The OpenID Connect provider as in production: issuer = the edge, a key file the auth
        // layer signs with and the gateway publishes (the monolith uses it too).
        let mut env = oidc_env()?;
        // Personal access tokens are measured, not throttled (as the per-IP limits are off).
        env.push(("ARCANA_TOKEN_RATE_LIMIT".into(), "0".into()));
        env.extend(bins.extra_env.iter().cloned());
        let opts = testkit::cluster::Options {
            mode,
            // The production default: what "one hash time" means in the login figures.
            password_iterations: 600_000,
            rust_log: rust_log.into(),
            db_pool_size: None,
            env,
            ..testkit::cluster::Options::default()
        };
        let c = testkit::cluster::Cluster::start(&bins.arcana, &opts)
            .await
            .map_err(|e| anyhow!("{}: {e}", kind.name()))?;
        Ok(Cluster {
            kind,
            http: c.http,
            grpc: c.grpc,
            run: Run::Arcana(c),
        })
    }

    async fn baseline(kind: Kind, bins: &Bins) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("arcana-bench-").tempdir()?;
        let (http, grpc) = (
            loopback(testkit::free_port()),
            loopback(testkit::free_port()),
        );
        let (sub, addr) = match kind {
            Kind::AxumHello => ("serve-axum", http),
            _ => ("serve-tonic", grpc),
        };
        let log = std::fs::File::create(dir.path().join("baseline.log"))?;
        // The baseline exits when its stdin closes, i.e. when this process goes away.
        let mut child = Command::new(&bins.bench)
            .args([sub, &addr.to_string()])
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("spawning {}", kind.name()))?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while tokio::net::TcpStream::connect(addr).await.is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                bail!("{} exited ({status})", kind.name());
            }
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr}", kind.name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Cluster {
            kind,
            http,
            grpc,
            run: Run::Baseline(child, dir),
        })
    }

    /// (name, pid) of every process, the edge first.
    pub fn procs(&self) -> Vec<(String, u32)> {
        match &self.run {
            Run::Baseline(child, _) => vec![(self.kind.name().to_owned(), child.id())],
            Run::Arcana(c) => c
                .names()
                .into_iter()
                .map(str::to_owned)
                .zip(c.pids())
                .collect(),
        }
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs().into_iter().map(|(_, pid)| pid).collect()
    }

    /// Lines at warn or error level in the processes' logs (JSON format), with their process.
    pub fn warnings(&self) -> Vec<String> {
        match &self.run {
            Run::Baseline(..) => Vec::new(),
            Run::Arcana(c) => c
                .logs_tail(usize::MAX)
                .lines()
                .filter(|l| l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\""))
                .map(str::to_owned)
                .collect(),
        }
    }

    /// Total CPU seconds the processes have used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.pids()
            .iter()
            .filter_map(|p| cpu_seconds(&p.to_string()))
            .sum()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if let Run::Baseline(child, _) = &mut self.run {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// CPU time (user + system) a process has used so far, in seconds.
pub fn cpu_seconds(pid: &str) -> Option<f64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may contain spaces): state is field 3, utime 14, stime 15.
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / clock_ticks())
}

/// CPU seconds the whole machine has been busy (user, nice, system, irq, softirq, steal).
pub fn machine_busy_seconds() -> Option<f64> {
    let v = machine_cpu_ticks()?;
    let busy: u64 = [0, 1, 2, 5, 6, 7].iter().filter_map(|i| v.get(*i)).sum();
    Some(busy as f64 / clock_ticks())
}

fn clock_ticks() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// A `kB` field of /proc/<pid>/status (VmRSS, VmHWM, ...).
pub fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// The machine's CPU time counters from the first line of /proc/stat, in clock ticks (user nice
/// system idle iowait irq softirq steal ...).
pub fn machine_cpu_ticks() -> Option<Vec<u64>> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    Some(
        text.lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|x| x.parse().ok())
            .collect(),
    )
}
