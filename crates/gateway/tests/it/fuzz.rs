//! Property tests of every decoder of untrusted input at the edge: bearer tokens, the
//! X-Forwarded-For header, JSON bodies through the real REST router, and protobuf requests
//! through the public gRPC service. Whatever arrives: no panic, and always the error envelope
//! (REST) or a gRPC status.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::IpAddr;
use std::sync::OnceLock;

use axum::body::{Body, Bytes};
use axum::http::{HeaderValue, Method, Request};
use domain::Error;
use gateway::GatewayConfig;
use http_body_util::BodyExt;
use proptest::prelude::*;
use service::ServiceConfig;
use testkit::app::TestApp;
use tower::ServiceExt;

struct Fixture {
    rt: tokio::runtime::Runtime,
    app: TestApp,
    admin_token: String,
    target: uuid::Uuid,
    /// A confidential OpenID Connect client: (client_id, secret).
    oidc_client: (String, String),
}

/// One edge over the in-process layers and a real SQLite database for all cases of a test binary.
fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let pem = crypto::oidc::generate_pem().unwrap();
        let keys = crypto::OidcKeys::from_pem(secrecy::ExposeSecret::expose_secret(&pem)).unwrap();
        let app = TestApp::with(
            ServiceConfig {
                password_iterations: 1000,
                hash_workers: 2,
                oidc_keys: service::OidcSigning(Some(std::sync::Arc::new(keys))),
                ..ServiceConfig::default()
            },
            GatewayConfig::default(),
        );
        let (admin_token, target, oidc_client) = rt.block_on(async {
            app.services
                .users
                .create_admin("fuzzadmin", "fuzzadmin@example.com", "Secret123")
                .await
                .unwrap();
            let admin = app
                .call(
                    Method::POST,
                    "/api/v1/auth/login",
                    None,
                    Some(serde_json::json!({"username_or_email": "fuzzadmin", "password": "Secret123"})),
                )
                .await;
            let target = app
                .call(
                    Method::POST,
                    "/api/v1/auth/register",
                    None,
                    Some(serde_json::json!({"username": "target", "email": "target@example.com", "password": "Secret123"})),
                )
                .await;
            let admin_token = admin.data()["access_token"].as_str().unwrap().to_owned();
            let client = app
                .call(
                    Method::POST,
                    "/api/v1/oidc/clients",
                    Some(&admin_token),
                    Some(serde_json::json!({"name": "fuzz", "redirect_uris": ["https://rp.example/cb"]})),
                )
                .await;
            (
                admin_token,
                target.data()["user"]["id"].as_str().unwrap().parse().unwrap(),
                (
                    client.data()["client_id"].as_str().unwrap().to_owned(),
                    client.data()["client_secret"].as_str().unwrap().to_owned(),
                ),
            )
        });
        Fixture {
            rt,
            app,
            admin_token,
            target,
            oidc_client,
        }
    })
}

fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        ".{0,40}".prop_map(serde_json::Value::from),
        "[a-z0-9_.@-]{0,20}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(2, 12, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::btree_map(".{0,8}", inner, 0..4)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
        ]
    })
}

const FIELDS: &[&str] = &[
    "username",
    "email",
    "password",
    "username_or_email",
    "refresh_token",
    "first_name",
    "last_name",
    "phone",
    "avatar_url",
    "role",
    "status",
    "is_verified",
    "current_password",
    "new_password",
];

/// Mostly objects with the API's field names (so validation runs), sometimes anything at all.
fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        4 => prop::collection::btree_map(prop::sample::select(FIELDS), json_value(), 0..6)
            .prop_map(|m| serde_json::to_vec(&m).unwrap()),
        1 => json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => prop::collection::vec(any::<u8>(), 0..200),
    ]
}

const OIDC_FIELDS: &[&str] = &[
    "client_id",
    "redirect_uri",
    "response_type",
    "scope",
    "state",
    "nonce",
    "prompt",
    "max_age",
    "login_hint",
    "code_challenge",
    "code_challenge_method",
    "grant_type",
    "code",
    "code_verifier",
    "refresh_token",
    "token",
    "token_type_hint",
    "id_token_hint",
    "post_logout_redirect_uri",
    "client_secret",
    "username",
    "password",
    "decision",
];

/// Values that reach the rules: the fixture's client and redirect URI, the values the protocol
/// knows, and anything at all.
fn oidc_value() -> impl Strategy<Value = String> {
    let f = fixture();
    prop_oneof![
        2 => Just(f.oidc_client.0.clone()),
        2 => Just("https://rp.example/cb".to_owned()),
        2 => prop::sample::select(vec![
            "code", "token", "openid", "openid profile email offline_access roles", "none",
            "login", "consent", "authorization_code", "refresh_token", "S256", "plain", "allow",
            "deny", "1", "-1", "99999999999999999999", "fuzzadmin", "Secret123",
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
        ])
        .prop_map(str::to_owned),
        3 => ".{0,60}",
    ]
}

