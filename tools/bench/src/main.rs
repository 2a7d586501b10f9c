//! `bench`: the benchmark harness of issue 7. In one run it builds the release binaries, starts a
//! bare axum and a bare tonic baseline, then the monolith, layered and microservices deployments
//! on loopback; seeds users through the API; drives closed-loop load over REST (HTTP/1.1
//! keep-alive) and gRPC (HTTP/2) for the same operations; and prints one table (req/s, p50,
//! p99, errors, ratios, RSS) that it also writes as JSON. See docs/benchmarks.md.
//!
//! `cargo run --release -p bench -- [--quick] [--out FILE] [-c N] [-d SECONDS]`

mod cluster;
mod load;
mod report;
mod servers;
mod soak;
mod webhooks;

#[allow(clippy::all, clippy::pedantic)]
mod hello {
    tonic::include_proto!("bench.hello");
}

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand};
use http::{Method, Uri};
use serde::Serialize;
use tonic::transport::Channel;

use cluster::{Bins, Cluster, Kind};
use load::{Identity, Op, Protocol, RssSampler, Sample, Worker};
use report::{Cpu, Row, RowKind};
use testkit::cluster::Mode;

/// CPU used by a deployment and by this process between `start` and `finish`.
struct CpuMeter {
    server: f64,
    client: f64,
    machine: f64,
}

impl CpuMeter {
    fn start(c: &Cluster) -> Self {
        Self {
            server: c.cpu_seconds(),
            client: cluster::cpu_seconds("self").unwrap_or(0.0),
            machine: cluster::machine_busy_seconds().unwrap_or(0.0),
        }
    }

    fn finish(self, c: &Cluster) -> Cpu {
        let server_s = c.cpu_seconds() - self.server;
        let client_s = cluster::cpu_seconds("self").unwrap_or(0.0) - self.client;
        let machine_s = cluster::machine_busy_seconds().unwrap_or(0.0) - self.machine;
        Cpu {
            server_s,
            client_s,
            other_s: (machine_s - server_s - client_s).max(0.0),
        }
    }
}

#[derive(Debug, Parser)]
#[command(
    name = "bench",
    about = "arcana benchmark: every mode and protocol against bare axum/tonic baselines, in one run"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Sub>,
    /// CI smoke run: ~1 s per case, a few cases per mode, 16 connections. No thresholds.
    #[arg(long)]
    quick: bool,
    /// Concurrent connections (closed-loop workers) per case [default: 64; 16 with --quick].
    #[arg(long, short = 'c')]
    connections: Option<usize>,
    /// Seconds per case [default: 10; 1 with --quick].
    #[arg(long, short = 'd')]
    duration: Option<f64>,
    /// Where to write the JSON [default: target/bench/results-<timestamp>.json].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Use the release binaries next to this executable instead of running cargo build.
    #[arg(long)]
    skip_build: bool,
    /// Extra environment for every arcana process, e.g. `--env ARCANA_DB_POOL_SIZE=32`
    /// (repeatable; for experiments — the published figures use none).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    server_env: Vec<(String, String)>,
    /// Deployments to measure (comma-separated).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = [Mode::Monolith, Mode::Layered, Mode::Microservices])]
    modes: Vec<Mode>,
    /// Only the cases whose label contains one of these (comma-separated, any case), e.g.
    /// `--cases refresh` (for experiments: the targets need every case).
    #[arg(long, value_delimiter = ',')]
    cases: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

