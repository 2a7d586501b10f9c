//! Every process answers `/metrics` and `/health/*` on its ops listener (`ARCANA_METRICS_ADDR`),
//! the edge included, and never on a public port: gRPC RED on both sides of each hop, the
//! database pool, the hash queue, the mail outbox and the build, as the chart's ServiceMonitor
//! scrapes them; with `ARCANA_METRICS_TOKEN` only a scraper holding it reads `/metrics`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use repository::Backend;
use reqwest::Method;

async fn get(port: u16, path: &str) -> (u16, String) {
    let r = reqwest::get(format!("http://127.0.0.1:{port}{path}"))
        .await
        .unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn every_process_reports(mode: Mode) {
    let app = TestApp::start_mode(mode, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    // Traffic through every layer: register (a write), read back, a login.
    let (id, token, _) = app.user("observed").await;
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), Some(&token))
            .await
            .status,
        200
    );
    assert_eq!(app.login("observed", "Secret123").await.status, 200);
    let expected_services = match mode {
        Mode::Layered => vec!["arcana-service"],
        _ => vec!["arcana-auth-service", "arcana-user-service"],
    };
    let mut seen = Vec::new();
    for (name, port) in &app.ops {
        let (status, text) = get(*port, "/metrics").await;
        assert_eq!(status, 200, "{name}");
        let want: &[&str] = if name == "arcana-gateway" {
            &[
                "http_requests_total{",
                "grpc_client_requests_total{",
                "arcana_build_info{",
            ]
        } else if name == "arcana-repository" {
            &[
                "grpc_server_requests_total{",
                "grpc_server_request_duration_seconds_bucket{",
                "db_pool_connections",
                "db_pool_idle_connections",
                "arcana_build_info{",
            ]
        } else {
            &[
                "grpc_server_requests_total{",
                "grpc_client_requests_total{",
                "grpc_client_request_duration_seconds_bucket{",
                "password_hash_queue_depth",
                "mail_outbox_pending",
                "mail_delivery_failures_total",
                "arcana_build_info{",
            ]
        };
        for series in want {
            assert!(text.contains(series), "{name}: no {series} in\n{text}");
        }
        assert!(
            text.contains(&format!("binary=\"{name}\"")),
            "{name}: build info\n{text}"
        );
        assert_eq!(get(*port, "/health/live").await.0, 200, "{name}");
        assert_eq!(get(*port, "/health/ready").await.0, 200, "{name}");
        assert_eq!(get(*port, "/nope").await.0, 404, "{name}");
        seen.push(name.clone());
    }
    for s in expected_services
        .iter()
        .chain(&["arcana-gateway", "arcana-repository"])
    {
        assert!(seen.iter().any(|n| n == s), "{s} has no ops port: {seen:?}");
    }
    // The repository counted the service layer's calls by rpc and code.
    let text = repository_metrics(&app).await;
    assert!(
        text.lines()
            .any(|l| l.starts_with("grpc_server_requests_total{")
                && l.contains("rpc=\"CreateAccount\"")
                && l.contains("code=\"Ok\"")),
        "{text}"
    );
}

#[tokio::test]
async fn every_layered_process_reports_metrics_and_health() {
    every_process_reports(Mode::Layered).await;
}

#[tokio::test]
async fn every_microservice_reports_metrics_and_health() {
    every_process_reports(Mode::Microservices).await;
}

/// One REST request is one trace: the W3C `traceparent` a client sends is continued by the
/// gateway and carried through every gRPC hop, each process exporting its spans over OTLP; the
/// request id stays the client's.
#[tokio::test]
async fn one_request_is_one_trace_across_the_layers() {
    let collector = testkit::otlp::Collector::start().await;
    let opts = Options {
        extra_env: vec![
            ("OTEL_EXPORTER_OTLP_ENDPOINT".into(), collector.endpoint()),
            ("OTEL_BSP_SCHEDULE_DELAY".into(), "100".into()),
        ],
        ..Default::default()
    };
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, opts)
        .await
        .unwrap();
    let trace_id = uuid::Uuid::new_v4().simple().to_string();
    let caller_span = "00f067aa0ba902b7";
    let r = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("traceparent", format!("00-{trace_id}-{caller_span}-01"))
        .header("x-request-id", "traced-request-1")
        .json(&serde_json::json!({
            "username": "traced", "email": "traced@example.com", "password": "Secret123"
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()["x-request-id"], "traced-request-1");

    let layers = ["arcana-gateway", "arcana-service", "arcana-repository"];
    collector
        .wait_for_trace(&trace_id, &layers, std::time::Duration::from_secs(20))
        .await;
    // Every span of the request has ended and been exported by now.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let spans: Vec<_> = collector
        .spans()
        .into_iter()
        .filter(|s| s.trace_id == trace_id)
        .collect();
    let service_of = |id: &str| {
        spans
            .iter()
            .find(|s| s.span_id == id)
            .map(|s| s.service.as_str())
    };
    // The gateway continues the caller's span ...
    assert!(
        spans
            .iter()
            .any(|s| s.service == "arcana-gateway" && s.parent_span_id == caller_span),
        "{spans:#?}"
    );
    // ... and each layer's server spans are children of the layer above.
    for (below, above) in [
        ("arcana-service", "arcana-gateway"),
        ("arcana-repository", "arcana-service"),
    ] {
        assert!(
            spans
                .iter()
                .any(|s| s.service == below && service_of(&s.parent_span_id) == Some(above)),
            "no {below} span is a child of an {above} span: {spans:#?}"
        );
    }
    // Nothing of it strays into another trace.
    assert!(
        spans
            .iter()
            .all(|s| s.parent_span_id == caller_span || service_of(&s.parent_span_id).is_some()),
        "{spans:#?}"
    );
}

/// `/metrics` and the health checks are not on the public port of the monolith (the old code
/// served them there to anyone), only on the ops listener, where a scrape token, when set, is
/// required for `/metrics` (the probes need none).
#[tokio::test]
async fn metrics_live_on_the_ops_listener_behind_the_scrape_token() {
    let token = "scrape-token-0123456789abcdef-0123456789";
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options {
            extra_env: vec![("ARCANA_METRICS_TOKEN".into(), token.into())],
            ..Options::default()
        },
    )
    .await
    .unwrap();
    for path in ["/metrics", "/health/ready", "/health/live"] {
        assert_eq!(app.get(path, None).await.status, 404, "public {path}");
    }
    let ops = &app.edge_ops;
    let r = ops.get("/metrics", None).await;
    assert_eq!(r.status, 401);
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    assert_eq!(ops.get("/metrics", Some("wrong-token")).await.status, 401);
    let r = ops.get("/metrics", Some(token)).await;
    assert_eq!(r.status, 200);
    assert!(
        r.body
            .as_str()
            .unwrap_or_default()
            .contains("arcana_build_info"),
        "{:?}",
        r.body
    );
    assert_eq!(ops.get("/health/ready", None).await.status, 200);
    assert_eq!(ops.get("/health/live", None).await.status, 200);
}

