//! Second factors against the real binaries, in every deployment mode and on every database:
//! TOTP enrolment (password, otpauth URI, QR code, confirmation), the login that then needs a
//! second step, replay and skew, recovery codes, mfa_token reuse, the same over gRPC, removal by
//! an admin and `ARCANA_REQUIRE_MFA_FOR_ADMINS`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use reqwest::Method;
use serde_json::{Value, json};

use crate::common::*;
use repository::Backend;

every_mode!(
    totp_enrolment_and_login_with_each_factor,
    the_second_step_over_grpc,
    admin_removes_factors_and_admins_must_enrol,
    wrong_codes_count_in_the_lockout,
);

/// Admins must have a second factor here (one test checks it).
async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    let opts = Options {
        extra_env: vec![("ARCANA_REQUIRE_MFA_FOR_ADMINS".into(), "true".into())],
        ..Options::default()
    };
    TestApp::start_mode(mode, backend, opts).await
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The code an authenticator app shows `offset` seconds from now.
fn code(secret: &[u8], offset: i64) -> String {
    crypto::mfa::totp_code(secret, now().saturating_add_signed(offset)).unwrap()
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// An account with TOTP on: (id, access token, secret, recovery codes).
async fn enrolled(app: &TestApp, username: &str) -> (String, String, Vec<u8>, Vec<String>) {
    let (id, access, _) = app.user(username).await;
    let (secret, codes) = enrol(app, &access, "Secret123").await;
    (id, access, secret, codes)
}

/// Turn TOTP on for the owner of `access`: the secret and the recovery codes.
async fn enrol(app: &TestApp, access: &str, password: &str) -> (Vec<u8>, Vec<String>) {
    let setup = app
        .post(
            "/api/v1/auth/mfa/totp/setup",
            Some(access),
            json!({"current_password": password}),
        )
        .await;
    assert_eq!(setup.status, 200, "{:?}", setup.body);
    let secret = crypto::mfa::secret_from_base32(&text(&setup.data()["secret"])).unwrap();
    let confirm = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(access),
            json!({"code": code(&secret, 0)}),
        )
        .await;
    assert_eq!(confirm.status, 200, "{:?}", confirm.body);
    let codes = confirm.data()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    (secret, codes)
}

/// Log in with the password: the `mfa_token` of the second step.
async fn first_step(app: &TestApp, username: &str) -> String {
    let r = app.login(username, "Secret123").await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["mfa_required"], true, "{:?}", r.body);
    assert!(
        r.data().get("access_token").is_none(),
        "no tokens before the second factor: {:?}",
        r.body
    );
    assert!(r.data().get("refresh_token").is_none());
    text(&r.data()["mfa_token"])
}

async fn verify(app: &TestApp, body: Value) -> Resp {
    app.post("/api/v1/auth/mfa/verify", None, body).await
}

