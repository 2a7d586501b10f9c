//! Passkeys against the real binaries, in every deployment mode and on every database, with a
//! software authenticator (webauthn-authenticator-rs): registration, a passkey as the second
//! step of a login, a sign-in with a passkey alone, single-use ceremonies, rename and delete,
//! REST and gRPC.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::{
    CreationChallengeResponse, RequestChallengeResponse, Url,
};
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::common::*;
use repository::Backend;

every_mode!(
    a_passkey_is_a_second_factor_and_signs_in_alone,
    passkeys_over_grpc,
);

/// The relying party is the edge's own address, by name (an IP address cannot be an RP ID).
async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    let opts = Options {
        extra_env: vec![(
            "ARCANA_PUBLIC_URL".into(),
            "http://localhost:{http_port}".into(),
        )],
        ..Options::default()
    };
    TestApp::start_mode(mode, backend, opts).await
}

fn origin(app: &TestApp) -> Url {
    let port = Url::parse(&app.base).unwrap().port().unwrap();
    Url::parse(&format!("http://localhost:{port}")).unwrap()
}

/// The browser's part of a registration: the created credential, as JSON.
fn create(key: &mut SoftPasskey, app: &TestApp, public_key: &Value) -> Value {
    let ccr: CreationChallengeResponse =
        serde_json::from_value(json!({ "publicKey": public_key })).unwrap();
    let credential = key.do_registration(origin(app), ccr).unwrap();
    serde_json::to_value(credential).unwrap()
}

/// The browser's part of an authentication: the assertion, as JSON. `discoverable`: the
/// authenticator picks its credential (`cred_id`) and names its user (`user_id`), as a
/// discoverable credential does (the software authenticator needs the id named and returns no
/// user handle: both are added here, neither is covered by the signature).
fn get(
    key: &mut SoftPasskey,
    app: &TestApp,
    options: &Value,
    discoverable: Option<(&str, &str)>,
) -> Value {
    let mut options = options.clone();
    if let Some((cred_id, _)) = discoverable {
        options["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": cred_id}]);
    }
    let rcr: RequestChallengeResponse = serde_json::from_value(options).unwrap();
    let assertion = key.do_authentication(origin(app), rcr).unwrap();
    let mut assertion = serde_json::to_value(assertion).unwrap();
    if let Some((_, user_id)) = discoverable {
        let id = uuid::Uuid::parse_str(user_id).unwrap();
        assertion["response"]["userHandle"] = json!(URL_SAFE_NO_PAD.encode(id.as_bytes()));
    }
    assertion
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}

/// Register a passkey for the owner of `access`: (passkey id, WebAuthn credential id).
async fn register(
    app: &TestApp,
    key: &mut SoftPasskey,
    access: &str,
    name: &str,
) -> (String, String) {
    let start = app
        .post(
            "/api/v1/auth/mfa/passkeys/register/start",
            Some(access),
            json!({}),
        )
        .await;
    assert_eq!(start.status, 200, "{:?}", start.body);
    let public_key = start.data()["publicKey"].clone();
    assert!(public_key["challenge"].is_string(), "{public_key}");
    assert_eq!(
        public_key["authenticatorSelection"]["residentKey"],
        "preferred"
    );
    let credential = create(key, app, &public_key);
    let finish = app
        .post(
            "/api/v1/auth/mfa/passkeys/register/finish",
            Some(access),
            json!({"name": name, "credential": credential}),
        )
        .await;
    assert_eq!(finish.status, 201, "{:?}", finish.body);
    assert_eq!(finish.data()["name"], name);
    // The ceremony is spent: the same answer again is refused.
    app.post(
        "/api/v1/auth/mfa/passkeys/register/finish",
        Some(access),
        json!({"name": name, "credential": credential}),
    )
    .await
    .assert_error(401, "UNAUTHORIZED");
    (text(&finish.data()["id"]), text(&credential["id"]))
}

