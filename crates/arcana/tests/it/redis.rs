//! Several gateways sharing Redis (ARCANA_REDIS_URL): rate limits held in total, revocations
//! reaching every replica at once, and Redis failing open (its own server, killed and brought
//! back). Real processes, real Redis: the shared server of ARCANA_TEST_REDIS_URL (each test under
//! its own key prefix) or one the test starts. Without ARCANA_TEST_REDIS_URL these print SKIPPED
//! (and fail with `CI` set).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use repository::Backend;
use serde_json::json;
use testkit::rest::Rest;

fn redis_url() -> Option<String> {
    std::env::var("ARCANA_TEST_REDIS_URL")
        .ok()
        .filter(|u| !u.is_empty())
}

/// A layered deployment whose gateway uses `redis`, under a key prefix of its own, with
/// `rate` requests per minute per client IP; client addresses from X-Forwarded-For.
async fn layered(redis: &str, rate: u32) -> TestApp {
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let env = [
        ("ARCANA_REDIS_URL", redis.to_owned()),
        ("ARCANA_REDIS_PREFIX", prefix),
        ("ARCANA_TRUSTED_PROXIES", "127.0.0.1/32".to_owned()),
    ];
    TestApp::start_mode(
        Mode::Layered,
        Backend::Sqlite,
        Options {
            rate_limit: rate,
            extra_env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            ..Default::default()
        },
    )
    .await
    .unwrap()
}

