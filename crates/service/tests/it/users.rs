//! api.md "Users" rules against the real SQLite repository.
#![allow(clippy::unwrap_used, clippy::panic)]

use crate::common::*;
use domain::{
    CreateUserInput, Error, PageInfo, PasswordInput, RawUserQuery, Role, Status, UserPatch,
    UserService,
};

fn create_input(username: &str) -> CreateUserInput {
    CreateUserInput {
        username: username.into(),
        email: format!("{username}@example.com"),
        password: PASSWORD.into(),
        ..CreateUserInput::default()
    }
}

fn change(current: Option<&str>, new: &str) -> PasswordInput {
    PasswordInput {
        current_password: current.map(Into::into),
        new_password: new.into(),
    }
}

// ---- access rules --------------------------------------------------------------------------

#[tokio::test]
async fn non_admin_gets_404_for_other_users() {
    let app = TestApp::new().await;
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let u = &app.users;
    let err = u.get_user(&by(&alice), bob.user_id).await.unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    let err = u
        .update_user(&by(&alice), bob.user_id, UserPatch::default())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    let err = u
        .change_password(&by(&alice), bob.user_id, change(None, "New-password-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound), "{err:?}");
    // Same answer as for an id that does not exist.
    let (_, admin) = app.admin("root").await;
    let err = u
        .get_user(&by(&admin), uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
}

#[tokio::test]
async fn admin_only_operations_are_forbidden_for_non_admins() {
    let app = TestApp::new().await;
    let (_, alice) = app.user("alice").await;
    let (_, bob) = app.user("bob").await;
    let u = &app.users;
    let c = by(&alice);
    let results = [
        u.list_users(&c, RawUserQuery::default()).await.map(|_| ()),
        u.create_user(&c, create_input("carl")).await.map(|_| ()),
        u.delete_user(&c, bob.user_id).await,
        u.verify_user(&c, bob.user_id).await.map(|_| ()),
        u.set_status(&c, bob.user_id, "suspended").await.map(|_| ()),
        u.set_role(&c, bob.user_id, "admin").await.map(|_| ()),
        // ... on themselves too: no self-promotion, no self-verification.
        u.set_role(&c, alice.user_id, "admin").await.map(|_| ()),
        u.verify_user(&c, alice.user_id).await.map(|_| ()),
        u.delete_user(&c, alice.user_id).await,
    ];
    for (i, r) in results.into_iter().enumerate() {
        assert!(matches!(r, Err(Error::Forbidden(_))), "#{i}: {r:?}");
    }
    assert_eq!(app.fetch(alice.user_id).await.role, Role::User);
}

// ---- list ----------------------------------------------------------------------------------

#[tokio::test]
async fn admin_lists_users_with_filters() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    for name in ["amy", "ben", "cat"] {
        app.register(name).await;
    }
    let page = app
        .users
        .list_users(&by(&admin), RawUserQuery::default())
        .await
        .unwrap();
    assert_eq!(page.items.len(), 4);
    assert!(matches!(page.pagination, PageInfo::Offset { total: 4, .. }));
    let page = app
        .users
        .list_users(
            &by(&admin),
            RawUserQuery {
                search: Some("be".into()),
                ..RawUserQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].username, "ben");
    let err = app
        .users
        .list_users(
            &by(&admin),
            RawUserQuery {
                per_page: Some("1000".into()),
                sort: Some("password_hash".into()),
                ..RawUserQuery::default()
            },
        )
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["per_page", "sort"]);
}

// ---- create --------------------------------------------------------------------------------

#[tokio::test]
async fn admin_creates_users_with_role_status_and_verification() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let plain = app
        .users
        .create_user(&by(&admin), create_input("dora"))
        .await
        .unwrap();
    assert_eq!(
        (plain.role, plain.status, plain.is_verified),
        (Role::User, Status::Active, false)
    );
    let full = app
        .users
        .create_user(
            &by(&admin),
            CreateUserInput {
                role: Some("guest".into()),
                status: Some("inactive".into()),
                is_verified: Some(true),
                phone: Some("+1 555 0100".into()),
                avatar_url: Some("https://example.com/e.png".into()),
                first_name: Some("Eve".into()),
                ..create_input("eve")
            },
        )
        .await
        .unwrap();
    assert_eq!(
        (full.role, full.status, full.is_verified),
        (Role::Guest, Status::Inactive, true)
    );
    assert_eq!(full.phone.as_deref(), Some("+1 555 0100"));
    assert!(
        app.audit_actions(full.id)
            .await
            .contains(&"user.created:success".to_owned())
    );
    // The created user can sign in once active.
    app.login("dora", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn create_user_validates_every_field() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let err = app
        .users
        .create_user(
            &by(&admin),
            CreateUserInput {
                username: "x".into(),
                email: "bad".into(),
                password: "weak".into(),
                first_name: None,
                last_name: None,
                phone: Some("call me maybe".into()),
                avatar_url: Some("javascript:alert(1)".into()),
                role: Some("superuser".into()),
                status: Some("deleted".into()),
                is_verified: None,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        field_errors(&err),
        [
            "avatar_url",
            "email",
            "password",
            "phone",
            "role",
            "status",
            "username"
        ]
    );
    let err = app
        .users
        .create_user(&by(&admin), create_input("root"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

// ---- get / update --------------------------------------------------------------------------

#[tokio::test]
async fn user_reads_and_updates_self() {
    let app = TestApp::new().await;
    let (_, fred) = app.user("fred").await;
    let me = app.users.get_user(&by(&fred), fred.user_id).await.unwrap();
    assert_eq!(me.username, "fred");
    // PUT-like: every field.
    let updated = app
        .users
        .update_user(
            &by(&fred),
            fred.user_id,
            UserPatch {
                current_password: Some(PASSWORD.into()),
                email: Some("Fred.New@Example.com".into()),
                first_name: Some(Some("Fred".into())),
                last_name: Some(Some("Flint".into())),
                phone: Some(Some("555-0199".into())),
                avatar_url: Some(Some("http://example.com/f.png".into())),
            },
        )
        .await
        .unwrap();
    assert_eq!(updated.email, "fred.new@example.com");
    assert_eq!(updated.first_name.as_deref(), Some("Fred"));
    assert_eq!(updated.phone.as_deref(), Some("555-0199"));
    // PATCH-like: one field cleared, the rest untouched.
    let patched = app
        .users
        .update_user(
            &by(&fred),
            fred.user_id,
            UserPatch {
                phone: Some(None),
                last_name: Some(Some(String::new())),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(patched.phone, None);
    assert_eq!(patched.last_name, None);
    assert_eq!(patched.first_name.as_deref(), Some("Fred"));
    assert_eq!(patched.email, "fred.new@example.com");
    // Empty patch: nothing changes.
    let same = app
        .users
        .update_user(&by(&fred), fred.user_id, UserPatch::default())
        .await
        .unwrap();
    assert_eq!(same, patched);
    app.login("fred.new@example.com", PASSWORD).await.unwrap();
}

#[tokio::test]
async fn admin_reads_and_updates_anyone() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, gail) = app.user("gail").await;
    let u = app
        .users
        .update_user(
            &by(&admin),
            gail.user_id,
            UserPatch {
                first_name: Some(Some("Gail".into())),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(u.first_name.as_deref(), Some("Gail"));
    let err = app
        .users
        .update_user(
            &by(&admin),
            uuid::Uuid::new_v4(),
            UserPatch {
                first_name: Some(Some("X".into())),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
}

#[tokio::test]
async fn update_validates_every_field() {
    let app = TestApp::new().await;
    let (_, hugo) = app.user("hugo").await;
    let err = app
        .users
        .update_user(
            &by(&hugo),
            hugo.user_id,
            UserPatch {
                current_password: None,
                email: Some("nope".into()),
                first_name: Some(Some("x".repeat(51))),
                last_name: Some(Some("y".repeat(51))),
                phone: Some(Some("1".repeat(21))),
                avatar_url: Some(Some("ftp://example.com/a.png".into())),
            },
        )
        .await
        .unwrap_err();
    assert_eq!(
        field_errors(&err),
        ["avatar_url", "email", "first_name", "last_name", "phone"]
    );
}

#[tokio::test]
async fn update_to_a_taken_email_conflicts() {
    let app = TestApp::new().await;
    let (_, iris) = app.user("iris").await;
    app.register("jack").await;
    let err = app
        .users
        .update_user(
            &by(&iris),
            iris.user_id,
            UserPatch {
                email: Some("JACK@example.com".into()),
                current_password: Some(PASSWORD.into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err:?}");
}

// ---- delete --------------------------------------------------------------------------------

#[tokio::test]
async fn delete_is_soft_revokes_sessions_and_frees_the_names() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, kyle) = app.user("kyle").await;
    app.users
        .delete_user(&by(&admin), kyle.user_id)
        .await
        .unwrap();
    assert!(!app.session_live(&kyle).await);
    let gone = app.users.get_user(&by(&admin), kyle.user_id).await.unwrap();
    assert_eq!(gone.status, Status::Deleted);
    // Username and email can be registered again.
    let again = app.register("kyle").await;
    assert_ne!(again.user.id, kyle.user_id);
    // Deleting twice: nothing there any more.
    let err = app
        .users
        .delete_user(&by(&admin), kyle.user_id)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    assert!(
        app.audit_actions(kyle.user_id)
            .await
            .contains(&"user.deleted:success".to_owned())
    );
}

#[tokio::test]
async fn admin_may_delete_themselves_unless_last_admin() {
    let app = TestApp::new().await;
    let (_, root) = app.admin("root").await;
    let err = app
        .users
        .delete_user(&by(&root), root.user_id)
        .await
        .unwrap_err();
    match err {
        Error::Conflict { message: m, .. } => assert!(m.contains("last active admin"), "{m}"),
        other => panic!("expected Conflict, got {other:?}"),
    }
    let (_, second) = app.admin("second").await;
    app.users
        .delete_user(&by(&root), root.user_id)
        .await
        .unwrap();
    assert!(!app.session_live(&root).await);
    assert!(app.session_live(&second).await);
}

// ---- last admin ----------------------------------------------------------------------------

#[tokio::test]
async fn last_admin_cannot_be_demoted() {
    let app = TestApp::new().await;
    let (_, root) = app.admin("root").await;
    let err = app
        .users
        .set_role(&by(&root), root.user_id, "user")
        .await
        .unwrap_err();
    match err {
        Error::Conflict { message: m, .. } => {
            assert_eq!(m, "the last active admin cannot be demoted")
        }
        other => panic!("expected Conflict, got {other:?}"),
    }
    assert_eq!(app.fetch(root.user_id).await.role, Role::Admin);
    assert!(
        app.session_live(&root).await,
        "a refused change revokes nothing"
    );
    // With a second admin it works.
    let (_, second) = app.admin("second").await;
    app.users
        .set_role(&by(&second), root.user_id, "user")
        .await
        .unwrap();
    assert_eq!(app.fetch(root.user_id).await.role, Role::User);
}

#[tokio::test]
async fn last_admin_cannot_be_suspended_or_deactivated() {
    let app = TestApp::new().await;
    let (_, root) = app.admin("root").await;
    for status in ["suspended", "inactive"] {
        let err = app
            .users
            .set_status(&by(&root), root.user_id, status)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Conflict { .. }), "{status}: {err:?}");
    }
    assert_eq!(app.fetch(root.user_id).await.status, Status::Active);
}

// ---- password ------------------------------------------------------------------------------

#[tokio::test]
async fn changing_own_password_needs_the_current_one_and_keeps_this_session() {
    let app = TestApp::new().await;
    let (_, here) = app.user("lara").await;
    let elsewhere = app.principal(&app.login("lara", PASSWORD).await.unwrap());
    let u = &app.users;
    let err = u
        .change_password(&by(&here), here.user_id, change(None, "New-password-1"))
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["current_password"]);
    let err = u
        .change_password(
            &by(&here),
            here.user_id,
            change(Some("Wrong-password-1"), "New-password-1"),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Forbidden(m) if m == "the current password is incorrect"),
        "{err:?}"
    );
    let err = u
        .change_password(&by(&here), here.user_id, change(Some(PASSWORD), "weak"))
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["new_password"]);

    u.change_password(
        &by(&here),
        here.user_id,
        change(Some(PASSWORD), "New-password-1"),
    )
    .await
    .unwrap();
    assert!(app.session_live(&here).await, "the caller's session stays");
    assert!(!app.session_live(&elsewhere).await, "every other one ends");
    assert!(matches!(
        app.login("lara", PASSWORD).await,
        Err(Error::InvalidCredentials)
    ));
    app.login("lara", "New-password-1").await.unwrap();
    assert!(
        app.audit_actions(here.user_id)
            .await
            .contains(&"user.password_changed:success".to_owned())
    );
}

#[tokio::test]
async fn guessing_the_current_password_counts_towards_lockout() {
    let app = TestApp::new().await;
    let (_, p) = app.user("mona").await;
    for _ in 0..5 {
        let err = app
            .users
            .change_password(
                &by(&p),
                p.user_id,
                change(Some("Wrong-password-1"), "New-password-1"),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Forbidden(_)), "{err:?}");
    }
    let err = app
        .users
        .change_password(&by(&p), p.user_id, change(Some(PASSWORD), "New-password-1"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Locked { .. }), "{err:?}");
    assert!(matches!(
        app.login("mona", PASSWORD).await,
        Err(Error::Locked { .. })
    ));
}

#[tokio::test]
async fn admin_changes_another_users_password_without_the_current_one() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, ned) = app.user("ned").await;
    let ned2 = app.principal(&app.login("ned", PASSWORD).await.unwrap());
    app.users
        .change_password(&by(&admin), ned.user_id, change(None, "Reset-password-1"))
        .await
        .unwrap();
    assert!(!app.session_live(&ned).await);
    assert!(!app.session_live(&ned2).await);
    assert!(app.session_live(&admin).await);
    app.login("ned", "Reset-password-1").await.unwrap();
}

// ---- verify / status / role ----------------------------------------------------------------

#[tokio::test]
async fn admin_verifies_a_user() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, olga) = app.user("olga").await;
    let u = app
        .users
        .verify_user(&by(&admin), olga.user_id)
        .await
        .unwrap();
    assert!(u.is_verified);
    assert!(
        app.audit_actions(olga.user_id)
            .await
            .contains(&"user.verified:success".to_owned())
    );
    let err = app
        .users
        .verify_user(&by(&admin), uuid::Uuid::new_v4())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
}

