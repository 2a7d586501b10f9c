//! api.md "Auth" rules against the real SQLite repository.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use async_trait::async_trait;
use domain::{
    AuditEvent, AuditRepository, AuthService, Error, RegisterInput, Role, Status, UserRepository,
    UserService, UserUpdate,
};
use service::Repositories;

fn register_input(username: &str, email: &str) -> RegisterInput {
    RegisterInput {
        username: username.into(),
        email: email.into(),
        password: PASSWORD.into(),
        first_name: Some("Ada".into()),
        last_name: Some("Lovelace".into()),
    }
}

async fn stored_hash(app: &TestApp, id: domain::UserId) -> String {
    UserRepository::find_credentials_by_id(app.repo(), id)
        .await
        .unwrap()
        .unwrap()
        .password_hash
}

async fn set_status_raw(app: &TestApp, id: domain::UserId, status: Status) {
    UserRepository::update(
        app.repo(),
        id,
        UserUpdate {
            status: Some(status),
            ..UserUpdate::default()
        },
        chrono::Utc::now(),
    )
    .await
    .unwrap()
    .unwrap();
}

// ---- register ------------------------------------------------------------------------------

#[tokio::test]
async fn register_logs_in_and_returns_the_user() {
    let app = TestApp::new().await;
    let s = app
        .auth
        .register(&ctx(), register_input("ada", "Ada@Example.COM"))
        .await
        .unwrap();
    assert_eq!(s.user.username, "ada");
    assert_eq!(s.user.email, "ada@example.com", "stored lower-case");
    assert_eq!(s.user.first_name.as_deref(), Some("Ada"));
    assert_eq!(s.user.role, Role::User);
    assert_eq!(s.user.status, Status::Active);
    assert!(!s.user.is_verified);
    assert_eq!(s.tokens.token_type, "Bearer");
    assert_eq!(s.tokens.expires_in, 900);
    let p = app.principal(&s);
    assert_eq!(p.user_id, s.user.id);
    assert_eq!(p.role, Role::User);
    assert!(app.session_live(&p).await);
    // The password is stored as a Werkzeug PBKDF2 hash at the configured cost.
    assert!(
        stored_hash(&app, s.user.id)
            .await
            .starts_with("pbkdf2:sha256:1000$")
    );
    assert!(
        app.audit_actions(s.user.id)
            .await
            .contains(&"auth.register:success".to_owned())
    );
}

