//! The edges of the attacker's review, against the real binaries: password-change throttling,
//! bounded metric labels, connection limits, client addresses behind proxies, configuration
//! that used to crash or weaken, and per-caller internal credentials. Each failed before the fix.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::*;
use rand::Rng;
use repository::Backend;
use reqwest::Method;
use rpc::v1::user_service_client::UserServiceClient;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn opts(env: &[(&str, &str)]) -> Options {
    Options {
        extra_env: env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..Default::default()
    }
}

async fn monolith(env: &[(&str, &str)]) -> TestApp {
    TestApp::start_with(Backend::Sqlite, opts(env))
        .await
        .unwrap()
}

// ---- 7. password changes are throttled per user --------------------------------------------

#[tokio::test]
async fn password_changes_are_throttled_per_user() {
    let app = monolith(&[]).await;
    let (id, token, _) = app.user("churner").await;
    let passwords = ["Secret123", "Secret124"];
    for i in 0..5 {
        let r = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{id}/password"),
                Some(&token),
                Some(json!({"current_password": passwords[i % 2], "new_password": passwords[(i + 1) % 2]})),
            )
            .await;
        assert_eq!(r.status, 204, "change {i}: {:?}", r.body);
    }
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{id}/password"),
            Some(&token),
            Some(json!({"current_password": "Secret124", "new_password": "Secret123"})),
        )
        .await;
    r.assert_error(429, "RATE_LIMITED");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Another user is not affected.
    let (other, other_token, _) = app.user("bystander").await;
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{other}/password"),
            Some(&other_token),
            Some(json!({"current_password": "Secret123", "new_password": "Secret124"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
}

#[tokio::test]
async fn password_changes_are_throttled_over_grpc_too() {
    let app = monolith(&[]).await;
    let (id, token, _) = app.user("grpcchurner").await;
    let mut users = UserServiceClient::connect(app.grpc.clone()).await.unwrap();
    let passwords = ["Secret123", "Secret124"];
    let change = |i: usize| {
        let mut r = tonic::Request::new(rpc::v1::ChangePasswordRequest {
            id: id.clone(),
            current_password: Some(passwords[i % 2].into()),
            new_password: passwords[(i + 1) % 2].into(),
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    for i in 0..5 {
        users.change_password(change(i)).await.unwrap();
    }
    let e = users.change_password(change(5)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::ResourceExhausted, "{e:?}");
    assert_eq!(e.metadata().get("x-error-code").unwrap(), "RATE_LIMITED");
}

// ---- 9. metric labels stay bounded -------------------------------------------------------

fn series(metrics: &str) -> usize {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .count()
}

async fn random_requests(app: &TestApp, n: usize) {
    const STANDARD: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    for i in 0..n {
        let (method, path) = {
            let mut rng = rand::rng();
            let method = match STANDARD.get(i) {
                Some(m) => (*m).to_owned(),
                None if rng.random_bool(0.5) => {
                    STANDARD[rng.random_range(0..STANDARD.len())].to_owned()
                }
                None => format!("FOO{}", rng.random::<u32>()),
            };
            (
                method,
                format!("/x/{}/{}", rng.random::<u64>(), rng.random::<u16>()),
            )
        };
        let m = Method::from_bytes(method.as_bytes()).unwrap();
        let r = app.client.request(m, app.url(&path)).send().await.unwrap();
        assert!(
            r.status().is_client_error(),
            "{method} {path}: {}",
            r.status()
        );
    }
}

#[tokio::test]
async fn metric_labels_stay_bounded_under_random_methods_and_paths() {
    let app = monolith(&[]).await;
    // Every label combination random traffic can produce exists after a first round.
    random_requests(&app, 50).await;
    app.edge_ops.get("/metrics", None).await;
    let before = app
        .edge_ops
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    random_requests(&app, 1000).await;
    let after = app
        .edge_ops
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        series(&before),
        series(&after),
        "1,000 random requests added series:\n{after}"
    );
    assert!(after.contains("method=\"OTHER\""), "{after}");
    assert!(after.contains("route=\"unmatched\""), "{after}");
    assert!(!after.contains("FOO"), "{after}");
}

// ---- 10. connection limits -----------------------------------------------------------------

#[tokio::test]
async fn a_slow_request_head_is_cut_off() {
    let app = monolith(&[("ARCANA_HTTP_HEADER_TIMEOUT", "1")]).await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    // Half a request head, then silence.
    tcp.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), tcp.read_to_end(&mut buf)).await;
    assert!(
        closed.is_ok(),
        "the connection was still open after 6 s (header timeout 1 s)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // An idle keep-alive connection is closed as well.
    let mut idle = tokio::net::TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /.well-known/jwks.json HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(6), idle.read_to_end(&mut buf)).await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
}

#[tokio::test]
async fn a_grpc_call_whose_body_never_arrives_ends() {
    let app = monolith(&[("ARCANA_REQUEST_TIMEOUT", "1")]).await;
    let addr = app.grpc.trim_start_matches("http://").to_owned();
    let tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let (h2, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let mut h2 = h2.ready().await.unwrap();
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://{addr}/arcana.v1.AuthService/Login"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    // Headers only: the body (and end of stream) never comes.
    let (answer, _body_never_sent) = h2.send_request(req, false).unwrap();
    let started = Instant::now();
    let answer = tokio::time::timeout(Duration::from_secs(8), answer)
        .await
        .expect("no answer 8 s after a call whose body never came (request timeout 1 s)");
    match answer {
        Ok(resp) => {
            let status = resp
                .headers()
                .get("grpc-status")
                .map(|v| v.to_str().unwrap().to_owned());
            assert_eq!(status.as_deref(), Some("4"), "DEADLINE_EXCEEDED: {resp:?}");
        }
        // A reset stream is an acceptable end too.
        Err(e) => assert!(e.is_reset() || e.is_go_away(), "{e:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
}

// ---- 11. client addresses behind proxies ---------------------------------------------------

#[tokio::test]
async fn a_spoofed_forwarded_address_cannot_dodge_the_rate_limit() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options {
            rate_limit: 3,
            ..opts(&[("ARCANA_TRUSTED_PROXIES", "127.0.0.1/32")])
        },
    )
    .await
    .unwrap();
    // The proxy appends the real client with a port (or an obfuscated `unknown`); the attacker
    // varies the left-most entry on every request.
    for right in ["203.0.113.9:5555", "unknown", "[2001:db8::1]:443"] {
        let mut statuses = Vec::new();
        for i in 0..5 {
            let r = app
                .client
                .post(app.url("/api/v1/auth/login"))
                .header("x-forwarded-for", format!("198.51.100.{i}, {right}"))
                .json(&json!({"username_or_email": "nobody", "password": "Whatever1"}))
                .send()
                .await
                .unwrap();
            statuses.push(r.status().as_u16());
        }
        assert_eq!(
            statuses,
            [401, 401, 401, 429, 429],
            "hop {right:?}: the spoofed left-most value must not become the client"
        );
        // Each round is its own bucket: 203.0.113.9; the proxy itself (127.0.0.1), where
        // `unknown` ends the trust; 2001:db8::/64.
    }
}

// ---- 12. configuration that crashed or weakened --------------------------------------------

/// Start the monolith with `env` and wait for it to exit (at most 20 s). `None`: it kept running.
fn run_to_exit(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let grpc = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = dir.path().join("out.log");
    let mut cmd = Command::new(monolith_exe());
    cmd.env_clear()
        .env("ARCANA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ARCANA_GRPC_ADDR", format!("127.0.0.1:{grpc}"))
        .env(
            "ARCANA_METRICS_ADDR",
            format!("127.0.0.1:{}", testkit::free_port()),
        )
        .env("ARCANA_DATA_DIR", dir.path())
        .env("ARCANA_PASSWORD_ITERATIONS", "1000")
        .stdin(Stdio::null())
        .stdout(Stdio::from(std::fs::File::create(&out).unwrap()))
        .stderr(Stdio::from(
            std::fs::File::options().append(true).open(&out).unwrap(),
        ));
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let code = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (code, std::fs::read_to_string(out).unwrap_or_default())
}

#[tokio::test]
async fn bad_numbers_refuse_to_start_with_a_clear_message() {
    for (var, value, says) in [
        ("ARCANA_REFRESH_TTL", "999999999999", "refresh-ttl"),
        ("ARCANA_ACCESS_TTL", "0", "access-ttl"),
        ("ARCANA_REFRESH_REUSE_GRACE", "61", "refresh-reuse-grace"),
        ("ARCANA_DB_POOL_SIZE", "0", "db-pool-size"),
        ("ARCANA_REQUEST_TIMEOUT", "0", "request-timeout"),
        ("ARCANA_PASSWORD_ITERATIONS", "0", "password-iterations"),
        (
            "ARCANA_HTTP_HEADER_TIMEOUT",
            "100000",
            "http-header-timeout",
        ),
        (
            "ARCANA_CORS_ORIGINS",
            "*,https://app.example.com",
            "ARCANA_CORS_ORIGINS",
        ),
        (
            "ARCANA_CORS_ORIGINS",
            "app.example.com",
            "ARCANA_CORS_ORIGINS",
        ),
    ] {
        let (code, out) = run_to_exit(&[(var, value)]);
        assert!(
            matches!(code, Some(c) if c != 0),
            "{var}={value} must refuse to start (exit {code:?}):\n{out}"
        );
        assert!(!out.contains("panicked"), "{var}={value} panicked:\n{out}");
        assert!(
            out.contains(says),
            "{var}={value}: no clear message:\n{out}"
        );
    }
}

#[tokio::test]
async fn cors_star_allows_any_origin_without_credentials() {
    let app = monolith(&[("ARCANA_CORS_ORIGINS", "*")]).await;
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("origin", "https://anything.example")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["access-control-allow-origin"], "*");
    assert!(
        r.headers()
            .get("access-control-allow-credentials")
            .is_none()
    );
}

#[tokio::test]
async fn weak_password_iterations_are_announced_at_start() {
    let app = monolith(&[]).await;
    assert!(
        app.logs().contains("below 100000"),
        "no warning about 1,000 iterations:\n{}",
        app.logs()
    );
}

// ---- 14. per-caller internal credentials ---------------------------------------------------

#[tokio::test]
async fn the_repository_refuses_the_gateways_credential() {
    use rpc::internal::repository_service_client::RepositoryServiceClient;
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    app.user("hashholder").await;
    let port = app
        .internal
        .iter()
        .find(|(n, _)| n == "arcana-repository")
        .unwrap()
        .1;
    let mut repo = RepositoryServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let ask = |token: &str| {
        let mut r = tonic::Request::new(rpc::internal::FindCredentialsRequest {
            login: "hashholder".into(),
        });
        r.metadata_mut()
            .insert("x-internal-token", token.parse().unwrap());
        r
    };
    // What a compromised gateway holds: refused before any handler runs.
    let e = repo
        .find_credentials(ask(INTERNAL_TOKEN))
        .await
        .unwrap_err();
    assert!(
        matches!(
            e.code(),
            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
        ),
        "{e:?}"
    );
    // The service layers' credential works.
    let found = repo
        .find_credentials(ask(REPOSITORY_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert!(found.credentials.is_some());
}

// ---- migrations you can inspect ---------------------------------------------------------------

/// `arcana migrate status` lists every migration as pending on a fresh database and applies
/// nothing; after `arcana migrate` every one is applied.
#[test]
fn migrate_status_lists_applied_and_pending_migrations() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_arcana"))
            .args(args)
            .env_clear()
            .env("ARCANA_DATA_DIR", dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let migrations = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../migrations/sqlite"
    ))
    .unwrap()
    .count();
    let before = run(&["migrate", "status"]);
    assert_eq!(
        before
            .lines()
            .filter(|l| l.starts_with("pending  "))
            .count(),
        migrations,
        "{before}"
    );
    assert!(
        before.contains(&format!("sqlite: 0 applied, {migrations} pending")),
        "{before}"
    );
    // Still nothing applied: status applies nothing.
    assert!(run(&["migrate", "status"]).contains("0 applied"));
    run(&["migrate"]);
    let after = run(&["migrate", "status"]);
    assert_eq!(
        after.lines().filter(|l| l.starts_with("applied  ")).count(),
        migrations,
        "{after}"
    );
    assert!(
        after.contains("applied  2025-11-22-000000_create_tables"),
        "{after}"
    );
    assert!(
        after.contains(&format!("sqlite: {migrations} applied, 0 pending")),
        "{after}"
    );
}

// ---- a lower layer that crashes answers 503, never 500 --------------------------------------

/// Under steady load (every read crossing both hops: no user caches), the repository is killed
/// with SIGKILL: the calls in flight at that moment and every call until it is back answer 503
/// SERVICE_UNAVAILABLE; none answers 500. (Transport failures between layers used to surface as
/// "a layer below answered INTERNAL".)
#[tokio::test]
async fn a_crashed_repository_answers_503_never_500() {
    let mut app = TestApp::start_mode(
        Mode::Layered,
        Backend::Sqlite,
        opts(&[("ARCANA_USER_CACHE_SIZE", "0")]),
    )
    .await
    .unwrap();
    let (id, token, _) = app.user("steadfast").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for _ in 0..8 {
        let (rest, stop) = (testkit::rest::Rest::new(app.base.clone()), stop.clone());
        let (path, token) = (format!("/api/v1/users/{id}"), token.clone());
        workers.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<u16, u32>::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = rest.get(&path, Some(&token)).await;
                if r.status == 500 {
                    panic!("500 during the outage: {:?}", r.body);
                }
                *seen.entry(r.status).or_default() += 1;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let repo = app.process("arcana-repository");
    app.kill_process(repo);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    app.restart_process(repo);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = std::collections::BTreeMap::<u16, u32>::new();
    for w in workers {
        for (status, n) in w.await.unwrap() {
            *total.entry(status).or_default() += n;
        }
    }
    println!("answers during a repository crash: {total:?}");
    assert!(total.keys().all(|s| *s == 200 || *s == 503), "{total:?}");
    assert!(
        total.get(&503).copied().unwrap_or(0) > 0,
        "the outage was seen: {total:?}"
    );
    // And it recovers by itself.
    let r = app.get(&format!("/api/v1/users/{id}"), Some(&token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// A rolling restart of the two service replicas under mixed load (reads, profile writes,
/// logins) costs no request: each replica in turn gets SIGTERM, reports NOT_SERVING while it
/// still serves (the gateway stops choosing it), finishes what it has, exits, and comes back
/// before the next one goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_restart_of_the_service_replicas_loses_no_request() {
    let opts = Options {
        service_replicas: 2,
        ..opts(&[
            ("ARCANA_DRAIN_DELAY_MS", "1000"),
            ("ARCANA_USER_CACHE_SIZE", "0"),
        ])
    };
    let mut app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, opts)
        .await
        .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        // Each client its own account: reads, profile writes, now and then a login.
        let name = format!("rolling{w}");
        let (id, token, _) = app.user(&name).await;
        let (rest, stop) = (testkit::rest::Rest::new(app.base.clone()), stop.clone());
        let path = format!("/api/v1/users/{id}");
        workers.push(tokio::spawn(async move {
            let mut seen = std::collections::BTreeMap::<String, u32>::new();
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let r = match n % 10 {
                    0 => rest.login(&name, "Secret123").await,
                    1 | 4 | 7 => {
                        let body = serde_json::json!({"first_name": format!("N{n}")});
                        rest.call(reqwest::Method::PATCH, &path, Some(&token), Some(body))
                            .await
                    }
                    _ => rest.get(&path, Some(&token)).await,
                };
                let key = match r.status {
                    200 => "200".to_owned(),
                    s => format!("{s} {}", r.body["error"]["code"]),
                };
                *seen.entry(key).or_default() += 1;
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for name in ["arcana-service", "arcana-service-2"] {
        let i = app.process(name);
        assert!(app.terminate_process(i).success(), "{name} exits cleanly");
        app.restart_process(i);
        // Back and serving (its ops port), then a moment for the gateway to see it.
        let port = app.ops.iter().find(|(n, _)| n == name).unwrap().1;
        let started = std::time::Instant::now();
        while testkit::cluster::http_status(
            std::net::SocketAddr::from(([127, 0, 0, 1], port)),
            "/health/ready",
        )
        .await
            != Some(200)
        {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{name} did not come back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut total = std::collections::BTreeMap::<String, u32>::new();
    for w in workers {
        for (k, n) in w.await.unwrap() {
            *total.entry(k).or_default() += n;
        }
    }
    println!("answers during a rolling restart: {total:?}");
    assert_eq!(total.len(), 1, "every answer 200: {total:#?}");
    assert!(total["200"] > 200, "load was applied: {total:?}");
}

// ---- round 2, item 2: lockout per (account, client network) --------------------------------

/// Five wrong passwords from one network lock that network; the owner, from another network
/// (behind the same trusted proxy), still signs in. On the old code the owner got 423.
async fn strangers_lock_only_their_own_network(mode: Mode) {
    let app = TestApp::start_mode(
        mode,
        Backend::Sqlite,
        opts(&[("ARCANA_TRUSTED_PROXIES", "127.0.0.1/32")]),
    )
    .await
    .unwrap();
    app.user("victim").await;
    let login = |from: &'static str, password: &'static str| {
        app.client
            .post(app.url("/api/v1/auth/login"))
            .header("x-forwarded-for", from)
            .json(&json!({"username_or_email": "victim", "password": password}))
            .send()
    };
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(
            login("203.0.113.7", "WrongPass1")
                .await
                .unwrap()
                .status()
                .as_u16(),
        );
    }
    assert_eq!(statuses, [401, 401, 401, 401, 401, 423]);
    // The attacker's /24 is locked even for the right password...
    let r = login("203.0.113.99", "Secret123").await.unwrap();
    assert_eq!(r.status().as_u16(), 423);
    // ...the owner elsewhere is not.
    let r = login("198.51.100.20", "Secret123").await.unwrap();
    assert_eq!(r.status().as_u16(), 200, "{:?}", r.text().await);
}

#[tokio::test]
async fn strangers_lock_only_their_own_network_monolith() {
    strangers_lock_only_their_own_network(Mode::Monolith).await;
}

#[tokio::test]
async fn strangers_lock_only_their_own_network_layered() {
    strangers_lock_only_their_own_network(Mode::Layered).await;
}

// ---- round 2, item 5: the service layer verifies the caller itself --------------------------

/// What a compromised gateway holds (the internal credential) no longer makes anyone an admin
/// on the service port: the `x-arcana-*` identity is not believed, only a forwarded access token
/// that verifies and whose session is live. On the old code the forged admin listed every user.
#[tokio::test]
async fn the_service_port_believes_only_a_verified_access_token() {
    use rpc::v1::auth_service_client::AuthServiceClient;
    use rpc::v1::user_service_client::UserServiceClient;
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    let (uid, access, _) = app.user("bystander").await;
    let port = app
        .internal
        .iter()
        .find(|(n, _)| n == "arcana-service")
        .unwrap()
        .1;
    let url = format!("http://127.0.0.1:{port}");
    let mut users = UserServiceClient::connect(url.clone()).await.unwrap();
    let mut auth = AuthServiceClient::connect(url).await.unwrap();
    let with = |md: &mut tonic::metadata::MetadataMap, pairs: &[(&'static str, String)]| {
        md.insert("x-internal-token", INTERNAL_TOKEN.parse().unwrap());
        for (k, v) in pairs {
            md.insert(*k, v.parse().unwrap());
        }
    };
    // A forged admin identity, with the gateway's credential.
    let mut req = tonic::Request::new(rpc::v1::ListUsersRequest::default());
    with(
        req.metadata_mut(),
        &[
            ("x-arcana-user-id", uid.clone()),
            ("x-arcana-session-id", uuid::Uuid::new_v4().to_string()),
            ("x-arcana-role", "admin".into()),
        ],
    );
    let e = users.list_users(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // A forged token: refused.
    let mut req = tonic::Request::new(rpc::v1::MeRequest {});
    with(
        req.metadata_mut(),
        &[("authorization", "Bearer not.a.jwt".into())],
    );
    let e = auth.me(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
    // The user's own token acts as that user, and only as that user.
    let bearer = format!("Bearer {access}");
    let mut req = tonic::Request::new(rpc::v1::MeRequest {});
    with(req.metadata_mut(), &[("authorization", bearer.clone())]);
    assert_eq!(auth.me(req).await.unwrap().into_inner().id, uid);
    let mut req = tonic::Request::new(rpc::v1::ListUsersRequest::default());
    with(req.metadata_mut(), &[("authorization", bearer.clone())]);
    let e = users.list_users(req).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied, "{e:?}");
    // Once its session is over, the token is refused on the service port within the second a
    // "live" answer is reused.
    let r = app
        .post("/api/v1/auth/logout", Some(&access), json!({}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let ended = Instant::now();
    loop {
        let mut req = tonic::Request::new(rpc::v1::MeRequest {});
        with(req.metadata_mut(), &[("authorization", bearer.clone())]);
        match auth.me(req).await {
            Err(e) => {
                assert_eq!(e.code(), tonic::Code::Unauthenticated, "{e:?}");
                break;
            }
            Ok(_) => assert!(
                ended.elapsed() < Duration::from_millis(1500),
                "a logged-out token still worked on the service port after {:?}",
                ended.elapsed()
            ),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

// ---- round 2, item 8: data and mail files readable by their owner only ---------------------

#[cfg(unix)]
fn mode(p: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

/// A zero-config start creates its data and mail directories 0700 and the database (with its
/// -wal and -shm) and every `.eml` 0600. The old code left them 0755
/// and 0644: any local user could read the password hashes and the mailed reset links.
#[cfg(unix)]
#[tokio::test]
async fn data_and_mail_files_are_private() {
    let root = tempfile::tempdir().unwrap();
    let data = root.path().join("fresh").join("data");
    let mail = data.join("mail");
    let app = TestApp::start_with(
        Backend::Sqlite,
        opts(&[
            ("ARCANA_DATA_DIR", data.to_str().unwrap()),
            (
                "ARCANA_DATABASE_URL",
                &format!("sqlite://{}/arcana.db", data.display()),
            ),
            ("ARCANA_MAIL_DIR", mail.to_str().unwrap()),
        ]),
    )
    .await
    .unwrap();
    app.user("private").await;
    // The verification mail is written by the delivery worker.
    let deadline = Instant::now() + Duration::from_secs(20);
    let eml = loop {
        let found = std::fs::read_dir(&mail).ok().and_then(|d| {
            d.flatten()
                .map(|e| e.path())
                .find(|p| p.extension().is_some_and(|x| x == "eml"))
        });
        if let Some(p) = found {
            break p;
        }
        assert!(Instant::now() < deadline, "no mail file was written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mode(&data), 0o700, "data dir");
    assert_eq!(mode(&mail), 0o700, "mail dir");
    for f in ["arcana.db", "arcana.db-wal", "arcana.db-shm"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    assert_eq!(mode(&eml), 0o600, "{}", eml.display());
}

// ---- round 2, item 7: SMTP credentials never travel without TLS ------------------------------

const PUBLIC_URL: (&str, &str) = ("ARCANA_PUBLIC_URL", "https://id.example.test");

#[test]
fn smtp_credentials_without_tls_stop_the_start() {
    let (code, out) = run_to_exit(&[
        (
            "ARCANA_SMTP_URL",
            "smtp://mailer:pa55word@192.0.2.25:25?tls=none",
        ),
        PUBLIC_URL,
    ]);
    assert!(matches!(code, Some(c) if c != 0), "{code:?}: {out}");
    assert!(out.contains("credentials"), "{out}");
    assert!(
        !out.contains("pa55word"),
        "the password leaked into the log: {out}"
    );
    let (code, out) = run_to_exit(&[
        ("ARCANA_SMTP_URL", "smtp://192.0.2.25:25?tls=opportunistic"),
        PUBLIC_URL,
    ]);
    assert!(matches!(code, Some(c) if c != 0), "{code:?}: {out}");
    assert!(out.contains("tls=required"), "{out}");
}

// ---- round 2, item 14: configuration that mailed dead links or took secrets as flags ---------

/// SMTP without ARCANA_PUBLIC_URL used to start and mail links to http://localhost:8080.
#[test]
fn smtp_needs_the_public_url() {
    let (code, out) = run_to_exit(&[("ARCANA_SMTP_URL", "smtps://smtp.example.test")]);
    assert!(matches!(code, Some(c) if c != 0), "{code:?}: {out}");
    assert!(out.contains("ARCANA_PUBLIC_URL is required"), "{out}");
}

/// A secret given as a flag was visible to every local user in the process list; now secrets
/// are read from the environment or a file only, and the flag is refused before anything starts.
#[test]
fn secrets_are_not_accepted_as_flags() {
    for flag in [
        "--jwt-secret",
        "--database-url",
        "--internal-token",
        "--smtp-url",
        "--redis-url",
        "--bootstrap-admin-password",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(monolith_exe())
            .env_clear()
            .env("ARCANA_DATA_DIR", dir.path())
            .env(
                "ARCANA_HTTP_ADDR",
                format!("127.0.0.1:{}", testkit::free_port()),
            )
            .env(
                "ARCANA_GRPC_ADDR",
                format!("127.0.0.1:{}", testkit::free_port()),
            )
            .env(
                "ARCANA_METRICS_ADDR",
                format!("127.0.0.1:{}", testkit::free_port()),
            )
            .args([flag, "hunter2-hunter2-hunter2-hunter2-hunter2"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Refused at once; the old binaries took the value and kept serving.
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(status.and_then(|s| s.code()), Some(2), "{flag}: {status:?}");
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(err.contains("unexpected argument"), "{flag}: {err}");
    }
}