#[tokio::test]
async fn suspension_revokes_sessions_and_reactivation_does_not() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, pete) = app.user("pete").await;
    let u = app
        .users
        .set_status(&by(&admin), pete.user_id, "suspended")
        .await
        .unwrap();
    assert_eq!(u.status, Status::Suspended);
    assert!(!app.session_live(&pete).await);
    assert!(matches!(
        app.login("pete", PASSWORD).await,
        Err(Error::Forbidden(_))
    ));
    app.users
        .set_status(&by(&admin), pete.user_id, "active")
        .await
        .unwrap();
    let fresh = app.principal(&app.login("pete", PASSWORD).await.unwrap());
    app.users
        .set_status(&by(&admin), pete.user_id, "active")
        .await
        .unwrap();
    assert!(app.session_live(&fresh).await);
    for bad in ["deleted", "banned", ""] {
        let err = app
            .users
            .set_status(&by(&admin), pete.user_id, bad)
            .await
            .unwrap_err();
        assert_eq!(field_errors(&err), ["status"], "{bad}");
    }
    let audit = app.audit(pete.user_id).await;
    assert!(audit.iter().any(|e| e.r#type == "user.status_changed"
        && e.details.as_deref().unwrap_or("").contains("\"suspended\"")));
}

#[tokio::test]
async fn role_change_revokes_sessions() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, quin) = app.user("quin").await;
    let u = app
        .users
        .set_role(&by(&admin), quin.user_id, "admin")
        .await
        .unwrap();
    assert_eq!(u.role, Role::Admin);
    assert!(
        !app.session_live(&quin).await,
        "old tokens carry the old role"
    );
    let promoted = app.principal(&app.login("quin", PASSWORD).await.unwrap());
    assert_eq!(promoted.role, Role::Admin);
    let err = app
        .users
        .set_role(&by(&admin), quin.user_id, "root")
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["role"]);
    let err = app
        .users
        .set_role(&by(&admin), uuid::Uuid::new_v4(), "user")
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotFound));
    assert!(
        app.audit_actions(quin.user_id)
            .await
            .contains(&"user.role_changed:success".to_owned())
    );
}

