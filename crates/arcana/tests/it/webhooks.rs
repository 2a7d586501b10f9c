//! Lifecycle webhooks end to end, in every deployment mode and on every database, against a
//! real receiver on a loopback port that checks every signature with its own implementation of
//! Standard Webhooks: the admin API (REST and gRPC), refused targets (SSRF), a test delivery,
//! the events of registration, login, a failed login, profile and role changes, one webhook-id
//! per event over retries (500 then 200), the delivery log and a manual retry, pause and resume
//! with nothing lost, and one user's events in commit order under 8 concurrent writers.
use std::time::Duration;

use crate::common::*;
use repository::Backend;
use reqwest::Method;
use rpc::v1::webhook_service_client::WebhookServiceClient;
use serde_json::json;
use testkit::webhooks::{Received, Receiver, verify};
use tonic::Request;

every_mode!(webhooks_deliver_signed_events_in_order);

/// A receiver on loopback allowed, quick retries and polls, and `more`.
fn options(more: &[(&str, &str)]) -> Options {
    let env = [
        ("ARCANA_WEBHOOK_ALLOWED_NETWORKS", "127.0.0.0/8"),
        ("ARCANA_WEBHOOK_RETRY_BASE_MS", "100"),
        ("ARCANA_WEBHOOK_POLL_MS", "100"),
    ];
    Options {
        extra_env: env
            .iter()
            .chain(more)
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect(),
        ..Options::default()
    }
}

async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    TestApp::start_mode(mode, backend, options(&[])).await
}

const WAIT: Duration = Duration::from_secs(20);

fn of_type<'a>(seen: &'a [Received], t: &str) -> Vec<&'a Received> {
    seen.iter().filter(|r| r.json()["type"] == t).collect()
}

fn about(r: &Received, user: &str) -> bool {
    r.json()["data"]["user_id"] == user
}

