//! The public gRPC API (`arcana.v1`, gateway :9090) driven with the generated client against every
//! deployment mode, as real processes. Same rules and error codes as REST.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use crate::common::*;
use repository::Backend;
use rpc::v1::auth_service_client::AuthServiceClient;
use rpc::v1::user_service_client::UserServiceClient;
use rpc::v1::*;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};

struct Grpc {
    auth: AuthServiceClient<Channel>,
    users: UserServiceClient<Channel>,
    channel: Channel,
}

async fn connect(app: &TestApp) -> Grpc {
    let channel = Channel::from_shared(app.grpc.clone())
        .unwrap()
        .connect()
        .await
        .unwrap();
    Grpc {
        auth: AuthServiceClient::new(channel.clone()),
        users: UserServiceClient::new(channel.clone()),
        channel,
    }
}

fn bearer<T>(msg: T, token: &str) -> Request<T> {
    let mut r = Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    r
}

/// The error code, as any gRPC client reads it: `ErrorInfo.reason` of the standard details
/// (and the same in the `x-error-code` trailer kept for one release).
fn error_code(s: &Status) -> &str {
    use tonic_types::StatusExt;
    let reason = s
        .get_error_details()
        .error_info()
        .map(|i| i.reason.clone())
        .unwrap_or_default();
    let legacy = s
        .metadata()
        .get("x-error-code")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    assert_eq!(reason, legacy, "the standard details and the trailer agree");
    legacy
}

/// A user message with its id and instants checked and replaced, for a snapshot.
fn stable_user(mut u: User) -> User {
    assert!(uuid::Uuid::parse_str(&u.id).is_ok(), "{}", u.id);
    u.id = "[uuid]".into();
    for t in [&mut u.created_at, &mut u.updated_at, &mut u.last_login_at]
        .into_iter()
        .flatten()
    {
        assert!(t.seconds > 1_700_000_000, "{t:?}");
        *t = prost_types::Timestamp::default();
    }
    u
}

fn register(username: &str) -> RegisterRequest {
    RegisterRequest {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: "Secret123".into(),
        first_name: None,
        last_name: None,
    }
}