async fn a_passkey_is_a_second_factor_and_signs_in_alone(app: TestApp) {
    let (user_id, access, _) = app.user("penny").await;
    let mut key = SoftPasskey::new(true);
    // A malformed credential, a bad name: refused with the field named.
    let bad = app
        .post(
            "/api/v1/auth/mfa/passkeys/register/finish",
            Some(&access),
            json!({"name": "", "credential": {"id": "x"}}),
        )
        .await;
    bad.assert_error(400, "VALIDATION_FAILED");
    assert!(
        bad.field_errors().contains_key("name") && bad.field_errors().contains_key("credential")
    );
    let (passkey_id, cred_id) = register(&app, &mut key, &access, "soft key").await;
    let status = app.get("/api/v1/auth/mfa", Some(&access)).await;
    assert_eq!(status.data()["passkeys"], 1, "{:?}", status.body);
    let list = app.get("/api/v1/auth/mfa/passkeys", Some(&access)).await;
    assert_eq!(list.data().as_array().unwrap().len(), 1, "{:?}", list.body);
    assert_eq!(list.data()[0]["id"], json!(passkey_id));

    // The second step of a login: the passkey options come with the mfa_token.
    let login = app.login("penny", "Secret123").await;
    assert_eq!(login.data()["mfa_required"], true, "{:?}", login.body);
    assert!(
        login.data()["methods"]
            .as_array()
            .unwrap()
            .contains(&json!("passkey"))
    );
    let token = text(&login.data()["mfa_token"]);
    let assertion = get(&mut key, &app, &login.data()["passkey"], None);
    let ok = app
        .post(
            "/api/v1/auth/mfa/verify",
            None,
            json!({"mfa_token": token, "passkey": assertion}),
        )
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.data()["user"]["id"], json!(user_id));
    // The same assertion for another login: its challenge is spent.
    let again = app.login("penny", "Secret123").await;
    app.post(
        "/api/v1/auth/mfa/verify",
        None,
        json!({"mfa_token": text(&again.data()["mfa_token"]), "passkey": assertion}),
    )
    .await
    .assert_error(401, "INVALID_MFA_CODE");

    // A passkey alone.
    let start = app
        .post("/api/v1/auth/passkeys/login/start", None, json!({}))
        .await;
    assert_eq!(start.status, 200, "{:?}", start.body);
    let challenge_id = text(&start.data()["challenge_id"]);
    let options = json!({ "publicKey": start.data()["publicKey"] });
    let assertion = get(&mut key, &app, &options, Some((&cred_id, &user_id)));
    let body = json!({"challenge_id": challenge_id, "credential": assertion});
    let ok = app
        .post("/api/v1/auth/passkeys/login/finish", None, body.clone())
        .await;
    assert_eq!(ok.status, 200, "{:?}", ok.body);
    assert_eq!(ok.data()["user"]["username"], "penny");
    let session = text(&ok.data()["access_token"]);
    assert_eq!(app.get("/api/v1/auth/me", Some(&session)).await.status, 200);
    app.post("/api/v1/auth/passkeys/login/finish", None, body)
        .await
        .assert_error(401, "UNAUTHORIZED");
    // A discoverable assertion naming another account does not sign it in.
    let (other_id, other, _) = app.user("quentin").await;
    let _ = other;
    let start = app
        .post("/api/v1/auth/passkeys/login/start", None, json!({}))
        .await;
    let options = json!({ "publicKey": start.data()["publicKey"] });
    let forged = get(&mut key, &app, &options, Some((&cred_id, &other_id)));
    app.post(
        "/api/v1/auth/passkeys/login/finish",
        None,
        json!({"challenge_id": text(&start.data()["challenge_id"]), "credential": forged}),
    )
    .await
    .assert_error(401, "INVALID_CREDENTIALS");

    // Rename (only the owner), delete: then the password alone signs in again.
    let path = format!("/api/v1/auth/mfa/passkeys/{passkey_id}");
    let (_, stranger, _) = app.user("rupert").await;
    app.call(
        Method::PATCH,
        &path,
        Some(&stranger),
        Some(json!({"name": "mine"})),
    )
    .await
    .assert_error(404, "NOT_FOUND");
    let renamed = app
        .call(
            Method::PATCH,
            &path,
            Some(&access),
            Some(json!({"name": "  yubikey  "})),
        )
        .await;
    assert_eq!(renamed.status, 200, "{:?}", renamed.body);
    assert_eq!(renamed.data()["name"], "yubikey");
    assert!(
        renamed.data()["last_used_at"].is_string(),
        "{:?}",
        renamed.body
    );
    app.call(Method::DELETE, &path, Some(&stranger), None)
        .await
        .assert_error(404, "NOT_FOUND");
    let gone = app.call(Method::DELETE, &path, Some(&access), None).await;
    assert_eq!(gone.status, 204, "{:?}", gone.body);
    let list = app.get("/api/v1/auth/mfa/passkeys", Some(&access)).await;
    assert_eq!(list.data(), &json!([]));
    let r = app.login("penny", "Secret123").await;
    assert!(r.data()["access_token"].is_string(), "{:?}", r.body);
}