async fn webhooks_deliver_signed_events_in_order(app: TestApp) {
    let receiver = Receiver::start().await;
    let admin = app.admin_token().await;
    let (_, alice, _) = app.user("alice").await;

    // Admins only; bad targets and events refused, every field named.
    let body = json!({"url": receiver.url("/in"), "events": ["user.created"]});
    app.post("/api/v1/webhooks", Some(&alice), body)
        .await
        .assert_error(403, "FORBIDDEN");
    for (url, events) in [
        ("https://10.1.2.3/in", json!(["user.created"])),
        (
            "http://169.254.169.254/latest/meta-data",
            json!(["user.created"]),
        ),
        ("http://hooks.example.com/in", json!(["user.created"])),
        ("https://hooks.example.com/in", json!(["user.exploded"])),
        ("https://hooks.example.com/in", json!([])),
    ] {
        let r = app
            .post(
                "/api/v1/webhooks",
                Some(&admin),
                json!({"url": url, "events": events}),
            )
            .await;
        r.assert_error(400, "VALIDATION_FAILED");
    }

    let all: Vec<&str> = domain::WEBHOOK_EVENTS.to_vec();
    let r = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": receiver.url("/in"), "events": all, "description": "crm"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let secret = r.data()["secret"].as_str().unwrap().to_owned();
    let id = r.data()["id"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = app.get("/api/v1/webhooks", Some(&admin)).await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.to_string().contains(&secret));
    assert_eq!(listed.data()[0]["enabled"], true);

    // The same over gRPC.
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = WebhookServiceClient::new(channel);
    let mut req = Request::new(rpc::v1::WebhookIdRequest { id: id.clone() });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let got = grpc.get_webhook(req).await.unwrap().into_inner();
    assert_eq!((got.url, got.events.len()), (receiver.url("/in"), 13));

    // A test delivery answers how it went.
    let t = app
        .post(
            &format!("/api/v1/webhooks/{id}/test"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(t.status, 200, "{:?}", t.body);
    assert_eq!(t.data()["status"], "delivered");
    assert_eq!(t.data()["last_status"], 200);
    let seen = receiver
        .until(WAIT, |s| !of_type(s, "webhook.test").is_empty())
        .await;
    assert!(verify(&secret, of_type(&seen, "webhook.test")[0]));

    // What a user does, reported in the order it happened.
    let bob = app.register("bob", "Secret123").await;
    assert_eq!(bob.status, 201);
    let bob_id = bob.data()["user"]["id"].as_str().unwrap().to_owned();
    assert_eq!(app.login("bob", "wrong-Pass1").await.status, 401);
    let login = app.login("bob", "Secret123").await;
    let bob_token = login.data()["access_token"].as_str().unwrap().to_owned();
    let patch = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&bob_token),
            Some(json!({"first_name": "Robert"})),
        )
        .await;
    assert_eq!(patch.status, 200, "{:?}", patch.body);
    let role = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{bob_id}/role"),
            Some(&admin),
            Some(json!({"role": "guest"})),
        )
        .await;
    assert_eq!(role.status, 200, "{:?}", role.body);
    let wanted = [
        "user.created",
        "auth.login_failed",
        "session.created",
        "user.updated",
        "user.role_changed",
    ];
    let seen = receiver
        .until(WAIT, |s| {
            wanted
                .iter()
                .all(|t| of_type(s, t).iter().any(|r| about(r, &bob_id)))
        })
        .await;
    let bobs: Vec<&Received> = seen.iter().filter(|r| about(r, &bob_id)).collect();
    let order: Vec<String> = bobs
        .iter()
        .map(|r| r.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(order, wanted, "bob's events out of order");
    for r in &seen {
        assert!(verify(&secret, r), "bad signature on {}", r.body);
        assert!(r.id.starts_with("msg_"));
        for leak in [
            "\"password\"",
            "password_hash",
            "pbkdf2",
            "refresh_token",
            "access_token",
            &secret,
        ] {
            assert!(!r.body.contains(leak), "{leak} in {}", r.body);
        }
    }
    let updated = of_type(&seen, "user.updated")[0].json();
    assert_eq!(updated["data"]["user"]["first_name"], "Robert");
    assert_eq!(updated["data"]["user"]["username"], "bob");
    assert_eq!(
        of_type(&seen, "user.role_changed")[0].json()["data"]["user"]["role"],
        "guest"
    );

    // 500, then 200: delivered on the retry, with the same webhook-id.
    receiver.answer_next(&[500]);
    let before = receiver.received().len();
    let patch = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{bob_id}"),
            Some(&admin),
            Some(json!({"last_name": "Tables"})),
        )
        .await;
    assert_eq!(patch.status, 200, "{:?}", patch.body);
    let seen = receiver.until(WAIT, |s| s.len() >= before + 2).await;
    let (first, second) = (&seen[before], &seen[before + 1]);
    assert_eq!(first.id, second.id);
    assert!(verify(&secret, first) && verify(&secret, second));
    let log = app
        .get(
            &format!("/api/v1/webhooks/{id}/deliveries?per_page=100"),
            Some(&admin),
        )
        .await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    let items = log.data()["items"].as_array().unwrap().clone();
    let retried = items
        .iter()
        .find(|d| d["message_id"] == first.id.as_str())
        .unwrap()
        .clone();
    assert_eq!(
        (retried["status"].clone(), retried["attempts"].clone()),
        (json!("delivered"), json!(2))
    );

    // A manual retry sends it again, same id.
    let again = retry_by_hand(&app, &admin, &id, &retried, &receiver).await;
    assert_eq!(again.id, first.id);
    app.post(
        &format!(
            "/api/v1/webhooks/{id}/deliveries/{}/retry",
            uuid::Uuid::new_v4()
        ),
        Some(&admin),
        json!({}),
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Paused, events wait; resumed, they go out.
    let pause = app
        .call(
            Method::PATCH,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            Some(json!({"enabled": false})),
        )
        .await;
    assert_eq!(pause.data()["enabled"], false, "{:?}", pause.body);
    let before = receiver.received().len();
    app.register("carol", "Secret123").await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(receiver.received().len(), before, "delivered while paused");
    app.call(
        Method::PATCH,
        &format!("/api/v1/webhooks/{id}"),
        Some(&admin),
        Some(json!({"enabled": true})),
    )
    .await;
    let seen = receiver.until(WAIT, |s| s.len() > before).await;
    assert_eq!(seen[before].json()["data"]["user"]["username"], "carol");

    // Eight writers on one user: the deliveries follow the commits, the last is the final state.
    let writers = (0..8).map(|w| {
        let rest = testkit::rest::Rest::clone(&app);
        let (admin, bob_id) = (admin.clone(), bob_id.clone());
        tokio::spawn(async move {
            for n in 0..4 {
                let r = rest
                    .call(
                        Method::PATCH,
                        &format!("/api/v1/users/{bob_id}"),
                        Some(&admin),
                        Some(json!({"first_name": format!("w{w}n{n}")})),
                    )
                    .await;
                assert_eq!(r.status, 200, "{:?}", r.body);
            }
        })
    });
    let before = receiver.received().len();
    for w in writers.collect::<Vec<_>>() {
        w.await.unwrap();
    }
    let seen = receiver
        .until(WAIT, |s| {
            s[before..]
                .iter()
                .filter(|r| r.json()["type"] == "user.updated" && about(r, &bob_id))
                .count()
                >= 32
        })
        .await;
    let sequence: Vec<i64> = seen[before..]
        .iter()
        .filter(|r| about(r, &bob_id))
        .map(|r| r.json()["data"]["sequence"].as_i64().unwrap())
        .collect();
    assert!(
        sequence.windows(2).all(|w| w[0] < w[1]),
        "one user's events out of commit order: {sequence:?}"
    );
    let now = app
        .get(&format!("/api/v1/users/{bob_id}"), Some(&admin))
        .await;
    let last = seen[before..]
        .iter()
        .rev()
        .find(|r| about(r, &bob_id))
        .unwrap()
        .json();
    assert_eq!(last["data"]["user"]["first_name"], now.data()["first_name"]);

    // Deleted: gone, with what was queued for it.
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/webhooks/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    app.get(&format!("/api/v1/webhooks/{id}"), Some(&admin))
        .await
        .assert_error(404, "NOT_FOUND");
}