#[tokio::test]
async fn register_collects_every_field_error() {
    let app = TestApp::new().await;
    let err = app
        .auth
        .register(
            &ctx(),
            RegisterInput {
                username: "a b".into(),
                email: "not-an-email".into(),
                password: "short".into(),
                first_name: Some("x".repeat(51)),
                last_name: Some("y".repeat(51)),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        field_errors(&err),
        ["email", "first_name", "last_name", "password", "username"]
    );
    // The password policy: upper, lower, digit, 8..=128.
    for weak in ["alllower123", "ALLUPPER123", "NoDigitsHere", "Sh0rt"] {
        let mut input = register_input("bob", "bob@example.com");
        input.password = weak.into();
        let err = app.auth.register(&ctx(), input).await.unwrap_err();
        assert_eq!(field_errors(&err), ["password"], "{weak}");
    }
}

#[tokio::test]
async fn duplicate_username_or_email_conflicts_case_insensitively() {
    let app = TestApp::new().await;
    app.register("carol").await;
    for (u, e) in [
        ("CAROL", "other@example.com"),
        ("other", "Carol@Example.com"),
    ] {
        let err = app
            .auth
            .register(&ctx(), register_input(u, e))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{u} {e}: {err:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_registrations_of_one_username_yield_one_winner() {
    let app = Arc::new(TestApp::new().await);
    let tasks: Vec<_> = (0..5)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                app.auth
                    .register(
                        &ctx(),
                        register_input("dave", &format!("dave{i}@example.com")),
                    )
                    .await
            })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Conflict { .. }) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
}

// ---- login ---------------------------------------------------------------------------------

#[tokio::test]
async fn login_by_username_or_email() {
    let app = TestApp::new().await;
    let reg = app.register("erin").await;
    for login in [
        "erin",
        "ERIN",
        "erin@example.com",
        "Erin@Example.com",
        " erin ",
    ] {
        let s = app.login(login, PASSWORD).await.unwrap();
        assert_eq!(s.user.id, reg.user.id, "{login}");
        assert!(s.user.last_login_at.is_some());
    }
    assert!(app.fetch(reg.user.id).await.last_login_at.is_some());
    assert!(
        app.audit_actions(reg.user.id)
            .await
            .contains(&"auth.login:success".to_owned())
    );
}

#[tokio::test]
async fn login_with_empty_fields_is_a_validation_error() {
    let app = TestApp::new().await;
    let err = app.login("  ", "").await.unwrap_err();
    assert_eq!(field_errors(&err), ["password", "username_or_email"]);
}

#[tokio::test]
async fn unknown_user_and_wrong_password_answer_alike() {
    // A realistic cost, so hashing dominates and skipping it would show.
    let app = TestApp::with_config(service::ServiceConfig {
        password_iterations: 100_000,
        ..config()
    })
    .await;
    app.register("frank").await;
    let (mut unknown, mut wrong) = (Duration::MAX, Duration::MAX);
    for _ in 0..3 {
        let t = Instant::now();
        let e1 = app.login("nobody-here", PASSWORD).await.unwrap_err();
        unknown = unknown.min(t.elapsed());
        let t = Instant::now();
        let e2 = app.login("frank", "Wrong-password-1").await.unwrap_err();
        wrong = wrong.min(t.elapsed());
        assert!(matches!(e1, Error::InvalidCredentials), "{e1:?}");
        assert!(matches!(e2, Error::InvalidCredentials), "{e2:?}");
        assert_eq!(e1.public_message(), e2.public_message());
    }
    // Without the dummy verification the unknown-user path would be a single indexed read.
    assert!(
        unknown * 10 >= wrong * 4,
        "unknown user {unknown:?} vs wrong password {wrong:?}"
    );
}

#[tokio::test]
async fn inactive_or_suspended_accounts_answer_forbidden_only_with_the_right_password() {
    let app = TestApp::new().await;
    for (name, status, reason) in [
        ("grace", Status::Suspended, "account suspended"),
        ("heidi", Status::Inactive, "account inactive"),
    ] {
        let s = app.register(name).await;
        set_status_raw(&app, s.user.id, status).await;
        let err = app.login(name, "Wrong-password-1").await.unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
        match app.login(name, PASSWORD).await.unwrap_err() {
            Error::Forbidden(r) => assert_eq!(r, reason),
            other => panic!("expected Forbidden, got {other:?}"),
        }
    }
}

#[tokio::test]
async fn deleted_accounts_cannot_log_in() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let s = app.register("ivan").await;
    app.users.delete_user(&by(&admin), s.user.id).await.unwrap();
    let err = app.login("ivan", PASSWORD).await.unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
}

#[tokio::test]
async fn lockout_after_max_failures_answers_locked() {
    let app = TestApp::new().await;
    let s = app.register("judy").await;
    for i in 1..=5 {
        let err = app.login("judy", "Wrong-password-1").await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidCredentials),
            "attempt {i}: {err:?}"
        );
    }
    // Locked now: even the right password is refused, and no hash work is spent.
    for pw in ["Wrong-password-1", PASSWORD] {
        match app.login("judy", pw).await.unwrap_err() {
            Error::Locked { retry_after } => assert_eq!(retry_after, Duration::from_secs(30)),
            other => panic!("expected Locked, got {other:?}"),
        }
    }
    app.clock.advance_secs(31);
    app.login("judy", PASSWORD).await.unwrap();
    let actions = app.audit_actions(s.user.id).await;
    assert!(
        actions.contains(&"auth.lockout:locked".to_owned()),
        "{actions:?}"
    );
    assert!(actions.contains(&"auth.login:failure".to_owned()));
    let reasons: Vec<String> = app
        .audit(s.user.id)
        .await
        .into_iter()
        .filter_map(|e| e.details)
        .collect();
    assert!(reasons.iter().any(|d| d.contains("\"bad_password\"")));
    assert!(reasons.iter().any(|d| d.contains("\"locked\"")));
}

