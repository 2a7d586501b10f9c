//! Real deployments as child processes on loopback: which process gets which environment is
//! written here once, for the black-box suites and the benchmark alike.
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::free_port;

pub const JWT_SECRET: &str = "test-secret-test-secret-test-secret-0123456789";
/// The gateway's credential towards the service layers.
pub const INTERNAL_TOKEN: &str = "internal-token-internal-token-0123456789";
/// The service layers' credential towards the repository (the only one it accepts).
pub const REPOSITORY_TOKEN: &str = "repository-token-repository-token-0123456789";
pub const ADMIN_USER: &str = "root-admin";
pub const ADMIN_EMAIL: &str = "root@example.com";
pub const ADMIN_PASSWORD: &str = "AdminPass123";

/// How the platform is deployed: what the black-box tests start, and what the bench measures
/// (`--modes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Mode {
    Monolith,
    /// gateway → service → repository
    Layered,
    /// gateway → auth-service + user-service → repository
    Microservices,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Monolith => "monolith",
            Mode::Layered => "layered",
            Mode::Microservices => "microservices",
        }
    }
}

/// The name of every arcana binary (one per deployment role).
pub const BINARIES: [&str; 6] = [
    "arcana",
    "arcana-gateway",
    "arcana-service",
    "arcana-auth-service",
    "arcana-user-service",
    "arcana-repository",
];

/// Where the executables are, by binary name (`arcana`, `arcana-gateway`, …).
#[derive(Debug, Clone, Default)]
pub struct Binaries(HashMap<String, PathBuf>);

impl Binaries {
    pub fn new<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Self {
        Self(
            pairs
                .into_iter()
                .map(|(n, p)| (n.to_owned(), PathBuf::from(p)))
                .collect(),
        )
    }

    /// Every arcana binary in `dir` (e.g. `target/release`).
    pub fn in_dir(dir: &Path) -> Self {
        Self(
            BINARIES
                .iter()
                .map(|n| ((*n).to_owned(), dir.join(n)))
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Result<&Path, String> {
        self.0
            .get(name)
            .map(PathBuf::as_path)
            .ok_or_else(|| format!("no executable {name}"))
    }
}

/// What to start.
#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Default: a SQLite file in the cluster's directory.
    pub database_url: Option<String>,
    /// `ARCANA_AUTH_RATE_LIMIT` (0 = off).
    pub rate_limit: u32,
    /// `ARCANA_PASSWORD_ITERATIONS` (tests: cheap; the benchmark: the production cost).
    pub password_iterations: u32,
    pub rust_log: String,
    /// Layered mode: how many `arcana-service` processes share the load.
    pub service_replicas: usize,
    /// `ARCANA_DB_POOL_SIZE` (`None`: the binary's default).
    pub db_pool_size: Option<u32>,
    /// Extra environment for every process (after the defaults: it wins). `{http}` in a value
    /// is the edge's REST address (e.g. `ARCANA_PUBLIC_URL=http://{http}`), `{http_port}` its
    /// port alone (`http://localhost:{http_port}`: a WebAuthn relying party needs a name).
    pub env: Vec<(String, String)>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            mode: Mode::Monolith,
            database_url: None,
            rate_limit: 0,
            password_iterations: 1000,
            rust_log: "info".into(),
            service_replicas: 1,
            db_pool_size: Some(8),
            env: Vec::new(),
        }
    }
}

/// One started process and how to start it again.
struct Proc {
    name: String,
    exe: PathBuf,
    env: Vec<(String, String)>,
    child: Child,
}