/// One login attempt (an unknown user: 401 while the budget lasts, then 429) as `client_ip`.
async fn attempt(rest: &Rest, client_ip: &str) -> u16 {
    rest.client
        .post(rest.url("/api/v1/auth/login"))
        .header("x-forwarded-for", client_ip)
        .json(&json!({"username_or_email": "nobody", "password": "Wrong1234"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// `n` attempts alternating between the gateways: how many were let through (not 429).
async fn let_through(gateways: &[&Rest], client_ip: &str, n: usize) -> usize {
    let mut through = 0;
    for i in 0..n {
        let status = attempt(gateways[i % gateways.len()], client_ip).await;
        assert!(status == 401 || status == 429, "attempt {i}: {status}");
        if status == 401 {
            through += 1;
        }
    }
    through
}

#[tokio::test]
async fn two_gateways_hold_the_limit_in_total() {
    let Some(redis) = redis_url() else {
        repository::testing::skipped(
            "two_gateways_hold_the_limit_in_total",
            "ARCANA_TEST_REDIS_URL not set",
        );
        return;
    };
    let mut app = layered(&redis, 6).await;
    let b = app.add_edge().await;
    let a = Rest::new(app.base.clone());
    // 6 per minute for this address across both gateways, not 6 each.
    assert_eq!(let_through(&[&a, &b], "198.51.100.7", 12).await, 6);
    let r = a
        .client
        .post(a.url("/api/v1/auth/login"))
        .header("x-forwarded-for", "198.51.100.7")
        .json(&json!({"username_or_email": "nobody", "password": "Wrong1234"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    assert!(r.headers().get("retry-after").is_some());
    // Another address has its own budget.
    assert_eq!(let_through(&[&b, &a], "198.51.100.8", 2).await, 2);
}

/// Poll `path` on `rest` with `token` until it answers 401: how long it took.
async fn until_refused(rest: &Rest, token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let r = rest.get("/api/v1/auth/me", Some(token)).await;
        if r.status == 401 {
            return started.elapsed();
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert!(started.elapsed() < Duration::from_secs(5), "never refused");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test]
async fn a_revocation_on_one_gateway_is_refused_on_the_other_at_once() {
    let Some(redis) = redis_url() else {
        repository::testing::skipped(
            "a_revocation_on_one_gateway_…",
            "ARCANA_TEST_REDIS_URL not set",
        );
        return;
    };
    let mut app = layered(&redis, 0).await;
    let b = app.add_edge().await;
    // A session: B has just checked it (its liveness cache holds "live" for 2 s).
    let (_, token, _) = app.user("roamer").await;
    assert_eq!(b.get("/api/v1/auth/me", Some(&token)).await.status, 200);
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/logout",
            Some(&token),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let session = until_refused(&b, &token).await;
    // Every session of a user (logout-all through A), B having just checked a token of it.
    let (_, t1, _) = app.user("wanderer").await;
    let r = app.login("wanderer", "Secret123").await;
    let t2 = r.data()["access_token"].as_str().unwrap().to_owned();
    assert_eq!(b.get("/api/v1/auth/me", Some(&t1)).await.status, 200);
    let r = app
        .call(
            reqwest::Method::POST,
            "/api/v1/auth/logout-all",
            Some(&t2),
            None,
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let user = until_refused(&b, &t1).await;
    println!("refused on the other gateway after: session {session:?}, user {user:?}");
    // Without the broadcast B would keep answering from its cache for up to 2 s.
    assert!(session < Duration::from_millis(1000), "{session:?}");
    assert!(user < Duration::from_millis(1000), "{user:?}");
}

/// A Redis server of the test's own, so it can be killed and started again on its port.
struct OwnRedis {
    port: u16,
    child: Child,
}

impl OwnRedis {
    fn start(port: u16) -> OwnRedis {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server) must be installed");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        OwnRedis { port, child }
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

#[tokio::test]
async fn redis_down_fails_open_and_sharing_comes_back() {
    if redis_url().is_none() {
        repository::testing::skipped("redis_down_fails_open_…", "ARCANA_TEST_REDIS_URL not set");
        return;
    }
    let mut redis = OwnRedis::start(testkit::free_port());
    let url = format!("redis://127.0.0.1:{}", redis.port);
    let mut app = layered(&url, 4).await;
    let b = app.add_edge().await;
    let a = Rest::new(app.base.clone());
    assert_eq!(let_through(&[&a, &b], "203.0.113.1", 8).await, 4, "shared");

    redis.kill();
    // Requests keep being served (never a 500 for Redis) and each gateway limits on its own.
    let (_, token, _) = app.user("steady").await;
    assert_eq!(b.get("/api/v1/auth/me", Some(&token)).await.status, 200);
    assert_eq!(
        let_through(&[&a, &b], "203.0.113.2", 10).await,
        8,
        "local: 4 per gateway"
    );
    let metrics = app
        .edge_ops
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(metrics.contains("redis_fallbacks_total"), "{metrics}");

    // Back on the same port (empty): shared again within a few seconds, by itself.
    redis = OwnRedis::start(redis.port);
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut round = 0;
    loop {
        round += 1;
        let through = let_through(&[&a, &b], &format!("203.0.113.{}", 10 + round), 8).await;
        if through == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "limits never shared again ({through} let through)"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    // And revocations travel again.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (_, token, _) = app.user(&format!("again{round}")).await;
        round += 1;
        assert_eq!(b.get("/api/v1/auth/me", Some(&token)).await.status, 200);
        let r = app
            .call(
                reqwest::Method::POST,
                "/api/v1/auth/logout",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, 200);
        if until_refused(&b, &token).await < Duration::from_millis(1000) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "revocations never broadcast again"
        );
    }
    drop(redis);
}

/// The user cache in Redis, shared by two service replicas: reads are served from it, and a
/// write through either replica is seen by the next read through the other (no replica keeps a
/// copy of its own).
#[tokio::test]
async fn the_shared_user_cache_follows_every_write() {
    let Some(redis) = redis_url() else {
        repository::testing::skipped("the_shared_user_cache_…", "ARCANA_TEST_REDIS_URL not set");
        return;
    };
    let prefix = format!("test-{}:", uuid::Uuid::new_v4().simple());
    let app = TestApp::start_mode(
        Mode::Layered,
        Backend::Sqlite,
        Options {
            service_replicas: 2,
            extra_env: vec![
                ("ARCANA_REDIS_URL".into(), redis.clone()),
                ("ARCANA_REDIS_PREFIX".into(), prefix.clone()),
            ],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let (id, token, _) = app.user("cached").await;
    let path = format!("/api/v1/users/{id}");
    assert_eq!(app.get(&path, Some(&token)).await.status, 200);
    let out = Command::new("redis-cli")
        .args(["-u", &redis, "GET", &format!("{prefix}user:{id}")])
        .output()
        .expect("redis-cli");
    let entry = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        entry.contains("\"username\":\"cached\""),
        "not cached: {entry:?}"
    );
    // Calls alternate between the replicas: every read sees the write before it.
    for i in 0..12 {
        let name = format!("Name{i}");
        let r = app
            .call(
                reqwest::Method::PATCH,
                &path,
                Some(&token),
                Some(json!({"first_name": name})),
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        for _ in 0..2 {
            let r = app.get(&path, Some(&token)).await;
            assert_eq!(
                r.data()["first_name"],
                name.as_str(),
                "stale read after write {i}"
            );
        }
    }
}
