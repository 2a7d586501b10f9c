//! `bench soak`: mixed load on the layered deployment (two service replicas) while faults are
//! scripted in: a SIGTERM rolling restart of the service replicas, then kill -9 and restart of a
//! service replica, of the repository and of the gateway, and (on PostgreSQL, given the command)
//! a restart of the database server. Reports the answers by status, the
//! errors by class, how long each fault showed, and the acknowledged writes that were lost
//! (must be 0: every acknowledged registration can log in, every client's profile holds its last
//! acknowledged write or a later one), and the webhook events of those writes: every one
//! delivered to a receiver in this process (signed, deduplicable by webhook-id, a user's in
//! commit order), kill -9 or not.
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::json;
use testkit::cluster::{Cluster, Mode, Options};
use testkit::rest::Rest;

use crate::cluster::Bins;

/// One answer: when (since the start) and its class (`200`, `503`, `connection`, ...).
type Seen = Vec<(Duration, String)>;

struct Client {
    rest: Rest,
    id: String,
    token: String,
}

/// What one client saw and what was acknowledged to it.
#[derive(Default)]
struct Outcome {
    seen: Seen,
    /// Usernames whose registration answered 201.
    registered: Vec<String>,
    /// The last PATCHed first name that answered 200 (a counter).
    last_patch: Option<u64>,
}

async fn class(r: reqwest::Result<reqwest::Response>) -> String {
    match r {
        Ok(r) => r.status().as_u16().to_string(),
        Err(e) if e.is_connect() => "connection refused".into(),
        Err(e) if e.is_timeout() => "timeout".into(),
        Err(_) => "connection lost".into(),
    }
}

async fn drive(c: Client, w: usize, start: Instant, stop: Arc<AtomicBool>) -> Outcome {
    let mut out = Outcome::default();
    let path = c.rest.url(&format!("/api/v1/users/{}", c.id));
    let mut n: u64 = 0;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let status = match n % 10 {
            0 => {
                let name = format!("soak{w}x{n}");
                let r = c
                    .rest
                    .client
                    .post(c.rest.url("/api/v1/auth/register"))
                    .json(&json!({"username": name, "email": format!("{name}@example.com"), "password": "Secret123"}))
                    .send()
                    .await;
                let s = class(r).await;
                if s == "201" {
                    out.registered.push(name);
                }
                s
            }
            1 | 4 | 7 => {
                let r = c
                    .rest
                    .client
                    .patch(&path)
                    .bearer_auth(&c.token)
                    .json(&json!({"first_name": format!("N{n}")}))
                    .send()
                    .await;
                let s = class(r).await;
                if s == "200" {
                    out.last_patch = Some(n);
                }
                s
            }
            _ => class(c.rest.client.get(&path).bearer_auth(&c.token).send().await).await,
        };
        let s = if status == "201" {
            "200".into()
        } else {
            status
        };
        // A client whose server is gone backs off a little instead of spinning.
        if s.starts_with("connection") {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        out.seen.push((start.elapsed(), s));
    }
    out
}

/// A scripted fault: what, and when it began and ended (since the start).
struct Fault {
    what: &'static str,
    began: Duration,
    ended: Duration,
}

