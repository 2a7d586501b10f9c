//! `bench webhooks`: what lifecycle webhooks cost and deliver, per deployment mode, against a
//! receiver in this process (loopback, every signature checked):
//!
//! 1. the cost added to a write: closed-loop `PATCH /api/v1/users/{id}` (each client its own
//!    user, bearer token, JSON) with no endpoint; with one endpoint subscribed to `user.updated`
//!    but paused (the event written in the write's transaction, nothing sent); and delivering
//!    while the writes go on; same clients, same length, same run;
//! 2. delivery throughput: the paused phase's events, delivered per second once resumed; none
//!    lost (each webhook-id once or more), none out of a user's commit order.
//!
//! The soak (`bench soak`) reuses [`Endpoint`] to check that kill -9 loses no event.
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde_json::{Value, json};
use testkit::cluster::{Cluster, Mode, Options};
use testkit::rest::Rest;
use testkit::webhooks::{Received, Receiver, verify};

use crate::cluster::Bins;

/// The environment a deployment needs to deliver to a receiver on loopback.
pub fn env() -> Vec<(String, String)> {
    [
        ("ARCANA_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("ARCANA_WEBHOOK_RETRY_BASE_MS", "200"),
        ("ARCANA_WEBHOOK_POLL_MS", "100"),
        ("ARCANA_WEBHOOK_LEASE_SECONDS", "20"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect()
}

/// An endpoint registered on a deployment, and its receiver.
pub struct Endpoint {
    pub receiver: Receiver,
    pub id: String,
    pub secret: String,
}

impl Endpoint {
    pub async fn register(rest: &Rest, admin: &str, events: &[&str]) -> Result<Self> {
        let receiver = Receiver::start().await;
        let r = rest
            .post(
                "/api/v1/webhooks",
                Some(admin),
                json!({"url": receiver.url("/in"), "events": events, "description": "bench"}),
            )
            .await;
        if r.status != 201 {
            bail!("registering the endpoint: {} {:?}", r.status, r.body);
        }
        let text = |k: &str| r.data()[k].as_str().unwrap_or_default().to_owned();
        Ok(Self {
            id: text("id"),
            secret: text("secret"),
            receiver,
        })
    }

    pub async fn set_enabled(&self, rest: &Rest, admin: &str, enabled: bool) -> Result<()> {
        let r = rest
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/webhooks/{}", self.id),
                Some(admin),
                Some(json!({"enabled": enabled})),
            )
            .await;
        if r.status != 200 {
            bail!("PATCH webhook: {} {:?}", r.status, r.body);
        }
        Ok(())
    }

    /// What arrived: per webhook-id the first body, how many times it came, whether every copy
    /// was the same and signed.
    pub fn tally(&self) -> Tally {
        let mut t = Tally::default();
        for r in self.receiver.received() {
            t.attempts += 1;
            if !verify(&self.secret, &r) {
                t.bad_signatures += 1;
            }
            match t.first.get(&r.id) {
                Some(first) if first.body != r.body => t.mismatched += 1,
                Some(_) => t.duplicates += 1,
                None => {
                    t.order.push(r.id.clone());
                    t.first.insert(r.id.clone(), r);
                }
            }
        }
        t
    }
}

#[derive(Default)]
pub struct Tally {
    pub attempts: usize,
    /// The first copy of each webhook-id.
    pub first: HashMap<String, Received>,
    /// webhook-ids in order of first arrival.
    pub order: Vec<String>,
    /// Copies of an id already seen, identical to the first.
    pub duplicates: usize,
    /// Copies of an id with another body (must be 0).
    pub mismatched: usize,
    pub bad_signatures: usize,
}

impl Tally {
    /// First arrivals, in order, as JSON.
    pub fn events(&self) -> Vec<Value> {
        self.order.iter().map(|id| self.first[id].json()).collect()
    }

    /// Users whose events arrived out of their commit order (their `sequence` not increasing).
    pub fn out_of_order(&self) -> usize {
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        let mut bad = 0;
        for e in self.events() {
            let (Some(user), Some(seq)) = (
                e["data"]["user_id"].as_str(),
                e["data"]["sequence"].as_i64(),
            ) else {
                continue;
            };
            let prev = last.insert(user.to_owned(), seq);
            if prev.is_some_and(|p| p >= seq) {
                bad += 1;
            }
        }
        bad
    }
}

struct Phase {
    ok: u64,
    errors: u64,
    seconds: f64,
    latencies_us: Vec<u64>,
}

impl Phase {
    fn rate(&self) -> f64 {
        self.ok as f64 / self.seconds
    }
    fn quantile_ms(&self, q: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return 0.0;
        }
        let i = ((self.latencies_us.len() - 1) as f64 * q).round() as usize;
        self.latencies_us[i] as f64 / 1000.0
    }
}

/// Closed-loop profile writes by `clients` for `d`.
async fn writes(users: &[(Rest, String, String)], d: Duration, tag: &str) -> Phase {
    let start = Instant::now();
    let tasks: Vec<_> = users
        .iter()
        .cloned()
        .map(|(rest, id, token)| {
            let tag = tag.to_owned();
            tokio::spawn(async move {
                let (mut ok, mut errors, mut lat) = (0u64, 0u64, Vec::new());
                let mut n = 0u64;
                while start.elapsed() < d {
                    n += 1;
                    let t = Instant::now();
                    let r = rest
                        .client
                        .patch(rest.url(&format!("/api/v1/users/{id}")))
                        .bearer_auth(&token)
                        .json(&json!({"first_name": format!("{tag}{n}")}))
                        .send()
                        .await;
                    match r {
                        Ok(r) if r.status() == 200 => {
                            ok += 1;
                            lat.push(u64::try_from(t.elapsed().as_micros()).unwrap_or(u64::MAX));
                        }
                        _ => errors += 1,
                    }
                }
                (ok, errors, lat)
            })
        })
        .collect();
    let mut phase = Phase {
        ok: 0,
        errors: 0,
        seconds: 0.0,
        latencies_us: Vec::new(),
    };
    for t in tasks {
        if let Ok((ok, errors, lat)) = t.await {
            phase.ok += ok;
            phase.errors += errors;
            phase.latencies_us.extend(lat);
        }
    }
    phase.seconds = start.elapsed().as_secs_f64();
    phase.latencies_us.sort_unstable();
    phase
}

/// Wait (at most `within`) until the receiver holds `n` distinct webhook-ids.
async fn drained(e: &Endpoint, n: usize, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < within {
        if e.tally().first.len() >= n {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

pub async fn run(bins: &Bins, modes: &[Mode], seconds: f64, clients: usize) -> Result<()> {
    let d = Duration::from_secs_f64(seconds);
    let mut lines = Vec::new();
    let mut failures = Vec::new();
    for &mode in modes {
        let opts = Options {
            mode,
            password_iterations: 1000,
            rust_log: "warn".into(),
            db_pool_size: None,
            env: env()
                .into_iter()
                .chain([("ARCANA_TOKEN_RATE_LIMIT".to_owned(), "0".to_owned())])
                .chain(bins.extra_env.iter().cloned())
                .collect(),
            ..Options::default()
        };
        let cluster = Cluster::start(&bins.arcana, &opts)
            .await
            .map_err(anyhow::Error::msg)?;
        let base = format!("http://{}", cluster.http);
        let admin_rest = Rest::new(base.clone());
        let admin = admin_rest.admin_token().await;
        let mut users = Vec::new();
        for c in 0..clients {
            let rest = Rest::new(base.clone());
            let a = rest.account(&format!("hook{c}")).await;
            users.push((rest, a.id, a.access_token));
        }
        // Warm the connections and caches, then: no endpoint; an endpoint paused (the events
        // only queued: the cost inside the write's transaction); resumed (the queue delivered);
        // delivering while the writes go on (the dispatcher shares the machine).
        writes(&users, Duration::from_millis(500), "w").await;
        let bare = writes(&users, d, "a").await;
        let endpoint = Endpoint::register(&admin_rest, &admin, &["user.updated"]).await?;
        endpoint.set_enabled(&admin_rest, &admin, false).await?;
        let queued = writes(&users, d, "q").await;
        let n_queued = usize::try_from(queued.ok).unwrap_or(0);
        let resumed = Instant::now();
        endpoint.set_enabled(&admin_rest, &admin, true).await?;
        let burst = drained(&endpoint, n_queued, Duration::from_secs(300))
            .await
            .map(|_| n_queued as f64 / resumed.elapsed().as_secs_f64());
        let live = writes(&users, d, "l").await;
        let expected = n_queued + usize::try_from(live.ok).unwrap_or(0);
        let drain = drained(&endpoint, expected, Duration::from_secs(300)).await;
        let t = endpoint.tally();
        let lost = expected.saturating_sub(t.first.len());
        let out_of_order = t.out_of_order();
        let ratio = |p: &Phase| p.rate() / bare.rate().max(f64::MIN_POSITIVE);
        lines.push(format!(
            "  {:<14} {:>7.0} {:>7.0} {:>5.2}x {:>7.0} {:>5.2}x | {:>5.1} {:>5.1} {:>5.1} | {:>6.1} {:>6.1} {:>6.1} | {:>9} {:>7} {:>5} {:>4} {:>4} {:>4}",
            format!("{mode:?}").to_lowercase(),
            bare.rate(),
            queued.rate(),
            ratio(&queued),
            live.rate(),
            ratio(&live),
            bare.quantile_ms(0.5),
            queued.quantile_ms(0.5),
            live.quantile_ms(0.5),
            bare.quantile_ms(0.99),
            queued.quantile_ms(0.99),
            live.quantile_ms(0.99),
            burst.map_or("timeout".into(), |r| format!("{r:.0}/s")),
            drain.map_or("timeout".into(), |d| format!("{:.2} s", d.as_secs_f64())),
            lost,
            t.duplicates,
            t.bad_signatures + t.mismatched,
            out_of_order,
        ));
        if lost > 0 || t.bad_signatures > 0 || t.mismatched > 0 || out_of_order > 0 {
            failures.push(format!(
                "{mode:?}: {lost} lost, {} bad signatures, {} mismatched copies, {out_of_order} out of order",
                t.bad_signatures, t.mismatched
            ));
        }
        let errors = bare.errors + queued.errors + live.errors;
        if errors > 0 {
            failures.push(format!("{mode:?}: {errors} write errors"));
        }
        drop(cluster);
    }
    println!(
        "\nwebhooks: {clients} clients, {seconds:.1} s per phase, PATCH /users/{{id}} (bearer, JSON); one endpoint (user.updated) on a loopback receiver checking every signature"
    );
    println!(
        "  {:<14} {:>7} {:>7} {:>6} {:>7} {:>6} | {:>17} | {:>20} | {:>9} {:>7} {:>5} {:>4} {:>4} {:>4}",
        "mode",
        "none/s",
        "queue/s",
        "ratio",
        "live/s",
        "ratio",
        "p50 ms (n/q/l)",
        "p99 ms (n/q/l)",
        "delivered",
        "drain",
        "lost",
        "dup",
        "bad",
        "ooo"
    );
    for l in &lines {
        println!("{l}");
    }
    println!(
        "  none: no endpoint; queue: an endpoint subscribed but paused (the event written in the write's transaction, not sent); live: delivering while the writes go on; delivered: the paused phase's events per second once resumed; drain: after the live phase until its last event arrived; ooo: a user's events out of commit order"
    );
    if !failures.is_empty() {
        bail!("{}", failures.join("; "));
    }
    Ok(())
}