#[tokio::test]
async fn lockout_is_exponential_and_capped() {
    let app = TestApp::new().await;
    app.register("kim").await;
    for _ in 0..5 {
        app.login("kim", "Wrong-password-1").await.unwrap_err();
    }
    let mut seen = Vec::new();
    for _ in 0..7 {
        let Error::Locked { retry_after } = app.login("kim", "Wrong-password-1").await.unwrap_err()
        else {
            panic!("expected Locked")
        };
        seen.push(retry_after.as_secs());
        // Let the lock run out; the next failure is still consecutive and locks for longer.
        app.clock.advance_secs(retry_after.as_secs() + 1);
        let err = app.login("kim", "Wrong-password-1").await.unwrap_err();
        assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
    }
    assert_eq!(seen, [30, 60, 120, 240, 480, 900, 900]);
}

#[tokio::test]
async fn successful_login_resets_the_failure_count() {
    let app = TestApp::new().await;
    app.register("liam").await;
    for _ in 0..4 {
        app.login("liam", "Wrong-password-1").await.unwrap_err();
    }
    app.login("liam", PASSWORD).await.unwrap();
    for i in 1..=4 {
        let err = app.login("liam", "Wrong-password-1").await.unwrap_err();
        assert!(
            matches!(err, Error::InvalidCredentials),
            "attempt {i}: {err:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_wrong_passwords_cannot_exceed_the_limit() {
    let app = Arc::new(TestApp::new().await);
    app.register("mallory").await;
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("mallory", "Wrong-password-1").await })
        })
        .collect();
    let (mut invalid, mut locked) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Err(Error::InvalidCredentials) => invalid += 1,
            Err(Error::Locked { .. }) => locked += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!((invalid, locked), (5, 15));
}

#[tokio::test]
async fn werkzeug_scrypt_hash_is_accepted_and_rehashed() {
    let app = TestApp::new().await;
    // werkzeug.security.generate_password_hash("Correct-horse-9", method="scrypt:1024:8:1")
    let user = insert_with_hash(&app, "nina", "scrypt:1024:8:1$QOI7N6lFYgupExpV$f273e95fa6a13d5b785c68b791e3c0a12bb8835c0e107ea45a8ec510502b4637bfb5a83d18283c2ba82206b994ec3b6165650d92ed693bd140a74ffe265bef22").await;
    let err = app.login("nina", "Correct-horse-8").await.unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials));
    app.login("nina", "Correct-horse-9").await.unwrap();
    let hash = stored_hash(&app, user.id).await;
    assert!(hash.starts_with("pbkdf2:sha256:1000$"), "{hash}");
    app.login("nina", "Correct-horse-9").await.unwrap();
    assert_eq!(stored_hash(&app, user.id).await, hash, "no second re-hash");
}

#[tokio::test]
async fn werkzeug_pbkdf2_with_other_iterations_is_accepted_and_rehashed() {
    let app = TestApp::new().await;
    // generate_password_hash("Correct-horse-9", method="pbkdf2:sha256:260000")
    let user = insert_with_hash(&app, "oscar", "pbkdf2:sha256:260000$sEV3FTDjOcwngtrX$0729f19cdacb05074f32a76e38f4eb50be8789ca6131305ce8320b6c90da8fd9").await;
    app.login("oscar", "Correct-horse-9").await.unwrap();
    assert!(
        stored_hash(&app, user.id)
            .await
            .starts_with("pbkdf2:sha256:1000$")
    );
}