// ---- bootstrap -----------------------------------------------------------------------------

#[tokio::test]
async fn bootstrap_admin_creates_an_admin_only_when_none_exists() {
    let app = TestApp::new().await;
    let created = app
        .users
        .bootstrap_admin("boot", "boot@example.com", PASSWORD)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (created.role, created.status, created.is_verified),
        (Role::Admin, Status::Active, true)
    );
    assert!(
        app.users
            .bootstrap_admin("boot2", "boot2@example.com", PASSWORD)
            .await
            .unwrap()
            .is_none()
    );
    let p = app.principal(&app.login("boot", PASSWORD).await.unwrap());
    assert!(p.is_admin());
    // An admin exists, so nothing is validated or created.
    assert!(
        app.users
            .bootstrap_admin("x", "bad", "weak")
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn bootstrap_admin_validates_its_input() {
    let app = TestApp::new().await;
    let err = app
        .users
        .bootstrap_admin("x", "bad", "weak")
        .await
        .unwrap_err();
    assert_eq!(field_errors(&err), ["email", "password", "username"]);
}

#[tokio::test]
async fn create_admin_for_the_cli() {
    let app = TestApp::new().await;
    let a = app
        .users
        .create_admin("ops", "ops@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(a.role, Role::Admin);
    assert!(a.is_verified);
    let b = app
        .users
        .create_admin("ops2", "ops2@example.com", PASSWORD)
        .await
        .unwrap();
    assert_eq!(b.role, Role::Admin);
    let err = app
        .users
        .create_admin("ops", "other@example.com", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }));
}
