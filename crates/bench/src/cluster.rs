//! The servers under test as real child processes on loopback: the two bare baselines (this
//! binary, hidden subcommands) and the three arcana deployments, with the environment the e2e
//! suites use (crates/arcana/tests/common/mod.rs). Every child is killed when its `Cluster`
//! is dropped.
use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use http::{Method, Uri};

use crate::load::RestConn;

pub const JWT_SECRET: &str = "bench-secret-bench-secret-bench-secret-0123456789";
pub const INTERNAL_TOKEN: &str = "bench-internal-token-bench-internal-token-0123";
/// The service layers' own credential towards the repository (which refuses the gateway's).
pub const REPOSITORY_TOKEN: &str = "bench-repository-token-bench-repository-token-0123";
pub const ADMIN_USER: &str = "bench-admin";
pub const ADMIN_EMAIL: &str = "bench-admin@example.com";
pub const ADMIN_PASSWORD: &str = "BenchAdmin123";

/// What is started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    AxumHello,
    TonicHello,
    Monolith,
    Layered,
    Microservices,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::AxumHello => "bare axum",
            Kind::TonicHello => "bare tonic",
            Kind::Monolith => "monolith",
            Kind::Layered => "layered",
            Kind::Microservices => "microservices",
        }
    }
}

/// Paths of the release executables.
#[derive(Debug, Clone)]
pub struct Bins {
    pub arcana: HashMap<String, PathBuf>,
    pub bench: PathBuf,
    /// Extra environment for every arcana process.
    pub extra_env: Vec<(String, String)>,
}

impl Bins {
    fn get(&self, name: &str) -> Result<&Path> {
        self.arcana
            .get(name)
            .map(PathBuf::as_path)
            .with_context(|| format!("no executable {name}"))
    }

