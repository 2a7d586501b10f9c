//! Account recovery and email verification against the real binaries and a real SMTP server on
//! loopback: verify-on-register, forgot → mail → reset → login, in the monolith and the layered
//! and microservices modes, on SQLite and PostgreSQL; delivery while SMTP is down; the
//! verified-email requirement; the admin's reset link; the same operations over gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common::*;
use repository::Backend;
use reqwest::Method;
use rpc::v1::auth_service_client::AuthServiceClient;
use serde_json::{Value, json};
use testkit::smtp::{Received, SmtpServer};
use tonic::Code;

const PUBLIC_URL: &str = "https://id.example.test";
const MAIL_WAIT: Duration = Duration::from_secs(20);

fn opts(smtp: &str, env: &[(&str, &str)]) -> Options {
    let mut extra: Vec<(String, String)> = vec![
        ("ARCANA_SMTP_URL".into(), smtp.into()),
        ("ARCANA_PUBLIC_URL".into(), PUBLIC_URL.into()),
        (
            "ARCANA_MAIL_FROM".into(),
            "Arcana Test <auth@example.test>".into(),
        ),
        ("ARCANA_MAIL_RETRY_BASE_MS".into(), "500".into()),
    ];
    extra.extend(env.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    Options {
        extra_env: extra,
        ..Default::default()
    }
}

async fn start(mode: Mode, backend: Backend, smtp: &SmtpServer) -> Option<TestApp> {
    TestApp::start_mode(mode, backend, opts(&smtp.url(), &[])).await
}

/// The one mail `n` (1-based) to `to`, waiting for it.
async fn nth_mail(smtp: &SmtpServer, to: &str, n: usize) -> Received {
    let got = smtp.wait_for(to, n, MAIL_WAIT).await;
    assert!(got.len() >= n, "mail {n} to {to} never came: {got:?}");
    got[n - 1].clone()
}

/// The envelope without what differs per call.
fn comparable(r: &Resp) -> Value {
    let mut b = r.body.clone();
    if let Some(o) = b.as_object_mut() {
        o.remove("timestamp");
        o.remove("request_id");
    }
    b
}

fn token_error(r: &Resp) -> String {
    r.assert_error(400, "VALIDATION_FAILED");
    r.field_errors()["token"][0].as_str().unwrap().to_owned()
}

async fn whole_flow(mode: Mode, backend: Backend) {
    let smtp = SmtpServer::start().await;
    let Some(app) = start(mode, backend, &smtp).await else {
        repository::testing::skipped(
            &format!("whole_flow {backend:?}"),
            "database not configured",
        );
        return;
    };
    let name = "recoverer";
    let email = "recoverer@example.com";

    // Registration mails a verification link.
    let r = app.register(name, "Secret123").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.data()["user"]["is_verified"], false);
    let access = r.data()["access_token"].as_str().unwrap().to_owned();
    let refresh = r.data()["refresh_token"].as_str().unwrap().to_owned();
    let user_id = r.data()["user"]["id"].as_str().unwrap().to_owned();
    let mail = nth_mail(&smtp, email, 1).await;
    assert_eq!(mail.from, "auth@example.test");
    assert!(
        mail.header("subject")
            .unwrap()
            .contains("confirm your email address")
    );
    assert!(
        mail.decoded()
            .contains(&format!("{PUBLIC_URL}/verify-email#token="))
    );
    assert!(mail.data.contains("text/plain") && mail.data.contains("text/html"));
    let verify = mail.token("verify-email").unwrap();
    assert_eq!(verify.len(), 43, "256 bits, base64url");
    // The gateway serves the pages the links open (a front end of its own may take them over).
    for path in ["/verify-email", "/reset-password"] {
        let page = app
            .client
            .get(app.url(&format!("{path}#token={verify}")))
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200);
        let csp = page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"));
        let html = page.text().await.unwrap();
        // No 'unsafe-inline': the page's own inline script and style, by hash (the old policy
        // allowed any inline script an injection could bring).
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        let inline = |tag: &str| {
            let body = html.split(&format!("<{tag}>")).nth(1).unwrap();
            body.split(&format!("</{tag}>")).next().unwrap().to_owned()
        };
        for (directive, tag) in [("script-src", "script"), ("style-src", "style")] {
            let want = format!(
                "{directive} 'sha256-{}'",
                crypto::sha256_base64(&inline(tag))
            );
            assert!(csp.contains(&want), "{csp} lacks {want}");
        }
        assert!(
            html.contains("<script>") && !html.contains(&verify),
            "the token is never echoed"
        );
    }

    let r = app
        .post("/api/v1/auth/email/verify", None, json!({"token": verify}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Only what the page shows: whoever holds a link learns nothing else of the account (the
    // old answer was the whole user: id, username, role, names, phone).
    assert_eq!(
        r.data(),
        &json!({"email": format!("{name}@example.com"), "is_verified": true})
    );
    let me = app.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(me.data()["is_verified"], true, "no stale cached user");
    let again = app
        .post("/api/v1/auth/email/verify", None, json!({"token": verify}))
        .await;
    assert_eq!(token_error(&again), "has already been used");

    // Known and unknown addresses answer alike; only the known one gets a mail.
    let started = Instant::now();
    let known = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "Recoverer@Example.com"}),
        )
        .await;
    let known_took = started.elapsed();
    let started = Instant::now();
    let unknown = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "nobody@example.com"}),
        )
        .await;
    let unknown_took = started.elapsed();
    assert_eq!(known.status, 202, "{:?}", known.body);
    assert_eq!(unknown.status, 202);
    assert_eq!(comparable(&known), comparable(&unknown));
    // Both wait for the same floor (300 ms) before answering.
    assert!(known_took >= Duration::from_millis(300), "{known_took:?}");
    assert!(
        unknown_took >= Duration::from_millis(300),
        "{unknown_took:?}"
    );
    let mail = nth_mail(&smtp, email, 2).await;
    assert!(
        mail.header("subject")
            .unwrap()
            .contains("reset your password")
    );
    let reset = mail.token("reset-password").unwrap();

    // The password policy applies.
    let weak = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": reset, "new_password": "short"}),
        )
        .await;
    weak.assert_error(400, "VALIDATION_FAILED");
    assert!(weak.field_errors().contains_key("new_password"));
    // A verification token is no reset token.
    let wrong = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": verify, "new_password": "Better456"}),
        )
        .await;
    assert_eq!(token_error(&wrong), "is not a valid link token");

    let r = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": reset, "new_password": "Better456"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    // Every session ended: the refresh token at once, the access token within 5 s.
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    r.assert_error(401, "UNAUTHORIZED");
    app.eventually("/api/v1/auth/me", &access, 401, Duration::from_secs(5))
        .await;
    app.login(name, "Secret123")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let r = app.login(email, "Better456").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // Once only.
    let r = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": reset, "new_password": "Other789x"}),
        )
        .await;
    assert_eq!(token_error(&r), "has already been used");
    // Nothing went to the unknown address, and nothing was sent twice.
    assert!(smtp.to("nobody@example.com").is_empty());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.to(email).len(), 2, "each mail exactly once");

    // The audit log tells what happened, never a token or a password.
    let admin = app.admin_token().await;
    let log = app
        .get(
            &format!("/api/v1/audit-events?user_id={user_id}&per_page=100"),
            Some(&admin),
        )
        .await;
    assert_eq!(log.status, 200, "{:?}", log.body);
    let text = log.body.to_string();
    for event in [
        "auth.email_verified",
        "auth.password_reset_requested",
        "auth.password_reset",
    ] {
        assert!(
            text.contains(&format!("\"{event}\"")),
            "{event} missing: {text}"
        );
    }
    for secret in [
        verify.as_str(),
        reset.as_str(),
        &access,
        &refresh,
        "Secret123",
        "Better456",
    ] {
        assert!(!text.contains(secret), "the audit log holds a secret");
    }
}

