//! Fine-grained REST contract tests through the real router and in-process layers (no process,
//! no socket): the envelope and codes of the API contract at the edge.
#![allow(clippy::unwrap_used, clippy::panic)]

use axum::http::Method;
use serde_json::json;
use testkit::app::TestApp;

#[tokio::test]
async fn every_error_is_the_envelope() {
    let app = TestApp::new();
    app.call(Method::GET, "/nowhere", None, None)
        .await
        .assert_error(404, "NOT_FOUND");
    app.call(Method::DELETE, "/api/v1/auth/login", None, None)
        .await
        .assert_error(405, "METHOD_NOT_ALLOWED");
    let r = app.call(Method::GET, "/api/v1/auth/me", None, None).await;
    r.assert_error(401, "UNAUTHORIZED");
    assert_eq!(r.headers["www-authenticate"], "Bearer");
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "ann", "email": "ann@example.com", "password": "Secret123", "admin": true})),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    assert_eq!(
        r.field_errors()["admin"],
        json!(["is not an allowed field"])
    );
}

#[tokio::test]
async fn patch_null_clears_and_absent_keeps() {
    let app = TestApp::new();
    let r = app
        .call(
            Method::POST,
            "/api/v1/auth/register",
            None,
            Some(json!({"username": "bea", "email": "bea@example.com", "password": "Secret123", "first_name": "Bea", "last_name": "Bee"})),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = r.data()["access_token"].as_str().unwrap().to_owned();
    let id = r.data()["user"]["id"].as_str().unwrap().to_owned();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{id}"),
            Some(&token),
            Some(json!({"first_name": null})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.data()["first_name"], json!(null));
    assert_eq!(r.data()["last_name"], "Bee");
}

/// A client that accepts gzip gets large answers compressed (a page of 100 users) and small
/// ones as they are (one user: compressing it costs more than it saves).
#[tokio::test]
async fn large_answers_are_compressed_small_ones_are_not() {
    use axum::body::Body;
    use axum::http::Request;
    use std::io::Read;

    let app = TestApp::new();
    app.services
        .users
        .create_admin("root", "root@example.com", "Secret123")
        .await
        .unwrap();
    let login = app
        .call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username_or_email": "root", "password": "Secret123"})),
        )
        .await;
    let token = login.data()["access_token"].as_str().unwrap().to_owned();
    let admin_id = login.data()["user"]["id"].as_str().unwrap().to_owned();
    for i in 0..100 {
        let body = json!({"username": format!("user{i:03}"), "email": format!("user{i:03}@example.com"), "password": "Secret123"});
        let r = app
            .call(Method::POST, "/api/v1/auth/register", None, Some(body))
            .await;
        assert_eq!(r.status, 201, "{:?}", r.body);
    }
    let get = |path: &str, encoding: Option<&str>| {
        let mut req = Request::get(path).header("authorization", format!("Bearer {token}"));
        if let Some(e) = encoding {
            req = req.header("accept-encoding", e);
        }
        app.send(req.body(Body::empty()).unwrap())
    };
    let json_of = |bytes: &[u8]| serde_json::from_slice::<serde_json::Value>(bytes).unwrap();

    let (status, headers, gz) = get("/api/v1/users?per_page=100", Some("gzip, br")).await;
    assert_eq!(status, 200);
    assert_eq!(headers["content-encoding"], "gzip");
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(
        json_of(&plain)["data"]["items"].as_array().unwrap().len(),
        100
    );
    assert!(
        gz.len() * 3 < plain.len(),
        "{} -> {}",
        plain.len(),
        gz.len()
    );

    let (status, headers, raw) = get("/api/v1/users?per_page=100", None).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-encoding").is_none());
    assert_eq!(
        json_of(&raw)["data"]["items"].as_array().unwrap().len(),
        100
    );

    let (status, headers, raw) = get(&format!("/api/v1/users/{admin_id}"), Some("gzip, br")).await;
    assert_eq!(status, 200);
    assert!(headers.get("content-encoding").is_none(), "{headers:?}");
    assert!((raw.len() as u64) < gateway::COMPRESS_ABOVE_BYTES);
    assert_eq!(json_of(&raw)["data"]["username"], "root");
}