fn oidc_params() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(OIDC_FIELDS), oidc_value()), 0..8).prop_map(|p| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in p {
            s.append_pair(k, &v);
        }
        s.finish()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// The provider's endpoints and pages, with any mix of their parameters (repeated ones
    /// included), in the query or the form, with or without client credentials or a bearer:
    /// never a 5xx, never a panic, never a redirect to an unregistered address.
    #[test]
    fn any_openid_connect_request_is_answered_without_a_server_error(
        route in 0usize..10,
        params in oidc_params(),
        in_form in any::<bool>(),
        basic in any::<bool>(),
        bearer in ".{0,40}",
    ) {
        use base64::Engine;
        let f = fixture();
        let (method, path) = [
            (Method::GET, "/oauth2/authorize"),
            (Method::POST, "/oauth2/authorize"),
            (Method::POST, "/oauth2/token"),
            (Method::POST, "/oauth2/revoke"),
            (Method::POST, "/oauth2/introspect"),
            (Method::GET, "/oauth2/logout"),
            (Method::POST, "/login"),
            (Method::POST, "/consent"),
            (Method::GET, "/oauth2/userinfo"),
            (Method::GET, "/.well-known/openid-configuration"),
        ][route]
            .clone();
        let (uri, body) = if in_form && method == Method::POST {
            (path.to_owned(), params.clone())
        } else {
            (format!("{path}?{params}"), String::new())
        };
        let mut req = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header("content-type", "application/x-www-form-urlencoded");
        if basic {
            let (id, secret) = &f.oidc_client;
            let v = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            req = req.header("authorization", format!("Basic {v}"));
        } else if let Ok(v) = HeaderValue::from_str(&format!("Bearer {bearer}")) {
            req = req.header("authorization", v);
        }
        let req = req.body(Body::from(body)).unwrap();
        let app = gateway::router(f.app.state.clone());
        let (status, location, answer) = f.rt.block_on(async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let location = resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned());
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, location, body)
        });
        prop_assert!(
            !status.is_server_error(),
            "{method} {uri} {params:?} -> {status}: {}",
            String::from_utf8_lossy(&answer)
        );
        if let Some(to) = location {
            prop_assert!(to.starts_with("https://rp.example/cb"), "redirected to {to}");
        }
    }

    #[test]
    fn any_authorization_header_is_refused_cleanly(value in ".{0,300}") {
        let f = fixture();
        match gateway::authn::bearer(Some(&value)) {
            Ok(token) => {
                let r = f.rt.block_on(f.app.state.authn.authenticate(token));
                prop_assert!(
                    matches!(r, Err(Error::Unauthorized | Error::TokenExpired)),
                    "{r:?}"
                );
            }
            Err(e) => prop_assert!(matches!(e, Error::Unauthorized)),
        }
    }

    #[test]
    fn any_forwarded_for_header_yields_the_peer_or_one_of_its_hops(
        headers in prop::collection::vec("[0-9a-f:.,\\[\\] unknow]{0,60}", 0..4),
        peer_trusted in any::<bool>(),
    ) {
        let trusted: Vec<ipnet::IpNet> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = if peer_trusted { "10.0.0.1" } else { "198.51.100.1" }.parse().unwrap();
        let values: Vec<HeaderValue> = headers
            .iter()
            .filter_map(|h| HeaderValue::from_str(h).ok())
            .collect();
        let got = gateway::client_ip(&trusted, peer, values.iter());
        let hops: Vec<IpAddr> = values
            .iter()
            .flat_map(|v| v.to_str().unwrap().split(',').map(str::to_owned).collect::<Vec<_>>())
            .filter_map(|h| gateway::parse_forwarded_hop(&h))
            .collect();
        prop_assert!(got == peer || hops.contains(&got), "{got} from {headers:?}");
        if !peer_trusted {
            prop_assert_eq!(got, peer);
        }
    }

    #[test]
    fn any_json_body_gets_an_answer_in_the_envelope(
        route in 0usize..9,
        bytes in body(),
        with_token in any::<bool>(),
        json_type in any::<bool>(),
    ) {
        let f = fixture();
        let t = f.target;
        let (method, path) = [
            (Method::POST, "/api/v1/auth/register".to_owned()),
            (Method::POST, "/api/v1/auth/login".to_owned()),
            (Method::POST, "/api/v1/auth/refresh".to_owned()),
            (Method::POST, "/api/v1/users".to_owned()),
            (Method::PUT, format!("/api/v1/users/{t}")),
            (Method::PATCH, format!("/api/v1/users/{t}")),
            (Method::PUT, format!("/api/v1/users/{t}/password")),
            (Method::PUT, format!("/api/v1/users/{t}/status")),
            (Method::PUT, format!("/api/v1/users/{t}/role")),
        ][route]
            .clone();
        let mut req = Request::builder().method(method.clone()).uri(&path);
        if json_type {
            req = req.header("content-type", "application/json");
        }
        if with_token {
            req = req.header("authorization", format!("Bearer {}", f.admin_token));
        }
        let req = req.body(Body::from(bytes.clone())).unwrap();
        let app = gateway::router(f.app.state.clone());
        let (status, body) = f.rt.block_on(async move {
            let resp = app.oneshot(req).await.unwrap();
            let status = resp.status();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            (status, body)
        });
        prop_assert!(
            !status.is_server_error(),
            "{method} {path} {:?} -> {status}: {}",
            String::from_utf8_lossy(&bytes),
            String::from_utf8_lossy(&body)
        );
        if !body.is_empty() {
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            prop_assert!(v["success"].is_boolean(), "{v}");
            if status.is_client_error() {
                prop_assert!(v["error"]["code"].is_string(), "{v}");
                prop_assert!(v["request_id"].is_string(), "{v}");
            }
        }
    }

    #[test]
    fn any_protobuf_request_gets_a_grpc_status(
        rpc in 0usize..19,
        message in prop_oneof![
            // Every field a length-delimited value (the requests are mostly strings): decodes,
            // and drives the conversions with arbitrary text.
            prop::collection::vec((1u32..12, ".{0,40}"), 0..8).prop_map(|fields| encode(&fields)),
            prop::collection::vec(any::<u8>(), 0..120),
        ],
        with_token in any::<bool>(),
    ) {
        let f = fixture();
        let path = [
            "arcana.v1.AuthService/Register",
            "arcana.v1.AuthService/Login",
            "arcana.v1.AuthService/Refresh",
            "arcana.v1.AuthService/Logout",
            "arcana.v1.AuthService/LogoutAll",
            "arcana.v1.AuthService/Me",
            "arcana.v1.AuthService/ListSessions",
            "arcana.v1.AuthService/RevokeSession",
            "arcana.v1.UserService/ListUsers",
            "arcana.v1.UserService/CreateUser",
            "arcana.v1.UserService/GetUser",
            "arcana.v1.UserService/UpdateUser",
            "arcana.v1.UserService/DeleteUser",
            "arcana.v1.UserService/ChangePassword",
            "arcana.v1.UserService/VerifyUser",
            "arcana.v1.UserService/SetStatus",
            "arcana.v1.UserService/SetRole",
            "arcana.v1.UserService/UnlockUser",
            "arcana.v1.UserService/ListUserSessions",
        ][rpc];
        // Never log the admin out or delete it: those would end the fixture's session.
        prop_assume!(!(with_token && matches!(rpc, 3 | 4)));
        let mut framed = vec![0u8];
        framed.extend(u32::try_from(message.len()).unwrap().to_be_bytes());
        framed.extend(&message);
        let mut req = axum::http::Request::builder()
            .method("POST")
            .uri(format!("http://localhost/{path}"))
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if with_token {
            req = req.header("authorization", format!("Bearer {}", f.admin_token));
        }
        let req = req
            .body(tonic::body::Body::new(http_body_util::Full::new(Bytes::from(framed))))
            .unwrap();
        let router = gateway::grpc::router(f.app.state.clone());
        let code = f.rt.block_on(async move {
            let resp = router.oneshot(req).await.unwrap();
            if let Some(code) = resp.headers().get("grpc-status") {
                return Some(code.to_str().unwrap().to_owned());
            }
            let collected = resp.into_body().collect().await.ok()?;
            collected
                .trailers()
                .and_then(|t| t.get("grpc-status"))
                .map(|c| c.to_str().unwrap().to_owned())
        });
        let code = code.unwrap_or_else(|| panic!("{path}: no grpc-status"));
        // 2 = UNKNOWN: what a panic or an unmapped failure would look like.
        prop_assert_ne!(code.as_str(), "2", "{}", path);
    }
}

/// Protobuf wire format: each field as (tag, wire type 2 = length-delimited) + length + bytes.
fn encode(fields: &[(u32, String)]) -> Vec<u8> {
    fn varint(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push((v as u8 & 0x7f) | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }
    let mut out = Vec::new();
    for (field, value) in fields {
        varint(u64::from(*field) << 3 | 2, &mut out);
        varint(value.len() as u64, &mut out);
        out.extend(value.as_bytes());
    }
    out
}