async fn passkeys_over_grpc(app: TestApp) {
    use rpc::v1::auth_service_client::AuthServiceClient;
    fn bearer<T>(msg: T, token: &str) -> tonic::Request<T> {
        let mut r = tonic::Request::new(msg);
        r.metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        r
    }
    let (user_id, access, _) = app.user("grete").await;
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut auth = AuthServiceClient::new(channel);
    let mut key = SoftPasskey::new(true);
    let start = auth
        .start_passkey_registration(bearer(rpc::v1::StartPasskeyRegistrationRequest {}, &access))
        .await
        .unwrap()
        .into_inner();
    let options: Value = serde_json::from_str(&start.public_key_json).unwrap();
    let credential = create(&mut key, &app, &options["publicKey"]);
    let added = auth
        .finish_passkey_registration(bearer(
            rpc::v1::FinishPasskeyRegistrationRequest {
                name: "grpc key".into(),
                credential_json: credential.to_string(),
                challenge_id: Some(start.challenge_id),
            },
            &access,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.name, "grpc key");
    let listed = auth
        .list_passkeys(bearer(rpc::v1::ListPasskeysRequest {}, &access))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.passkeys.len(), 1);
    // Login answers the passkey options; VerifyMfa takes the assertion.
    let login = auth
        .login(rpc::v1::LoginRequest {
            username_or_email: "grete".into(),
            password: "Secret123".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(login.mfa_required);
    let options: Value = serde_json::from_str(login.mfa_passkey_json.as_deref().unwrap()).unwrap();
    let assertion = get(&mut key, &app, &options, None);
    let done = auth
        .verify_mfa(rpc::v1::VerifyMfaRequest {
            mfa_token: login.mfa_token,
            code: None,
            recovery_code: None,
            passkey_json: Some(assertion.to_string()),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!done.access_token.is_empty());
    // A passkey alone.
    let start = auth
        .start_passkey_login(rpc::v1::StartPasskeyLoginRequest {})
        .await
        .unwrap()
        .into_inner();
    let options: Value = serde_json::from_str(&start.public_key_json).unwrap();
    let assertion = get(
        &mut key,
        &app,
        &options,
        Some((&text(&credential["id"]), &user_id)),
    );
    let signed = auth
        .finish_passkey_login(rpc::v1::FinishPasskeyLoginRequest {
            challenge_id: start.challenge_id,
            credential_json: assertion.to_string(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(signed.user.unwrap().username, "grete");
    // Rename, delete.
    let renamed = auth
        .rename_passkey(bearer(
            rpc::v1::RenamePasskeyRequest {
                id: added.id.clone(),
                name: "renamed".into(),
            },
            &access,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(renamed.name, "renamed");
    auth.delete_passkey(bearer(
        rpc::v1::DeletePasskeyRequest { id: added.id },
        &access,
    ))
    .await
    .unwrap();
    let status = auth
        .get_mfa(bearer(rpc::v1::GetMfaRequest {}, &access))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status.passkeys, 0);
}