#[tokio::test]
async fn malformed_stored_hash_answers_invalid_credentials() {
    let app = TestApp::new().await;
    insert_with_hash(&app, "peggy", "md5$abc$def").await;
    let err = app.login("peggy", PASSWORD).await.unwrap_err();
    assert!(matches!(err, Error::InvalidCredentials), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn full_hash_queue_answers_unavailable() {
    let app = Arc::new(
        TestApp::with_config(service::ServiceConfig {
            password_iterations: 200_000,
            hash_workers: 1,
            hash_queue: 1,
            ..config()
        })
        .await,
    );
    app.register("quinn").await;
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                (app.login("nobody", PASSWORD).await, t.elapsed())
            })
        })
        .collect();
    let mut unavailable = 0;
    let mut answered = 0;
    for t in tasks {
        match t.await.unwrap() {
            (Err(Error::Unavailable), _) => unavailable += 1,
            (Err(Error::InvalidCredentials), _) => answered += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(unavailable >= 1, "no request was refused");
    assert!(answered >= 1, "nothing got through");
    assert_eq!(app.hasher.queue_depth(), 0);
    assert_eq!(app.hasher.queue_capacity(), 1);
}

// ---- tokens --------------------------------------------------------------------------------

#[tokio::test]
async fn access_token_carries_the_session_and_role() {
    let app = TestApp::new().await;
    let (s, p) = app.admin("rita").await;
    assert_eq!(p.role, Role::Admin);
    assert_eq!(p.user_id, s.user.id);
    let sessions = app.auth.list_sessions(&by(&p)).await.unwrap();
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0].id, p.session_id);
    // The refresh token is opaque and at least 256 random bits; only its hash is stored.
    assert!(s.tokens.refresh_token.len() >= 43 + 33);
    let stored = domain::SessionRepository::find(app.repo(), p.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.refresh_token_hash,
        crypto::sha256_hex(&s.tokens.refresh_token)
    );
    assert!(!stored.refresh_token_hash.contains(&s.tokens.refresh_token));
    assert_eq!(stored.ip.as_deref(), Some("192.0.2.7"));
    assert_eq!(stored.user_agent.as_deref(), Some("service-tests"));
}

#[tokio::test]
async fn refresh_rotates_the_token_pair() {
    let app = TestApp::new().await;
    let (s1, p1) = app.user("sam").await;
    let s2 = app
        .auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap();
    assert_ne!(s2.tokens.refresh_token, s1.tokens.refresh_token);
    assert_ne!(s2.tokens.access_token, s1.tokens.access_token);
    let p2 = app.principal(&s2);
    assert_eq!(p2.session_id, p1.session_id, "same session (family)");
    assert_eq!(s2.user.id, s1.user.id);
    let s3 = app
        .auth
        .refresh(&ctx(), &s2.tokens.refresh_token)
        .await
        .unwrap();
    assert!(app.session_live(&app.principal(&s3)).await);
    let stored = domain::SessionRepository::find(app.repo(), p1.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.generation, 2);
}

#[tokio::test]
async fn refresh_reuse_revokes_the_family() {
    let app = TestApp::new().await;
    let (s1, p) = app.user("tara").await;
    let s2 = app
        .auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap();
    // The old token again: theft detected, the whole family dies.
    let err = app
        .auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized), "{err:?}");
    let err = app
        .auth
        .refresh(&ctx(), &s2.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized), "{err:?}");
    assert!(!app.session_live(&p).await);
    let stored = domain::SessionRepository::find(app.repo(), p.session_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.revoked_reason.as_deref(), Some("refresh_reuse"));
    assert!(
        app.audit_actions(p.user_id)
            .await
            .contains(&"auth.refresh_reuse:failure".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn parallel_refreshes_of_one_token_yield_one_winner_and_revoke_the_family() {
    let app = Arc::new(TestApp::new().await);
    let (s, p) = app.user("uma").await;
    let token = Arc::new(s.tokens.refresh_token.clone());
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let (app, token) = (app.clone(), token.clone());
            tokio::spawn(async move { app.auth.refresh(&ctx(), &token).await })
        })
        .collect();
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Unauthorized) => {}
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!(ok, 1);
    assert!(!app.session_live(&p).await, "the family ends revoked");
}