#[derive(Debug, Subcommand)]
enum Sub {
    /// Mixed load on the layered deployment with scripted faults (rolling SIGTERM restart,
    /// kill -9 of each layer): answers by status, recovery per fault, acknowledged writes lost.
    Soak {
        /// Length of the run in seconds.
        #[arg(long, default_value_t = 60)]
        seconds: u64,
        /// Concurrent clients.
        #[arg(long, default_value_t = 8)]
        clients: usize,
        /// Run on PostgreSQL: a server URL where a fresh database is created for the run (and
        /// dropped after it). Default: SQLite.
        #[arg(long)]
        postgres: Option<String>,
        /// Shell command restarting that PostgreSQL server, scripted as a fault, e.g.
        /// `pg_ctlcluster 15 main restart`.
        #[arg(long, requires = "postgres")]
        restart_db: Option<String>,
    },
    /// Lifecycle webhooks per mode: the cost added to a profile write (no endpoint vs one
    /// subscribed, same run) and events delivered per second to a loopback receiver.
    Webhooks {
        /// Seconds per write phase.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Concurrent writers (each its own user).
        #[arg(long, default_value_t = 16)]
        clients: usize,
    },
    /// The bare axum baseline (internal).
    #[command(hide = true)]
    ServeAxum { addr: SocketAddr },
    /// The bare tonic baseline (internal).
    #[command(hide = true)]
    ServeTonic { addr: SocketAddr },
}

#[derive(Debug, Clone)]
struct Settings {
    connections: usize,
    duration: Duration,
    warmup: Duration,
    quick: bool,
    probe_every: Duration,
    only: Vec<String>,
}

impl Settings {
    fn grpc_connections(&self) -> usize {
        self.connections.div_ceil(load::STREAMS_PER_CONNECTION)
    }
}

