//! The account console (`/account`) and the admin console (`/admin`) as a browser without
//! JavaScript uses them, against the real binaries in every deployment mode and on every
//! database: signed in through the hosted login, forms posted and answers read as pages
//! (status, fields, errors next to their fields), cross-site posts refused, non-admins refused,
//! secrets shown once, and what the pages do visible through the API.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_SECURITY_POLICY, COOKIE, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::common::*;
use repository::Backend;

every_mode!(
    account_console,
    admin_console,
    personal_access_tokens_from_the_account_console
);

/// `ARCANA_REQUIRE_MFA_FOR_ADMINS`: the admin console says what to do until the admin has a
/// second factor, and opens once they set one up on their account's page.
#[tokio::test]
async fn admin_console_waits_for_the_admins_second_factor() {
    let opts = Options {
        extra_env: vec![
            ("ARCANA_PUBLIC_URL".to_owned(), "http://{http}".to_owned()),
            (
                "ARCANA_REQUIRE_MFA_FOR_ADMINS".to_owned(),
                "true".to_owned(),
            ),
        ],
        ..Options::default()
    };
    let app = TestApp::start_mode(Mode::Monolith, Backend::Sqlite, opts)
        .await
        .unwrap();
    app.admin_token().await;
    let mut b = Browser::new(&app);
    b.sign_in(ADMIN_USER, ADMIN_PASSWORD, "/account").await;
    let page = b.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(page.body.contains("second factor first"), "{}", page.body);
    let page = b
        .post(
            "/admin/clients",
            &[("name", "x"), ("redirect_uris", "https://x.example/cb")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);

    let page = b
        .post(
            "/account/totp/setup",
            &[("current_password", ADMIN_PASSWORD)],
        )
        .await;
    let key = crypto::mfa::secret_from_base32(&code_after(&page.body, "Type this key")).unwrap();
    let page = b
        .post("/account/totp/confirm", &[("code", &totp_now(&key))])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let page = b.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
}

async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    let opts = Options {
        extra_env: vec![("ARCANA_PUBLIC_URL".to_owned(), "http://{http}".to_owned())],
        ..Options::default()
    };
    TestApp::start_mode(mode, backend, opts).await
}

/// A browser: its SSO cookie, no automatic redirects, `Sec-Fetch-Site` as a browser sends it.
struct Browser {
    http: reqwest::Client,
    base: String,
    cookie: Option<String>,
}

struct Page {
    status: StatusCode,
    location: Option<String>,
    body: String,
    headers: reqwest::header::HeaderMap,
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        s.append_pair(k, v);
    }
    s.finish()
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: app.base.clone(),
            cookie: None,
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let req = match &self.cookie {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let r = req.send().await.unwrap();
        for c in r.headers().get_all(SET_COOKIE) {
            let c = c.to_str().unwrap();
            let pair = c.split(';').next().unwrap().to_owned();
            self.cookie = (!pair.ends_with('=')).then_some(pair);
        }
        Page {
            status: r.status(),
            location: r
                .headers()
                .get(LOCATION)
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(format!("{}{path}", self.base));
        self.send(req).await
    }

    async fn post_from(&mut self, site: &str, path: &str, pairs: &[(&str, &str)]) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("sec-fetch-site", site)
            .body(form(pairs));
        self.send(req).await
    }

    async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        self.post_from("same-origin", path, pairs).await
    }

    /// Sign in on the hosted login page, asked for by `next`.
    async fn sign_in(&mut self, user: &str, password: &str, next: &str) -> Page {
        let page = self.get(next).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let login = page.location.unwrap();
        assert!(login.starts_with("/login?next="), "{login}");
        let page = self
            .post(&login, &[("username", user), ("password", password)])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some(next));
        assert!(self.cookie.is_some());
        self.get(next).await
    }
}

/// The value the page shows in the first `<code>` after `marker`.
fn code_after(html: &str, marker: &str) -> String {
    let rest = &html[html
        .find(marker)
        .unwrap_or_else(|| panic!("{marker} in {html}"))..];
    let start = rest.find("<code>").unwrap() + 6;
    let end = rest[start..].find("</code>").unwrap();
    rest[start..start + end].to_owned()
}

fn totp_now(secret: &[u8]) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    crypto::mfa::totp_code(secret, now).unwrap()
}