#[tokio::test]
async fn refresh_with_a_malformed_or_unknown_token_is_unauthorized() {
    let app = TestApp::new().await;
    let (s, p) = app.user("vera").await;
    let forged = format!("{}.{}", p.session_id.simple(), crypto::new_refresh_token());
    let unknown = format!(
        "{}.{}",
        uuid::Uuid::new_v4().simple(),
        crypto::new_refresh_token()
    );
    for bad in ["", "garbage", &s.tokens.access_token, &unknown] {
        let err = app.auth.refresh(&ctx(), bad).await.unwrap_err();
        assert!(matches!(err, Error::Unauthorized), "{bad}: {err:?}");
    }
    assert!(app.session_live(&p).await, "junk does not revoke anything");
    // A token naming a real session with a secret never issued for it: refused, and nothing
    // changes (only a really issued, already-rotated token proves theft).
    let err = app.auth.refresh(&ctx(), &forged).await.unwrap_err();
    assert!(matches!(err, Error::Unauthorized));
    assert!(app.session_live(&p).await);
}

#[tokio::test]
async fn refresh_after_the_session_expires_is_unauthorized() {
    let app = TestApp::new().await;
    let (s, p) = app.user("wade").await;
    app.clock.advance_secs(30 * 24 * 3600 + 1);
    let err = app
        .auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized));
    assert!(!app.session_live(&p).await);
}

#[tokio::test]
async fn refresh_requires_an_active_user() {
    let app = TestApp::new().await;
    let (s, p) = app.user("xena").await;
    // Changed behind the service's back, so no session was revoked: the user check must catch it.
    set_status_raw(&app, p.user_id, Status::Suspended).await;
    let err = app
        .auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized));
}

// ---- logout and sessions -------------------------------------------------------------------

#[tokio::test]
async fn logout_revokes_only_this_session() {
    let app = TestApp::new().await;
    let (s1, p1) = app.user("yara").await;
    let s2 = app.login("yara", PASSWORD).await.unwrap();
    let p2 = app.principal(&s2);
    app.auth.logout(&by(&p1)).await.unwrap();
    assert!(!app.session_live(&p1).await);
    assert!(app.session_live(&p2).await);
    let err = app
        .auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Unauthorized));
    assert!(
        app.audit_actions(p1.user_id)
            .await
            .contains(&"auth.logout:success".to_owned())
    );
}

#[tokio::test]
async fn logout_all_revokes_every_session_and_counts_them() {
    let app = TestApp::new().await;
    let (_, p1) = app.user("zack").await;
    let p2 = app.principal(&app.login("zack", PASSWORD).await.unwrap());
    let p3 = app.principal(&app.login("zack", PASSWORD).await.unwrap());
    let (_, other) = app.user("zoe").await;
    assert_eq!(app.auth.logout_all(&by(&p2)).await.unwrap(), 3);
    for p in [p1, p2, p3] {
        assert!(!app.session_live(&p).await);
    }
    assert!(app.session_live(&other).await);
    assert!(
        app.audit_actions(p1.user_id)
            .await
            .contains(&"auth.logout_all:success".to_owned())
    );
}

#[tokio::test]
async fn me_returns_the_caller() {
    let app = TestApp::new().await;
    let (s, p) = app.user("abby").await;
    let me = app.auth.me(&by(&p)).await.unwrap();
    assert_eq!(me.id, s.user.id);
    assert_eq!(me.username, "abby");
}

#[tokio::test]
async fn list_sessions_shows_live_ones_and_marks_the_current() {
    let app = TestApp::new().await;
    let (_, p1) = app.user("bart").await;
    let p2 = app.principal(&app.login("bart", PASSWORD).await.unwrap());
    let p3 = app.principal(&app.login("bart", PASSWORD).await.unwrap());
    app.auth.logout(&by(&p3)).await.unwrap();
    let list = app.auth.list_sessions(&by(&p2)).await.unwrap();
    let mut ids: Vec<_> = list.iter().map(|s| s.id).collect();
    ids.sort();
    let mut want = vec![p1.session_id, p2.session_id];
    want.sort();
    assert_eq!(ids, want);
    for s in &list {
        assert_eq!(s.current, s.id == p2.session_id);
        assert_eq!(s.ip.as_deref(), Some("192.0.2.7"));
    }
}

