//! OpenID Connect signing keys as operators and relying parties meet them: the key file the
//! zero-config monolith makes, the `arcana oidc-keys` commands, a rotation, and the JWK Set the
//! edge publishes in every deployment mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common::*;
use repository::Backend;
use serde_json::{Value, json};

/// `arcana <args>` with `env`; its stdout (the command must succeed).
pub(crate) fn arcana(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = std::process::Command::new(monolith_exe())
        .args(args)
        .envs(env.iter().copied())
        .env_remove("ARCANA_OIDC_SIGNING_KEY")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "arcana {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kids(jwks: &Value) -> Vec<String> {
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

/// Every published key is a public signing key with its kid: nothing private, nothing symmetric.
fn assert_public(jwks: &Value) {
    for k in jwks["keys"].as_array().unwrap() {
        for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
            assert!(k.get(private).is_none(), "{private} published: {k}");
        }
        assert_eq!(k["use"], "sig", "{k}");
        assert!(k["kid"].as_str().is_some_and(|s| !s.is_empty()), "{k}");
    }
}

async fn jwks_when_up(app: &TestApp) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = app
            .client
            .get(app.url("/.well-known/jwks.json"))
            .send()
            .await;
        if let Ok(r) = r {
            return r.json().await.unwrap();
        }
        assert!(Instant::now() < deadline, "the edge did not come back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[tokio::test]
async fn the_zero_config_monolith_makes_a_private_key_file_and_publishes_its_keys() {
    let mut app = TestApp::start(Backend::Sqlite).await.unwrap();
    let file = app.dir().join("oidc-signing-key.pem");
    #[cfg(unix)]
    assert_eq!(mode(&file), 0o600, "the key file is private");
    assert!(
        app.logs()
            .contains("generated an OpenID Connect signing key"),
        "a warning names the generated key"
    );
    let jwks = app.get("/.well-known/jwks.json", None).await.body;
    assert_public(&jwks);
    let algs: Vec<(&str, &str)> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kty"].as_str().unwrap(), k["alg"].as_str().unwrap()))
        .collect();
    assert_eq!(algs, [("RSA", "RS256"), ("OKP", "EdDSA")]);

    // What is published is the file's keys, as `arcana oidc-keys jwks` computes them.
    let printed: Value = serde_json::from_str(&arcana(
        &["oidc-keys", "jwks"],
        &[("ARCANA_OIDC_SIGNING_KEY_FILE", file.to_str().unwrap())],
    ))
    .unwrap();
    assert_eq!(printed, jwks);
    let text = std::fs::read_to_string(&file).unwrap();
    let private_line = text.lines().nth(1).unwrap();
    assert!(
        !app.logs().contains(private_line),
        "no key material in the log"
    );

    // A restart keeps the keys (tokens signed before it still verify).
    app.terminate();
    app.restart_process(0);
    let again = jwks_when_up(&app).await;
    assert_eq!(kids(&again), kids(&jwks));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), text);
}