/// `arcana webhook …` against the database, no server running: create prints the secret once
/// (sealed with the data dir's key), list shows the endpoint without it, update pauses it,
/// delete removes it; a refused URL and an unknown id fail plainly.
#[tokio::test]
async fn the_webhook_commands_manage_endpoints_in_the_database() {
    use crate::oidc::arcana;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("ARCANA_DATA_DIR", data)];
    // Without the servers' data key nothing is sealed (a new one would be useless to them).
    let out = std::process::Command::new(monolith_exe())
        .args([
            "webhook",
            "create",
            "--url",
            "https://hooks.example.com/in",
            "--event",
            "user.created",
        ])
        .env("ARCANA_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no data key"));
    let key = arcana(&["data-key", "generate"], &env);
    std::fs::write(dir.path().join("data-key"), key).unwrap();

    let out = arcana(
        &[
            "webhook",
            "create",
            "--url",
            "https://hooks.example.com/in",
            "--event",
            "user.created",
            "--event",
            "session.revoked",
            "--description",
            "crm",
        ],
        &env,
    );
    let created: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let id = created["id"].as_str().unwrap().to_owned();
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    let listed = arcana(&["webhook", "list"], &env);
    assert!(
        listed.contains(&id) && !listed.contains(&secret),
        "{listed}"
    );
    let paused: serde_json::Value =
        serde_json::from_str(arcana(&["webhook", "update", &id, "--disable"], &env).trim())
            .unwrap();
    assert_eq!(paused["enabled"], false);
    assert_eq!(arcana(&["webhook", "deliveries", &id], &env), "");
    assert!(arcana(&["webhook", "delete", &id], &env).contains(&id));
    assert_eq!(arcana(&["webhook", "list"], &env), "");
    for (args, says) in [
        (
            vec![
                "webhook",
                "create",
                "--url",
                "http://10.0.0.1/in",
                "--event",
                "user.created",
            ],
            "https",
        ),
        (
            vec!["webhook", "delete", id.as_str()],
            "no webhook endpoint",
        ),
    ] {
        let out = std::process::Command::new(monolith_exe())
            .args(&args)
            .env("ARCANA_DATA_DIR", data)
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr).contains(says),
            "{args:?}"
        );
    }
}