const PASSWORD: &str = "BenchPass123";
const PASSWORD_ITERATIONS: u32 = 600_000;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("bench: tokio runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(async {
        match cli.command {
            Some(Sub::ServeAxum { addr }) => servers::axum_hello(addr).await,
            Some(Sub::ServeTonic { addr }) => servers::tonic_hello(addr).await,
            Some(Sub::Soak {
                seconds,
                clients,
                postgres,
                restart_db,
            }) => {
                let mut bins = Bins::build(&workspace_root(), cli.skip_build)?;
                bins.extra_env = cli.server_env.clone();
                tokio::select! {
                    r = soak::run(&bins, seconds, clients, soak::Database { postgres, restart: restart_db }) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
                }
            }
            Some(Sub::Webhooks { seconds, clients }) => {
                let mut bins = Bins::build(&workspace_root(), cli.skip_build)?;
                bins.extra_env = cli.server_env.clone();
                tokio::select! {
                    r = webhooks::run(&bins, &cli.modes, seconds, clients) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
                }
            }
            None => {
                // Ctrl-C drops the run, and with it every child process.
                tokio::select! {
                    r = run(cli) => r,
                    _ = tokio::signal::ctrl_c() => Err(anyhow!("interrupted")),
                }
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[derive(Serialize)]
struct Report {
    started_at: String,
    total_seconds: f64,
    quick: bool,
    connections: usize,
    grpc_connections: usize,
    duration_s: f64,
    warmup_s: f64,
    cores: usize,
    loadavg_at_start: Option<f64>,
    /// Fraction of the CPU busy (1 s sample) right before the measurements began.
    cpu_busy_at_start: Option<f64>,
    bench_release_build: bool,
    password_iterations: u32,
    /// One PBKDF2-SHA256 hash at the production cost, alone on an idle machine (median of 3).
    hash_ms: f64,
    /// Hashes per second with one thread per core hashing at once.
    hash_parallel_per_s: f64,
    /// Extra environment given to the arcana processes (`--env`).
    server_env: Vec<(String, String)>,
    rows: Vec<Row>,
    targets: Vec<report::Target>,
}

fn workspace_root() -> PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    root.canonicalize().unwrap_or(root)
}

/// Fraction of all cores busy over `window` (from /proc/stat).
async fn cpu_busy(window: Duration) -> Option<f64> {
    fn snapshot() -> Option<(u64, u64)> {
        let v = cluster::machine_cpu_ticks()?;
        // user nice system idle iowait irq softirq steal
        let idle = v.get(3)? + v.get(4).copied().unwrap_or(0);
        Some((v.iter().take(8).sum(), idle))
    }
    let (t0, i0) = snapshot()?;
    tokio::time::sleep(window).await;
    let (t1, i1) = snapshot()?;
    let total = t1.saturating_sub(t0).max(1) as f64;
    Some(1.0 - i1.saturating_sub(i0) as f64 / total)
}

/// Wait (at most `patience`) until the machine is quiet; returns the last busy fraction seen.
async fn wait_quiet(patience: Duration) -> Option<f64> {
    let deadline = Instant::now() + patience;
    loop {
        let busy = cpu_busy(Duration::from_secs(1)).await?;
        if busy < 0.10 {
            return Some(busy);
        }
        if Instant::now() > deadline {
            eprintln!(
                "WARNING: the CPU is {:.0} % busy before the run: something else runs, figures will be low",
                busy * 100.0
            );
            return Some(busy);
        }
        eprintln!(
            "waiting for a quiet machine (CPU {:.0} % busy)",
            busy * 100.0
        );
    }
}

fn loadavg() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

async fn run(cli: Cli) -> Result<()> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let quick = cli.quick;
    let s = Settings {
        connections: cli
            .connections
            .unwrap_or(if quick { 16 } else { 64 })
            .max(1),
        duration: Duration::from_secs_f64(cli.duration.unwrap_or(if quick { 1.0 } else { 10.0 })),
        warmup: Duration::from_millis(if quick { 200 } else { 1000 }),
        quick,
        probe_every: Duration::from_millis(10),
        only: cli.cases.iter().map(|c| c.to_lowercase()).collect(),
    };
    if s.duration.is_zero() {
        bail!("--duration must be positive");
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let load_at_start = loadavg();
    if cfg!(debug_assertions) {
        eprintln!(
            "WARNING: the bench itself is a debug build; its client steals CPU. Use --release."
        );
    }
    let mut bins = Bins::build(&workspace_root(), cli.skip_build)?;
    bins.extra_env.clone_from(&cli.server_env);
    let busy_at_start = wait_quiet(Duration::from_secs(if quick { 10 } else { 60 })).await;

    let (hash_ms, hash_capacity) = tokio::task::spawn_blocking(move || hash_cost(cores)).await?;
    eprintln!(
        "{cores} cores, {} connections, {:.1} s per case, one PBKDF2 hash ({PASSWORD_ITERATIONS} iterations) = {hash_ms:.1} ms, {cores} threads hash {hash_capacity:.1}/s",
        s.connections,
        s.duration.as_secs_f64()
    );

    let mut rows = Vec::new();
    for kind in [Kind::AxumHello, Kind::TonicHello] {
        baseline(kind, &bins, &s, &mut rows, false).await?;
    }
    for mode in &cli.modes {
        run_mode(Kind::Arcana(*mode), &bins, &s, &mut rows).await?;
    }
    let log = if cli.modes.contains(&Mode::Monolith) {
        Some(logging_cost(&bins, &s, &mut rows).await?)
    } else {
        None
    };

    // Once more at the end: the ratios use the mean, and the two rows show the drift.
    for kind in [Kind::AxumHello, Kind::TonicHello] {
        baseline(kind, &bins, &s, &mut rows, true).await?;
    }

    report::ratios(&mut rows);
    // The database every arcana process was given (`--env ARCANA_DATABASE_URL=…`), by scheme.
    let backend = cli
        .server_env
        .iter()
        .rev()
        .find(|(k, _)| k == "ARCANA_DATABASE_URL")
        .and_then(|(_, url)| url.split(':').next())
        .unwrap_or("sqlite");
    let targets = report::targets(&rows, cores, hash_ms, hash_capacity, log, backend);
    println!("{}", report::render(&rows, &targets));

    let total = started.elapsed().as_secs_f64();
    let report = Report {
        started_at: started_at.to_rfc3339(),
        total_seconds: total,
        quick,
        connections: s.connections,
        grpc_connections: s.grpc_connections(),
        duration_s: s.duration.as_secs_f64(),
        warmup_s: s.warmup.as_secs_f64(),
        cores,
        loadavg_at_start: load_at_start,
        cpu_busy_at_start: busy_at_start,
        bench_release_build: !cfg!(debug_assertions),
        password_iterations: PASSWORD_ITERATIONS,
        hash_ms,
        hash_parallel_per_s: hash_capacity,
        server_env: bins.extra_env.clone(),
        rows,
        targets,
    };
    let out = match cli.out {
        Some(p) => p,
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| workspace_root().join("target"), PathBuf::from);
            target.join("bench").join(format!(
                "results-{}.json",
                started_at.format("%Y%m%dT%H%M%SZ")
            ))
        }
    };
    if let Some(dir) = out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::write(&out, serde_json::to_string_pretty(&report)?)
        .with_context(|| format!("writing {}", out.display()))?;
    println!("JSON: {}", out.display());
    println!("total: {total:.0} s");
    Ok(())
}