#[tokio::test]
async fn revoke_session_works_only_on_own_sessions() {
    let app = TestApp::new().await;
    let (_, p1) = app.user("cleo").await;
    let p2 = app.principal(&app.login("cleo", PASSWORD).await.unwrap());
    let (_, other) = app.user("dina").await;
    // Someone else's session and a made-up one look the same.
    for id in [other.session_id, uuid::Uuid::new_v4()] {
        let err = app.auth.revoke_session(&by(&p1), id).await.unwrap_err();
        assert!(matches!(err, Error::NotFound), "{err:?}");
    }
    assert!(app.session_live(&other).await);
    app.auth
        .revoke_session(&by(&p1), p2.session_id)
        .await
        .unwrap();
    assert!(!app.session_live(&p2).await);
    assert!(app.session_live(&p1).await);
    // Already revoked: gone.
    let err = app
        .auth
        .revoke_session(&by(&p1), p2.session_id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    assert!(
        app.audit_actions(p1.user_id)
            .await
            .contains(&"auth.session_revoked:success".to_owned())
    );
}

#[tokio::test]
async fn session_live_checks_owner_expiry_and_user_status() {
    let app = TestApp::new().await;
    let (_, p) = app.user("eddy").await;
    let (_, other) = app.user("fay").await;
    assert!(app.session_live(&p).await);
    // Right session, wrong user.
    let claims = |user_id, session_id, role| domain::Principal {
        user_id,
        session_id,
        role,
        scopes: domain::Scopes::SESSION,
    };
    let live = |who| {
        let auth = app.auth.clone();
        async move { auth.session_live(&who).await.unwrap() }
    };
    assert!(!live(claims(other.user_id, p.session_id, p.role)).await);
    assert!(!live(claims(p.user_id, uuid::Uuid::new_v4(), p.role)).await);
    // Right session, but the token claims a role the user does not have.
    assert!(!live(claims(p.user_id, p.session_id, Role::Admin)).await);
    set_status_raw(&app, p.user_id, Status::Suspended).await;
    assert!(!app.session_live(&p).await);
    set_status_raw(&app, p.user_id, Status::Active).await;
    assert!(app.session_live(&p).await);
    app.clock.advance_secs(30 * 24 * 3600 + 1);
    assert!(!app.session_live(&p).await);
}

#[tokio::test]
async fn ready_answers_when_the_database_does() {
    let app = TestApp::new().await;
    app.auth.ready().await.unwrap();
    UserService::ready(app.users.as_ref()).await.unwrap();
}

// ---- audit ---------------------------------------------------------------------------------

/// An audit port that always fails: the requests must not notice (refused attempts are audited
/// through it; a change's events travel with its command).
struct BrokenAudit;

#[async_trait]
impl AuditRepository for BrokenAudit {
    async fn record_all(&self, _events: Vec<AuditEvent>) -> domain::Result<()> {
        Err(Error::Unavailable)
    }
    async fn list_events(&self, _query: &domain::AuditQuery) -> domain::Result<domain::AuditPage> {
        Err(Error::Unavailable)
    }
}

#[tokio::test]
async fn a_failed_audit_write_does_not_fail_the_request() {
    let db = repository::testing::TestDb::sqlite();
    let mut repos = Repositories::from_one(db.db().clone());
    repos.audit = Arc::new(BrokenAudit);
    let app = TestApp::with_repos(db, repos, config());
    let (_, p) = app.user("gina").await;
    app.login("gina", "Wrong-password-1").await.unwrap_err();
    app.login("gina", PASSWORD).await.unwrap();
    app.auth.logout(&by(&p)).await.unwrap();
}

#[tokio::test]
async fn audit_details_never_contain_secrets() {
    let app = TestApp::new().await;
    let (s, p) = app.user("hank").await;
    app.login("hank", "Wrong-password-1").await.unwrap_err();
    let s2 = app
        .auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap();
    app.auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap_err();
    let hash = stored_hash(&app, p.user_id).await;
    let events = app.audit(p.user_id).await;
    assert!(events.len() >= 3, "{events:?}");
    for e in events {
        let text = format!("{e:?}");
        for secret in [
            PASSWORD,
            "Wrong-password-1",
            &hash,
            &s.tokens.refresh_token,
            &s2.tokens.refresh_token,
            &s.tokens.access_token,
        ] {
            assert!(!text.contains(secret), "{text}");
        }
        assert_eq!(e.request_id.as_deref(), Some("test-request"));
    }
}