/// Each binary has its own default ops port (so several start side by side on one host with
/// nothing set), and its `--help` says which.
#[test]
fn each_binary_states_its_own_default_ops_address() {
    for (bin, exe) in [
        ("arcana", env!("CARGO_BIN_EXE_arcana")),
        ("arcana-gateway", env!("CARGO_BIN_EXE_arcana-gateway")),
        ("arcana-service", env!("CARGO_BIN_EXE_arcana-service")),
        ("arcana-repository", env!("CARGO_BIN_EXE_arcana-repository")),
        (
            "arcana-auth-service",
            env!("CARGO_BIN_EXE_arcana-auth-service"),
        ),
        (
            "arcana-user-service",
            env!("CARGO_BIN_EXE_arcana-user-service"),
        ),
    ] {
        let out = std::process::Command::new(exe)
            .arg("--help")
            .env_remove("ARCANA_METRICS_ADDR")
            .output()
            .unwrap();
        assert!(out.status.success(), "{bin}");
        let help = String::from_utf8(out.stdout).unwrap();
        let want = healthcheck::default_ops_addr(bin).unwrap();
        assert!(
            help.contains(&format!("[default: {want}]")),
            "{bin} --help: {help}"
        );
    }
}

/// What the repository's ops listener answers on `/metrics`.
async fn repository_metrics(app: &TestApp) -> String {
    let (_, port) = app
        .ops
        .iter()
        .find(|(n, _)| n == "arcana-repository")
        .unwrap();
    get(*port, "/metrics").await.1
}

/// The repository's count of `rpc` calls answered so far (every code).
async fn repository_calls(app: &TestApp) -> std::collections::BTreeMap<String, u64> {
    let text = repository_metrics(app).await;
    let mut calls = std::collections::BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("grpc_server_requests_total{rpc=\"") else {
            continue;
        };
        let (rpc, tail) = rest.split_once('"').unwrap();
        let n: f64 = tail.rsplit(' ').next().unwrap().parse().unwrap();
        *calls.entry(rpc.to_owned()).or_insert(0) += n as u64;
    }
    calls
}

/// What one request cost the repository: the calls counted between two scrapes, the
/// background work (mail worker, maintenance) and the caller's session check
/// (`FindSessionWithOwner`, answered from a cache for a second after) left out.
fn spent(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> Vec<String> {
    let background = [
        "ClaimMail",
        "SettleMail",
        "OutboxStats",
        "TryLease",
        "Ping",
        "PurgeSessions",
        "PurgeAudit",
        "PurgeRecovery",
        "FindSessionWithOwner",
    ];
    let mut calls = Vec::new();
    for (rpc, n) in after {
        if background.contains(&rpc.as_str()) {
            continue;
        }
        for _ in before.get(rpc).copied().unwrap_or(0)..*n {
            calls.push(rpc.clone());
        }
    }
    calls
}

/// The use-case commands, measured at the repository: a layered login is two calls (begin,
/// complete), a refresh one, each admin change one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_layered_login_is_two_repository_calls_and_an_admin_change_one() {
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    let admin = app.admin_token().await;
    let (id, _, _) = app.user("counted").await;
    let before = repository_calls(&app).await;
    let login = app.login("counted", "Secret123").await;
    assert_eq!(login.status, 200);
    let after = repository_calls(&app).await;
    assert_eq!(spent(&before, &after), ["BeginLogin", "CompleteLogin"]);

    let refresh_token = login.data()["refresh_token"].as_str().unwrap().to_owned();
    let before = repository_calls(&app).await;
    let body = serde_json::json!({"refresh_token": refresh_token});
    let r = app.post("/api/v1/auth/refresh", None, body).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        spent(&before, &repository_calls(&app).await),
        ["RotateLiveSession"]
    );

    for (path, body) in [
        ("role", serde_json::json!({"role": "guest"})),
        ("status", serde_json::json!({"status": "suspended"})),
    ] {
        let before = repository_calls(&app).await;
        let r = app
            .call(
                Method::PUT,
                &format!("/api/v1/users/{id}/{path}"),
                Some(&admin),
                Some(body),
            )
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
        assert_eq!(
            spent(&before, &repository_calls(&app).await),
            ["ChangeUser"],
            "{path}"
        );
    }
    let before = repository_calls(&app).await;
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    assert_eq!(
        spent(&before, &repository_calls(&app).await),
        ["DeleteUser"]
    );
}
