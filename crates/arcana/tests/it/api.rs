//! The REST contract of api.md, driven over HTTP against the real `arcana` binary, on every
//! configured database backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use crate::common::*;
use repository::Backend;
use reqwest::Method;
use serde_json::{Value, json};

const REVOCATION_PROMISE: Duration = Duration::from_secs(5);

async fn register_login_me_refresh_reuse_logout(app: TestApp) {
    // register: 201, envelope, auto-login, no secrets in the user
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "Alice", "email": "Alice@Example.com", "password": "Secret123", "first_name": "Alice"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    // the whole answer: envelope, token pair, the user without any secret
    insta::assert_json_snapshot!("register_answer", r.stable());
    assert!(r.body["data"]["refresh_token"].as_str().unwrap().len() >= 43);

    // login by username (any case) and by email
    let r = app.login("alice", "Secret123").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.login("ALICE@example.com", "Secret123").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let access = r.body["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh = r.body["data"]["refresh_token"].as_str().unwrap().to_owned();

    let me = app.get("/api/v1/auth/me", Some(&access)).await;
    assert_eq!(me.status, 200);
    insta::assert_json_snapshot!("me_answer", me.stable());
    assert!(me.body["data"]["last_login_at"].is_string());

    // refresh rotates: new pair works, old refresh token is dead
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let access2 = r.body["data"]["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.body["data"]["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(refresh, refresh2);
    assert_eq!(app.get("/api/v1/auth/me", Some(&access2)).await.status, 200);

    // reuse of the rotated token: 401 and the whole family dies (also the newest refresh token)
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh2}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.eventually("/api/v1/auth/me", &access2, 401, REVOCATION_PROMISE)
        .await;

    // logout: this session's access token stops working
    let (_, tok, _) = app.user("bob").await;
    let r = app.post("/api/v1/auth/logout", Some(&tok), json!({})).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["success"], true);
    let r = app.get("/api/v1/auth/me", Some(&tok)).await;
    r.assert_error(401, "UNAUTHORIZED");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
}

async fn sessions_and_logout_all(app: TestApp) {
    let (_, t1, _) = app.user("carol").await;
    let t2 = app.login("carol", "Secret123").await.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let t3 = app.login("carol", "Secret123").await.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app.get("/api/v1/auth/sessions", Some(&t1)).await;
    assert_eq!(r.status, 200);
    let list = r.body["data"].as_array().unwrap();
    assert_eq!(list.len(), 3);
    assert_eq!(list.iter().filter(|s| s["current"] == true).count(), 1);
    let other = list.iter().find(|s| s["current"] == false).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // someone else's session is a 404; a bad id a 400
    let (_, dave, _) = app.user("dave").await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/auth/sessions/{other}"),
        Some(&dave),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    app.call(
        Method::DELETE,
        "/api/v1/auth/sessions/not-a-uuid",
        Some(&dave),
        None,
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/sessions/{other}"),
            Some(&t1),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(
        app.get("/api/v1/auth/sessions", Some(&t1)).await.body["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );

    let r = app
        .post("/api/v1/auth/logout-all", Some(&t1), json!({}))
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["data"]["revoked_count"], 2);
    for t in [&t1, &t2, &t3] {
        app.eventually("/api/v1/auth/me", t, 401, REVOCATION_PROMISE)
            .await;
    }
}

async fn input_errors_answer_the_envelope(app: TestApp) {
    let url = app.url("/api/v1/auth/register");
    // broken JSON, wrong content type, empty body
    let r = app
        .client
        .post(&url)
        .header("content-type", "application/json")
        .body("{\"username\":")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "INVALID_JSON");
    let r = app
        .client
        .post(&url)
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["error"]["code"],
        "INVALID_JSON"
    );
    let r = app.client.post(&url).send().await.unwrap();
    assert_eq!(r.status(), 400);

    // unknown field, missing field, bad values — every problem named
    let r = app
        .post("/api/v1/auth/register", None, json!({"username": "ok_name", "email": "a@b.co", "password": "Secret123", "role": "admin"}))
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert!(r.field_errors().contains_key("role"));
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"email": "a@b.co", "password": "Secret123"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert!(r.field_errors().contains_key("username"));
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "x!", "email": "nope", "password": "short"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    // every problem named, each with its message
    insta::assert_json_snapshot!("register_validation_error", r.stable());

    // oversize body → 413
    let big =
        json!({"username": "x".repeat(70 * 1024), "email": "a@b.co", "password": "Secret123"});
    app.post("/api/v1/auth/register", None, big)
        .await
        .assert_error(413, "PAYLOAD_TOO_LARGE");

    // unknown route, wrong method, bad uuid, bad query
    app.get("/api/v1/nope", None)
        .await
        .assert_error(404, "NOT_FOUND");
    let r = app
        .call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await;
    assert_eq!(r.status, 405);
    assert_eq!(r.body["success"], false);
    let admin = app.admin_token().await;
    app.get("/api/v1/users/12345", Some(&admin))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    let r = app
        .get("/api/v1/users?per_page=1000&sort=password", Some(&admin))
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert!(r.field_errors().contains_key("per_page") && r.field_errors().contains_key("sort"));
    app.get("/api/v1/users?bogus=1", Some(&admin))
        .await
        .assert_error(400, "VALIDATION_FAILED");

    // missing/garbage token
    app.get("/api/v1/auth/me", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.get("/api/v1/auth/me", Some("not.a.jwt"))
        .await
        .assert_error(401, "UNAUTHORIZED");

    // duplicate username / email, case-insensitively
    app.user("erin").await;
    app.register("ERIN", "Secret123")
        .await
        .assert_error(409, "CONFLICT");
    let r = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({"username": "erin2", "email": "ERIN@example.com", "password": "Secret123"}),
        )
        .await;
    r.assert_error(409, "CONFLICT");
}