async fn account_console(app: TestApp) {
    let mut b = Browser::new(&app);
    let (id, api_token, _) = app.user("ada").await;

    // Not signed in: to the login page, which comes back here.
    let page = b.get("/account/security").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(
        page.location.as_deref(),
        Some("/login?next=%2Faccount%2Fsecurity")
    );
    // Only console paths are followed after sign-in: never another site.
    let page = b.get("/login?next=https%3A%2F%2Fevil.example").await;
    assert!(!page.body.contains("evil.example"), "{}", page.body);

    let page = b.sign_in("ada", "Secret123", "/account").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<h1>Profile</h1>"), "{}", page.body);
    let csp = page.headers[CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("form-action 'self'"),
        "{csp}"
    );
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert_eq!(page.headers["cache-control"], "no-store");

    // Profile: saved, and the API sees it.
    let page = b
        .post(
            "/account/profile",
            &[
                ("first_name", "Ada"),
                ("last_name", "Lovelace"),
                ("email", "ada@example.com"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location.as_deref(), Some("/account?done=profile"));
    let page = b.get("/account?done=profile").await;
    assert!(page.body.contains("Your profile is saved."));
    assert!(page.body.contains("value=\"Lovelace\""), "{}", page.body);
    let me = app
        .get(&format!("/api/v1/users/{id}"), Some(&api_token))
        .await;
    assert_eq!(me.data()["last_name"], "Lovelace", "{:?}", me.body);

    // A new email address needs the current password: said next to that field, values kept.
    let page = b
        .post(
            "/account/profile",
            &[
                ("first_name", "Ada"),
                ("email", "ada.new@example.com"),
                ("current_password", "wrong-Passw0rd"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    assert!(
        page.body.contains("id=\"profile_password-err\""),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"ada.new@example.com\""));
    // A bad value: the field's own message.
    let page = b
        .post(
            "/account/profile",
            &[
                ("first_name", &"x".repeat(80)),
                ("email", "ada@example.com"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"first_name-err\""), "{}", page.body);
    // Password: the two new ones must match.
    let page = b
        .post(
            "/account/password",
            &[
                ("current_password", "Secret123"),
                ("new_password", "Another1pass"),
                ("confirm_password", "Another2pass"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"confirm_password-err\""));

    // A cross-site post is refused before it does anything.
    let page = b
        .post_from(
            "cross-site",
            "/account/profile",
            &[("first_name", "Mallory"), ("email", "ada@example.com")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
    let me = app
        .get(&format!("/api/v1/users/{id}"), Some(&api_token))
        .await;
    assert_eq!(me.data()["first_name"], "Ada");

    // Sessions: the API login's session is listed and signed out from the page.
    let page = b.get("/account/sessions").await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("This browser"), "{}", page.body);
    let sessions = app.get("/api/v1/auth/sessions", Some(&api_token)).await;
    let api_session = sessions
        .data()
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == true)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(page.body.contains(&api_session));
    let page = b
        .post(&format!("/account/sessions/{api_session}/revoke"), &[])
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/account/sessions?done=session")
    );
    app.eventually("/api/v1/auth/me", &api_token, 401, Duration::from_secs(5))
        .await;

    // Second factor: set up with the password, the key shown once, confirmed with a code.
    let page = b
        .post(
            "/account/totp/setup",
            &[("current_password", "nope-Passw0rd")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(page.body.contains("id=\"setup_password-err\""));
    let page = b
        .post("/account/totp/setup", &[("current_password", "Secret123")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<svg"), "the QR code is inline");
    let secret = code_after(&page.body, "Type this key");
    let page = b.post("/account/totp/confirm", &[("code", "000000")]).await;
    assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    assert!(
        page.body.contains("id=\"code-err\"") && !page.body.contains(&secret),
        "never shown twice"
    );
    let key = crypto::mfa::secret_from_base32(&secret).unwrap();
    let page = b
        .post("/account/totp/confirm", &[("code", &totp_now(&key))])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_eq!(page.body.matches("<li><code>").count(), 10, "{}", page.body);
    let page = b.get("/account/security").await;
    assert!(page.body.contains("badge on\">On"), "{}", page.body);
    assert!(page.body.contains("10 unused codes left"), "{}", page.body);

    // The security events of the account.
    let page = b.get("/account/activity").await;
    assert_eq!(page.status, StatusCode::OK);
    for what in [
        "Sign-in",
        "Profile changed",
        "Authenticator app turned on",
        "Session signed out",
    ] {
        assert!(page.body.contains(what), "{what}: {}", page.body);
    }

    // Sign out everywhere: confirmed first; then this browser is signed out too.
    let page = b.post("/account/sessions/revoke-all", &[]).await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"confirm-err\""));
    let page = b
        .post("/account/sessions/revoke-all", &[("confirm", "yes")])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(b.cookie.is_none());
    let page = b.get("/account").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
}

async fn admin_console(app: TestApp) {
    let (user_id, user_token, _) = app.user("grace").await;
    app.admin_token().await;

    // A user is no admin: the page says so (and the ports would refuse anyway).
    let mut u = Browser::new(&app);
    u.sign_in("grace", "Secret123", "/account").await;
    let page = u.get("/admin/users").await;
    assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
    let page = u
        .post(
            &format!("/admin/users/{user_id}/role"),
            &[("role", "admin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let mut b = Browser::new(&app);
    let page = b.sign_in(ADMIN_USER, ADMIN_PASSWORD, "/admin/users").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Search, filters and keyset paging.
    let page = b.get("/admin/users?search=grac&role=user&status=").await;
    assert!(
        page.body.contains(&format!("/admin/users/{user_id}")),
        "{}",
        page.body
    );
    let page = b.get("/admin/users?status=bogus").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = b.get("/admin/users/not-an-id").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);

    // Detail: edit, suspend (confirmed), and the audit trail says so.
    let page = b.get(&format!("/admin/users/{user_id}")).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<h1>grace</h1>"));
    let page = b
        .post(
            &format!("/admin/users/{user_id}/profile"),
            &[
                ("first_name", "Grace"),
                ("last_name", "Hopper"),
                ("email", "grace@example.com"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let page = b
        .post(
            &format!("/admin/users/{user_id}/profile"),
            &[("email", "not an address")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"email-err\""), "{}", page.body);
    // The user's sessions (the browser's sign-in above among them), and a lockout lifted.
    let page = b.get(&format!("/admin/users/{user_id}")).await;
    assert!(page.body.contains("<h2 id=\"sessions-h\">Sessions</h2>"));
    assert!(
        !page.body.contains("Not signed in anywhere"),
        "{}",
        page.body
    );
    let admin = app.admin_token().await;
    let listed = app
        .get(&format!("/api/v1/users/{user_id}/sessions"), Some(&admin))
        .await;
    assert_eq!(listed.status, 200, "{:?}", listed.body);
    assert!(!listed.data().as_array().unwrap().is_empty());
    let refused = app
        .post(
            &format!("/api/v1/users/{user_id}/unlock"),
            Some(&user_token),
            json!({}),
        )
        .await;
    refused.assert_error(403, "FORBIDDEN");
    for _ in 0..5 {
        app.login("grace", "WrongPass1").await;
    }
    app.login("grace", "Secret123")
        .await
        .assert_error(423, "ACCOUNT_LOCKED");
    let page = b.post(&format!("/admin/users/{user_id}/unlock"), &[]).await;
    assert_eq!(
        page.location,
        Some(format!("/admin/users/{user_id}?done=unlocked"))
    );
    assert_eq!(app.login("grace", "Secret123").await.status, 200);
    let page = b
        .get(&format!(
            "/admin/audit?type=user.unlocked&user_id={user_id}"
        ))
        .await;
    assert!(
        page.body.contains("Sign-in lockouts lifted"),
        "{}",
        page.body
    );

    // The user reads their own events (the API the activity page uses): what the admin did is
    // there, without the admin's id, address or request id; anyone else's events are refused.
    let own = app
        .get(
            &format!("/api/v1/audit-events?user_id={user_id}&type=user.updated"),
            Some(&user_token),
        )
        .await;
    assert_eq!(own.status, 200, "{:?}", own.body);
    let by_admin = &own.data()["items"][0];
    assert_eq!(by_admin["subject_id"], user_id.as_str(), "{:?}", own.body);
    assert!(
        by_admin["actor_id"].is_null()
            && by_admin["ip"].is_null()
            && by_admin["request_id"].is_null(),
        "{by_admin}"
    );
    let admin_id = app
        .get("/api/v1/auth/me", Some(&app.admin_token().await))
        .await
        .data()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let foreign = app
        .get(
            &format!("/api/v1/audit-events?user_id={admin_id}"),
            Some(&user_token),
        )
        .await;
    assert_eq!(foreign.status, 403, "{:?}", foreign.body);
    let page = b
        .post(
            &format!("/admin/users/{user_id}/status"),
            &[("status", "suspended")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"status-confirm-err\""));
    let page = b
        .post(
            &format!("/admin/users/{user_id}/status"),
            &[("status", "suspended"), ("confirm", "yes")],
        )
        .await;
    assert_eq!(
        page.location,
        Some(format!("/admin/users/{user_id}?done=status"))
    );
    app.eventually("/api/v1/auth/me", &user_token, 401, Duration::from_secs(5))
        .await;
    let page = b
        .get(&format!(
            "/admin/audit?type=user.status_changed&user_id={user_id}"
        ))
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("Status changed"), "{}", page.body);
    let page = b.get("/admin/audit?since=yesterday").await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("id=\"since-err\""), "{}", page.body);

    // OIDC clients: the secret is shown once, in the answer that made it.
    let page = b
        .post(
            "/admin/clients",
            &[("name", "Wiki"), ("redirect_uris", "ftp://nope")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("id=\"redirect_uris-err\""),
        "{}",
        page.body
    );
    let page = b
        .post(
            "/admin/clients",
            &[
                ("name", "Wiki"),
                ("redirect_uris", "https://wiki.example/cb"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let client_id = code_after(&page.body, "Client id");
    let secret = code_after(&page.body, "Client secret");
    assert_eq!(secret.len(), 43);
    let page = b.get("/admin/clients").await;
    assert!(page.body.contains(&client_id) && !page.body.contains(&secret));
    let page = b
        .post(&format!("/admin/clients/{client_id}/rotate"), &[])
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let page = b
        .post(
            &format!("/admin/clients/{client_id}/rotate"),
            &[("confirm", "yes")],
        )
        .await;
    let rotated = code_after(&page.body, "Client secret");
    assert_ne!(rotated, secret);
    let page = b
        .post(
            &format!("/admin/clients/{client_id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(
        page.location.as_deref(),
        Some("/admin/clients?done=deleted")
    );
    let page = b.get("/admin/clients").await;
    assert!(!page.body.contains(&client_id));

    // Delete the user (confirmed): the list no longer shows them.
    let page = b
        .post(
            &format!("/admin/users/{user_id}/delete"),
            &[("confirm", "yes")],
        )
        .await;
    assert_eq!(page.location.as_deref(), Some("/admin/users?done=deleted"));
    let page = b.get("/admin/users?search=grac").await;
    assert!(!page.body.contains(&user_id));
}

/// `/account/tokens`: a token made on the page (shown once), usable on the API with its scope
/// only, listed, and revoked with a confirmation.
async fn personal_access_tokens_from_the_account_console(app: TestApp) {
    let mut b = Browser::new(&app);
    let (id, api, _) = app.user("tess").await;
    let page = b.sign_in("tess", "Secret123", "/account/tokens").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("<h1>Access tokens</h1>"),
        "{}",
        page.body
    );
    assert!(page.body.contains("You have no token."));
    assert!(
        !page.body.contains("value=\"admin\""),
        "admin is for admins' tokens"
    );

    // a missing name: the form again, the problem next to the field, the choices kept
    let page = b
        .post(
            "/account/tokens",
            &[
                ("name", ""),
                ("scopes", "users:write"),
                ("expires_in", "7776000"),
            ],
        )
        .await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert!(page.body.contains("id=\"name-err\""), "{}", page.body);
    assert!(
        page.body.contains("value=\"users:write\" checked"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"7776000\" selected"),
        "{}",
        page.body
    );

    let page = b
        .post(
            "/account/tokens",
            &[
                ("name", "deploy job"),
                ("scopes", "users:read"),
                ("expires_in", "604800"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    assert_eq!(page.headers["cache-control"], "no-store");
    let token = code_after(&page.body, "<dd class=\"secret\"><code>");
    assert!(
        token.starts_with("arc_pat_") && token.len() == 51,
        "{token}"
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{id}"), Some(&token))
            .await
            .status,
        200
    );
    app.call(
        reqwest::Method::PATCH,
        &format!("/api/v1/users/{id}"),
        Some(&token),
        Some(json!({"first_name": "T"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // listed (never the token itself), revoked only when confirmed
    let page = b.get("/account/tokens").await;
    assert!(page.body.contains("deploy job") && !page.body.contains(&token));
    let token_id = app.get("/api/v1/auth/tokens", Some(&api)).await;
    let token_id = token_id.data()[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/account/tokens/{token_id}/revoke");
    let page = b.post(&path, &[]).await;
    assert_eq!(
        page.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        page.body
    );
    assert_eq!(app.get("/api/v1/auth/me", Some(&token)).await.status, 200);
    let page = b.post(&path, &[("confirm", "yes")]).await;
    assert_eq!(
        page.location.as_deref(),
        Some("/account/tokens?done=token-revoked")
    );
    let page = b.get("/account/tokens?done=token-revoked").await;
    assert!(page.body.contains("The token is revoked"), "{}", page.body);
    app.eventually("/api/v1/auth/me", &token, 401, Duration::from_secs(5))
        .await;
}