async fn auth_flow_over_grpc(app: TestApp) {
    let mut g = connect(&app).await;
    let r = g
        .auth
        .register(register("gwen"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.token_type, "Bearer");
    let user = r.user.unwrap();
    assert_eq!(
        (user.username.as_str(), user.role.as_str()),
        ("gwen", "user")
    );

    let login = g
        .auth
        .login(LoginRequest {
            username_or_email: "GWEN@example.com".into(),
            password: "Secret123".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let me = g
        .auth
        .me(bearer(MeRequest {}, &login.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.id, user.id);
    insta::assert_debug_snapshot!("grpc_me_answer", stable_user(me.clone()));

    // the same user over REST: identical view
    let rest = app.get("/api/v1/auth/me", Some(&login.access_token)).await;
    assert_eq!(rest.body["data"]["id"], me.id.as_str());

    let rotated = g
        .auth
        .refresh(RefreshRequest {
            refresh_token: login.refresh_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(rotated.refresh_token, login.refresh_token);
    let reuse = g
        .auth
        .refresh(RefreshRequest {
            refresh_token: login.refresh_token,
        })
        .await
        .unwrap_err();
    assert_eq!(
        (reuse.code(), error_code(&reuse)),
        (Code::Unauthenticated, "UNAUTHORIZED")
    );
    let dead = g
        .auth
        .refresh(RefreshRequest {
            refresh_token: rotated.refresh_token,
        })
        .await
        .unwrap_err();
    assert_eq!(dead.code(), Code::Unauthenticated);

    let sessions = g
        .auth
        .list_sessions(bearer(ListSessionsRequest {}, &r.access_token))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(sessions.sessions.iter().filter(|s| s.current).count(), 1);
    g.auth
        .logout(bearer(LogoutRequest {}, &r.access_token))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match g.auth.me(bearer(MeRequest {}, &r.access_token)).await {
            Err(s) if s.code() == Code::Unauthenticated => break,
            _ if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            other => panic!("token still works after logout: {other:?}"),
        }
    }
}

async fn errors_map_to_grpc_codes(app: TestApp) {
    let mut g = connect(&app).await;
    let bad = g
        .auth
        .register(RegisterRequest {
            username: "x".into(),
            email: "nope".into(),
            password: "short".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        (bad.code(), error_code(&bad)),
        (Code::InvalidArgument, "VALIDATION_FAILED")
    );
    let details: serde_json::Value = serde_json::from_str(
        bad.metadata()
            .get("x-error-details")
            .unwrap()
            .to_str()
            .unwrap(),
    )
    .unwrap();
    for f in ["username", "email", "password"] {
        assert!(details["fields"].get(f).is_some(), "{f} in {details}");
    }
    // what a client in any language reads: google.rpc.Status with ErrorInfo and BadRequest
    {
        use tonic_types::StatusExt;
        insta::assert_debug_snapshot!(
            "grpc_validation_error_details",
            (bad.message(), bad.get_error_details())
        );
    }
    let anon = g.auth.me(MeRequest {}).await.unwrap_err();
    assert_eq!(
        (anon.code(), error_code(&anon)),
        (Code::Unauthenticated, "UNAUTHORIZED")
    );
    let garbage = g
        .auth
        .me(bearer(MeRequest {}, "not-a-token"))
        .await
        .unwrap_err();
    assert_eq!(garbage.code(), Code::Unauthenticated);

    g.auth.register(register("hugo")).await.unwrap();
    let dup = g.auth.register(register("HUGO")).await.unwrap_err();
    assert_eq!(
        (dup.code(), error_code(&dup)),
        (Code::AlreadyExists, "CONFLICT")
    );

    let wrong = |_: ()| LoginRequest {
        username_or_email: "hugo".into(),
        password: "WrongPass1".into(),
    };
    for _ in 0..5 {
        let e = g.auth.login(wrong(())).await.unwrap_err();
        assert_eq!(error_code(&e), "INVALID_CREDENTIALS");
    }
    let locked = g.auth.login(wrong(())).await.unwrap_err();
    assert_eq!(
        (locked.code(), error_code(&locked)),
        (Code::FailedPrecondition, "ACCOUNT_LOCKED")
    );
}

async fn user_admin_over_grpc(app: TestApp) {
    let mut g = connect(&app).await;
    let admin = app.admin_token().await;
    let ivy = g.auth.register(register("ivy")).await.unwrap().into_inner();
    let jon = g.auth.register(register("jon")).await.unwrap().into_inner();
    let ivy_id = ivy.user.unwrap().id;
    let jon_id = jon.user.unwrap().id;

    // non-admin: others are invisible, admin ops forbidden
    let e = g
        .users
        .get_user(bearer(
            GetUserRequest { id: jon_id.clone() },
            &ivy.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!((e.code(), error_code(&e)), (Code::NotFound, "NOT_FOUND"));
    let e = g
        .users
        .list_users(bearer(ListUsersRequest::default(), &ivy.access_token))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), error_code(&e)),
        (Code::PermissionDenied, "FORBIDDEN")
    );

    // admin: list with the REST parameters, keyset paging
    let page = g
        .users
        .list_users(bearer(
            ListUsersRequest {
                sort: Some("username".into()),
                order: Some("asc".into()),
                per_page: Some("2".into()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.items.len(), 2);
    assert_eq!(page.pagination.unwrap().total, Some(3));

    // PATCH semantics with a field mask: only the named field changes
    let patched = g
        .users
        .update_user(bearer(
            UpdateUserRequest {
                id: ivy_id.clone(),
                first_name: Some("Ivy".into()),
                update_mask: Some(prost_types::FieldMask {
                    paths: vec!["first_name".into()],
                }),
                ..Default::default()
            },
            &ivy.access_token,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (patched.first_name.as_deref(), patched.email.as_str()),
        (Some("Ivy"), "ivy@example.com")
    );

    let promoted = g
        .users
        .set_role(bearer(
            SetRoleRequest {
                id: jon_id.clone(),
                role: "admin".into(),
            },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(promoted.role, "admin");
    let e = g
        .users
        .set_role(bearer(
            SetRoleRequest {
                id: jon_id.clone(),
                role: "root".into(),
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    g.users
        .delete_user(bearer(DeleteUserRequest { id: jon_id }, &admin))
        .await
        .unwrap();
    let verified = g
        .users
        .verify_user(bearer(VerifyUserRequest { id: ivy_id.clone() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert!(verified.is_verified);
    g.users
        .change_password(bearer(
            ChangePasswordRequest {
                id: ivy_id.clone(),
                current_password: Some("Secret123".into()),
                new_password: "NewSecret9".into(),
            },
            &ivy.access_token,
        ))
        .await
        .unwrap();
    g.auth
        .login(LoginRequest {
            username_or_email: "ivy".into(),
            password: "NewSecret9".into(),
        })
        .await
        .unwrap();

    // The audit log, as over REST: admins only, the same filters, keyset pages.
    let e = g
        .users
        .list_audit_events(bearer(ListAuditEventsRequest::default(), &ivy.access_token))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), error_code(&e)),
        (Code::PermissionDenied, "FORBIDDEN")
    );
    let about_ivy = |cursor: Option<String>| ListAuditEventsRequest {
        user_id: Some(ivy_id.clone()),
        per_page: Some("2".into()),
        cursor,
        ..Default::default()
    };
    let page = g
        .users
        .list_audit_events(bearer(about_ivy(None), &admin))
        .await
        .unwrap()
        .into_inner();
    let types: Vec<&str> = page.items.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(types, ["auth.login", "user.password_changed"]);
    assert!(
        page.items
            .iter()
            .all(|e| e.at.is_some() && e.outcome == "success")
    );
    let pagination = page.pagination.unwrap();
    assert!(pagination.keyset);
    let next = g
        .users
        .list_audit_events(bearer(about_ivy(pagination.next_cursor), &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(next.items[0].r#type, "user.verified");
    let e = g
        .users
        .list_audit_events(bearer(
            ListAuditEventsRequest {
                r#type: Some("Not A Type".into()),
                ..Default::default()
            },
            &admin,
        ))
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), error_code(&e)),
        (Code::InvalidArgument, "VALIDATION_FAILED")
    );
    // An admin sees ivy's sessions and lifts a lockout (users only get PERMISSION_DENIED).
    let sessions = g
        .users
        .list_user_sessions(bearer(
            ListUserSessionsRequest { id: ivy_id.clone() },
            &admin,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!sessions.sessions.is_empty());
    assert!(sessions.sessions.iter().all(|s| !s.current));
    let e = g
        .users
        .unlock_user(bearer(
            UnlockUserRequest { id: ivy_id.clone() },
            &ivy.access_token,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    for _ in 0..5 {
        let _ = g
            .auth
            .login(LoginRequest {
                username_or_email: "ivy".into(),
                password: "WrongPass1".into(),
            })
            .await;
    }
    let locked = LoginRequest {
        username_or_email: "ivy".into(),
        password: "NewSecret9".into(),
    };
    let e = g.auth.login(locked.clone()).await.unwrap_err();
    assert_eq!(error_code(&e), "ACCOUNT_LOCKED");
    let unlocked = g
        .users
        .unlock_user(bearer(UnlockUserRequest { id: ivy_id.clone() }, &admin))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unlocked.id, ivy_id);
    g.auth.login(locked).await.unwrap();
}

async fn health_and_reflection(app: TestApp) {
    let g = connect(&app).await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(g.channel.clone());
    // The public port follows readiness (re-checked every 2 s): SERVING soon after start.
    let serving = tonic_health::pb::health_check_response::ServingStatus::Serving;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let req = tonic_health::pb::HealthCheckRequest {
            service: String::new(),
        };
        let r = health.check(req).await.unwrap().into_inner();
        if r.status() == serving {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "public gRPC health is {:?}",
            r.status()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let mut refl = ServerReflectionClient::new(g.channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = refl
        .server_reflection_info(tokio_stream::iter(vec![req]))
        .await
        .unwrap()
        .into_inner();
    let msg = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = msg.message_response else {
        panic!("no service list")
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for want in [
        "arcana.v1.AuthService",
        "arcana.v1.UserService",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from reflection: {names:?}"
        );
    }
    // Security round 2, item 13: the public port describes only the public contract. The old
    // code registered every descriptor, so the internal repository contract (and its password
    // hash fields) was one FileContainingSymbol away.
    let ask = |r: MessageRequest| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(r),
    };
    // One stream per question: the server ends a stream with NOT_FOUND for an unknown symbol.
    let answer = |r: MessageRequest| {
        let mut refl = refl.clone();
        async move {
            let stream = refl
                .server_reflection_info(tokio_stream::iter(vec![ask(r)]))
                .await;
            match stream {
                Err(s) => Err(s.code()),
                Ok(s) => match s.into_inner().message().await {
                    Err(s) => Err(s.code()),
                    Ok(m) => Ok(m.and_then(|m| m.message_response)),
                },
            }
        }
    };
    for internal in [
        MessageRequest::FileContainingSymbol("arcana.internal.v1.RepositoryService".into()),
        MessageRequest::FileContainingSymbol("arcana.internal.v1.Credentials".into()),
        MessageRequest::FileByFilename("arcana/internal/v1/repository.proto".into()),
    ] {
        let what = format!("{internal:?}");
        match answer(internal).await {
            Err(Code::NotFound) | Ok(Some(MessageResponse::ErrorResponse(_))) => {}
            Err(code) => panic!("{what}: unexpected {code:?}"),
            Ok(_) => panic!("the public port describes the internal contract: {what}"),
        }
    }
    let public = answer(MessageRequest::FileContainingSymbol(
        "arcana.v1.UserService".into(),
    ))
    .await;
    assert!(
        matches!(public, Ok(Some(MessageResponse::FileDescriptorResponse(_)))),
        "the public contract is described"
    );
}

/// Every patchable profile field (the one list in `domain`), set and cleared through REST and
/// gRPC and read back through the other: a field dropped by any layer fails here.
async fn every_profile_field_survives_rest_and_grpc(app: TestApp) {
    let mut g = connect(&app).await;
    let (id, token, _) = app.user("fields").await;
    let uid: uuid::Uuid = id.parse().unwrap();
    let grpc_read =
        |user: User| serde_json::to_value(domain::User::try_from(user).unwrap()).unwrap();
    for (field, sample) in domain::PROFILE_SAMPLES {
        // REST PATCH sets it; gRPC reads it back.
        let r = app
            .call(
                reqwest::Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(&token),
                Some(serde_json::json!({ *field: sample })),
            )
            .await;
        assert_eq!(r.status, 200, "{field}: {:?}", r.body);
        let user = g
            .users
            .get_user(bearer(GetUserRequest { id: id.clone() }, &token))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(grpc_read(user)[*field], *sample, "{field} over gRPC");
        // gRPC clears it (named in the mask, no value); REST reads it back.
        let patch =
            domain::UserPatch::default().masked(|f| f == *field, domain::ProfileValues::default());
        let request = rpc::convert::v1::update_user_request(uid, patch);
        let cleared = g
            .users
            .update_user(bearer(request, &token))
            .await
            .unwrap()
            .into_inner();
        assert!(
            grpc_read(cleared)[*field].is_null(),
            "{field} cleared over gRPC"
        );
        let r = app.get(&format!("/api/v1/users/{id}"), Some(&token)).await;
        assert!(
            r.data()[*field].is_null(),
            "{field} cleared, read over REST: {:?}",
            r.body
        );
    }
}

backends!(
    every_profile_field_survives_rest_and_grpc,
    auth_flow_over_grpc,
    errors_map_to_grpc_codes,
    user_admin_over_grpc,
    health_and_reflection
);