async fn totp_enrolment_and_login_with_each_factor(app: TestApp) {
    let (_, access, _) = app.user("mallory").await;
    let status = app.get("/api/v1/auth/mfa", Some(&access)).await;
    assert_eq!(status.status, 200);
    assert_eq!(
        status.data(),
        &json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    // Enrolment needs the password; a wrong one is refused (and counted).
    app.post(
        "/api/v1/auth/mfa/totp/setup",
        Some(&access),
        json!({"current_password": "Wrong123"}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");
    app.post(
        "/api/v1/auth/mfa/totp/setup",
        None,
        json!({"current_password": "Secret123"}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    app.post(
        "/api/v1/auth/mfa/totp/confirm",
        Some(&access),
        json!({"code": "123456"}),
    )
    .await
    .assert_error(409, "CONFLICT");

    let setup = app
        .post(
            "/api/v1/auth/mfa/totp/setup",
            Some(&access),
            json!({"current_password": "Secret123"}),
        )
        .await;
    assert_eq!(setup.status, 200, "{:?}", setup.body);
    let b32 = text(&setup.data()["secret"]);
    let uri = text(&setup.data()["otpauth_uri"]);
    assert!(
        uri.starts_with("otpauth://totp/arcana:mallory%40example.com?"),
        "{uri}"
    );
    assert!(
        uri.contains(&format!("secret={b32}")) && uri.contains("issuer=arcana"),
        "{uri}"
    );
    assert!(
        text(&setup.data()["qr_svg"]).starts_with("<?xml")
            || text(&setup.data()["qr_svg"]).contains("<svg")
    );
    let secret = crypto::mfa::secret_from_base32(&b32).unwrap();
    // Pending: logins are unchanged until a first code confirms it.
    let r = app.login("mallory", "Secret123").await;
    assert!(r.data()["access_token"].is_string(), "{:?}", r.body);
    app.post(
        "/api/v1/auth/mfa/totp/confirm",
        Some(&access),
        json!({"code": code(&secret, 120)}),
    )
    .await
    .assert_error(401, "INVALID_MFA_CODE");
    let first_code = code(&secret, 0);
    let confirm = app
        .post(
            "/api/v1/auth/mfa/totp/confirm",
            Some(&access),
            json!({"code": first_code}),
        )
        .await;
    assert_eq!(confirm.status, 200, "{:?}", confirm.body);
    let codes: Vec<String> = confirm.data()["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(text)
        .collect();
    assert_eq!(codes.len(), 10);
    assert!(codes.iter().all(|c| c.len() == 19), "{codes:?}");
    let status = app.get("/api/v1/auth/mfa", Some(&access)).await;
    assert_eq!(
        status.data(),
        &json!({"totp": true, "passkeys": 0, "recovery_codes_left": 10})
    );
    app.post(
        "/api/v1/auth/mfa/totp/setup",
        Some(&access),
        json!({"current_password": "Secret123"}),
    )
    .await
    .assert_error(409, "CONFLICT");

    // The second step: a wrong code, the step the confirmation used (a replay), then the next
    // step (one step of skew ahead).
    let token = first_step(&app, "mallory").await;
    assert_eq!(token.len(), 43);
    verify(
        &app,
        json!({"mfa_token": token, "code": code(&secret, 300)}),
    )
    .await
    .assert_error(401, "INVALID_MFA_CODE");
    verify(&app, json!({"mfa_token": token, "code": first_code}))
        .await
        .assert_error(401, "INVALID_MFA_CODE");
    verify(&app, json!({"mfa_token": token}))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    verify(
        &app,
        json!({"mfa_token": "x".repeat(43), "code": code(&secret, 30)}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let ok = verify(&app, json!({"mfa_token": token, "code": code(&secret, 30)})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let session = ok.data()["access_token"].as_str().unwrap().to_owned();
    assert!(ok.data()["refresh_token"].is_string());
    assert_eq!(ok.data()["user"]["username"], "mallory");
    let me = app.get("/api/v1/auth/me", Some(&session)).await;
    assert_eq!(me.status, 200);
    // The token is spent.
    verify(&app, json!({"mfa_token": token, "code": code(&secret, 30)}))
        .await
        .assert_error(401, "UNAUTHORIZED");

    // A recovery code, once (typed in lower case, with spaces).
    let token = first_step(&app, "mallory").await;
    let typed = codes[0].to_lowercase().replace('-', " ");
    let ok = verify(&app, json!({"mfa_token": token, "recovery_code": typed})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    let token = first_step(&app, "mallory").await;
    verify(&app, json!({"mfa_token": token, "recovery_code": codes[0]}))
        .await
        .assert_error(401, "INVALID_MFA_CODE");
    let status = app.get("/api/v1/auth/mfa", Some(&access)).await;
    assert_eq!(status.data()["recovery_codes_left"], 9);

    // Every step is spent once: the steps this account used (now, and one ahead) are gone,
    // so a code shown now serves nothing more for it.
    app.post(
        "/api/v1/auth/mfa/recovery-codes",
        Some(&access),
        json!({"code": code(&secret, 0)}),
    )
    .await
    .assert_error(401, "INVALID_MFA_CODE");

    // New recovery codes (another account, fresh steps): the old set dies.
    let (_, trent, trent_secret, old) = enrolled(&app, "trent").await;
    assert_ne!(trent_secret, secret, "every account has its own secret");
    let fresh = app
        .post(
            "/api/v1/auth/mfa/recovery-codes",
            Some(&trent),
            json!({"code": code(&trent_secret, 30)}),
        )
        .await;
    assert_eq!(fresh.status, 200, "{:?}", fresh.body);
    let token = first_step(&app, "trent").await;
    verify(&app, json!({"mfa_token": token, "recovery_code": old[1]}))
        .await
        .assert_error(401, "INVALID_MFA_CODE");
    let new_code = text(&fresh.data()["recovery_codes"][0]);
    let ok = verify(&app, json!({"mfa_token": token, "recovery_code": new_code})).await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);

    // Turning TOTP off needs the password and a code; then logins need the password only.
    let (_, victor, victor_secret, _) = enrolled(&app, "victor").await;
    let delete = |body: Value| {
        let (app, victor) = (&app, &victor);
        async move {
            app.call(
                Method::DELETE,
                "/api/v1/auth/mfa/totp",
                Some(victor),
                Some(body),
            )
            .await
        }
    };
    delete(json!({"current_password": "Secret123", "code": code(&victor_secret, 120)}))
        .await
        .assert_error(401, "INVALID_MFA_CODE");
    delete(json!({"current_password": "Wrong123", "code": code(&victor_secret, 30)}))
        .await
        .assert_error(401, "INVALID_CREDENTIALS");
    delete(json!({"current_password": "Secret123"}))
        .await
        .assert_error(400, "VALIDATION_FAILED");
    let off =
        delete(json!({"current_password": "Secret123", "code": code(&victor_secret, 30)})).await;
    assert_eq!(off.status, 204, "{:?}", off.body);
    let r = app.login("victor", "Secret123").await;
    assert!(r.data()["access_token"].is_string(), "{:?}", r.body);
    let status = app.get("/api/v1/auth/mfa", Some(&victor)).await;
    assert_eq!(
        status.data(),
        &json!({"totp": false, "passkeys": 0, "recovery_codes_left": 0})
    );
    delete(json!({"current_password": "Secret123", "code": code(&victor_secret, 30)}))
        .await
        .assert_error(404, "NOT_FOUND");
}

async fn the_second_step_over_grpc(app: TestApp) {
    use rpc::v1::auth_service_client::AuthServiceClient;
    let (_, access, secret, codes) = enrolled(&app, "grace").await;
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth = AuthServiceClient::new(channel);
    fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }
    let status = auth
        .get_mfa(bearer(rpc::v1::GetMfaRequest {}, &access))
        .await
        .unwrap()
        .into_inner();
    assert!(status.totp);
    assert_eq!(status.recovery_codes_left, 10);
    let login = auth
        .login(rpc::v1::LoginRequest {
            username_or_email: "grace".into(),
            password: "Secret123".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(login.mfa_required);
    assert!(
        login.access_token.is_empty() && login.refresh_token.is_empty() && login.user.is_none()
    );
    assert_eq!(login.mfa_methods, ["totp", "recovery_code"]);
    let wrong = auth
        .verify_mfa(rpc::v1::VerifyMfaRequest {
            mfa_token: login.mfa_token.clone(),
            code: Some(code(&secret, 300)),
            recovery_code: None,
            passkey_json: None,
        })
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    assert_eq!(
        wrong.metadata().get("x-error-code").unwrap(),
        "INVALID_MFA_CODE"
    );
    let done = auth
        .verify_mfa(rpc::v1::VerifyMfaRequest {
            mfa_token: login.mfa_token.clone(),
            code: None,
            recovery_code: Some(codes[3].clone()),
            passkey_json: None,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!done.mfa_required);
    assert!(!done.access_token.is_empty());
    assert_eq!(done.user.unwrap().username, "grace");
    // The tokens it gave work on REST too.
    assert_eq!(
        app.get("/api/v1/auth/me", Some(&done.access_token))
            .await
            .status,
        200
    );
    // Recovery codes over gRPC: a TOTP code of the next step.
    let fresh = auth
        .regenerate_recovery_codes(bearer(
            rpc::v1::RegenerateRecoveryCodesRequest {
                code: code(&secret, 30),
            },
            &access,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fresh.recovery_codes.len(), 10);
    // Enrolment over gRPC for another account.
    let (_, other, _) = app.user("heidi").await;
    let mut req = tonic::Request::new(rpc::v1::SetupTotpRequest {
        current_password: "Secret123".into(),
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {other}").parse().unwrap());
    let setup = auth.setup_totp(req).await.unwrap().into_inner();
    assert!(setup.otpauth_uri.starts_with("otpauth://totp/"));
    assert!(setup.qr_svg.contains("<svg"));
    let s = crypto::mfa::secret_from_base32(&setup.secret).unwrap();
    let mut req = tonic::Request::new(rpc::v1::ConfirmTotpRequest { code: code(&s, 0) });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {other}").parse().unwrap());
    let confirmed = auth.confirm_totp(req).await.unwrap().into_inner();
    assert_eq!(confirmed.recovery_codes.len(), 10);
}

async fn admin_removes_factors_and_admins_must_enrol(app: TestApp) {
    let admin = app.admin_token().await;
    // With ARCANA_REQUIRE_MFA_FOR_ADMINS, an admin without a second factor is refused until
    // they enrol one; their own account stays reachable.
    app.get("/api/v1/users", Some(&admin))
        .await
        .assert_error(403, "MFA_REQUIRED");
    assert_eq!(app.get("/api/v1/auth/me", Some(&admin)).await.status, 200);
    enrol(&app, &admin, ADMIN_PASSWORD).await;
    assert_eq!(app.get("/api/v1/users", Some(&admin)).await.status, 200);

    let (id, access, _, _) = enrolled(&app, "ivan").await;
    let token = first_step(&app, "ivan").await;
    // Not an admin: 403; an unknown user: 404.
    app.call(
        Method::DELETE,
        &format!("/api/v1/users/{id}/mfa"),
        Some(&access),
        None,
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.call(
        Method::DELETE,
        &format!("/api/v1/users/{}/mfa", uuid::Uuid::new_v4()),
        Some(&admin),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let removed = app
        .call(
            Method::DELETE,
            &format!("/api/v1/users/{id}/mfa"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(removed.status, 204, "{:?}", removed.body);
    // Every session of the account ended; a pending second step died with the factors.
    app.eventually(
        "/api/v1/auth/me",
        &access,
        401,
        std::time::Duration::from_secs(10),
    )
    .await;
    verify(
        &app,
        json!({"mfa_token": token, "recovery_code": "0000-0000-0000-0000"}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    let r = app.login("ivan", "Secret123").await;
    assert!(r.data()["access_token"].is_string(), "{:?}", r.body);
    // Audited.
    let events = app
        .get("/api/v1/audit-events?type=mfa.removed", Some(&admin))
        .await;
    assert_eq!(events.status, 200, "{:?}", events.body);
    let items = events.data()["items"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(items.len(), 1, "{:?}", events.body);
    assert_eq!(items[0]["subject_id"], json!(id));
    assert_eq!(items[0]["details"]["sessions_revoked"], json!(1));
    // Twice: nothing left to remove.
    app.call(
        Method::DELETE,
        &format!("/api/v1/users/{id}/mfa"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");
}

async fn wrong_codes_count_in_the_lockout(app: TestApp) {
    let (_, _, secret, _) = enrolled(&app, "peggy").await;
    // The password is right (its attempt stays counted until the second factor is proved);
    // then four wrong codes: the fifth failure of this network locks it.
    let token = first_step(&app, "peggy").await;
    for bad in [code(&secret, 300), "000000".into(), code(&secret, -300)] {
        verify(&app, json!({"mfa_token": token, "code": bad}))
            .await
            .assert_error(401, "INVALID_MFA_CODE");
    }
    verify(
        &app,
        json!({"mfa_token": token, "recovery_code": "AAAA-BBBB-CCCC-DDDD"}),
    )
    .await
    .assert_error(401, "INVALID_MFA_CODE");
    let locked = verify(&app, json!({"mfa_token": token, "code": code(&secret, 30)})).await;
    locked.assert_error(423, "ACCOUNT_LOCKED");
    assert!(locked.headers.get("retry-after").is_some());
    app.login("peggy", "Secret123")
        .await
        .assert_error(423, "ACCOUNT_LOCKED");
}