#[tokio::test]
async fn whole_flow_monolith_sqlite() {
    whole_flow(Mode::Monolith, Backend::Sqlite).await;
}

#[tokio::test]
async fn whole_flow_layered_sqlite() {
    whole_flow(Mode::Layered, Backend::Sqlite).await;
}

#[tokio::test]
async fn whole_flow_microservices_sqlite() {
    whole_flow(Mode::Microservices, Backend::Sqlite).await;
}

#[tokio::test]
async fn whole_flow_monolith_postgres() {
    whole_flow(Mode::Monolith, Backend::Postgres).await;
}

#[tokio::test]
async fn whole_flow_layered_postgres() {
    whole_flow(Mode::Layered, Backend::Postgres).await;
}

/// Mail asked for while SMTP is down goes out once SMTP is back: once, not twice.
#[tokio::test]
async fn mail_requested_while_smtp_is_down_is_delivered_once_it_is_back() {
    let port = testkit::free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::start_with(Backend::Sqlite, opts(&url, &[]))
        .await
        .unwrap();
    let r = app.register("patient", "Secret123").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let metrics = app.edge_ops.get("/metrics", None).await;
    let text = metrics.body.as_str().unwrap_or_default().to_owned();
    assert!(
        text.lines()
            .any(|l| l.starts_with("mail_delivery_failures_total") && !l.ends_with(" 0")),
        "failed attempts are counted:\n{text}"
    );
    let smtp = SmtpServer::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    let got = smtp.wait_for("patient@example.com", 1, MAIL_WAIT).await;
    assert_eq!(got.len(), 1, "delivered once SMTP was back");
    assert!(got[0].token("verify-email").is_some());
    // Later rounds do not send it again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(smtp.to("patient@example.com").len(), 1);
    let text = app
        .edge_ops
        .get("/metrics", None)
        .await
        .body
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(text.contains("mail_outbox_pending 0"), "{text}");
}