/// A running deployment; every process is stopped (SIGTERM, then SIGKILL) when it is dropped.
pub struct Cluster {
    pub mode: Mode,
    /// The edge: REST and public gRPC.
    pub http: SocketAddr,
    pub grpc: SocketAddr,
    /// Internal gRPC ports by process name.
    pub internal: Vec<(String, u16)>,
    /// The edge's ops listener (`/metrics`, `/health/*`: never on the public ports).
    pub edge_ops: SocketAddr,
    /// Ops ports (`/metrics`, `/health/*`) of every process (the edge first), by process name.
    pub ops: Vec<(String, u16)>,
    procs: Vec<Proc>,
    dir: tempfile::TempDir,
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

type Env = Vec<(&'static str, String)>;

impl Cluster {
    /// Start the deployment and wait until its edge is ready; a process that dies at start
    /// (a port taken meanwhile) makes it start again on fresh ports, up to three times.
    pub async fn start(bins: &Binaries, opts: &Options) -> Result<Cluster, String> {
        let mut last = String::new();
        for attempt in 1..=3 {
            let dir = tempfile::Builder::new()
                .prefix("arcana-")
                .tempdir()
                .map_err(|e| e.to_string())?;
            let mut cluster = Cluster {
                mode: opts.mode,
                http: loopback(free_port()),
                grpc: loopback(free_port()),
                edge_ops: loopback(free_port()),
                internal: Vec::new(),
                ops: Vec::new(),
                procs: Vec::new(),
                dir,
            };
            let started = cluster.launch(bins, opts);
            let ready = match started {
                Ok(()) => cluster.wait_ready().await,
                Err(e) => Err(e),
            };
            match ready {
                Ok(()) => return Ok(cluster),
                Err(e) => {
                    eprintln!("{} attempt {attempt}: {e}", opts.mode.name());
                    last = e;
                }
            }
        }
        Err(last)
    }

    /// The processes of `opts.mode`, the edge first, each with its layer's environment.
    fn launch(&mut self, bins: &Binaries, opts: &Options) -> Result<(), String> {
        let data = self.dir.path().display().to_string();
        let common: Env = vec![
            (
                "ARCANA_PASSWORD_ITERATIONS",
                opts.password_iterations.to_string(),
            ),
            ("ARCANA_JWT_SECRET", JWT_SECRET.into()),
            ("ARCANA_LOG_FORMAT", "json".into()),
            ("RUST_LOG", opts.rust_log.clone()),
            // Mails as files in the cluster's directory unless a test sets ARCANA_SMTP_URL.
            ("ARCANA_MAIL_DIR", format!("{data}/mail")),
            // A short drain after SIGTERM (production: 5 s) keeps stopping fast; a test of
            // draining sets its own.
            ("ARCANA_DRAIN_DELAY_MS", "100".into()),
        ];
        let edge: Env = vec![
            ("ARCANA_HTTP_ADDR", self.http.to_string()),
            ("ARCANA_GRPC_ADDR", self.grpc.to_string()),
            ("ARCANA_METRICS_ADDR", self.edge_ops.to_string()),
            ("ARCANA_AUTH_RATE_LIMIT", opts.rate_limit.to_string()),
        ];
        let bootstrap: Env = vec![
            ("ARCANA_BOOTSTRAP_ADMIN_USERNAME", ADMIN_USER.into()),
            ("ARCANA_BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
            ("ARCANA_BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
        ];
        let mut database: Env = vec![
            ("ARCANA_DATA_DIR", data.clone()),
            (
                "ARCANA_DATABASE_URL",
                opts.database_url
                    .clone()
                    .unwrap_or_else(|| format!("sqlite://{data}/arcana.db")),
            ),
        ];
        if let Some(n) = opts.db_pool_size {
            database.push(("ARCANA_DB_POOL_SIZE", n.to_string()));
        }
        let mut plan: Vec<(String, &str, Env)> = Vec::new();
        let edge_name = if opts.mode == Mode::Monolith {
            "arcana"
        } else {
            "arcana-gateway"
        };
        self.ops.push((edge_name.into(), self.edge_ops.port()));
        if opts.mode == Mode::Monolith {
            plan.push((
                "arcana".into(),
                "arcana",
                [edge, bootstrap, database].concat(),
            ));
        } else {
            let repo = free_port();
            self.internal.push(("arcana-repository".into(), repo));
            let services: Vec<(String, &str)> = if opts.mode == Mode::Layered {
                (1..=opts.service_replicas.max(1))
                    .map(|i| match i {
                        1 => ("arcana-service".to_owned(), "arcana-service"),
                        n => (format!("arcana-service-{n}"), "arcana-service"),
                    })
                    .collect()
            } else {
                vec![
                    ("arcana-auth-service".into(), "arcana-auth-service"),
                    ("arcana-user-service".into(), "arcana-user-service"),
                ]
            };
            let mut gateway = edge;
            gateway.push(("ARCANA_INTERNAL_TOKEN", INTERNAL_TOKEN.into()));
            // Every service replica seals TOTP secrets with the same data key.
            let data_key = self.dir.path().join("data-key");
            let key = crypto::mfa::DataKey::generate_file();
            std::fs::write(&data_key, secrecy::ExposeSecret::expose_secret(&key))
                .map_err(|e| format!("writing {}: {e}", data_key.display()))?;
            let mut middle = Vec::new();
            for (name, exe) in services {
                let port = free_port();
                self.internal.push((name.clone(), port));
                let var = match exe {
                    "arcana-auth-service" => "ARCANA_AUTH_SERVICE_URL",
                    "arcana-user-service" => "ARCANA_USER_SERVICE_URL",
                    _ => "ARCANA_SERVICE_URL",
                };
                // Replicas of one layer: one comma-separated upstream list.
                let url = format!("http://127.0.0.1:{port}");
                match gateway.iter_mut().find(|(k, _)| *k == var) {
                    Some((_, list)) => list.push_str(&format!(",{url}")),
                    None => gateway.push((var, url)),
                }
                let mut env = bootstrap.clone();
                let ops = free_port();
                self.ops.push((name.clone(), ops));
                env.push(("ARCANA_METRICS_ADDR", format!("127.0.0.1:{ops}")));
                env.push(("ARCANA_GRPC_ADDR", format!("127.0.0.1:{port}")));
                env.push(("ARCANA_REPOSITORY_URL", format!("http://127.0.0.1:{repo}")));
                env.push(("ARCANA_INTERNAL_TOKEN", INTERNAL_TOKEN.into()));
                env.push(("ARCANA_REPOSITORY_TOKEN", REPOSITORY_TOKEN.into()));
                env.push(("ARCANA_DATA_KEY_FILE", data_key.display().to_string()));
                middle.push((name, exe, env));
            }
            let mut repo_env = database;
            let ops = free_port();
            self.ops.push(("arcana-repository".into(), ops));
            repo_env.push(("ARCANA_METRICS_ADDR", format!("127.0.0.1:{ops}")));
            repo_env.push(("ARCANA_GRPC_ADDR", format!("127.0.0.1:{repo}")));
            repo_env.push(("ARCANA_REPOSITORY_TOKEN", REPOSITORY_TOKEN.into()));
            plan.push(("arcana-gateway".into(), "arcana-gateway", gateway));
            plan.extend(middle);
            plan.push(("arcana-repository".into(), "arcana-repository", repo_env));
        }
        let http = self.http.to_string();
        for (name, exe, env) in plan {
            let env: Vec<(String, String)> = common
                .iter()
                .chain(env.iter())
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .chain(opts.env.iter().map(|(k, v)| {
                    let v = v
                        .replace("{http}", &http)
                        .replace("{http_port}", &self.http.port().to_string());
                    (k.clone(), v)
                }))
                .collect();
            let exe = bins.get(exe)?.to_path_buf();
            let child = spawn(self.dir.path(), &name, &exe, &env)?;
            self.procs.push(Proc {
                name,
                exe,
                env,
                child,
            });
        }
        Ok(())
    }

    /// Wait until the edge's `/health/ready` (on its ops port) answers 200 (at most 60 s); a
    /// process that exits fails it.
    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            // (Binaries of releases before the ops listener answered on the REST port: the
            // previous release's binaries run these suites too, ARCANA_TEST_BIN_DIR.)
            // Ready: the ops port says so AND the REST port answers. The ports were free when
            // picked, but another test's process can take one before ours binds it: a foreign
            // ops listener alone once made a cluster "ready" whose edge then died binding, and
            // the first request found nothing listening. Our own processes must also be alive.
            let ops_ready = http_status(self.edge_ops, "/health/ready").await == Some(200);
            let legacy_ready = http_status(self.http, "/health/ready").await == Some(200);
            if (ops_ready && http_status(self.http, "/").await.is_some()) || legacy_ready {
                let alive = self
                    .procs
                    .iter_mut()
                    .all(|p| matches!(p.child.try_wait(), Ok(None)));
                if alive {
                    return Ok(());
                }
            }
            let dead = self
                .procs
                .iter_mut()
                .find_map(|p| match p.child.try_wait() {
                    Ok(Some(status)) => Some(format!("{} exited at start ({status})", p.name)),
                    _ => None,
                });
            if let Some(dead) = dead {
                return Err(format!("{dead}; logs:\n{}", self.logs()));
            }
            if Instant::now() > deadline {
                return Err(format!("not ready after 60 s; logs:\n{}", self.logs()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Names of the processes, the edge first.
    pub fn names(&self) -> Vec<&str> {
        self.procs.iter().map(|p| p.name.as_str()).collect()
    }

    pub fn pids(&self) -> Vec<u32> {
        self.procs.iter().map(|p| p.child.id()).collect()
    }

    /// Index of the process named `name`.
    pub fn process(&self, name: &str) -> Option<usize> {
        self.procs.iter().position(|p| p.name == name)
    }

    /// What process `i`'s log files hold (stdout, then stderr).
    fn log_of(&self, i: usize) -> String {
        let name = &self.procs[i].name;
        ["stdout", "stderr"]
            .iter()
            .map(|s| std::fs::read_to_string(self.dir.path().join(format!("{name}.{s}.log"))))
            .filter_map(Result::ok)
            .collect()
    }

    /// What every process logged.
    pub fn logs(&self) -> String {
        (0..self.procs.len()).map(|i| self.log_of(i)).collect()
    }

    /// The last `n` lines of every process's log, each prefixed with its process.
    pub fn logs_tail(&self, n: usize) -> String {
        let mut all = String::new();
        for (i, p) in self.procs.iter().enumerate() {
            let text = self.log_of(i);
            let lines: Vec<&str> = text.lines().collect();
            for l in &lines[lines.len().saturating_sub(n)..] {
                all.push_str(&format!("[{}] {l}\n", p.name));
            }
        }
        all
    }

    /// SIGTERM to process `i`, then its exit status (at most 10 s).
    pub fn terminate(&mut self, i: usize) -> Result<ExitStatus, String> {
        let p = &mut self.procs[i];
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(p.child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = p.child.try_wait() {
                return Ok(status);
            }
            if Instant::now() > deadline {
                return Err(format!("{} did not stop after SIGTERM", p.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Start another replica of the edge (the monolith or the gateway) with the same settings on
    /// new ports, and wait until it is ready: its REST address.
    pub async fn add_edge(&mut self) -> Result<SocketAddr, String> {
        let (http, grpc, ops) = (
            loopback(free_port()),
            loopback(free_port()),
            loopback(free_port()),
        );
        let first = &self.procs[0];
        let env: Vec<(String, String)> = first
            .env
            .iter()
            .map(|(k, v)| match k.as_str() {
                "ARCANA_HTTP_ADDR" => (k.clone(), http.to_string()),
                "ARCANA_GRPC_ADDR" => (k.clone(), grpc.to_string()),
                "ARCANA_METRICS_ADDR" => (k.clone(), ops.to_string()),
                _ => (k.clone(), v.clone()),
            })
            .collect();
        let name = format!("{}-{}", first.name, self.procs.len() + 1);
        let exe = first.exe.clone();
        let child = spawn(self.dir.path(), &name, &exe, &env)?;
        self.procs.push(Proc {
            name: name.clone(),
            exe,
            env,
            child,
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        self.ops.push((name.clone(), ops.port()));
        while http_status(ops, "/health/ready").await != Some(200) {
            if Instant::now() > deadline {
                return Err(format!(
                    "{name} not ready after 30 s; logs:\n{}",
                    self.logs()
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(http)
    }

    /// SIGKILL to process `i` (a crash), then its exit status.
    pub fn kill(&mut self, i: usize) -> Result<ExitStatus, String> {
        let p = &mut self.procs[i];
        p.child
            .kill()
            .map_err(|e| format!("killing {}: {e}", p.name))?;
        p.child
            .wait()
            .map_err(|e| format!("waiting for {}: {e}", p.name))
    }

    /// Start process `i` again as it was started (after [`Cluster::terminate`]).
    pub fn restart(&mut self, i: usize) -> Result<(), String> {
        let dir = self.dir.path().to_path_buf();
        let p = &mut self.procs[i];
        let _ = p.child.wait();
        p.child = spawn(&dir, &p.name, &p.exe, &p.env)?;
        Ok(())
    }
}

impl Drop for Cluster {
    /// SIGTERM to every process, so each exits as in production (and an instrumented build
    /// writes its coverage). A process still serving a connection of the test's runtime (which
    /// is blocked here) finishes once the test ends; a watcher thread SIGKILLs it after 10 s.
    fn drop(&mut self) {
        for p in &mut self.procs {
            if let Ok(None) = p.child.try_wait() {
                let _ = Command::new("kill")
                    .arg("-TERM")
                    .arg(p.child.id().to_string())
                    .status();
            }
        }
        let deadline = Instant::now() + Duration::from_millis(300);
        let mut running: Vec<Child> = Vec::new();
        for mut p in std::mem::take(&mut self.procs) {
            while matches!(p.child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if matches!(p.child.try_wait(), Ok(None)) {
                running.push(p.child);
            }
        }
        if running.is_empty() {
            return;
        }
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(10);
            for mut child in running {
                while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(20));
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        });
    }
}

/// Start `exe` as `name` with exactly `env` (and PATH, and LLVM_PROFILE_FILE when set), logging to `<dir>/<name>.{stdout,stderr}.log`.
pub fn spawn(
    dir: &Path,
    name: &str,
    exe: &Path,
    env: &[(String, String)],
) -> Result<Child, String> {
    let log = |stream: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join(format!("{name}.{stream}.log")))
            .map_err(|e| format!("log file of {name}: {e}"))
    };
    let mut cmd = Command::new(exe);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    // An instrumented build (CI's coverage run) records the processes' coverage too.
    if let Ok(profile) = std::env::var("LLVM_PROFILE_FILE") {
        cmd.env("LLVM_PROFILE_FILE", profile);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.stdin(Stdio::null())
        .stdout(Stdio::from(log("stdout")?))
        .stderr(Stdio::from(log("stderr")?))
        .spawn()
        .map_err(|e| format!("spawning {name} ({}): {e}", exe.display()))
}

/// The status code of `GET path` on `addr` (HTTP/1.1, no client library), `None` if it fails.
pub async fn http_status(addr: SocketAddr, path: &str) -> Option<u16> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(req.as_bytes()).await.ok()?;
    let mut head = [0u8; 12];
    tcp.read_exact(&mut head).await.ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