/// One hash at the production cost (median of 3, ms), and hashes/s with `cores` threads at once.
fn hash_cost(cores: usize) -> (f64, f64) {
    let hash = || {
        std::hint::black_box(crypto::hash_password("bench-password", PASSWORD_ITERATIONS));
    };
    let mut t: Vec<f64> = (0..3)
        .map(|_| {
            let t0 = Instant::now();
            hash();
            t0.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    t.sort_by(f64::total_cmp);
    let single = t[1];
    const EACH: usize = 4;
    let t0 = Instant::now();
    let threads: Vec<_> = (0..cores)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..EACH {
                    hash();
                }
            })
        })
        .collect();
    let done = threads.into_iter().filter_map(|h| h.join().ok()).count();
    let parallel = (done * EACH) as f64 / t0.elapsed().as_secs_f64();
    (single, parallel)
}

/// Warm up, then measure one closed-loop case while sampling the servers' RSS and CPU.
async fn measure(
    c: &Cluster,
    workers: Vec<Worker>,
    p: Protocol,
    op: Op,
    s: &Settings,
) -> Result<(Vec<Worker>, Sample, u64, Cpu)> {
    let (workers, _) = load::closed_loop(workers, p, op, s.warmup).await?;
    let sampler = RssSampler::start(c.pids());
    let cpu = CpuMeter::start(c);
    let (workers, sample) = load::closed_loop(workers, p, op, s.duration).await?;
    let cpu = cpu.finish(c);
    let rss: u64 = sampler.finish().await.iter().sum();
    Ok((workers, sample, rss, cpu))
}

fn progress(mode: &str, p: Protocol, case: &str, sample: &Sample) {
    eprintln!(
        "  {mode:<14} {:<5} {case:<24} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  errors {}{}",
        p.label(),
        sample.rps(),
        sample.quantile_ms(0.5).unwrap_or(0.0),
        sample.quantile_ms(0.99).unwrap_or(0.0),
        sample.errors,
        sample
            .first_error
            .as_deref()
            .map(|e| format!(" (first: {e})"))
            .unwrap_or_default()
    );
}

fn memory_rows(c: &Cluster, what: &str, field: &str, rows: &mut Vec<Row>) {
    for (name, pid) in c.procs() {
        rows.push(Row::memory(
            c.kind.name(),
            format!("{what}: {name}"),
            cluster::status_kb(pid, field),
        ));
    }
}

async fn baseline(
    kind: Kind,
    bins: &Bins,
    s: &Settings,
    rows: &mut Vec<Row>,
    again: bool,
) -> Result<()> {
    let mode = if again {
        format!("{} (again)", kind.name())
    } else {
        kind.name().to_owned()
    };
    eprintln!("{mode}: starting");
    let c = Cluster::start(kind, bins, "warn").await?;
    let (p, chans) = if kind == Kind::TonicHello {
        (
            Protocol::Grpc,
            load::channels(c.grpc, s.grpc_connections()).await?,
        )
    } else {
        (Protocol::Rest, Vec::new())
    };
    let workers = (0..s.connections)
        .map(|i| Worker::new(c.http, pick(&chans, i), Identity::default(), ""))
        .collect::<Result<Vec<_>>>()?;
    let (_, sample, rss, cpu) = measure(&c, workers, p, Op::Hello, s).await?;
    progress(&mode, p, Op::Hello.label(p), &sample);
    rows.push(Row::load(
        &mode,
        p,
        Op::Hello,
        Op::Hello.label(p).into(),
        &sample,
        Some(rss),
        Some(cpu),
    ));
    if !again {
        memory_rows(&c, "peak RSS (VmHWM)", "VmHWM", rows);
    }
    Ok(())
}