/// With ARCANA_REQUIRE_VERIFIED_EMAIL an unverified account cannot sign in (REST 403, gRPC
/// FAILED_PRECONDITION, code EMAIL_NOT_VERIFIED) until it follows its link.
#[tokio::test]
async fn login_waits_for_a_verified_address_when_required() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start_with(
        Backend::Sqlite,
        opts(&smtp.url(), &[("ARCANA_REQUIRE_VERIFIED_EMAIL", "true")]),
    )
    .await
    .unwrap();
    let r = app.register("unproven", "Secret123").await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    app.login("unproven", "Secret123")
        .await
        .assert_error(403, "EMAIL_NOT_VERIFIED");
    // A wrong password still answers as a wrong password.
    app.login("unproven", "Wrong1234")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let mut grpc = AuthServiceClient::connect(app.grpc.clone()).await.unwrap();
    let e = grpc
        .login(rpc::v1::LoginRequest {
            username_or_email: "unproven".into(),
            password: "Secret123".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::FailedPrecondition);
    assert_eq!(
        e.metadata().get("x-error-code").unwrap().to_str().unwrap(),
        "EMAIL_NOT_VERIFIED"
    );
    let token = nth_mail(&smtp, "unproven@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let r = app
        .post("/api/v1/auth/email/verify", None, json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.login("unproven", "Secret123").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// Resend: a new link per request, three per quarter hour, nothing for a verified address.
#[tokio::test]
async fn resend_is_throttled_and_needs_a_session() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start_with(Backend::Sqlite, opts(&smtp.url(), &[]))
        .await
        .unwrap();
    let (_, token, _) = app.user("resender").await;
    let email = "resender@example.com";
    nth_mail(&smtp, email, 1).await;
    app.post("/api/v1/auth/email/verify/resend", None, json!({}))
        .await
        .assert_error(401, "UNAUTHORIZED");
    for n in 2..=3 {
        let r = app
            .call(
                Method::POST,
                "/api/v1/auth/email/verify/resend",
                Some(&token),
                None,
            )
            .await;
        assert_eq!(r.status, 202, "{:?}", r.body);
        nth_mail(&smtp, email, n).await;
    }
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/email/verify/resend",
            Some(&token),
            None,
        )
        .await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(r.headers.get("retry-after").is_some());
    // Every link sent is good until one is used (the newest here); then the others are void
    // only by use: follow the first.
    let first = smtp.to(email)[0].token("verify-email").unwrap();
    let r = app
        .post("/api/v1/auth/email/verify", None, json!({"token": first}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

/// `arcana admin reset-link` prints a working one-time link without any mail.
#[tokio::test]
async fn admin_reset_link_works_without_mail() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start_with(Backend::Sqlite, opts(&smtp.url(), &[]))
        .await
        .unwrap();
    app.user("stranded").await;
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_arcana"))
        .args(["admin", "reset-link", "--username", "stranded"])
        .env_clear()
        .env("ARCANA_DATA_DIR", app.dir())
        .env("ARCANA_PUBLIC_URL", PUBLIC_URL)
        .env("ARCANA_PASSWORD_ITERATIONS", "1000")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let link = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let token = link
        .strip_prefix(&format!("{PUBLIC_URL}/reset-password#token="))
        .unwrap_or_else(|| panic!("unexpected link {link:?}"))
        .to_owned();
    let r = app
        .post(
            "/api/v1/auth/password/reset",
            None,
            json!({"token": token, "new_password": "Rescued789"}),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(app.login("stranded", "Rescued789").await.status, 200);
    // Only the verification mail of the registration went out.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(smtp.to("stranded@example.com").len(), 1);
    let missing = std::process::Command::new(env!("CARGO_BIN_EXE_arcana"))
        .args(["admin", "reset-link", "--username", "nobody"])
        .env_clear()
        .env("ARCANA_DATA_DIR", app.dir())
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no user"));
}

/// The same operations over the public gRPC API (layered: gateway → service over gRPC).
#[tokio::test]
async fn recovery_over_grpc() {
    let smtp = SmtpServer::start().await;
    let app = start(Mode::Layered, Backend::Sqlite, &smtp).await.unwrap();
    let mut g = AuthServiceClient::connect(app.grpc.clone()).await.unwrap();
    g.register(rpc::v1::RegisterRequest {
        username: "grpcuser".into(),
        email: "grpcuser@example.com".into(),
        password: "Secret123".into(),
        first_name: None,
        last_name: None,
    })
    .await
    .unwrap();
    let verify = nth_mail(&smtp, "grpcuser@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let user = g
        .verify_email(rpc::v1::VerifyEmailRequest {
            token: verify.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(user.is_verified);
    let e = g
        .verify_email(rpc::v1::VerifyEmailRequest { token: verify })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    for email in ["grpcuser@example.com", "ghost@example.com"] {
        g.forgot_password(rpc::v1::ForgotPasswordRequest {
            email: email.into(),
        })
        .await
        .unwrap();
    }
    let reset = nth_mail(&smtp, "grpcuser@example.com", 2)
        .await
        .token("reset-password")
        .unwrap();
    let done = g
        .reset_password(rpc::v1::ResetPasswordRequest {
            token: reset,
            new_password: "Better456".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(done.user_id, user.id);
    g.login(rpc::v1::LoginRequest {
        username_or_email: "grpcuser".into(),
        password: "Better456".into(),
    })
    .await
    .unwrap();
    assert!(smtp.to("ghost@example.com").is_empty());
}

/// A new address is unverified until its owner follows the link mailed to it; a link sent to
/// the old address no longer counts. A suspended account gets no reset link.
#[tokio::test]
async fn an_email_change_asks_for_a_new_verification() {
    let smtp = SmtpServer::start().await;
    let app = TestApp::start_with(Backend::Sqlite, opts(&smtp.url(), &[]))
        .await
        .unwrap();
    let (id, token, _) = app.user("mover").await;
    let old_link = nth_mail(&smtp, "mover@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"email": "moved@example.com", "current_password": "Secret123"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["is_verified"], false);
    let r = app
        .post(
            "/api/v1/auth/email/verify",
            None,
            json!({"token": old_link}),
        )
        .await;
    assert!(token_error(&r).starts_with("is no longer valid"));
    let new_link = nth_mail(&smtp, "moved@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let r = app
        .post(
            "/api/v1/auth/email/verify",
            None,
            json!({"token": new_link}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["email"], "moved@example.com");
    assert_eq!(r.data()["is_verified"], true);

    // Suspended: the answer is the same, no link is sent.
    let admin = app.admin_token().await;
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{id}/status"),
            Some(&admin),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "moved@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202);
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        smtp.to("moved@example.com").len(),
        1,
        "no reset link for a suspended account"
    );
    // Malformed input is a validation error, not a silent 202.
    let r = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "not-an-address"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
}

/// Security round 2, item 1: with only a victim's access token, an attacker used to change the
/// address (200), ask for a reset link at the new address and take the account for good.
/// Now: changing one's own address needs the current password; the old address is told and can
/// undo the change (every session ends); reset links go only to a verified address — for an
/// unverified new one, to the verified address it replaced; the audit log shows both masked.
async fn email_takeover(mode: Mode) {
    let smtp = SmtpServer::start().await;
    let app = start(mode, Backend::Sqlite, &smtp).await.unwrap();
    let (id, stolen, refresh) = app.user("victim").await;
    let verify = nth_mail(&smtp, "victim@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let r = app
        .post("/api/v1/auth/email/verify", None, json!({"token": verify}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let patch = |body: Value| {
        let (app, id, stolen) = (&app, &id, &stolen);
        async move {
            app.call(
                Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(stolen),
                Some(body),
            )
            .await
        }
    };

    // The stolen token alone no longer moves the address (the old code answered 200).
    let r = patch(json!({"email": "attacker@example.net"})).await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert!(
        r.field_errors().contains_key("current_password"),
        "{:?}",
        r.body
    );
    let r =
        patch(json!({"email": "attacker@example.net", "current_password": "Wrong-guess-1"})).await;
    r.assert_error(403, "FORBIDDEN");
    // Other fields still change with the token alone; the same address in another case too.
    let r = patch(json!({"first_name": "Vic", "email": "VICTIM@example.com"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.data()["is_verified"],
        true,
        "the same address stays verified"
    );

    // With the password (or by its owner), the change goes through and is told to the old
    // address; the new one is unverified until proven.
    let r = patch(json!({"email": "attacker@example.net", "current_password": "Secret123"})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["email"], "attacker@example.net");
    assert_eq!(r.data()["is_verified"], false);
    let notice = nth_mail(&smtp, "victim@example.com", 2).await;
    assert!(
        notice
            .header("subject")
            .unwrap()
            .contains("email address was changed"),
        "{:?}",
        notice.header("subject")
    );
    assert!(notice.decoded().contains("attacker@example.net"));
    let revert = notice.token("revert-email").unwrap();
    nth_mail(&smtp, "attacker@example.net", 1)
        .await
        .token("verify-email")
        .unwrap();
    // Other sessions stay alive until the owner reverts.
    assert_eq!(app.get("/api/v1/auth/me", Some(&stolen)).await.status, 200);

    // A reset asked for the new (unverified) address goes to the verified one it replaced.
    let r = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "attacker@example.net"}),
        )
        .await;
    assert_eq!(r.status, 202);
    let reset_mail = nth_mail(&smtp, "victim@example.com", 3).await;
    assert!(reset_mail.token("reset-password").is_some());
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        smtp.to("attacker@example.net").len(),
        1,
        "no reset link to an unverified address"
    );

    // The audit log shows the change, both addresses masked.
    let admin = app.admin_token().await;
    let r = app
        .get(
            &format!("/api/v1/audit-events?user_id={id}&type=user.updated&per_page=100"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let text = r.body.to_string();
    assert!(
        text.contains("v***@example.com") && text.contains("a***@example.net"),
        "{text}"
    );
    assert!(!text.contains("attacker@example.net") && !text.contains("victim@example.com"));

    // The owner follows the link: the old address is back (verified), every session ends.
    let r = app
        .post("/api/v1/auth/email/revert", None, json!({"token": revert}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["email"], "victim@example.com");
    assert_eq!(r.data()["is_verified"], true);
    app.eventually("/api/v1/auth/me", &stolen, 401, Duration::from_secs(6))
        .await;
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 401);
    let r = app
        .post("/api/v1/auth/email/revert", None, json!({"token": revert}))
        .await;
    assert_eq!(token_error(&r), domain::TOKEN_USED);
    let r = app.login("victim@example.com", "Secret123").await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // An admin changes someone else's address without that user's password.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&admin),
            Some(json!({"email": "victim2@example.com"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .get(
            &format!("/api/v1/audit-events?user_id={id}&type=user.email_reverted"),
            Some(&admin),
        )
        .await;
    assert_eq!(
        r.data()["items"].as_array().unwrap().len(),
        1,
        "{:?}",
        r.body
    );
}

#[tokio::test]
async fn email_takeover_is_refused_monolith() {
    email_takeover(Mode::Monolith).await;
}

#[tokio::test]
async fn email_takeover_is_refused_layered() {
    email_takeover(Mode::Layered).await;
}

/// The same rule over gRPC: UpdateUser of one's own address needs `current_password`.
#[tokio::test]
async fn email_change_over_grpc_needs_the_password() {
    let smtp = SmtpServer::start().await;
    let app = start(Mode::Layered, Backend::Sqlite, &smtp).await.unwrap();
    let (id, token, _) = app.user("grpcmover").await;
    // A verified address (the change notice goes only to one).
    let link = nth_mail(&smtp, "grpcmover@example.com", 1)
        .await
        .token("verify-email")
        .unwrap();
    let r = app
        .post("/api/v1/auth/email/verify", None, json!({"token": link}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut g = rpc::v1::user_service_client::UserServiceClient::connect(app.grpc.clone())
        .await
        .unwrap();
    let request = |current_password: Option<&str>| {
        let mut r = tonic::Request::new(rpc::v1::UpdateUserRequest {
            id: id.clone(),
            email: Some("elsewhere@example.net".into()),
            update_mask: Some(prost_types::FieldMask {
                paths: vec!["email".into()],
            }),
            current_password: current_password.map(Into::into),
            ..Default::default()
        });
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    };
    let e = g.update_user(request(None)).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
    let e = g
        .update_user(request(Some("Wrong-guess-1")))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let u = g
        .update_user(request(Some("Secret123")))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.email, "elsewhere@example.net");
    assert!(!u.is_verified);
    let notice = nth_mail(&smtp, "grpcmover@example.com", 2).await;
    let revert = notice.token("revert-email").unwrap();
    let mut a = AuthServiceClient::connect(app.grpc.clone()).await.unwrap();
    let back = a
        .revert_email(rpc::v1::RevertEmailRequest { token: revert })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.email, "grpcmover@example.com");
}

// ---- round 2, item 7: no plaintext SMTP off loopback unless asked for -----------------------

/// This machine's address on its default route: not loopback (the SMTP server under test
/// listens there, so the client's loopback exception does not apply).
fn non_loopback_ip() -> std::net::IpAddr {
    let s = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    s.connect("198.51.100.1:9")
        .expect("a default route (the test needs an address that is not loopback)");
    let ip = s.local_addr().unwrap().ip();
    assert!(!ip.is_loopback(), "{ip}");
    ip
}

/// A real SMTP server that offers no STARTTLS, on a non-loopback address: `smtp://` there used
/// to deliver the mail (reset and verification links) in plaintext; now TLS is required and the
/// mail waits in the outbox. `?tls=none` opts out explicitly (delivered, warned at start).
#[tokio::test]
async fn smtp_off_loopback_requires_tls_unless_opted_out() {
    let ip = non_loopback_ip();
    let smtp = SmtpServer::start_on(std::net::SocketAddr::new(ip, 0)).await;
    let app = TestApp::start_with(Backend::Sqlite, opts(&smtp.url(), &[]))
        .await
        .unwrap();
    app.user("cleartext").await;
    // Two delivery attempts reached the server (the first and a retry) and neither sent a mail
    // (the old code delivered it, in plaintext, at the first).
    let deadline = Instant::now() + MAIL_WAIT;
    while smtp.connections() < 2 && smtp.received().is_empty() {
        assert!(Instant::now() < deadline, "no delivery was attempted");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        smtp.received().is_empty(),
        "a mail went out in plaintext: {:?}",
        smtp.received()
    );
    drop(app);

    let smtp = SmtpServer::start_on(std::net::SocketAddr::new(ip, 0)).await;
    let url = format!("{}?tls=none", smtp.url());
    let app = TestApp::start_with(Backend::Sqlite, opts(&url, &[]))
        .await
        .unwrap();
    app.user("optedout").await;
    let got = smtp.wait_for("optedout@example.com", 1, MAIL_WAIT).await;
    assert_eq!(got.len(), 1, "tls=none delivers in plaintext");
}

// ---- round 2, item 11: mail bombing ----------------------------------------------------------

/// Switching an account's address to a victim's and away again mailed the victim a fresh
/// verification link every time (the per-account throttle does not see email changes), each
/// greeting the victim with the attacker's chosen username. Now at most 5 links per address and
/// window, none naming the account, and no "your address was changed" notice for an address that
/// was never verified.
#[tokio::test]
async fn switching_an_account_to_a_victims_address_cannot_bomb_it() {
    let smtp = SmtpServer::start().await;
    let app = start(Mode::Monolith, Backend::Sqlite, &smtp).await.unwrap();
    let (id, token, _) = app.user("claim_your_prize_at_evil").await;
    let victim = "victim@example.org";
    for i in 0..7 {
        for to in [victim.to_owned(), format!("spare{i}@example.net")] {
            let r = app
                .call(
                    Method::PATCH,
                    &format!("/api/v1/users/{id}"),
                    Some(&token),
                    Some(json!({"email": to, "current_password": "Secret123"})),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
        }
    }
    // One more address last: once its mail arrived, every earlier one was handled.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"email": "last@example.net", "current_password": "Secret123"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    nth_mail(&smtp, "last@example.net", 1).await;
    let bombed = smtp.to(victim);
    assert_eq!(
        bombed.len(),
        5,
        "7 switches, at most 5 mails to one address"
    );
    for m in &bombed {
        let text = m.decoded();
        assert!(!text.contains("claim_your_prize_at_evil"), "{text}");
        assert!(m.token("verify-email").is_some(), "{text}");
    }
}

// ---- round 2, item 10: no late reset links -------------------------------------------------

/// A reset mail that could not be delivered before its link expired (60 s, the shortest TTL) is
/// given up, never sent late: the old outbox kept retrying it, link and all, for hours.
#[tokio::test]
async fn a_reset_mail_whose_link_expired_is_never_sent() {
    let port = testkit::free_port();
    let url = format!("smtp://127.0.0.1:{port}");
    let app = TestApp::start_with(
        Backend::Sqlite,
        opts(
            &url,
            &[
                ("ARCANA_RESET_TOKEN_TTL", "60"),
                ("ARCANA_MAIL_RETRY_BASE_MS", "100"),
            ],
        ),
    )
    .await
    .unwrap();
    let (id, _, _) = app.user("forgetful").await;
    // Reset links go to verified addresses only: an admin verifies this one (SMTP is down).
    let admin = app.admin_token().await;
    let r = app
        .post(
            &format!("/api/v1/users/{id}/verify"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            "/api/v1/auth/password/forgot",
            None,
            json!({"email": "forgetful@example.com"}),
        )
        .await;
    assert_eq!(r.status, 202, "{:?}", r.body);
    // SMTP is down for longer than the link lives.
    tokio::time::sleep(Duration::from_secs(62)).await;
    let smtp = SmtpServer::start_on(format!("127.0.0.1:{port}").parse().unwrap()).await;
    // A fresh mail makes the worker claim the outbox now; once it arrived, the old one had its
    // chance.
    app.user("latecomer").await;
    nth_mail(&smtp, "latecomer@example.com", 1).await;
    let given_up = |text: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix("mail_outbox_given_up "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // (The previous release served /metrics on the REST port: ARCANA_TEST_BIN_DIR runs.)
        let mut text = String::new();
        for url in [app.edge_ops.url("/metrics"), app.url("/metrics")] {
            if let Ok(r) = app.client.get(url).send().await
                && r.status() == 200
            {
                text = r.text().await.unwrap_or_default();
                break;
            }
        }
        if given_up(&text) >= 1.0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the expired reset mail was not given up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        smtp.to("forgetful@example.com")
            .iter()
            .all(|m| m.token("reset-password").is_none()),
        "a reset link went out after it expired"
    );
}