async fn login_failures_and_lockout(app: TestApp) {
    app.user("frank").await;
    app.login("frank", "WrongPass1")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let unknown = app.login("nobody", "WrongPass1").await;
    unknown.assert_error(401, "INVALID_CREDENTIALS");
    let wrong = app.login("frank", "WrongPass1").await;
    assert_eq!(
        unknown.body["error"]["message"],
        wrong.body["error"]["message"]
    );
    for _ in 0..3 {
        app.login("frank", "WrongPass1").await;
    }
    // five failures: locked, even with the right password
    let r = app.login("frank", "Secret123").await;
    r.assert_error(423, "ACCOUNT_LOCKED");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=30).contains(&retry), "{retry}");
    assert!(
        r.body["error"]["details"]["retry_after_seconds"]
            .as_u64()
            .unwrap()
            >= 1
    );
}

async fn admin_flows(app: TestApp) {
    let admin = app.admin_token().await;
    let (uid, utok, _) = app.user("gina").await;
    let (hid, htok, _) = app.user("hank").await;

    // list (admin only), filters, pagination
    let r = app
        .get(
            "/api/v1/users?per_page=2&sort=username&order=asc",
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // two of three users, by username, with the page arithmetic
    insta::assert_json_snapshot!("users_first_page", r.stable());
    let r = app.get("/api/v1/users?search=ANK", Some(&admin)).await;
    assert_eq!(r.body["data"]["items"][0]["username"], "hank");
    let r = app
        .get(
            "/api/v1/users?cursor=&per_page=2&sort=username&order=asc",
            Some(&admin),
        )
        .await;
    let next = r.body["data"]["pagination"]["next_cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .get(
            &format!("/api/v1/users?cursor={next}&per_page=2&sort=username&order=asc"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.body["data"]["items"][0]["username"], "root-admin");
    assert!(r.body["data"]["pagination"]["next_cursor"].is_null());
    app.get("/api/v1/users", Some(&utok))
        .await
        .assert_error(403, "FORBIDDEN");

    // non-admin: self yes, others 404
    assert_eq!(
        app.get(&format!("/api/v1/users/{uid}"), Some(&utok))
            .await
            .status,
        200
    );
    app.get(&format!("/api/v1/users/{hid}"), Some(&utok))
        .await
        .assert_error(404, "NOT_FOUND");

    // create (admin), profile PUT/PATCH
    let r = app
        .post(
            "/api/v1/users",
            Some(&admin),
            json!({"username": "ivan", "email": "ivan@example.com", "password": "Secret123", "role": "guest", "is_verified": true}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["data"]["role"], "guest");
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{uid}"),
            Some(&utok),
            Some(json!({"first_name": "Gina", "phone": "+1 555 0100"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["data"]["first_name"], "Gina");
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{uid}"),
            Some(&utok),
            Some(json!({"email": "gina2@example.com", "current_password": "Secret123"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert!(
        r.body["data"]["first_name"].is_null(),
        "PUT clears omitted fields"
    );
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{uid}"),
            Some(&utok),
            Some(json!({"avatar_url": "ftp://x"})),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");

    // verify, role change (revokes the user's sessions)
    let r = app
        .post(
            &format!("/api/v1/users/{uid}/verify"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.body["data"]["is_verified"], true);
    app.post(
        &format!("/api/v1/users/{uid}/verify"),
        Some(&utok),
        json!({}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{uid}/role"),
            Some(&admin),
            Some(json!({"role": "admin"})),
        )
        .await;
    assert_eq!(r.body["data"]["role"], "admin");
    app.eventually("/api/v1/auth/me", &utok, 401, REVOCATION_PROMISE)
        .await;
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{uid}/role"),
        Some(&admin),
        Some(json!({"role": "god"})),
    )
    .await
    .assert_error(400, "VALIDATION_FAILED");

    // suspension: token stops working, login with the right password → 403, wrong → 401
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{hid}/status"),
            Some(&admin),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.body["data"]["status"], "suspended");
    app.eventually("/api/v1/auth/me", &htok, 401, REVOCATION_PROMISE)
        .await;
    app.login("hank", "Secret123")
        .await
        .assert_error(403, "FORBIDDEN");
    app.login("hank", "WrongPass9")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");

    // password change: self needs the current one; admin does not
    let gtok = app.login("gina", "Secret123").await.body["data"]["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{uid}/password"),
            Some(&gtok),
            Some(json!({"current_password": "nope", "new_password": "NewSecret456"})),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{uid}/password"),
            Some(&gtok),
            Some(json!({"current_password": "Secret123", "new_password": "NewSecret456"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    assert_eq!(app.login("gina", "NewSecret456").await.status, 200);
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{hid}/password"),
            Some(&admin),
            Some(json!({"new_password": "AdminSet789"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    // delete: soft, username reusable, 404 afterwards for non-admin paths
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{hid}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    app.login("hank", "AdminSet789")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    assert_eq!(app.register("hank", "Secret123").await.status, 201);
    let (_, mia, _) = app.user("mia").await;
    app.call(
        Method::DELETE,
        &format!("/api/v1/users/{uid}"),
        Some(&mia),
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
}

async fn last_admin_is_protected(app: TestApp) {
    let admin = app.admin_token().await;
    let me = app.get("/api/v1/auth/me", Some(&admin)).await;
    let id = me.body["data"]["id"].as_str().unwrap().to_owned();
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{id}/role"),
        Some(&admin),
        Some(json!({"role": "user"})),
    )
    .await
    .assert_error(409, "CONFLICT");
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{id}/status"),
        Some(&admin),
        Some(json!({"status": "suspended"})),
    )
    .await
    .assert_error(409, "CONFLICT");
    app.call(
        Method::DELETE,
        &format!("/api/v1/users/{id}"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(409, "CONFLICT");
}

async fn operations_endpoints(app: TestApp) {
    // Health and metrics live on the ops listener only, never on the public port (the old code
    // served them on REST: anyone could read the process's internals).
    let ops = &app.edge_ops;
    let r = ops.get("/health/live", None).await;
    assert_eq!((r.status, r.body.clone()), (200, json!({"status": "ok"})));
    assert_eq!(ops.get("/health/ready", None).await.status, 200);
    for path in ["/metrics", "/health/live", "/health/ready"] {
        app.get(path, None).await.assert_error(404, "NOT_FOUND");
    }
    // HS256 access tokens publish no key; the monolith publishes the OIDC keys it generated,
    // a gateway only those it is given (none here)
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    let published: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["alg"].as_str().unwrap())
        .collect();
    let expected: &[&str] = match app.mode {
        Mode::Monolith => &["RS256", "EdDSA"],
        _ => &[],
    };
    assert_eq!(published, expected, "{jwks}");
    app.get("/api/v1/auth/me", None).await;
    let m = ops
        .client
        .get(ops.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(m.contains("http_requests_total"), "metrics: {m}");
    assert!(m.contains("http_request_duration_seconds"), "{m}");
    if app.mode == Mode::Monolith {
        // The process that holds the database and the hasher reports them.
        assert!(m.contains("db_pool_connections"), "{m}");
        assert!(m.contains("password_hash_queue_depth"), "{m}");
        assert!(m.contains("mail_outbox_pending"), "{m}");
        assert!(m.contains("mail_delivery_failures_total"), "{m}");
    }

    // request ids: a sane one is echoed, anything else replaced
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .header("x-request-id", "abc-123.X_y")
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-request-id"], "abc-123.X_y");
    let r = app
        .client
        .get(app.url("/api/v1/nope"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    let echoed = r.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_ne!(echoed, "bad id!");
    assert_eq!(
        r.json::<serde_json::Value>().await.unwrap()["request_id"],
        echoed.as_str()
    );
    let r = app
        .client
        .get(app.url("/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["x-content-type-options"], "nosniff");

    // OpenAPI lists every route; Swagger UI is served
    let doc = app.get("/api-docs/openapi.json", None).await.body;
    let committed: Value =
        serde_json::from_str(include_str!("../../../../docs/openapi.json")).unwrap();
    assert!(
        doc == committed,
        "the served OpenAPI document is not docs/openapi.json"
    );
    let paths = doc["paths"].as_object().unwrap();
    let expected: &[(&str, &[&str])] = &[
        ("/api/v1/auth/register", &["post"]),
        ("/api/v1/auth/login", &["post"]),
        ("/api/v1/auth/refresh", &["post"]),
        ("/api/v1/auth/logout", &["post"]),
        ("/api/v1/auth/logout-all", &["post"]),
        ("/api/v1/auth/me", &["get"]),
        ("/api/v1/auth/sessions", &["get"]),
        ("/api/v1/auth/sessions/{id}", &["delete"]),
        ("/api/v1/auth/tokens", &["get", "post"]),
        ("/api/v1/auth/tokens/{id}", &["delete"]),
        ("/api/v1/auth/password/forgot", &["post"]),
        ("/api/v1/auth/password/reset", &["post"]),
        ("/api/v1/auth/email/verify", &["post"]),
        ("/api/v1/auth/email/verify/resend", &["post"]),
        ("/api/v1/auth/email/revert", &["post"]),
        ("/api/v1/auth/mfa", &["get"]),
        ("/api/v1/auth/mfa/totp/setup", &["post"]),
        ("/api/v1/auth/mfa/totp/confirm", &["post"]),
        ("/api/v1/auth/mfa/totp", &["delete"]),
        ("/api/v1/auth/mfa/recovery-codes", &["post"]),
        ("/api/v1/auth/mfa/verify", &["post"]),
        ("/api/v1/users/{id}/mfa", &["delete"]),
        ("/api/v1/auth/mfa/passkeys", &["get"]),
        ("/api/v1/auth/mfa/passkeys/register/start", &["post"]),
        ("/api/v1/auth/mfa/passkeys/register/finish", &["post"]),
        ("/api/v1/auth/mfa/passkeys/{id}", &["patch", "delete"]),
        ("/api/v1/auth/passkeys/login/start", &["post"]),
        ("/api/v1/auth/passkeys/login/finish", &["post"]),
        ("/api/v1/users", &["get", "post"]),
        ("/api/v1/users/{id}", &["get", "put", "patch", "delete"]),
        ("/api/v1/users/{id}/password", &["put"]),
        ("/api/v1/users/{id}/verify", &["post"]),
        ("/api/v1/users/{id}/unlock", &["post"]),
        ("/api/v1/users/{id}/sessions", &["get"]),
        ("/api/v1/users/{id}/status", &["put"]),
        ("/api/v1/audit-events", &["get"]),
        ("/api/v1/users/{id}/role", &["put"]),
        ("/api/v1/oidc/clients", &["get", "post"]),
        (
            "/api/v1/oidc/clients/{client_id}",
            &["get", "patch", "delete"],
        ),
        ("/api/v1/oidc/clients/{client_id}/secret", &["post"]),
        ("/api/v1/service-accounts", &["get", "post"]),
        ("/api/v1/service-accounts/{id}", &["get", "delete"]),
        ("/api/v1/service-accounts/{id}/secret", &["post"]),
        ("/api/v1/webhooks", &["get", "post"]),
        ("/api/v1/webhooks/{id}", &["delete", "get", "patch"]),
        ("/api/v1/webhooks/{id}/test", &["post"]),
        ("/api/v1/webhooks/{id}/deliveries", &["get"]),
        (
            "/api/v1/webhooks/{id}/deliveries/{delivery}/retry",
            &["post"],
        ),
        ("/.well-known/jwks.json", &["get"]),
    ];
    for (path, methods) in expected {
        for m in *methods {
            assert!(
                paths.get(*path).and_then(|p| p.get(*m)).is_some(),
                "{m} {path} missing from OpenAPI"
            );
        }
    }
    assert_eq!(
        paths.len(),
        expected.len(),
        "OpenAPI has routes the test does not know: {:?}",
        paths.keys()
    );
    let ui = app
        .client
        .get(app.url("/swagger-ui/"))
        .send()
        .await
        .unwrap();
    assert_eq!(ui.status(), 200);
    assert!(ui.text().await.unwrap().contains("swagger"));
}

async fn logs_never_contain_secrets(app: TestApp) {
    let (_, access, refresh) = app.user("kate").await;
    app.login("kate", "Secret123").await;
    app.login("kate", "WrongSecret9").await;
    app.post(
        "/api/v1/auth/refresh",
        None,
        json!({"refresh_token": refresh}),
    )
    .await;
    app.get("/api/v1/auth/me", Some(&access)).await;
    let logs = app.logs();
    assert!(!logs.is_empty());
    for secret in [
        "Secret123",
        "WrongSecret9",
        ADMIN_PASSWORD,
        JWT_SECRET,
        &access,
        &refresh,
    ] {
        assert!(!logs.contains(secret), "log leaks a secret");
    }
}

async fn audit_log_is_for_admins_and_keeps_no_secret(app: TestApp) {
    let admin = app.admin_token().await;
    let (id, _, refresh) = app.user("audrey").await;
    app.login("audrey", "WrongSecret9")
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    let r = app
        .post(
            "/api/v1/auth/refresh",
            None,
            json!({"refresh_token": refresh}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let access = r.data()["access_token"].as_str().unwrap().to_owned();
    let refresh2 = r.data()["refresh_token"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{id}/password"),
            Some(&access),
            Some(json!({"current_password": "Secret123", "new_password": "Better456"})),
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);

    // Admins only.
    app.get("/api/v1/audit-events", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    app.get("/api/v1/audit-events", Some(&access))
        .await
        .assert_error(403, "FORBIDDEN");

    let r = app
        .get(
            &format!("/api/v1/audit-events?user_id={id}&per_page=100"),
            Some(&admin),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let items = r.data()["items"].as_array().unwrap().clone();
    let types: Vec<String> = items
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        types,
        [
            "user.password_changed:success",
            "auth.login:failure",
            "auth.email_verification_requested:sent",
            "auth.register:success"
        ],
        "newest first"
    );
    let e = &items[1];
    assert_eq!(e["subject_id"], id.as_str());
    assert!(e["at"].as_str().unwrap().ends_with('Z'), "{e}");
    // the failed login as an auditor reads it: every field, none secret
    insta::assert_json_snapshot!("audit_event_failed_login", testkit::snapshot::stable(e));
    assert_eq!(r.data()["pagination"]["next_cursor"], Value::Null);
    // Nothing secret: no password, token, hash or key, whatever the event.
    let everything = app
        .get("/api/v1/audit-events?per_page=100", Some(&admin))
        .await;
    let text = everything.body.to_string();
    for secret in [
        "Secret123",
        "Better456",
        "WrongSecret9",
        ADMIN_PASSWORD,
        JWT_SECRET,
        &access,
        &refresh,
        &refresh2,
        "pbkdf2",
        "$",
    ] {
        assert!(
            !text.contains(secret),
            "the audit log holds a secret: {secret}"
        );
    }

    // Filters: type, outcome, time range; keyset pages.
    let count = |query: String| {
        let (app, admin) = (&app, &admin);
        async move {
            let r = app
                .get(&format!("/api/v1/audit-events?{query}"), Some(admin))
                .await;
            assert_eq!(r.status, 200, "{query}: {:?}", r.body);
            r.data()["items"].as_array().unwrap().len()
        }
    };
    let audrey = format!("user_id={id}");
    assert_eq!(
        count(format!("{audrey}&type=auth.login&outcome=failure")).await,
        1
    );
    let newest = items[0]["at"].as_str().unwrap().replace('+', "%2B");
    assert_eq!(count(format!("{audrey}&until={newest}")).await, 3);
    assert_eq!(count(format!("{audrey}&since={newest}")).await, 1);
    let mut seen = Vec::new();
    let mut path = format!("/api/v1/audit-events?user_id={id}&per_page=2");
    loop {
        let r = app.get(&path, Some(&admin)).await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        seen.extend(
            r.data()["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["id"].clone()),
        );
        match r.data()["pagination"]["next_cursor"].as_str() {
            Some(c) => path = format!("/api/v1/audit-events?user_id={id}&per_page=2&cursor={c}"),
            None => break,
        }
    }
    let all: Vec<Value> = items.iter().map(|e| e["id"].clone()).collect();
    assert_eq!(seen, all, "the pages hold every event once, in order");

    // Bad filters answer the envelope, every field named.
    let r = app
        .get(
            "/api/v1/audit-events?user_id=audrey&type=Auth%20Login&since=yesterday&per_page=0&cursor=nope",
            Some(&admin),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    for k in ["user_id", "type", "since", "per_page", "cursor"] {
        assert!(r.field_errors().contains_key(k), "{k}: {:?}", r.body);
    }
    app.get("/api/v1/audit-events?colour=blue", Some(&admin))
        .await
        .assert_error(400, "VALIDATION_FAILED");
}

backends!(
    register_login_me_refresh_reuse_logout,
    sessions_and_logout_all,
    input_errors_answer_the_envelope,
    login_failures_and_lockout,
    admin_flows,
    last_admin_is_protected,
    operations_endpoints,
    logs_never_contain_secrets,
    audit_log_is_for_admins_and_keeps_no_secret,
);

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options {
            rate_limit: 3,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    for _ in 0..3 {
        app.login("nobody", "Whatever1")
            .await
            .assert_error(401, "INVALID_CREDENTIALS");
    }
    let r = app.login("nobody", "Whatever1").await;
    r.assert_error(429, "RATE_LIMITED");
    assert!(
        r.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    // other endpoints have their own budget
    assert_eq!(app.register("lena", "Secret123").await.status, 201);
}

#[tokio::test]
async fn sigterm_lets_in_flight_requests_finish_and_exits_cleanly() {
    let mut app = TestApp::start(Backend::Sqlite).await.unwrap();
    let client = app.client.clone();
    let url = app.url("/api/v1/auth/register");
    let in_flight = tokio::spawn(async move {
        client
            .post(url)
            .json(
                &json!({"username": "late", "email": "late@example.com", "password": "Secret123"}),
            )
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    tokio::time::sleep(Duration::from_millis(5)).await;
    let status = app.terminate();
    assert!(status.success(), "exit status {status:?}\n{}", app.logs());
    if let Ok(code) = in_flight.await.unwrap() {
        assert_eq!(code, 201, "a request accepted before SIGTERM must complete");
    }
    assert!(app.logs().contains("shut down cleanly"));
}

#[tokio::test]
async fn zero_config_start_creates_database_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let ops = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_arcana"))
        .env_clear()
        .env("ARCANA_HTTP_ADDR", format!("127.0.0.1:{port}"))
        .env("ARCANA_METRICS_ADDR", format!("127.0.0.1:{ops}"))
        .env("ARCANA_PASSWORD_ITERATIONS", "1000")
        .current_dir(dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..200 {
        if let Ok(r) = client
            .get(format!("http://127.0.0.1:{ops}/health/ready"))
            .send()
            .await
        {
            ready = r.status() == 200;
            if ready {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(ready, "monolith did not start without configuration");
    assert!(dir.path().join("data/arcana.db").exists());
    let key = std::fs::read_to_string(dir.path().join("data/jwt-secret")).unwrap();
    assert!(key.len() >= 64);
}

async fn wait_status(
    app: &Rest,
    path: &str,
    token: Option<&str>,
    status: u16,
    within: Duration,
) -> crate::common::Resp {
    let start = std::time::Instant::now();
    loop {
        let r = app.get(path, token).await;
        if r.status == status {
            return r;
        }
        assert!(
            start.elapsed() < within,
            "{path} still answers {} after {within:?}: {:?}",
            r.status,
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shutting the repository layer down turns answers into 503 with the envelope; the platform
/// recovers by itself when it returns.
#[tokio::test]
async fn layered_outage_of_a_lower_layer_answers_503_and_recovers() {
    let mut app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    let (_, tok, _) = app.user("olga").await;
    let repo = app.process("arcana-repository");
    assert!(app.terminate_process(repo).success());
    let r = wait_status(
        &app,
        "/api/v1/auth/me",
        Some(&tok),
        503,
        Duration::from_secs(10),
    )
    .await;
    r.assert_error(503, "SERVICE_UNAVAILABLE");
    let ops = &app.edge_ops;
    let r = wait_status(ops, "/health/ready", None, 503, Duration::from_secs(10)).await;
    assert_eq!(r.body, json!({"status": "unavailable"}));
    app.login("olga", "Secret123")
        .await
        .assert_error(503, "SERVICE_UNAVAILABLE");
    app.restart_process(repo);
    wait_status(
        &app.edge_ops,
        "/health/ready",
        None,
        200,
        Duration::from_secs(20),
    )
    .await;
    let me = wait_status(
        &app,
        "/api/v1/auth/me",
        Some(&tok),
        200,
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(me.body["data"]["username"], "olga");
    assert_eq!(app.login("olga", "Secret123").await.status, 200);
}

/// Reaching an internal port is not enough: without the internal credential every call is
/// refused, even one that forges the forwarded caller identity of an admin.
#[tokio::test]
async fn internal_ports_refuse_calls_without_the_credential() {
    use rpc::v1::user_service_client::UserServiceClient;
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, Options::default())
        .await
        .unwrap();
    let (uid, _, _) = app.user("mallory").await;
    let port = app
        .internal
        .iter()
        .find(|(n, _)| n == "arcana-service")
        .unwrap()
        .1;
    let mut client = UserServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .unwrap();
    let mut req = tonic::Request::new(rpc::v1::SetRoleRequest {
        id: uid.clone(),
        role: "admin".into(),
    });
    req.metadata_mut()
        .insert("x-arcana-user-id", uid.parse().unwrap());
    req.metadata_mut().insert(
        "x-arcana-session-id",
        uuid::Uuid::new_v4().to_string().parse().unwrap(),
    );
    req.metadata_mut()
        .insert("x-arcana-role", "admin".parse().unwrap());
    let err = client.set_role(req).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    let mut req = tonic::Request::new(rpc::v1::SetRoleRequest {
        id: uid.clone(),
        role: "admin".into(),
    });
    req.metadata_mut().insert(
        "x-internal-token",
        "internal-token-internal-token-WRONG-WRONG".parse().unwrap(),
    );
    assert_eq!(
        client.set_role(req).await.unwrap_err().code(),
        tonic::Code::Unauthenticated
    );
    // and the repository layer likewise
    let rport = app
        .internal
        .iter()
        .find(|(n, _)| n == "arcana-repository")
        .unwrap()
        .1;
    let mut repo = rpc::internal::repository_service_client::RepositoryServiceClient::connect(
        format!("http://127.0.0.1:{rport}"),
    )
    .await
    .unwrap();
    let err = repo
        .find_credentials(rpc::internal::FindCredentialsRequest {
            login: "mallory".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    // the user is still a plain user
    let admin = app.admin_token().await;
    let r = app.get(&format!("/api/v1/users/{uid}"), Some(&admin)).await;
    assert_eq!(r.body["data"]["role"], "user");
}

/// Several upstream endpoints per layer: the gateway balances over both service replicas and keeps
/// answering when one of them goes away.
#[tokio::test]
async fn layered_gateway_balances_over_replicas_and_survives_losing_one() {
    let opts = Options {
        service_replicas: 2,
        ..Default::default()
    };
    let mut app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, opts)
        .await
        .unwrap();
    let (_, tok, _) = app.user("rita").await;
    for _ in 0..20 {
        assert_eq!(app.get("/api/v1/auth/me", Some(&tok)).await.status, 200);
    }
    let second = app.process("arcana-service-2");
    assert!(app.terminate_process(second).success());
    for i in 0..20 {
        let r = app.get("/api/v1/auth/me", Some(&tok)).await;
        assert_eq!(
            r.status, 200,
            "call {i} after losing a replica: {:?}",
            r.body
        );
    }
    assert_eq!(app.login("rita", "Secret123").await.status, 200);
}

/// With certificates configured, layers talk mutual TLS (on top of the internal credential):
/// the platform works end to end, and a plaintext client cannot reach an internal port.
#[tokio::test]
async fn layered_over_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    let d = certs.path();
    let ossl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(d)
            .output()
            .expect("openssl");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    ossl(
        &[
            &["req", "-x509"][..],
            &ec,
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=arcana-test-ca",
            ],
        ]
        .concat(),
    );
    ossl(
        &[
            &["req"][..],
            &ec,
            &[
                "-keyout",
                "node.key",
                "-out",
                "node.csr",
                "-subj",
                "/CN=localhost",
            ],
        ]
        .concat(),
    );
    std::fs::write(
        d.join("ext.cnf"),
        "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n",
    )
    .unwrap();
    ossl(&[
        "x509",
        "-req",
        "-in",
        "node.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "node.pem",
        "-days",
        "1",
        "-extfile",
        "ext.cnf",
    ]);
    let path = |f: &str| d.join(f).display().to_string();
    let opts = Options {
        extra_env: vec![
            ("ARCANA_TLS_CERT".into(), path("node.pem")),
            ("ARCANA_TLS_KEY".into(), path("node.key")),
            ("ARCANA_TLS_CA".into(), path("ca.pem")),
        ],
        ..Default::default()
    };
    let app = TestApp::start_mode(Mode::Layered, Backend::Sqlite, opts)
        .await
        .unwrap();
    let (_, tok, _) = app.user("tess").await;
    assert_eq!(app.get("/api/v1/auth/me", Some(&tok)).await.status, 200);
    assert!(!app.admin_token().await.is_empty());

    // plaintext h2 to the repository port: refused at the TLS layer, before any gRPC
    let rport = app
        .internal
        .iter()
        .find(|(n, _)| n == "arcana-repository")
        .unwrap()
        .1;
    let plain = rpc::internal::repository_service_client::RepositoryServiceClient::connect(
        format!("http://127.0.0.1:{rport}"),
    )
    .await;
    if let Ok(mut c) = plain {
        let mut req = tonic::Request::new(rpc::internal::FindCredentialsRequest {
            login: "tess".into(),
        });
        req.metadata_mut()
            .insert("x-internal-token", REPOSITORY_TOKEN.parse().unwrap());
        let err = c.find_credentials(req).await.unwrap_err();
        assert_ne!(err.code(), tonic::Code::Ok);
        assert!(
            err.metadata().get("x-error-code").is_none(),
            "the call must not reach the service: {err:?}"
        );
    }
}