fn pick(chans: &[Channel], i: usize) -> Option<&Channel> {
    (!chans.is_empty()).then(|| &chans[i % chans.len()])
}

/// The cases of one deployment, in order (login last: it is the heaviest).
fn cases(quick: bool) -> Vec<(Protocol, Op)> {
    use Op::*;
    use Protocol::*;
    if quick {
        vec![
            (Rest, GetUser),
            (Grpc, GetUser),
            (Rest, GetUserPat),
            (Grpc, GetUserPat),
            (Grpc, Me),
            (Rest, ListUsers),
            (Rest, Userinfo),
            (Grpc, Refresh),
            (Rest, Login),
        ]
    } else {
        let mut cases = vec![
            (Rest, GetUser),
            (Grpc, GetUser),
            (Rest, GetUserPat),
            (Grpc, GetUserPat),
            (Rest, GetUserPlain),
            (Rest, Jwks),
        ];
        cases.extend(
            [Me, ListUsers, Refresh]
                .into_iter()
                .flat_map(|op| [(Rest, op), (Grpc, op)]),
        );
        cases.extend([(Rest, Userinfo), (Rest, Introspect), (Rest, TokenRefresh)]);
        cases.extend([(Rest, Login), (Grpc, Login)]);
        cases
    }
}

async fn run_mode(kind: Kind, bins: &Bins, s: &Settings, rows: &mut Vec<Row>) -> Result<()> {
    let mode = kind.name();
    eprintln!("{mode}: starting");
    let c = Cluster::start(kind, bins, "info").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    memory_rows(&c, "idle RSS", "VmRSS", rows);
    let chans = load::channels(c.grpc, s.grpc_connections()).await?;
    let t0 = Instant::now();
    let ids = seed(c.http, s.connections).await?;
    let admin = admin_token(c.http).await?;
    eprintln!(
        "{mode}: seeded {} users in {:.1} s",
        ids.len(),
        t0.elapsed().as_secs_f64()
    );
    let mut workers = ids
        .into_iter()
        .enumerate()
        .map(|(i, id)| Worker::new(c.http, pick(&chans, i), id, &admin))
        .collect::<Result<Vec<_>>>()?;
    // Every worker also signs in to an OpenID Connect client through the hosted login page
    // (one password hash each), for the provider's rows.
    let t0 = Instant::now();
    let client = oidc_client(c.http, &admin).await?;
    let ids: Vec<Identity> = workers.iter().map(|w| w.id.clone()).collect();
    let chains = futures_util::future::try_join_all(
        ids.iter().map(|id| load::oidc_chain(c.http, id, &client)),
    )
    .await?;
    for (w, chain) in workers.iter_mut().zip(chains) {
        w.oidc = Some(chain);
    }
    eprintln!(
        "{mode}: {} OpenID Connect sign-ins in {:.1} s",
        workers.len(),
        t0.elapsed().as_secs_f64()
    );
    for (p, op) in cases(s.quick) {
        let label = op.label(p).to_lowercase();
        if !s.only.is_empty() && !s.only.iter().any(|c| label.contains(c.as_str())) {
            continue;
        }
        if op == Op::Login {
            workers = login_flood(&c, workers, p, s, rows).await?;
            continue;
        }
        let (w, sample, rss, cpu) = measure(&c, workers, p, op, s).await?;
        workers = w;
        progress(mode, p, op.label(p), &sample);
        rows.push(Row::load(
            mode,
            p,
            op,
            op.label(p).into(),
            &sample,
            Some(rss),
            Some(cpu),
        ));
    }
    memory_rows(&c, "peak RSS (VmHWM)", "VmHWM", rows);
    memory_rows(&c, "RSS after the run", "VmRSS", rows);
    let warnings = c.warnings();
    if !warnings.is_empty() {
        eprintln!("{mode}: {} WARN/ERROR log lines, e.g.:", warnings.len());
        for w in warnings.iter().take(3) {
            eprintln!("    {}", w.chars().take(400).collect::<String>());
        }
    }
    Ok(())
}

