//! Service accounts end to end, in every deployment mode and on every database: made by an
//! admin, a token by the client-credentials grant at the token endpoint (RFC 6749 §4.4; an RFC
//! 9068 access token), used on REST and gRPC with the account's role narrowed by its scopes,
//! reported by introspection, its secret rotated with an overlap during which both work (and
//! only then), and dead within 5 s of the account's deletion.
use std::time::{Duration, Instant};

use crate::common::*;
use repository::Backend;
use reqwest::Method;
use rpc::v1::oidc_client_service_client::OidcClientServiceClient;
use rpc::v1::user_service_client::UserServiceClient;
use serde_json::{Value, json};
use tonic::{Code, Request};

every_mode!(service_accounts_use_the_client_credentials_grant);

async fn start(mode: Mode, backend: Backend) -> Option<TestApp> {
    crate::oidc_flow::start(mode, backend).await
}

fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// `POST /oauth2/token` with `grant_type=client_credentials`, the client authenticated with
/// HTTP Basic: (status, JSON body).
async fn client_credentials(
    app: &TestApp,
    client_id: &str,
    secret: &str,
    scope: Option<&str>,
) -> (u16, Value) {
    let mut form = vec![("grant_type", "client_credentials")];
    if let Some(s) = scope {
        form.push(("scope", s));
    }
    let r = app
        .client
        .post(app.url("/oauth2/token"))
        .basic_auth(client_id, Some(secret))
        .form(&form)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

async fn service_accounts_use_the_client_credentials_grant(app: TestApp) {
    let admin = app.admin_token().await;
    let (alice_id, alice, _) = app.user("alice").await;
    let discovery = app.get("/.well-known/openid-configuration", None).await;
    assert!(
        discovery.body["grant_types_supported"]
            .as_array()
            .unwrap()
            .contains(&json!("client_credentials")),
        "{:?}",
        discovery.body
    );

    // only admins make them; bad input names every field
    app.post(
        "/api/v1/service-accounts",
        Some(&alice),
        json!({"name": "x", "role": "user", "scopes": ["users:read"]}),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    let r = app
        .post(
            "/api/v1/service-accounts",
            Some(&admin),
            json!({"name": " ", "role": "root", "scopes": []}),
        )
        .await;
    r.assert_error(400, "VALIDATION_FAILED");
    let mut fields: Vec<&String> = r.field_errors().keys().collect();
    fields.sort();
    assert_eq!(fields, ["name", "role", "scopes"]);
    let r = app
        .post(
            "/api/v1/service-accounts",
            Some(&admin),
            json!({"name": "directory sync", "role": "admin", "scopes": ["users:read"]}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let id = r.data()["id"].as_str().unwrap().to_owned();
    let client_id = r.data()["client_id"].as_str().unwrap().to_owned();
    let secret = r.data()["client_secret"].as_str().unwrap().to_owned();
    assert_eq!(client_id, format!("sa_{}", id.replace('-', "")));
    let listed = app.get("/api/v1/service-accounts", Some(&admin)).await;
    assert_eq!(listed.data().as_array().unwrap().len(), 1);
    assert!(!listed.body.to_string().contains(&secret));

    // the grant: a bearer token, no refresh token, no ID token
    let (status, body) = client_credentials(&app, &client_id, &secret, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "users:read");
    assert!(body.get("refresh_token").is_none() && body.get("id_token").is_none());
    let token = body["access_token"].as_str().unwrap().to_owned();
    let (status, body) = client_credentials(&app, &client_id, "wrong", None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let (status, body) = client_credentials(&app, &client_id, &secret, Some("users:write")).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_scope"))
    );

    // it reads users (admin role, users:read) and is refused writes, on REST and gRPC
    let users = app.get("/api/v1/users", Some(&token)).await;
    assert_eq!(users.status, 200, "{:?}", users.body);
    assert_eq!(
        app.get(&format!("/api/v1/users/{alice_id}"), Some(&token))
            .await
            .data()["username"],
        "alice"
    );
    app.call(
        Method::PATCH,
        &format!("/api/v1/users/{alice_id}"),
        Some(&token),
        Some(json!({"first_name": "Mallory"})),
    )
    .await
    .assert_error(403, "FORBIDDEN");
    app.get("/api/v1/service-accounts", Some(&token))
        .await
        .assert_error(403, "FORBIDDEN");
    let channel = tonic::transport::Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc_users = UserServiceClient::new(channel.clone());
    let u = grpc_users
        .get_user(bearer(
            rpc::v1::GetUserRequest {
                id: alice_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(u.username, "alice");
    let e = grpc_users
        .delete_user(bearer(
            rpc::v1::DeleteUserRequest {
                id: alice_id.clone(),
            },
            &token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied, "{e:?}");
    // listed over gRPC too
    let mut grpc_clients = OidcClientServiceClient::new(channel);
    let listed = grpc_clients
        .list_service_accounts(bearer(rpc::v1::ListServiceAccountsRequest {}, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.accounts.len(), 1);
    assert_eq!(listed.accounts[0].client_id, client_id);

    // introspection by a resource server (a confidential client) reports it
    let rs = app
        .post(
            "/api/v1/oidc/clients",
            Some(&admin),
            json!({"name": "resource server", "redirect_uris": ["https://rs.example.com/cb"]}),
        )
        .await;
    let (rs_id, rs_secret) = (
        rs.data()["client_id"].as_str().unwrap().to_owned(),
        rs.data()["client_secret"].as_str().unwrap().to_owned(),
    );
    let introspect = |t: String| {
        let (app, rs_id, rs_secret) = (&app, rs_id.clone(), rs_secret.clone());
        async move {
            app.client
                .post(app.url("/oauth2/introspect"))
                .basic_auth(rs_id, Some(rs_secret))
                .form(&[("token", t)])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let report = introspect(token.clone()).await;
    assert_eq!(report["active"], true, "{report}");
    assert_eq!(report["client_id"], client_id.as_str());
    assert_eq!(report["sub"], id.as_str());
    assert_eq!(report["scope"], "users:read");

    // rotation with a 3 s overlap: both secrets work during it, only the new one after
    let r = app
        .post(
            &format!("/api/v1/service-accounts/{id}/secret"),
            Some(&admin),
            json!({"overlap_seconds": 3}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let rotated = Instant::now();
    let new_secret = r.data()["client_secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(r.data()["previous_secret_expires_at"].is_string());
    assert_eq!(
        client_credentials(&app, &client_id, &new_secret, None)
            .await
            .0,
        200
    );
    let (old_status, _) = client_credentials(&app, &client_id, &secret, None).await;
    assert!(
        rotated.elapsed() < Duration::from_secs(3),
        "too slow to test the overlap"
    );
    assert_eq!(old_status, 200, "the old secret works during the overlap");
    tokio::time::sleep(Duration::from_secs(3).saturating_sub(rotated.elapsed())).await;
    let (status, body) = client_credentials(&app, &client_id, &secret, None).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    assert_eq!(
        client_credentials(&app, &client_id, &new_secret, None)
            .await
            .0,
        200
    );
    // the token issued before the rotation still works (tokens belong to the account)
    assert_eq!(app.get("/api/v1/users", Some(&token)).await.status, 200);

    // deleted: its tokens are refused within 5 s, introspection says inactive
    let r = app
        .call(
            Method::DELETE,
            &format!("/api/v1/service-accounts/{id}"),
            Some(&admin),
            None,
        )
        .await;
    assert_eq!(r.status, 204, "{:?}", r.body);
    let took = app
        .eventually("/api/v1/users", &token, 401, Duration::from_secs(5))
        .await;
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_eq!(introspect(token.clone()).await["active"], false);
    let (status, _) = client_credentials(&app, &client_id, &new_secret, None).await;
    assert_eq!(status, 401);
    // audited, never with a secret
    let audit = app
        .get(&format!("/api/v1/audit-events?user_id={id}"), Some(&admin))
        .await;
    let text = audit.body.to_string();
    for action in [
        "service_account.created",
        "service_account.secret_rotated",
        "oauth2.client_credentials",
        "service_account.deleted",
    ] {
        assert!(text.contains(action), "{action}: {text}");
    }
    assert!(!text.contains(&secret) && !text.contains(&new_secret));
}
