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
