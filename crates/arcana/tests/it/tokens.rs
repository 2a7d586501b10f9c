//! Personal access tokens end to end, in every deployment mode and on every database: made from
//! a session, used as a bearer token on REST and gRPC with the owner's rights narrowed by its
//! scopes (the one table), refused in a URL, limited per token, and dead within 5 s of its
//! revocation or its owner's suspension.
use std::time::Duration;

use crate::common::*;
use repository::Backend;
use reqwest::Method;
use rpc::v1::auth_service_client::AuthServiceClient;
use rpc::v1::user_service_client::UserServiceClient;
use serde_json::json;
use tonic::{Code, Request};

every_mode!(personal_access_tokens);

/// Per-token budget in these tests: the main token stays under it, a second one goes over.
const TOKEN_BUDGET: u32 = 25;

async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    let opts = Options {
        extra_env: vec![("ARCANA_TOKEN_RATE_LIMIT".into(), TOKEN_BUDGET.to_string())],
        ..Options::default()
    };
    TestApp::start_mode(mode, backend, opts).await
}

fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

async fn personal_access_tokens(app: TestApp) {
    let admin = app.admin_token().await;
    let (alice_id, alice, _) = app.user("alice").await;
    let (bob_id, _, _) = app.user("bob").await;

    // made from a session: shown once, listed without the token
    let r = app
        .post(
            "/api/v1/auth/tokens",
            Some(&alice),
            json!({"name": "ci reader", "scopes": ["users:read"], "expires_in": 86400}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let pat = r.data()["token"].as_str().unwrap().to_owned();
    let pat_id = r.data()["id"].as_str().unwrap().to_owned();
    assert!(pat.starts_with("arc_pat_") && pat.len() == 51, "{pat}");
    assert_eq!(r.data()["scopes"], json!(["users:read"]));
    let listed = app.get("/api/v1/auth/tokens", Some(&alice)).await;
    assert_eq!(listed.status, 200);
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    assert_eq!(listed.data()[0]["id"], pat_id.as_str());
    assert!(listed.data()[0].get("token").is_none(), "{:?}", listed.body);
    assert!(!listed.body.to_string().contains(&pat[8..]));

    // bad input: every field named
    let r = app
        .post(
            "/api/v1/auth/tokens",
            Some(&alice),
            json!({"name": "", "scopes": ["users:read", "root", "admin"], "expires_in": 60}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    let mut fields: Vec<&String> = r.field_errors().keys().collect();
    fields.sort();
    assert_eq!(fields, ["expires_in", "name", "scopes[1]", "scopes[2]"]);

    // what users:read allows (REST), and what it does not
    let me = app.get("/api/v1/auth/me", Some(&pat)).await;
    assert_eq!(
        (me.status, me.data()["id"].as_str()),
        (200, Some(alice_id.as_str()))
    );
    assert_eq!(
        app.get(&format!("/api/v1/users/{alice_id}"), Some(&pat))
            .await
            .status,
        200
    );
    // the owner's rights still apply: another user is invisible, the user list is for admins
    app.get(&format!("/api/v1/users/{bob_id}"), Some(&pat))
        .await
        .assert_error(404, "NOT_FOUND");
    app.get("/api/v1/users", Some(&pat))
        .await
        .assert_error(403, "FORBIDDEN");
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&pat),
            Some(json!({"first_name": "Mallory"})),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("users:write"),
        "{:?}",
        r.body
    );
    for (method, path) in [
        (Method::GET, "/api/v1/auth/sessions"),
        (Method::GET, "/api/v1/auth/tokens"),
        (Method::POST, "/api/v1/auth/logout-all"),
        (Method::GET, "/api/v1/audit-events"),
    ] {
        app.call(method.clone(), path, Some(&pat), None)
            .await
            .assert_error(403, "FORBIDDEN");
    }
    let r = app
        .post(
            "/api/v1/auth/tokens",
            Some(&pat),
            json!({"name": "child", "scopes": ["users:read"]}),
        )
        .await;
    r.assert_error(403, "FORBIDDEN");
    assert_eq!(
        app.get(&format!("/api/v1/users/{alice_id}"), Some(&alice))
            .await
            .data()["first_name"],
        serde_json::Value::Null,
        "nothing was changed"
    );

    // never in a URL: refused before anything reads it
    for query in [format!("access_token={pat}"), format!("t={pat}")] {
        app.get(&format!("/api/v1/auth/me?{query}"), None)
            .await
            .assert_error(400, "VALIDATION_FAILED");
    }

    // gRPC: the same table
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut users = UserServiceClient::new(channel.clone());
    let mut auth = AuthServiceClient::new(channel);
    let u = users
        .get_user(bearer(
            rpc::v1::GetUserRequest {
                id: alice_id.clone(),
            },
            &pat,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.id, alice_id);
    let e = users
        .delete_user(bearer(
            rpc::v1::DeleteUserRequest {
                id: alice_id.clone(),
            },
            &pat,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    let e = auth
        .list_access_tokens(bearer(rpc::v1::ListAccessTokensRequest {}, &pat))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // made, listed and revoked over gRPC from a session
    let issued = auth
        .create_access_token(bearer(
            rpc::v1::CreateAccessTokenRequest {
                name: "grpc".into(),
                scopes: vec!["users:read".into(), "users:write".into()],
                expires_in: Some(3600),
            },
            &alice,
        ))
        .await
        .unwrap()
        .into_inner();
    let writer = issued.token.clone();
    let r = app
        .call(
            Method::PATCH,
            &format!("/api/v1/users/{alice_id}"),
            Some(&writer),
            Some(json!({"first_name": "Alice"})),
        )
        .await;
    assert_eq!(r.status, 200, "users:write may: {:?}", r.body);
    let listed = auth
        .list_access_tokens(bearer(rpc::v1::ListAccessTokensRequest {}, &alice))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.tokens.len(), 2);

    // an admin's token with users:read lists users; without admin it cannot manage clients
    let r = app
        .post(
            "/api/v1/auth/tokens",
            Some(&admin),
            json!({"name": "directory sync", "scopes": ["users:read"]}),
        )
        .await;
    let admin_reader = r.data()["token"].as_str().unwrap().to_owned();
    assert_eq!(
        app.get("/api/v1/users", Some(&admin_reader)).await.status,
        200
    );
    app.get("/api/v1/oidc/clients", Some(&admin_reader))
        .await
        .assert_error(403, "FORBIDDEN");
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{bob_id}/status"),
        Some(&admin_reader),
        Some(json!({"status": "suspended"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");

    // a per-token budget: the next call past it is 429 with Retry-After; others are untouched
    let mut limited = None;
    for _ in 0..=TOKEN_BUDGET {
        let r = app.get("/api/v1/users", Some(&admin_reader)).await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    let limited = limited.expect("the budget was never spent");
    limited.assert_error(429, "RATE_LIMITED");
    assert!(limited.headers.contains_key("retry-after"));
    assert_eq!(app.get("/api/v1/auth/me", Some(&pat)).await.status, 200);

    // revoked: refused within 5 s (at once on the edge that revoked it)
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/auth/tokens/{pat_id}"),
            Some(&alice),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let took = app
        .eventually("/api/v1/auth/me", &pat, 401, Duration::from_secs(5))
        .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    app.call(
        Method::DELETE,
        &format!("/api/v1/auth/tokens/{pat_id}"),
        Some(&alice),
        None,
    )
    .await
    .assert_error(404, "NOT_FOUND");

    // the owner suspended: every token refused within 5 s, and for good
    let r = app
        .call(
            Method::PUT,
            &format!("/api/v1/users/{alice_id}/status"),
            Some(&admin),
            Some(json!({"status": "suspended"})),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let took = app
        .eventually("/api/v1/auth/me", &writer, 401, Duration::from_secs(5))
        .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    let e = users
        .get_user(bearer(
            rpc::v1::GetUserRequest {
                id: alice_id.clone(),
            },
            &writer,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "{e:?}");
    app.call(
        Method::PUT,
        &format!("/api/v1/users/{alice_id}/status"),
        Some(&admin),
        Some(json!({"status": "active"})),
    )
    .await;
    app.get("/api/v1/auth/me", Some(&writer))
        .await
        .assert_error(401, "UNAUTHORIZED");
}