    /// Build the arcana binaries in release mode (unless `skip`) and find them.
    pub fn build(workspace: &Path, skip: bool) -> Result<Self> {
        let bench = std::env::current_exe()?;
        let names = [
            "arcana",
            "arcana-gateway",
            "arcana-service",
            "arcana-auth-service",
            "arcana-user-service",
            "arcana-repository",
        ];
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
            arcana,
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

pub struct Proc {
    pub name: String,
    child: Child,
}

impl Proc {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// A running deployment.
pub struct Cluster {
    pub kind: Kind,
    pub procs: Vec<Proc>,
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    dir: tempfile::TempDir,
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

type Env = Vec<(&'static str, String)>;

impl Cluster {
    /// Start `kind` with `RUST_LOG=rust_log`; retried on fresh ports if a process dies at start.
    pub async fn start(kind: Kind, bins: &Bins, rust_log: &str) -> Result<Cluster> {
        let mut last = anyhow!("not started");
        for attempt in 1..=3 {
            match Self::try_start(kind, bins, rust_log).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    eprintln!("  {} attempt {attempt} failed: {e:#}", kind.name());
                    last = e;
                }
            }
        }
        Err(last)
    }

    async fn try_start(kind: Kind, bins: &Bins, rust_log: &str) -> Result<Cluster> {
        let dir = tempfile::Builder::new().prefix("arcana-bench-").tempdir()?;
        let http = loopback(free_port()?);
        let grpc = loopback(free_port()?);
        let mut cluster = Cluster {
            kind,
            procs: Vec::new(),
            http,
            grpc,
            dir,
        };
        match kind {
            Kind::AxumHello | Kind::TonicHello => {
                let (sub, addr) = if kind == Kind::AxumHello {
                    ("serve-axum", http)
                } else {
                    ("serve-tonic", grpc)
                };
                let mut cmd = Command::new(&bins.bench);
                cmd.args([sub, &addr.to_string()]);
                // The baseline exits when its stdin closes, i.e. when this process goes away.
                cluster.spawn(kind.name(), &mut cmd, &[], &[], Stdio::piped())?;
                cluster.wait_port(addr).await?;
            }
            Kind::Monolith | Kind::Layered | Kind::Microservices => {
                cluster.start_arcana(bins, rust_log)?;
                cluster.wait_ready().await?;
            }
        }
        Ok(cluster)
    }

    fn start_arcana(&mut self, bins: &Bins, rust_log: &str) -> Result<()> {
        let data = self.dir.path().display().to_string();
        let db_url = format!("sqlite://{}/arcana.db", data);
        let common: Env = vec![
            // The production default: what "one hash time" means in the login figures.
            ("ARCANA_PASSWORD_ITERATIONS", "600000".into()),
            ("ARCANA_JWT_SECRET", JWT_SECRET.into()),
            ("ARCANA_INTERNAL_TOKEN", INTERNAL_TOKEN.into()),
            ("ARCANA_REPOSITORY_TOKEN", REPOSITORY_TOKEN.into()),
            ("ARCANA_LOG_FORMAT", "json".into()),
            ("RUST_LOG", rust_log.into()),
        ];
        let edge: Env = vec![
            ("ARCANA_HTTP_ADDR", self.http.to_string()),
            ("ARCANA_GRPC_ADDR", self.grpc.to_string()),
            ("ARCANA_AUTH_RATE_LIMIT", "0".into()),
        ];
        let bootstrap: Env = vec![
            ("ARCANA_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USER.into()),
            ("ARCANA_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ARCANA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ];
        let database: Env = vec![
            ("ARCANA_DATA_DIR", data.clone()),
            ("ARCANA_DATABASE_URL", db_url),
        ];
        let mut plan: Vec<(&str, Env)> = Vec::new();
        if self.kind == Kind::Monolith {
            plan.push(("arcana", [&edge[..], &bootstrap, &database].concat()));
        } else {
            let repo = loopback(free_port()?);
            let services: &[&str] = if self.kind == Kind::Layered {
                &["arcana-service"]
            } else {
                &["arcana-auth-service", "arcana-user-service"]
            };
            let mut gateway = edge.clone();
            let mut middle = Vec::new();
            for name in services {
                let addr = loopback(free_port()?);
                let var = match *name {
                    "arcana-auth-service" => "ARCANA_AUTH_SERVICE_URL",
                    "arcana-user-service" => "ARCANA_USER_SERVICE_URL",
                    _ => "ARCANA_SERVICE_URL",
                };
                gateway.push((var, format!("http://{addr}")));
                let mut env = bootstrap.clone();
                env.push(("ARCANA_GRPC_ADDR", addr.to_string()));
                env.push(("ARCANA_REPOSITORY_URL", format!("http://{repo}")));
                middle.push((*name, env));
            }
            let mut repo_env = database.clone();
            repo_env.push(("ARCANA_GRPC_ADDR", repo.to_string()));
            // Edge first (it is the process the table's "edge" figures refer to).
            plan.push(("arcana-gateway", gateway));
            plan.extend(middle);
            plan.push(("arcana-repository", repo_env));
        }
        for (name, env) in plan {
            let mut cmd = Command::new(bins.get(name)?);
            let env: Env = common.iter().chain(env.iter()).cloned().collect();
            self.spawn(name, &mut cmd, &env, &bins.extra_env, Stdio::null())?;
        }
        Ok(())
    }

    fn spawn(
        &mut self,
        name: &str,
        cmd: &mut Command,
        env: &[(&'static str, String)],
        extra: &[(String, String)],
        stdin: Stdio,
    ) -> Result<()> {
        let log = |stream: &str| {
            std::fs::File::create(self.dir.path().join(format!("{name}.{stream}.log")))
        };
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default());
        for (k, v) in env {
            cmd.env(k, v);
        }
        for (k, v) in extra {
            cmd.env(k, v);
        }
        let child = cmd
            .stdin(stdin)
            .stdout(Stdio::from(log("stdout")?))
            .stderr(Stdio::from(log("stderr")?))
            .spawn()
            .with_context(|| format!("spawning {name}"))?;
        self.procs.push(Proc {
            name: name.to_owned(),
            child,
        });
        Ok(())
    }

    fn check_alive(&mut self) -> Result<()> {
        let mut dead = None;
        for p in &mut self.procs {
            if let Ok(Some(status)) = p.child.try_wait() {
                dead = Some(format!("{} exited ({status})", p.name));
            }
        }
        match dead {
            Some(d) => bail!("{d}; logs:\n{}", self.logs_tail()),
            None => Ok(()),
        }
    }

    async fn wait_port(&mut self, addr: SocketAddr) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!("{} did not listen on {addr}", self.kind.name());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut conn = RestConn::new(self.http)?;
        loop {
            if let Ok((status, _)) = conn
                .send(Method::GET, Uri::from_static("/health/ready"), None, None)
                .await
                && status.is_success()
            {
                return Ok(());
            }
            self.check_alive()?;
            if Instant::now() > deadline {
                bail!(
                    "{} did not become ready; logs:\n{}",
                    self.kind.name(),
                    self.logs_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The last lines each process logged.
    pub fn logs_tail(&self) -> String {
        let mut all = String::new();
        for p in &self.procs {
            for stream in ["stdout", "stderr"] {
                let path = self.dir.path().join(format!("{}.{stream}.log", p.name));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                for l in &lines[lines.len().saturating_sub(15)..] {
                    all.push_str(&format!("[{}] {l}\n", p.name));
                }
            }
        }
        all
    }

    /// Lines at warn or error level in the processes' logs (JSON format), with their process.
    pub fn warnings(&self) -> Vec<String> {
        let mut out = Vec::new();
        for p in &self.procs {
            for stream in ["stdout", "stderr"] {
                let path = self.dir.path().join(format!("{}.{stream}.log", p.name));
                let text = std::fs::read_to_string(path).unwrap_or_default();
                out.extend(
                    text.lines()
                        .filter(|l| {
                            l.contains("\"level\":\"WARN\"") || l.contains("\"level\":\"ERROR\"")
                        })
                        .map(|l| format!("[{}] {l}", p.name)),
                );
            }
        }
        out
    }

    /// Total CPU seconds the deployment's processes have used so far.
    pub fn cpu_seconds(&self) -> f64 {
        self.procs
            .iter()
            .filter_map(|p| cpu_seconds(&p.pid().to_string()))
            .sum()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(Proc::pid).collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for p in &mut self.procs {
            let _ = p.child.kill();
            let _ = p.child.wait();
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
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let v: Vec<u64> = text
        .lines()
        .next()?
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
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