/// N workers log in back to back (no warm-up: every login is one PBKDF2 verification), while
/// a reader and a cheap public GET (the JWKS) at 100 req/s each.
async fn login_flood(
    c: &Cluster,
    workers: Vec<Worker>,
    p: Protocol,
    s: &Settings,
    rows: &mut Vec<Row>,
) -> Result<Vec<Worker>> {
    let mode = c.kind.name();
    let first = workers.first().context("no workers")?;
    let reader = first.fork()?;
    let health = first.fork()?;
    let sampler = RssSampler::start(c.pids());
    let cpu = CpuMeter::start(c);
    let (flood, read, live) = tokio::join!(
        load::closed_loop(workers, p, Op::Login, s.duration),
        load::paced(reader, p, Op::GetUser, s.probe_every, s.duration),
        load::paced(health, Protocol::Rest, Op::Jwks, s.probe_every, s.duration),
    );
    let cpu = cpu.finish(c);
    let rss: u64 = sampler.finish().await.iter().sum();
    let (workers, sample) = flood?;
    let (_, read) = read?;
    let (_, live) = live?;
    progress(mode, p, Op::Login.label(p), &sample);
    rows.push(Row::load(
        mode,
        p,
        Op::Login,
        Op::Login.label(p).into(),
        &sample,
        Some(rss),
        Some(cpu),
    ));
    for (probe_p, op, sample) in [(p, Op::GetUser, read), (Protocol::Rest, Op::Jwks, live)] {
        let case = format!(
            "  + {} @{}/s meanwhile",
            op.label(probe_p),
            (1.0 / s.probe_every.as_secs_f64()).round()
        );
        progress(mode, probe_p, &case, &sample);
        let mut row = Row::load(mode, probe_p, op, case, &sample, None, None);
        row.kind = RowKind::Probe;
        row.during = Some(p);
        rows.push(row);
    }
    Ok(workers)
}

/// Register `n` users concurrently; each gets the token pair of its registration.
async fn seed(http: SocketAddr, n: usize) -> Result<Vec<Identity>> {
    let all = (0..n).map(|i| register(http, i));
    futures_util::future::try_join_all(all).await
}

/// A tag unique to each call, so users registered by different clusters of one run, or by
/// different runs, never collide when they share a database (`--env ARCANA_DATABASE_URL=…`).
fn run_tag() -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis());
    format!("{started:x}{n:x}")
}