#[tokio::test]
async fn a_rotated_key_file_signs_with_the_new_key_and_still_publishes_the_previous_one() {
    let dir = tempfile::tempdir().unwrap();
    let old = arcana(&["oidc-keys", "generate"], &[]);
    let new = arcana(&["oidc-keys", "generate"], &[]);
    assert_ne!(old, new);
    let path = dir.path().join("keys.pem");
    std::fs::write(&path, format!("{new}{old}")).unwrap();
    let key_env = |p: &std::path::Path| {
        vec![(
            "ARCANA_OIDC_SIGNING_KEY_FILE".to_owned(),
            p.to_str().unwrap().to_owned(),
        )]
    };
    let app = TestApp::start_with(
        Backend::Sqlite,
        Options {
            extra_env: key_env(&path),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let served = app.get("/.well-known/jwks.json", None).await.body;
    assert_public(&served);
    let old_path = dir.path().join("old.pem");
    std::fs::write(&old_path, &old).unwrap();
    let old_kids = kids(
        &serde_json::from_str(&arcana(
            &["oidc-keys", "jwks"],
            &[("ARCANA_OIDC_SIGNING_KEY_FILE", old_path.to_str().unwrap())],
        ))
        .unwrap(),
    );
    let served_kids = kids(&served);
    assert_eq!(served_kids.len(), 4, "two new keys, two previous ones");
    assert_eq!(
        &served_kids[2..],
        &old_kids[..],
        "the previous keys stay published"
    );
    // the new RSA key is the one that signs: it comes first
    let keys = crypto::OidcKeys::from_pem(&format!("{new}{old}")).unwrap();
    let token = keys
        .sign(crypto::oidc::SigningAlg::Rs256, "JWT", &json!({"sub": "x"}))
        .unwrap();
    let kid = jsonwebtoken_kid(&token);
    assert_eq!(kid, served_kids[0]);
    assert!(
        !app.dir().join("oidc-signing-key.pem").exists(),
        "no key made when one is given"
    );
}

/// The `kid` of a JWT's header.
fn jsonwebtoken_kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// A gateway holds no private key: it publishes the JWK Set it is given, in both split modes.
async fn a_gateway_publishes_the_set_it_is_given(mode: Mode) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.pem");
    std::fs::write(&path, arcana(&["oidc-keys", "generate"], &[])).unwrap();
    let set = arcana(
        &["oidc-keys", "jwks"],
        &[("ARCANA_OIDC_SIGNING_KEY_FILE", path.to_str().unwrap())],
    );
    let app = TestApp::start_mode(
        mode,
        Backend::Sqlite,
        Options {
            extra_env: vec![("ARCANA_OIDC_JWKS".into(), set.clone())],
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let served = app.get("/.well-known/jwks.json", None).await.body;
    assert_eq!(served, serde_json::from_str::<Value>(&set).unwrap());
    assert!(
        std::fs::read_dir(app.dir()).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .contains("oidc")),
        "no process of a split deployment makes a key of its own"
    );
}

#[tokio::test]
async fn a_layered_gateway_publishes_the_set_it_is_given() {
    a_gateway_publishes_the_set_it_is_given(Mode::Layered).await;
}

#[tokio::test]
async fn a_microservices_gateway_publishes_the_set_it_is_given() {
    a_gateway_publishes_the_set_it_is_given(Mode::Microservices).await;
}

#[test]
fn bad_key_settings_stop_the_start_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("keys.pem");
    let (ed, _) = crypto::generate_ed25519_pem().unwrap();
    std::fs::write(&path, secrecy::ExposeSecret::expose_secret(&ed)).unwrap();
    for (var, value, reason) in [
        (
            "ARCANA_OIDC_SIGNING_KEY_FILE",
            path.to_str().unwrap(),
            "RS256 is mandatory",
        ),
        ("ARCANA_OIDC_JWKS", "{\"keys\": [{}]}", "ARCANA_OIDC_JWKS"),
    ] {
        let bin = if var == "ARCANA_OIDC_JWKS" {
            match std::env::var_os("ARCANA_TEST_BIN_DIR") {
                Some(d) => std::path::Path::new(&d).join("arcana-gateway"),
                None => env!("CARGO_BIN_EXE_arcana-gateway").into(),
            }
        } else {
            monolith_exe()
        };
        let out = std::process::Command::new(bin)
            .env(var, value)
            .env("ARCANA_DATA_DIR", dir.path())
            .env("ARCANA_JWT_SECRET", JWT_SECRET)
            .env("ARCANA_SERVICE_URL", "http://127.0.0.1:1")
            .env("ARCANA_INTERNAL_TOKEN", "t".repeat(32))
            .env("ARCANA_HTTP_ADDR", "127.0.0.1:0")
            .env("ARCANA_GRPC_ADDR", "127.0.0.1:0")
            .env("ARCANA_METRICS_ADDR", "127.0.0.1:0")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{var}: started");
        assert!(
            stderr.contains(reason) || stdout.contains(reason),
            "{var}: {stderr}{stdout}"
        );
    }
}

backends!(admins_register_and_manage_clients_over_rest_and_grpc);

/// The client registry as an admin drives it, over REST and the public gRPC API, in every mode:
/// the secret shown once (stored hashed: never answered again), exact redirect URIs checked,
/// every change audited without the secret, non-admins refused.
async fn admins_register_and_manage_clients_over_rest_and_grpc(app: TestApp) {
    use reqwest::Method;
    let admin = app.admin_token().await;
    let (_, user, _) = app.user("relying_user").await;
    let body = json!({
        "name": "Grafana",
        "redirect_uris": ["https://grafana.example.com/login/generic_oauth"],
        "post_logout_redirect_uris": ["https://grafana.example.com/login"],
        "allowed_scopes": ["openid", "email", "profile", "roles"],
    });
    let r = app
        .post("/api/v1/oidc/clients", Some(&admin), body.clone())
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let created = r.data().clone();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43, "256 bits of base64url");
    assert_eq!(created["public"], false);
    assert_eq!(created["require_consent"], true);
    assert_eq!(created["id_token_signed_response_alg"], "RS256");
    assert_eq!(
        created["allowed_scopes"],
        json!(["openid", "profile", "email", "roles"])
    );

    // Read back: never the secret.
    let r = app
        .get(&format!("/api/v1/oidc/clients/{id}"), Some(&admin))
        .await;
    assert_eq!(r.status, 200);
    assert!(r.data().get("client_secret").is_none(), "{:?}", r.body);
    assert!(!r.body.to_string().contains(&secret));
    let list = app.get("/api/v1/oidc/clients", Some(&admin)).await;
    assert_eq!(list.status, 200);
    assert!(
        list.data()["items"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["client_id"] == id.as_str())
    );
    assert!(!list.body.to_string().contains(&secret));

    // Bad input: every field named, nothing stored.
    let r = app
        .post(
            "/api/v1/oidc/clients",
            Some(&admin),
            json!({"name": "", "redirect_uris": ["http://evil.example/cb"], "allowed_scopes": ["email"]}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    let fields: Vec<&String> = r.field_errors().keys().collect();
    assert_eq!(fields, ["allowed_scopes", "name", "redirect_uris[0]"]);
    let r = app
        .post(
            "/api/v1/oidc/clients",
            Some(&admin),
            json!({"name": "x", "redirect_uris": ["https://a.example/cb"], "secret": "mine"}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert!(r.field_errors().contains_key("secret"), "{:?}", r.body);

    // Only admins; others learn nothing.
    app.post("/api/v1/oidc/clients", Some(&user), body.clone())
        .await
        .assert_error(403, "FORBIDDEN");
    app.get(&format!("/api/v1/oidc/clients/{id}"), Some(&user))
        .await
        .assert_error(403, "FORBIDDEN");
    app.get("/api/v1/oidc/clients", None)
        .await
        .assert_error(401, "UNAUTHORIZED");
    for missing in ["not-a-client", "00000000-0000-0000-0000-000000000000"] {
        app.get(&format!("/api/v1/oidc/clients/{missing}"), Some(&admin))
            .await
            .assert_error(404, "NOT_FOUND");
    }

    // Change, rotate, and the public client that has no secret.
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/oidc/clients/{id}"),
            Some(&admin),
            Some(json!({"name": "Grafana (ops)", "require_consent": false})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["name"], "Grafana (ops)");
    assert_eq!(r.data()["require_consent"], false);
    assert_eq!(r.data()["redirect_uris"], body["redirect_uris"]);
    let r = app
        .post(
            &format!("/api/v1/oidc/clients/{id}/secret"),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = r.data()["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(rotated.len(), 43);
    assert_ne!(rotated, secret);
    let r = app
        .post(
            "/api/v1/oidc/clients",
            Some(&admin),
            json!({"name": "SPA", "redirect_uris": ["http://localhost:5173/cb"], "public": true, "id_token_signed_response_alg": "EdDSA"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert!(
        r.data().get("client_secret").is_none(),
        "a public client has no secret"
    );
    let spa = r.data()["client_id"].as_str().unwrap().to_owned();
    app.post(
        &format!("/api/v1/oidc/clients/{spa}/secret"),
        Some(&admin),
        json!({}),
    )
    .await
    .assert_error(409, "CONFLICT");

    // The same registry over the public gRPC API.
    {
        use rpc::v1::oidc_client_service_client::OidcClientServiceClient;
        use rpc::v1::*;
        let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = OidcClientServiceClient::new(channel);
        let bearer = |token: &str| -> tonic::metadata::MetadataValue<tonic::metadata::Ascii> {
            format!("Bearer {token}").parse().unwrap()
        };
        let mut req = tonic::Request::new(GetClientRequest {
            client_id: id.clone(),
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        let got = grpc.get_client(req).await.unwrap().into_inner();
        assert_eq!(got.name, "Grafana (ops)");
        assert!(!got.require_consent);
        let mut req = tonic::Request::new(UpdateClientRequest {
            client_id: spa.clone(),
            allowed_scopes: Some(StringList {
                values: vec!["openid".into()],
            }),
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        let updated = grpc.update_client(req).await.unwrap().into_inner();
        assert_eq!(updated.allowed_scopes, ["openid"]);
        assert_eq!(updated.id_token_signed_response_alg, "EdDSA");
        let mut req = tonic::Request::new(CreateClientRequest {
            name: "cli".into(),
            redirect_uris: vec!["ftp://x.example/cb".into()],
            ..Default::default()
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        let err = grpc.create_client(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::InvalidArgument, "{err:?}");
        let mut req = tonic::Request::new(RotateClientSecretRequest {
            client_id: spa.clone(),
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        let err = grpc.rotate_client_secret(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::FailedPrecondition, "{err:?}");
        let mut req = tonic::Request::new(ListClientsRequest {
            per_page: Some("1".into()),
            cursor: None,
        });
        req.metadata_mut().insert("authorization", bearer(&user));
        let err = grpc.list_clients(req).await.unwrap_err();
        assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
        let mut req = tonic::Request::new(ListClientsRequest {
            per_page: Some("1".into()),
            cursor: None,
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        let page = grpc.list_clients(req).await.unwrap().into_inner();
        assert_eq!(page.items.len(), 1);
        assert!(page.pagination.unwrap().next_cursor.is_some());
        let mut req = tonic::Request::new(DeleteClientRequest {
            client_id: spa.clone(),
        });
        req.metadata_mut().insert("authorization", bearer(&admin));
        grpc.delete_client(req).await.unwrap();
    }
    app.get(&format!("/api/v1/oidc/clients/{spa}"), Some(&admin))
        .await
        .assert_error(404, "NOT_FOUND");
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/oidc/clients/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204);
    app.call(
        Method::DELETE,
        &format!("/api/v1/oidc/clients/{id}"),
        Some(&admin),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // Every change audited with the admin as actor; no secret in the log.
    let log = app
        .get("/api/v1/audit-events?per_page=100", Some(&admin))
        .await;
    let events = log.data()["items"].as_array().unwrap();
    let mut types: Vec<&str> = events
        .iter()
        .filter_map(|e| e["type"].as_str())
        .filter(|t| t.starts_with("oidc.client."))
        .collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "oidc.client.created",
            "oidc.client.created",
            "oidc.client.deleted",
            "oidc.client.deleted",
            "oidc.client.secret_rotated",
            "oidc.client.updated",
            "oidc.client.updated",
        ]
    );
    for e in events
        .iter()
        .filter(|e| e["type"].as_str().unwrap().starts_with("oidc."))
    {
        assert!(e["actor_id"].is_string(), "{e}");
    }
    let text = log.body.to_string();
    assert!(
        !text.contains(&secret) && !text.contains(&rotated),
        "a secret in the audit log"
    );
    assert!(!app.logs().contains(&secret), "a secret in the logs");
}

/// `arcana oidc-client …` against the database, no server running: create prints the secret once,
/// list shows the client without it, rotate-secret prints a new one, delete removes it.
#[tokio::test]
async fn the_oidc_client_commands_manage_clients_in_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let env = [("ARCANA_DATA_DIR", data)];
    let out = arcana(
        &[
            "oidc-client",
            "create",
            "--name",
            "Argo CD",
            "--redirect-uri",
            "https://argocd.example.com/auth/callback",
            "--redirect-uri",
            "http://localhost:8085/auth/callback",
            "--scopes",
            "openid profile email roles",
            "--skip-consent",
        ],
        &env,
    );
    let created: Value = serde_json::from_str(out.trim()).unwrap();
    let id = created["client_id"].as_str().unwrap().to_owned();
    let secret = created["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(secret.len(), 43);
    assert_eq!(created["require_consent"], false);
    assert_eq!(created["redirect_uris"].as_array().unwrap().len(), 2);
    let listed = arcana(&["oidc-client", "list"], &env);
    assert_eq!(listed.lines().count(), 1, "{listed}");
    let row: Value = serde_json::from_str(listed.trim()).unwrap();
    assert_eq!(row["client_id"], id.as_str());
    assert!(!listed.contains(&secret));
    let rotated: Value =
        serde_json::from_str(arcana(&["oidc-client", "rotate-secret", &id], &env).trim()).unwrap();
    assert_ne!(rotated["client_secret"], secret.as_str());
    assert!(arcana(&["oidc-client", "delete", &id], &env).contains(&id));
    assert_eq!(arcana(&["oidc-client", "list"], &env), "");
    // Mistakes are said plainly, with a failing exit status.
    let out = std::process::Command::new(monolith_exe())
        .args([
            "oidc-client",
            "create",
            "--name",
            "x",
            "--redirect-uri",
            "http://example.com/cb",
        ])
        .env("ARCANA_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("redirect_uris[0]") && err.contains("https"),
        "{err}"
    );
    let out = std::process::Command::new(monolith_exe())
        .args(["oidc-client", "delete", &id])
        .env("ARCANA_DATA_DIR", data)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no client"));
}
