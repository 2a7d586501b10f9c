//! Personal access tokens in the service layer, on a clock the tests move: what kills a token
//! (revocation, expiry, a password change, the owner's suspension, deletion, a demotion below
//! one of its scopes), what it makes of its owner, the audit trail and the use it records.
use std::time::Duration;

use domain::{
    AccessToken, AccessTokenInput, AccessTokenRepository, AuthService, PasswordInput, Principal,
    Scope, Scopes, UserService,
};

use crate::common::*;

fn input(scopes: &[&str], expires_in: Option<u64>) -> AccessTokenInput {
    AccessTokenInput {
        name: "ci job".into(),
        scopes: scopes.iter().map(|s| s.to_string()).collect(),
        expires_in,
    }
}

impl TestApp {
    async fn pat(&self, owner: &Principal, scopes: &[&str], expires_in: Option<u64>) -> String {
        self.auth
            .create_access_token(&by(owner), input(scopes, expires_in))
            .await
            .unwrap()
            .token
    }

    async fn principal_of(&self, token: &str) -> Option<Principal> {
        self.auth
            .token_principal(&AccessToken::new(token))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn a_token_makes_its_owner_narrowed_by_its_scopes_until_it_expires() {
    let app = TestApp::new().await;
    let (_, alice) = app.user("alice").await;
    let token = app.pat(&alice, &["users:read"], Some(3600)).await;
    let who = app.principal_of(&token).await.unwrap();
    assert_eq!(
        (who.user_id, who.role, who.scopes),
        (alice.user_id, alice.role, Scopes::of(&[Scope::UsersRead]))
    );
    assert!(!who.scopes.is_session());
    // listed without the token; the first use recorded
    let listed = app.auth.list_access_tokens(&by(&alice)).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, who.session_id);
    assert_eq!(listed[0].scopes, ["users:read"]);
    assert!(listed[0].last_used_at.is_some(), "the use was recorded");
    let used = listed[0].last_used_at;
    app.clock.advance(Duration::from_secs(30));
    app.principal_of(&token).await.unwrap();
    let again = app.auth.list_access_tokens(&by(&alice)).await.unwrap();
    assert_eq!(
        again[0].last_used_at, used,
        "not written again within a minute"
    );
    app.clock.advance(Duration::from_secs(31));
    app.principal_of(&token).await.unwrap();
    let later = app.auth.list_access_tokens(&by(&alice)).await.unwrap();
    assert!(later[0].last_used_at > used, "written again after a minute");

    // expiry
    app.clock.advance(Duration::from_secs(3600));
    assert_eq!(app.principal_of(&token).await, None);
    assert!(
        app.auth
            .list_access_tokens(&by(&alice))
            .await
            .unwrap()
            .is_empty(),
        "an expired token is not listed"
    );
    // not tokens at all
    for other in [
        "arc_pat_short",
        "Bearer x",
        &token[..50],
        &format!("{token}A"),
    ] {
        assert_eq!(app.principal_of(other).await, None, "{other}");
    }
    let actions = app.audit_actions(alice.user_id).await;
    assert!(
        actions.contains(&"token.created:success".to_owned()),
        "{actions:?}"
    );
    // the token itself is never stored or audited
    let stored = app
        .repo()
        .list_access_tokens(alice.user_id, chrono::DateTime::<chrono::Utc>::MIN_UTC)
        .await
        .unwrap();
    assert_eq!(stored[0].token_hash, crypto::tokens::sha256_hex(&token));
    for e in app.audit(alice.user_id).await {
        assert!(!e.details.unwrap_or_default().contains(&token[8..]));
    }
}

#[tokio::test]
async fn revocation_password_change_suspension_and_deletion_kill_a_token() {
    let app = TestApp::new().await;
    let (_, admin) = app.admin("root").await;
    let (_, alice) = app.user("alice").await;

    let revoked = app.pat(&alice, &["users:read"], None).await;
    let id = app.principal_of(&revoked).await.unwrap().session_id;
    // another user cannot revoke it (404), its owner can (once)
    let (_, bob) = app.user("bob").await;
    let e = app
        .auth
        .revoke_access_token(&by(&bob), id)
        .await
        .unwrap_err();
    assert!(matches!(e, domain::Error::NotFound), "{e:?}");
    app.auth.revoke_access_token(&by(&alice), id).await.unwrap();
    assert_eq!(app.principal_of(&revoked).await, None);
    let e = app
        .auth
        .revoke_access_token(&by(&alice), id)
        .await
        .unwrap_err();
    assert!(matches!(e, domain::Error::NotFound), "{e:?}");
    assert!(
        app.audit_actions(alice.user_id)
            .await
            .contains(&"token.revoked:success".to_owned())
    );

    // a password change kills the tokens made before it
    let token = app.pat(&alice, &["users:read"], None).await;
    assert!(app.principal_of(&token).await.is_some());
    app.users
        .change_password(
            &by(&alice),
            alice.user_id,
            PasswordInput {
                current_password: Some(PASSWORD.into()),
                new_password: "Another123".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(app.principal_of(&token).await, None, "password changed");

    // suspension kills it for good: reactivation does not bring it back
    let (_, carol) = app.user("carol").await;
    let token = app.pat(&carol, &["users:write"], None).await;
    let kept = app.pat(&carol, &["users:read"], None).await;
    app.auth.logout_all(&by(&carol)).await.unwrap();
    assert!(
        app.principal_of(&kept).await.is_some(),
        "signing out leaves tokens alone"
    );
    app.users
        .set_status(&by(&admin), carol.user_id, "suspended")
        .await
        .unwrap();
    assert_eq!(app.principal_of(&token).await, None, "owner suspended");
    app.users
        .set_status(&by(&admin), carol.user_id, "active")
        .await
        .unwrap();
    assert_eq!(
        app.principal_of(&token).await,
        None,
        "still dead after reactivation"
    );
    assert!(
        app.auth
            .list_access_tokens(&by(&carol))
            .await
            .unwrap()
            .is_empty()
    );
    let token = app.pat(&carol, &["users:write"], None).await;
    app.users
        .delete_user(&by(&admin), carol.user_id)
        .await
        .unwrap();
    assert_eq!(app.principal_of(&token).await, None, "owner deleted");
}

#[tokio::test]
async fn an_admin_token_dies_with_the_demotion_and_only_admins_get_one() {
    let app = TestApp::new().await;
    let (_, root) = app.admin("root").await;
    let (_, dana) = app.admin("dana").await;
    let e = app
        .auth
        .create_access_token(&by(&app.user("eve").await.1), input(&["admin"], None))
        .await
        .unwrap_err();
    assert_eq!(field_errors(&e), ["scopes[0]"]);
    let admin_token = app.pat(&dana, &["admin", "users:read"], None).await;
    let read_token = app.pat(&dana, &["users:read"], None).await;
    assert_eq!(
        app.principal_of(&admin_token).await.unwrap().role,
        domain::Role::Admin
    );
    app.users
        .set_role(&by(&root), dana.user_id, "user")
        .await
        .unwrap();
    assert_eq!(
        app.principal_of(&admin_token).await,
        None,
        "demoted below admin"
    );
    let reader = app.principal_of(&read_token).await.unwrap();
    assert_eq!(
        reader.role,
        domain::Role::User,
        "the owner's current role, not the old one"
    );
}

#[tokio::test]
async fn an_account_holds_at_most_fifty_live_tokens() {
    let app = TestApp::new().await;
    let (_, alice) = app.user("alice").await;
    for _ in 0..domain::MAX_LIVE_PATS {
        app.pat(&alice, &["users:read"], None).await;
    }
    let e = app
        .auth
        .create_access_token(&by(&alice), input(&["users:read"], None))
        .await
        .unwrap_err();
    assert!(matches!(e, domain::Error::Conflict { .. }), "{e:?}");
    let first = app.auth.list_access_tokens(&by(&alice)).await.unwrap()[0].id;
    app.auth
        .revoke_access_token(&by(&alice), first)
        .await
        .unwrap();
    app.pat(&alice, &["users:read"], None).await;
}

/// A service account's caller is no person: the rules about a person's second factor and
/// verified address do not apply to it, and still do to an admin's personal token.
#[tokio::test]
async fn a_service_account_needs_no_second_factor_nor_a_verified_address() {
    let app = TestApp::with_config(service::ServiceConfig {
        mfa: service::MfaConfig {
            require_for_admins: true,
            ..service::MfaConfig::default()
        },
        recovery: service::recovery::RecoveryConfig {
            require_verified_email: true,
            ..service::recovery::RecoveryConfig::default()
        },
        ..config()
    })
    .await;
    let issued = app
        .oidc_clients
        .create_account(
            &service::Operator::cli(),
            domain::ServiceAccountInput {
                name: "sync".into(),
                role: "admin".into(),
                scopes: vec!["users:read".into()],
            },
        )
        .await
        .unwrap();
    let machine = Principal {
        user_id: issued.account.id,
        session_id: issued.account.id,
        role: domain::Role::Admin,
        scopes: Scopes::of(&[Scope::UsersRead]).machine(),
    };
    let query = domain::RawUserQuery::default();
    app.users
        .list_users(&by(&machine), query.clone())
        .await
        .unwrap();
    // the same call as a person's token (an admin without a factor) is refused
    let (_, admin) = app.admin("root").await;
    let token = Principal {
        scopes: Scopes::of(&[Scope::UsersRead]),
        ..admin
    };
    let e = app.users.list_users(&by(&token), query).await.unwrap_err();
    assert!(matches!(e, domain::Error::MfaRequired), "{e:?}");
}