async fn wait_ready(port: u16) {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let started = Instant::now();
    while testkit::cluster::http_status(addr, "/health/ready").await != Some(200)
        && started.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Where the soak keeps its data and how its database is restarted.
pub struct Database {
    /// `postgres://…` of a server where a fresh database is created (and dropped at the end);
    /// `None`: SQLite.
    pub postgres: Option<String>,
    /// Shell command restarting that server (a fault of its own), e.g.
    /// `pg_ctlcluster 15 main restart`.
    pub restart: Option<String>,
}

/// `CREATE DATABASE` / `DROP DATABASE` through `psql` on the server of `url`.
fn psql(url: &str, sql: &str) -> Result<()> {
    let ok = std::process::Command::new("psql")
        .args([url, "-v", "ON_ERROR_STOP=1", "-q", "-c", sql])
        .status()?
        .success();
    if !ok {
        bail!("psql {sql:?} failed");
    }
    Ok(())
}

pub async fn run(bins: &Bins, seconds: u64, clients: usize, db: Database) -> Result<()> {
    let fresh = match &db.postgres {
        Some(url) => {
            let name = format!("arcana_soak_{}", std::process::id());
            psql(url, &format!("CREATE DATABASE {name}"))?;
            let base = url.rsplit_once('/').map_or(url.as_str(), |(b, _)| b);
            Some((url.clone(), name.clone(), format!("{base}/{name}")))
        }
        None => None,
    };
    let opts = Options {
        mode: Mode::Layered,
        service_replicas: 2,
        database_url: fresh.as_ref().map(|(_, _, u)| u.clone()),
        env: vec![
            ("ARCANA_DRAIN_DELAY_MS".into(), "1000".into()),
            ("ARCANA_USER_CACHE_SIZE".into(), "0".into()),
        ]
        .into_iter()
        .chain(crate::webhooks::env())
        .chain(bins.extra_env.iter().cloned())
        .collect(),
        ..Options::default()
    };
    let mut cluster = Cluster::start(&bins.arcana, &opts)
        .await
        .map_err(anyhow::Error::msg)?;
    let base = format!("http://{}", cluster.http);
    // Every registration and profile write is also an event for a webhook receiver here.
    let admin_rest = Rest::new(base.clone());
    let admin = admin_rest.admin_token().await;
    let hook =
        crate::webhooks::Endpoint::register(&admin_rest, &admin, &["user.created", "user.updated"])
            .await?;
    let mut workers = Vec::new();
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    for w in 0..clients {
        let rest = Rest::new(base.clone());
        let a = rest.account(&format!("soaker{w}")).await;
        let c = Client {
            rest,
            id: a.id,
            token: a.access_token,
        };
        workers.push(tokio::spawn(drive(c, w, start, stop.clone())));
    }
    let total = Duration::from_secs(seconds);
    let faults: Arc<Mutex<Vec<Fault>>> = Arc::default();
    let at = |f: f64| total.mul_f64(f);
    let ops = |c: &Cluster, name: &str| c.ops.iter().find(|(n, _)| n == name).map(|(_, p)| *p);
    let record = |what, began| {
        faults
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Fault {
                what,
                began,
                ended: start.elapsed(),
            })
    };

    // 1. A rolling restart: SIGTERM each service replica in turn, back before the next.
    tokio::time::sleep(at(0.12).saturating_sub(start.elapsed())).await;
    let began = start.elapsed();
    for name in ["arcana-service", "arcana-service-2"] {
        let Some(i) = cluster.process(name) else {
            bail!("no {name}")
        };
        cluster.terminate(i).map_err(anyhow::Error::msg)?;
        cluster.restart(i).map_err(anyhow::Error::msg)?;
        if let Some(p) = ops(&cluster, name) {
            wait_ready(p).await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    record("SIGTERM rolling restart of the 2 service replicas", began);

    // 2-4. kill -9 and restart (after 1 s) of a service replica, the repository, the gateway.
    for (when, name, what) in [
        (
            0.35,
            "arcana-service",
            "kill -9 of a service replica (1 s down)",
        ),
        (
            0.55,
            "arcana-repository",
            "kill -9 of the repository (1 s down)",
        ),
        (0.75, "arcana-gateway", "kill -9 of the gateway (1 s down)"),
    ] {
        tokio::time::sleep(at(when).saturating_sub(start.elapsed())).await;
        let began = start.elapsed();
        let Some(i) = cluster.process(name) else {
            bail!("no {name}")
        };
        cluster.kill(i).map_err(anyhow::Error::msg)?;
        tokio::time::sleep(Duration::from_secs(1)).await;
        cluster.restart(i).map_err(anyhow::Error::msg)?;
        record(what, began);
    }
    // 5. The database server restarts (when the soak runs on one and knows how).
    if let Some(cmd) = &db.restart {
        tokio::time::sleep(at(0.90).saturating_sub(start.elapsed())).await;
        let began = start.elapsed();
        let cmd = cmd.clone();
        let ok = tokio::task::spawn_blocking(move || {
            std::process::Command::new("sh")
                .args(["-c", &cmd])
                .status()
                .map(|s| s.success())
        })
        .await??;
        if !ok {
            bail!("restarting the database failed");
        }
        record("restart of the database server", began);
    }
    tokio::time::sleep(total.saturating_sub(start.elapsed())).await;
    stop.store(true, Ordering::Relaxed);

    let mut outcomes = Vec::new();
    for w in workers {
        outcomes.push(w.await?);
    }
    // Every acknowledged write is there.
    let rest = Rest::new(base.clone());
    let mut acked = 0;
    let mut lost = Vec::new();
    for (w, o) in outcomes.iter().enumerate() {
        for name in &o.registered {
            acked += 1;
            if rest.login(name, "Secret123").await.status != 200 {
                lost.push(format!("registration of {name}"));
            }
        }
        if let Some(n) = o.last_patch {
            acked += 1;
            let me = rest.login(&format!("soaker{w}"), "Secret123").await;
            let now = me.data()["user"]["first_name"]
                .as_str()
                .and_then(|s| s.strip_prefix('N'))
                .and_then(|s| s.parse::<u64>().ok());
            if now.is_none_or(|v| v < n) {
                lost.push(format!("soaker{w}'s profile write {n} (now {now:?})"));
            }
        }
    }

    // Every acknowledged write reached the receiver (kill -9 included): a user.created for each
    // registration, and for each client a user.updated at least as new as its last write.
    let webhook_wait = Instant::now();
    let (tally, missing) = loop {
        let t = hook.tally();
        let events = t.events();
        let created = |name: &str| {
            events
                .iter()
                .any(|e| e["type"] == "user.created" && e["data"]["user"]["username"] == name)
        };
        let mut missing = Vec::new();
        for (w, o) in outcomes.iter().enumerate() {
            let me = format!("soaker{w}");
            for name in o.registered.iter().chain(std::iter::once(&me)) {
                if !created(name) {
                    missing.push(format!("user.created of {name}"));
                }
            }
            if let Some(n) = o.last_patch {
                let newest = events
                    .iter()
                    .filter(|e| {
                        e["type"] == "user.updated" && e["data"]["user"]["username"] == me.as_str()
                    })
                    .filter_map(|e| {
                        e["data"]["user"]["first_name"]
                            .as_str()?
                            .strip_prefix('N')?
                            .parse::<u64>()
                            .ok()
                    })
                    .max();
                if newest.is_none_or(|m| m < n) {
                    missing.push(format!(
                        "user.updated of {me} with write {n} (newest {newest:?})"
                    ));
                }
            }
        }
        if missing.is_empty() || webhook_wait.elapsed() > Duration::from_secs(90) {
            break (t, missing);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    let mut by_class = BTreeMap::<String, u64>::new();
    for o in &outcomes {
        for (_, c) in &o.seen {
            *by_class.entry(c.clone()).or_default() += 1;
        }
    }
    let answers: u64 = by_class.values().sum();
    let store = if fresh.is_some() {
        "PostgreSQL"
    } else {
        "SQLite"
    };
    println!(
        "\nsoak: {seconds} s, {clients} clients, layered (gateway, 2 service replicas, repository; {store})"
    );
    println!(
        "  answers: {answers} ({:.0}/s)",
        answers as f64 / seconds as f64
    );
    for (c, n) in &by_class {
        println!("    {c:<20} {n}");
    }
    println!(
        "  faults (errors from the fault's start to 5 s after its end or the next fault; recovery = last error - start):"
    );
    let faults = std::mem::take(&mut *faults.lock().unwrap_or_else(|e| e.into_inner()));
    for (k, f) in faults.iter().enumerate() {
        let next = faults.get(k + 1).map_or(Duration::MAX, |n| n.began);
        let window_end = (f.ended + Duration::from_secs(5)).min(next);
        let errors: Vec<Duration> = outcomes
            .iter()
            .flat_map(|o| &o.seen)
            .filter(|(t, c)| *t >= f.began && *t <= window_end && c != "200")
            .map(|(t, _)| *t)
            .collect();
        let recovery = errors.iter().max().map(|t| t.saturating_sub(f.began));
        println!(
            "    {:<52} at {:>5.1} s: {:>4} errors, recovery {}",
            f.what,
            f.began.as_secs_f64(),
            errors.len(),
            recovery.map_or("none needed".into(), |d| format!(
                "{:.2} s",
                d.as_secs_f64()
            ))
        );
    }
    println!(
        "  acknowledged writes checked: {acked}, lost: {}",
        lost.len()
    );
    for l in &lost {
        println!("    LOST {l}");
    }
    let out_of_order = tally.out_of_order();
    println!(
        "  webhooks: {} events delivered ({} attempts, {} duplicates with the same webhook-id and body), {} missing, {} bad signatures or differing copies, {} out of a user's commit order; all in {:.1} s after the load",
        tally.first.len(),
        tally.attempts,
        tally.duplicates,
        missing.len(),
        tally.bad_signatures + tally.mismatched,
        out_of_order,
        webhook_wait.elapsed().as_secs_f64(),
    );
    for m in &missing {
        println!("    MISSING {m}");
    }
    let five_hundreds = by_class.get("500").copied().unwrap_or(0);
    drop(cluster);
    if let Some((url, name, _)) = &fresh {
        // The processes may still be closing their connections.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let _ = psql(url, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
    }
    if !lost.is_empty() {
        bail!("{} acknowledged writes lost", lost.len());
    }
    if five_hundreds > 0 {
        bail!("{five_hundreds} answers were 500");
    }
    if !missing.is_empty() || tally.bad_signatures + tally.mismatched + out_of_order > 0 {
        bail!(
            "webhooks: {} events missing, {} bad or differing copies, {out_of_order} out of order",
            missing.len(),
            tally.bad_signatures + tally.mismatched
        );
    }
    Ok(())
}