/// An endpoint that keeps failing past the give-up period (1 s here, 3 days by default) is
/// disabled, its delivery failed, the admins mailed and the audit log told, all at once; resumed
/// and retried by hand, the event goes out with its webhook-id.
#[tokio::test]
async fn an_endpoint_failing_past_the_give_up_period_is_disabled_and_the_admins_told() {
    let mail = tempfile::tempdir().unwrap();
    let opts = options(&[
        ("ARCANA_WEBHOOK_GIVE_UP_SECONDS", "1"),
        ("ARCANA_MAIL_DIR", mail.path().to_str().unwrap()),
    ]);
    let app = TestApp::start_with(Backend::Sqlite, opts).await.unwrap();
    let receiver = Receiver::start().await;
    receiver.answer_next(&[503; 100]);
    let admin = app.admin_token().await;
    let r = app
        .post(
            "/api/v1/webhooks",
            Some(&admin),
            json!({"url": receiver.url("/in"), "events": ["user.created"]}),
        )
        .await;
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let secret = r.data()["secret"].as_str().unwrap().to_owned();
    app.register("dora", "Secret123").await;
    let deadline = std::time::Instant::now() + WAIT;
    let endpoint = loop {
        let w = app
            .get(&format!("/api/v1/webhooks/{id}"), Some(&admin))
            .await;
        if w.data()["enabled"] == false {
            break w;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never disabled: {:?}",
            w.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let reason = endpoint.data()["disabled_reason"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(reason.contains("503"), "{reason}");
    let tries = receiver.received();
    assert!(
        tries.len() >= 2,
        "retried before giving up: {}",
        tries.len()
    );
    assert!(
        tries
            .iter()
            .all(|t| t.id == tries[0].id && verify(&secret, t))
    );
    let log = app
        .get(&format!("/api/v1/webhooks/{id}/deliveries"), Some(&admin))
        .await;
    let failed = log.data()["items"][0].clone();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(failed["last_status"], 503);
    let audit = app
        .get("/api/v1/audit-events?type=webhook.disabled", Some(&admin))
        .await;
    assert_eq!(
        audit.data()["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        audit.body
    );
    let told = receiver_mails(mail.path(), &id).await;
    assert!(told.contains("disabled"), "{told}");

    // Resumed and retried by hand: delivered, same webhook-id.
    app.call(
        Method::PATCH,
        &format!("/api/v1/webhooks/{id}"),
        Some(&admin),
        Some(json!({"enabled": true})),
    )
    .await;
    receiver.answer_ok();
    let again = retry_by_hand(&app, &admin, &id, &failed, &receiver).await;
    assert_eq!(again.id, tries[0].id);
}

/// `POST …/deliveries/{delivery}/retry` (202), and what the receiver got next.
async fn retry_by_hand(
    app: &TestApp,
    admin: &str,
    id: &str,
    delivery: &serde_json::Value,
    receiver: &Receiver,
) -> Received {
    let delivery = delivery["id"].as_str().unwrap();
    let before = receiver.received().len();
    let r = app
        .post(
            &format!("/api/v1/webhooks/{id}/deliveries/{delivery}/retry"),
            Some(admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    receiver.until(WAIT, |s| s.len() > before).await[before].clone()
}

/// The admin mail about endpoint `id`, once the delivery worker wrote it.
async fn receiver_mails(dir: &std::path::Path, id: &str) -> String {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let found = std::fs::read_dir(dir).ok().and_then(|d| {
            d.flatten()
                .map(|e| std::fs::read_to_string(e.path()).unwrap_or_default())
                .find(|m| m.contains(id))
        });
        if let Some(m) = found {
            return m;
        }
        assert!(std::time::Instant::now() < deadline, "no mail about {id}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
