//! OpenID Connect signing keys as operators and relying parties meet them: the key file the
//! zero-config monolith makes, the `arcana oidc-keys` commands, a rotation, and the JWK Set the
//! edge publishes in every deployment mode.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use crate::common::*;
use repository::Backend;
use serde_json::{Value, json};

/// `arcana <args>` with `env`; its stdout (the command must succeed).
fn arcana(args: &[&str], env: &[(&str, &str)]) -> String {
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