async fn register(http: SocketAddr, i: usize) -> Result<Identity> {
    #[derive(serde::Deserialize)]
    struct User {
        id: String,
    }
    #[derive(serde::Deserialize)]
    struct Registered {
        access_token: String,
        refresh_token: String,
        user: User,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Registered,
    }
    let username = format!("bench{i}_{}", run_tag());
    let body = serde_json::to_vec(&serde_json::json!({
        "username": username,
        "email": format!("{username}@example.com"),
        "password": PASSWORD,
    }))?;
    let mut conn = load::RestConn::new(http)?;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let r = conn
            .send(
                Method::POST,
                Uri::from_static("/api/v1/auth/register"),
                None,
                Some(body.clone().into()),
            )
            .await;
        match r {
            Ok((status, body)) if status.is_success() => {
                let e: Envelope = serde_json::from_slice(&body)?;
                return Ok(Identity {
                    user_id: e.data.user.id,
                    username,
                    password: PASSWORD.into(),
                    access: e.data.access_token,
                    refresh: e.data.refresh_token,
                });
            }
            // 503: the password-hash queue is full; anything else is a real failure.
            Ok((status, body)) if status.as_u16() != 503 => bail!(
                "registering {username}: HTTP {status}: {}",
                String::from_utf8_lossy(&body)
            ),
            _ if Instant::now() > deadline => bail!("registering {username}: no success in 120 s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A confidential OpenID Connect client that asks no consent.
async fn oidc_client(http: SocketAddr, admin: &str) -> Result<load::OidcClient> {
    #[derive(serde::Deserialize)]
    struct Issued {
        client_id: String,
        client_secret: String,
    }
    #[derive(serde::Deserialize)]
    struct Envelope {
        data: Issued,
    }
    let r: Envelope = reqwest::Client::new()
        .post(format!("http://{http}/api/v1/oidc/clients"))
        .bearer_auth(admin)
        .json(&serde_json::json!({
            "name": "bench",
            "redirect_uris": [load::OIDC_REDIRECT],
            "require_consent": false,
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(load::OidcClient {
        client_id: r.data.client_id,
        secret: r.data.client_secret,
    })
}

/// Access token of the bootstrap admin (layer processes create it in the background).
async fn admin_token(http: SocketAddr) -> Result<String> {
    let mut w = Worker::new(
        http,
        None,
        Identity {
            username: cluster::ADMIN_USER.into(),
            password: cluster::ADMIN_PASSWORD.into(),
            ..Identity::default()
        },
        "",
    )?;
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match w.rest_login().await {
            Ok(()) => return Ok(w.id.access),
            Err(e) if Instant::now() > deadline => {
                return Err(e.context("the bootstrap admin cannot log in"));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// The same read workload on two fresh monoliths, RUST_LOG=info and RUST_LOG=warn,
/// interleaved (info, warn, info, warn, ...: six slices of a quarter of the case duration
/// each) so drift hits both alike.
/// Returns (info req/s, warn req/s).
async fn logging_cost(bins: &Bins, s: &Settings, rows: &mut Vec<Row>) -> Result<(f64, f64)> {
    eprintln!("logging cost: starting two monoliths (RUST_LOG=info, RUST_LOG=warn)");
    let mut sides = Vec::new();
    for level in ["info", "warn"] {
        let c = Cluster::start(Kind::Arcana(Mode::Monolith), bins, level).await?;
        let id = register(c.http, 0).await?;
        let workers = (0..s.connections)
            .map(|_| Worker::new(c.http, None, id.clone(), ""))
            .collect::<Result<Vec<_>>>()?;
        let (workers, _) =
            load::closed_loop(workers, Protocol::Rest, Op::GetUser, s.warmup).await?;
        let cpu = Cpu {
            server_s: 0.0,
            client_s: 0.0,
            other_s: 0.0,
        };
        sides.push((level, c, Some(workers), Sample::empty()?, 0u64, cpu));
    }
    for _round in 0..6 {
        for (_, c, workers, total, rss, cpu) in &mut sides {
            let sampler = RssSampler::start(c.pids());
            let meter = CpuMeter::start(c);
            let w = workers.take().context("workers")?;
            let (w, sample) =
                load::closed_loop(w, Protocol::Rest, Op::GetUser, s.duration / 4).await?;
            let used = meter.finish(c);
            cpu.server_s += used.server_s;
            cpu.client_s += used.client_s;
            cpu.other_s += used.other_s;
            *rss = (*rss).max(sampler.finish().await.iter().sum());
            *workers = Some(w);
            total.append(sample);
        }
    }
    let mut rps = Vec::new();
    for (level, _c, _, total, rss, cpu) in &sides {
        let mode = format!("monolith RUST_LOG={level}");
        progress(
            &mode,
            Protocol::Rest,
            Op::GetUser.label(Protocol::Rest),
            total,
        );
        rps.push(total.rps());
        rows.push(Row::load(
            &mode,
            Protocol::Rest,
            Op::GetUser,
            format!("{} (1 user)", Op::GetUser.label(Protocol::Rest)),
            total,
            Some(*rss),
            Some(*cpu),
        ));
    }
    match rps[..] {
        [info, warn] => Ok((info, warn)),
        _ => bail!("logging comparison incomplete"),
    }
}
