//! The result rows, the ratios between them, the issue-12 targets, and their rendering as one
//! text table and as JSON.
use serde::Serialize;

use crate::load::{Op, Protocol, Sample};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RowKind {
    /// Closed-loop load: N workers back to back.
    Load,
    /// A paced probe (100 req/s) running beside a load case.
    Probe,
    /// A memory figure of one process.
    Memory,
}

#[derive(Debug, Clone, Serialize)]
pub struct Row {
    pub mode: String,
    pub kind: RowKind,
    pub protocol: Option<Protocol>,
    pub op: Option<Op>,
    pub case: String,
    pub requests: u64,
    pub errors: u64,
    pub seconds: f64,
    pub rps: Option<f64>,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    /// Load rows: the highest VmRSS summed over the deployment's processes while the case ran.
    /// Memory rows: the figure itself.
    pub rss_mb: Option<f64>,
    /// req/s ÷ the bare baseline of the same protocol.
    pub vs_bare: Option<f64>,
    /// gRPC rows: req/s ÷ the REST row of the same mode and operation.
    pub grpc_vs_rest: Option<f64>,
    /// layered/microservices rows: req/s ÷ the monolith row of the same protocol and operation.
    pub vs_monolith: Option<f64>,
    /// CPU the servers used per successful request (user + system, all processes), µs.
    pub server_cpu_us_per_req: Option<f64>,
    /// CPU the load generator (this process) used per successful request, µs.
    pub client_cpu_us_per_req: Option<f64>,
    /// Average cores the servers kept busy during the case.
    pub server_cores: Option<f64>,
    /// Average cores busy with anything but the servers and the load generator (kernel
    /// threads, other processes, hypervisor steal): high values mean a disturbed measurement.
    pub other_cores: Option<f64>,
    /// Probe rows: the protocol of the login flood the probe ran beside.
    pub during: Option<Protocol>,
    pub first_error: Option<String>,
}

/// CPU seconds used during one case.
#[derive(Debug, Clone, Copy)]
pub struct Cpu {
    pub server_s: f64,
    pub client_s: f64,
    /// Busy time of everything else on the machine (kernel threads, other processes, steal).
    pub other_s: f64,
}

pub fn mb(kb: u64) -> f64 {
    kb as f64 / 1024.0
}

impl Row {
    pub fn load(
        mode: &str,
        p: Protocol,
        op: Op,
        case: String,
        s: &Sample,
        rss_kb: Option<u64>,
        cpu: Option<Cpu>,
    ) -> Self {
        let per_req = |secs: f64| (s.ok > 0).then(|| secs * 1e6 / s.ok as f64);
        let elapsed = s.elapsed.as_secs_f64();
        Self {
            mode: mode.to_owned(),
            kind: RowKind::Load,
            protocol: Some(p),
            op: Some(op),
            case,
            requests: s.ok,
            errors: s.errors,
            seconds: s.elapsed.as_secs_f64(),
            rps: Some(s.rps()),
            p50_ms: s.quantile_ms(0.50),
            p99_ms: s.quantile_ms(0.99),
            max_ms: s.quantile_ms(1.0),
            rss_mb: rss_kb.map(mb),
            vs_bare: None,
            grpc_vs_rest: None,
            vs_monolith: None,
            server_cpu_us_per_req: cpu.and_then(|c| per_req(c.server_s)),
            client_cpu_us_per_req: cpu.and_then(|c| per_req(c.client_s)),
            server_cores: cpu.filter(|_| elapsed > 0.0).map(|c| c.server_s / elapsed),
            other_cores: cpu.filter(|_| elapsed > 0.0).map(|c| c.other_s / elapsed),
            during: None,
            first_error: s.first_error.clone(),
        }
    }

    pub fn memory(mode: &str, case: String, kb: Option<u64>) -> Self {
        Self {
            mode: mode.to_owned(),
            kind: RowKind::Memory,
            protocol: None,
            op: None,
            case,
            requests: 0,
            errors: 0,
            seconds: 0.0,
            rps: None,
            p50_ms: None,
            p99_ms: None,
            max_ms: None,
            rss_mb: kb.map(mb),
            vs_bare: None,
            grpc_vs_rest: None,
            vs_monolith: None,
            server_cpu_us_per_req: None,
            client_cpu_us_per_req: None,
            server_cores: None,
            other_cores: None,
            during: None,
            first_error: None,
        }
    }
}

fn find<'a>(rows: &'a [Row], mode: &str, p: Protocol, op: Op) -> Option<&'a Row> {
    rows.iter().find(|r| {
        r.kind == RowKind::Load && r.mode == mode && r.protocol == Some(p) && r.op == Some(op)
    })
}

/// Fill the ratio columns.
pub fn ratios(rows: &mut [Row]) {
    // The baselines run at the start and again at the end: their mean absorbs slow drift.
    let bare = |rows: &[Row], p: Protocol| {
        let v: Vec<f64> = rows
            .iter()
            .filter(|r| r.kind == RowKind::Load && r.op == Some(Op::Hello) && r.protocol == Some(p))
            .filter_map(|r| r.rps)
            .collect();
        (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
    };
    let snapshot = rows.to_vec();
    for r in rows.iter_mut() {
        let (Some(p), Some(op), Some(rps)) = (r.protocol, r.op, r.rps) else {
            continue;
        };
        if r.kind != RowKind::Load || op == Op::Hello {
            continue;
        }
        r.vs_bare = bare(&snapshot, p).map(|b| rps / b);
        if p == Protocol::Grpc {
            r.grpc_vs_rest = find(&snapshot, &r.mode, Protocol::Rest, op)
                .and_then(|x| x.rps)
                .map(|x| rps / x);
        }
        if r.mode == "layered" || r.mode == "microservices" {
            r.vs_monolith = find(&snapshot, "monolith", p, op)
                .and_then(|x| x.rps)
                .map(|x| rps / x);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Target {
    pub target: String,
    pub measured: String,
    /// None: not measured in this run.
    pub met: Option<bool>,
}

fn opt(v: Option<f64>, f: impl Fn(f64) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// Compare the run with the targets of issue 12 (those of issue 7 that still hold included).
pub fn targets(
    rows: &[Row],
    cores: usize,
    hash_ms: f64,
    hash_capacity: f64,
    log: Option<(f64, f64)>,
    backend: &str,
) -> Vec<Target> {
    let mut out = Vec::new();
    let mut push = |target: String, measured: String, met: Option<bool>| {
        out.push(Target {
            target,
            measured,
            met,
        })
    };
    let load = |mode: &str, p, op| find(rows, mode, p, op);
    let probe = |p: Protocol, op: Op| {
        rows.iter().find(|r| {
            r.kind == RowKind::Probe
                && r.mode == "monolith"
                && r.op == Some(op)
                && r.during == Some(p)
        })
    };

    let r = load("monolith", Protocol::Rest, Op::GetUser);
    let (x, p99) = (r.and_then(|r| r.vs_bare), r.and_then(|r| r.p99_ms));
    push(
        "monolith GET /users/{id} (Accept-Encoding: gzip, br) >= 0.40 x bare axum, p99 < 5 ms"
            .into(),
        opt(x, |v| {
            format!("{v:.2} x, p99 {:.2} ms", p99.unwrap_or(f64::NAN))
        }),
        x.zip(p99).map(|(v, p99)| v >= 0.40 && p99 < 5.0),
    );
    let r = load("monolith", Protocol::Rest, Op::Jwks).and_then(|r| r.vs_bare);
    push(
        "monolith GET /.well-known/jwks.json >= 0.85 x bare axum".into(),
        opt(r, |v| format!("{v:.2} x")),
        r.map(|v| v >= 0.85),
    );
    let r = load("monolith", Protocol::Rest, Op::Userinfo).and_then(|r| r.vs_bare);
    push(
        "monolith GET /oauth2/userinfo (RFC 9068 token) >= 0.25 x bare axum (issue 27)".into(),
        opt(r, |v| format!("{v:.2} x")),
        r.map(|v| v >= 0.25),
    );
    let r = load("monolith", Protocol::Grpc, Op::GetUser).and_then(|r| r.vs_bare);
    push(
        "monolith gRPC GetUser (authenticated) >= 0.50 x bare tonic".into(),
        opt(r, |v| format!("{v:.2} x")),
        r.map(|v| v >= 0.50),
    );
    for mode in ["monolith", "layered", "microservices"] {
        for p in [Protocol::Rest, Protocol::Grpc] {
            let pat = load(mode, p, Op::GetUserPat).and_then(|r| r.rps);
            let jwt = load(mode, p, Op::GetUser).and_then(|r| r.rps);
            let x = pat.zip(jwt).map(|(a, b)| a / b);
            push(
                format!(
                    "{mode} {}: a personal access token >= 0.80 x the session's JWT (issue 30)",
                    Op::GetUserPat.label(p)
                ),
                opt(x, |v| format!("{v:.2} x")),
                x.map(|v| v >= 0.80),
            );
        }
    }
    for (mode, goal) in [("layered", 0.60), ("microservices", 0.55)] {
        let read = [Protocol::Rest, Protocol::Grpc]
            .iter()
            .filter_map(|p| load(mode, *p, Op::GetUser).and_then(|r| r.vs_monolith))
            .reduce(f64::min);
        push(
            format!("{mode} >= {goal:.2} x monolith on GET /users/{{id}} and GetUser"),
            opt(read, |v| format!("worst {v:.2} x")),
            read.map(|v| v >= goal),
        );
        let worst = rows
            .iter()
            .filter(|r| r.kind == RowKind::Load && r.mode == mode)
            .filter_map(|r| r.vs_monolith.map(|v| (v, r)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        push(
            format!("{mode} vs monolith, every case (no target; for reference)"),
            worst.map_or_else(
                || "-".into(),
                |(v, r)| {
                    format!(
                        "worst {v:.2} x ({} {})",
                        r.protocol.map_or("", Protocol::label),
                        r.case
                    )
                },
            ),
            None,
        );
    }
    for p in [Protocol::Rest, Protocol::Grpc] {
        let r = load("monolith", p, Op::Refresh).and_then(|r| r.rps);
        // The target is SQLite's; other databases are reported.
        let (target, met) = match backend {
            "sqlite" => (
                format!("refresh with rotation >= 8,000/s on SQLite ({})", p.label()),
                r.map(|v| v >= 8000.0),
            ),
            other => (
                format!("refresh with rotation on {other} ({}; report)", p.label()),
                None,
            ),
        };
        push(target, opt(r, |v| format!("{v:.0}/s")), met);
    }
    let login_goal = 0.9 * cores as f64 / (hash_ms / 1000.0);
    for p in [Protocol::Rest, Protocol::Grpc] {
        let r = load("monolith", p, Op::Login).and_then(|r| r.rps);
        push(
            format!(
                "login >= 0.9 x cores / hash time = 0.9 x {cores} / {hash_ms:.1} ms = {login_goal:.1}/s ({})",
                p.label()
            ),
            opt(r, |v| {
                format!(
                    "{v:.1}/s ({:.0} % of the {hash_capacity:.1} hashes/s {cores} threads reach alone)",
                    100.0 * v / hash_capacity
                )
            }),
            r.map(|v| v >= login_goal),
        );
    }
    for p in [Protocol::Rest, Protocol::Grpc] {
        for op in [Op::GetUser, Op::Jwks] {
            let r = probe(p, op);
            let p99 = r.and_then(|r| r.p99_ms);
            push(
                format!(
                    "p99 of {} < 10 ms during the {} login flood",
                    op.label(p),
                    p.label()
                ),
                opt(p99, |v| {
                    format!(
                        "p99 {v:.2} ms (p50 {:.2} ms, {} errors)",
                        r.and_then(|r| r.p50_ms).unwrap_or(0.0),
                        r.map_or(0, |r| r.errors)
                    )
                }),
                p99.map(|v| v < 10.0 && r.is_some_and(|r| r.errors == 0)),
            );
        }
    }
    let idle = rows
        .iter()
        .find(|r| r.mode == "monolith" && r.kind == RowKind::Memory && r.case.starts_with("idle"))
        .and_then(|r| r.rss_mb);
    push(
        "idle RSS of the monolith < 20 MB".into(),
        opt(idle, |v| format!("{v:.1} MB")),
        idle.map(|v| v < 20.0),
    );
    let flood = [Protocol::Rest, Protocol::Grpc]
        .iter()
        .filter_map(|p| load("monolith", *p, Op::Login).and_then(|r| r.rss_mb))
        .reduce(f64::max);
    push(
        "peak RSS of the monolith during the login flood < 64 MB".into(),
        opt(flood, |v| format!("{v:.1} MB")),
        flood.map(|v| v < 64.0),
    );
    let cost = log.map(|(info, warn)| 1.0 - info / warn);
    push(
        "info-level logging costs < 10 % throughput (GET /users/{id}, monolith)".into(),
        log.map_or_else(
            || "-".into(),
            |(info, warn)| {
                format!(
                    "{:.1} % (info {info:.0}/s vs warn {warn:.0}/s)",
                    100.0 * (1.0 - info / warn)
                )
            },
        ),
        cost.map(|c| c < 0.10),
    );
    out
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "".into(), |v| format!("{v:.decimals$}"))
}

/// The whole run as one text table, then the targets.
pub fn render(rows: &[Row], targets: &[Target]) -> String {
    let mut s = String::new();
    let header = format!(
        "{:<22} {:<5} {:<40} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} {:>6}",
        "mode",
        "proto",
        "case",
        "req/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "xbare",
        "g/REST",
        "/mono",
        "srv us",
        "cli us",
        "other",
        "RSS MB"
    );
    let rule = "-".repeat(header.chars().count());
    s.push_str(&header);
    s.push('\n');
    s.push_str(&rule);
    s.push('\n');
    let mut last_mode = String::new();
    for r in rows {
        if !last_mode.is_empty() && r.mode != last_mode {
            s.push_str(&rule);
            s.push('\n');
        }
        last_mode.clone_from(&r.mode);
        let errors = if r.kind == RowKind::Memory {
            String::new()
        } else {
            r.errors.to_string()
        };
        s.push_str(&format!(
            "{:<22} {:<5} {:<40} {:>9} {:>8} {:>8} {:>6} {:>6} {:>6} {:>6} {:>7} {:>7} {:>5} {:>6}\n",
            r.mode,
            r.protocol.map_or("", Protocol::label),
            r.case,
            num(r.rps, 0),
            num(r.p50_ms, 2),
            num(r.p99_ms, 2),
            errors,
            num(r.vs_bare, 2),
            num(r.grpc_vs_rest, 2),
            num(r.vs_monolith, 2),
            num(r.server_cpu_us_per_req, 0),
            num(r.client_cpu_us_per_req, 0),
            num(r.other_cores, 2),
            num(r.rss_mb, 1),
        ));
    }
    s.push_str(&rule);
    s.push_str("\n\nTargets (issue 12)\n");
    for t in targets {
        let mark = match t.met {
            Some(true) => "MET   ",
            Some(false) => "MISSED",
            None => "  -   ",
        };
        s.push_str(&format!("  [{mark}] {}: {}\n", t.target, t.measured));
    }
    s
}
