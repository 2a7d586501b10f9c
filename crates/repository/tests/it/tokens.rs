//! Machine credentials in the repository contract: personal access tokens (`AccessTokenRepository`:
//! found by hash with their owner, listed while live, revoked by their owner only, with their
//! audit events, ended with the account's sessions when the account changes hands, at most 50
//! live, last use written at most once a minute) and service accounts (`OidcRepository`: stored,
//! found, listed, their secrets rotated and the account deleted, each with its audit events).
//! Every backend, and through the gRPC boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain::{
    AuditQuery, ConflictKind, Error, MAX_LIVE_PATS, OutgoingMail, RevokeReason, Role, Scope,
    Scopes, StoredAccessToken, StoredServiceAccount, UserId,
};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        tokens_are_found_by_hash_listed_while_live_and_revoked_by_their_owner,
        taking_the_account_away_revokes_its_tokens_and_signing_out_does_not,
        an_account_holds_at_most_fifty_live_tokens,
        a_use_is_written_at_most_once_a_minute,
        service_accounts_are_stored_rotated_and_deleted_with_their_audit,
    ],
    database: [],
);

fn token(user_id: UserId, hash_char: char, created: i64, expires: i64) -> StoredAccessToken {
    StoredAccessToken {
        id: Uuid::new_v4(),
        user_id,
        name: format!("token {hash_char}"),
        token_hash: hash(hash_char),
        scopes: Scopes::of(&[Scope::UsersRead, Scope::AuditRead]),
        credential_version: 0,
        created_at: at(created),
        expires_at: at(expires),
        last_used_at: None,
        revoked_at: None,
    }
}

fn mail(to: &str) -> OutgoingMail {
    OutgoingMail {
        id: Uuid::new_v4(),
        recipient: to.to_owned(),
        subject: "security notice".into(),
        text_body: "a personal access token was created".into(),
        html_body: "<p>a personal access token was created</p>".into(),
        created_at: at(10),
        expires_at: None,
        limit: None,
    }
}

async fn audit_types(db: &Repos, subject: UserId) -> Vec<String> {
    db.audit
        .list_events(&AuditQuery::about(subject, 100))
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|e| e.r#type)
        .collect()
}

async fn tokens_are_found_by_hash_listed_while_live_and_revoked_by_their_owner(db: Repos) {
    let u = db.users.create(new_user("scripter")).await.unwrap();
    let other = db.users.create(new_user("bystander")).await.unwrap();
    let live = token(u.id, 'a', 10, 1000);
    let short = token(u.id, 'b', 20, 100);
    for (t, notice) in [(live.clone(), Some(mail(&u.email))), (short.clone(), None)] {
        let audit = vec![audit_event("token.created", Some(u.id), "{}")];
        db.tokens
            .create_access_token(t, audit, notice)
            .await
            .unwrap();
    }
    // the notice is queued with the token, in its transaction
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 1);
    // an unknown owner is refused, nothing stored (nor mailed)
    let orphan = token(Uuid::new_v4(), 'c', 10, 1000);
    let e = db
        .tokens
        .create_access_token(orphan, Vec::new(), Some(mail("ghost@example.com")))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::NotFound), "{e:?}");
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 1);
    assert!(
        db.tokens
            .find_access_token(&hash('c'))
            .await
            .unwrap()
            .is_none()
    );

    let found = db
        .tokens
        .find_access_token(&hash('a'))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token, live);
    assert_eq!((found.user.id, found.credential_version), (u.id, 0));
    assert!(found.is_live(at(50)));
    // listed newest first while unexpired; the expired one is not
    let ids = |v: Vec<StoredAccessToken>| v.into_iter().map(|t| t.id).collect::<Vec<_>>();
    assert_eq!(
        ids(db.tokens.list_access_tokens(u.id, at(50)).await.unwrap()),
        [short.id, live.id]
    );
    assert_eq!(
        ids(db.tokens.list_access_tokens(u.id, at(100)).await.unwrap()),
        [live.id]
    );
    assert!(
        db.tokens
            .list_access_tokens(other.id, at(50))
            .await
            .unwrap()
            .is_empty()
    );

    // only the owner revokes, once, with the audit event
    let audit = || vec![audit_event("token.revoked", Some(u.id), "{}")];
    assert!(
        !db.tokens
            .revoke_access_token(other.id, live.id, audit(), at(60))
            .await
            .unwrap()
    );
    assert!(
        db.tokens
            .revoke_access_token(u.id, live.id, audit(), at(60))
            .await
            .unwrap()
    );
    assert!(
        !db.tokens
            .revoke_access_token(u.id, live.id, audit(), at(61))
            .await
            .unwrap()
    );
    let found = db
        .tokens
        .find_access_token(&hash('a'))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.token.revoked_at, Some(at(60)));
    assert!(!found.is_live(at(61)));
    assert!(
        db.tokens
            .list_access_tokens(u.id, at(61))
            .await
            .unwrap()
            .iter()
            .all(|t| t.id != live.id)
    );
    let types = audit_types(&db, u.id).await;
    assert_eq!(
        types.iter().filter(|t| *t == "token.revoked").count(),
        1,
        "{types:?}"
    );
    assert_eq!(
        types.iter().filter(|t| *t == "token.created").count(),
        2,
        "{types:?}"
    );
}

async fn taking_the_account_away_revokes_its_tokens_and_signing_out_does_not(db: Repos) {
    let u = db.users.create(new_user("owner")).await.unwrap();
    db.tokens
        .create_access_token(token(u.id, 'a', 10, 1000), Vec::new(), None)
        .await
        .unwrap();
    let live = |db: Repos| async move {
        db.tokens
            .find_access_token(&hash('a'))
            .await
            .unwrap()
            .unwrap()
            .token
            .revoked_at
            .is_none()
    };
    db.sessions
        .revoke_all_for_user(user_revocation(u.id, RevokeReason::LogoutAll, at(20), None))
        .await
        .unwrap();
    assert!(
        live(db.clone()).await,
        "signing out everywhere leaves tokens alone"
    );
    db.sessions
        .revoke_all_for_user(user_revocation(
            u.id,
            RevokeReason::StatusChanged,
            at(30),
            None,
        ))
        .await
        .unwrap();
    assert!(!live(db.clone()).await, "a suspension revokes them");
    for reason in [
        RevokeReason::StatusChanged,
        RevokeReason::UserDeleted,
        RevokeReason::PasswordChanged,
        RevokeReason::PasswordReset,
        RevokeReason::EmailReverted,
        RevokeReason::FactorsRemoved,
    ] {
        assert!(reason.ends_access_tokens(), "{reason:?}");
    }
    for reason in [
        RevokeReason::Logout,
        RevokeReason::LogoutAll,
        RevokeReason::RoleChanged,
    ] {
        assert!(!reason.ends_access_tokens(), "{reason:?}");
    }
}

async fn an_account_holds_at_most_fifty_live_tokens(db: Repos) {
    let u = db.users.create(new_user("hoarder")).await.unwrap();
    for i in 0..MAX_LIVE_PATS {
        let mut t = token(u.id, 'a', 10, 1000);
        t.token_hash = format!("{:064x}", i);
        db.tokens
            .create_access_token(t, Vec::new(), None)
            .await
            .unwrap();
    }
    let e = db
        .tokens
        .create_access_token(token(u.id, 'z', 10, 1000), Vec::new(), None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                kind: ConflictKind::NotApplicable,
                ..
            }
        ),
        "{e:?}"
    );
    // an expired one does not count
    let mut later = token(u.id, 'z', 1000, 2000);
    later.created_at = at(1000);
    db.tokens
        .create_access_token(later, Vec::new(), None)
        .await
        .unwrap();
}

async fn a_use_is_written_at_most_once_a_minute(db: Repos) {
    let u = db.users.create(new_user("busy")).await.unwrap();
    let t = token(u.id, 'a', 10, 1000);
    db.tokens
        .create_access_token(t.clone(), Vec::new(), None)
        .await
        .unwrap();
    let used = |db: Repos| async move {
        db.tokens
            .find_access_token(&hash('a'))
            .await
            .unwrap()
            .unwrap()
            .token
            .last_used_at
    };
    db.tokens.touch_access_token(t.id, at(100)).await.unwrap();
    assert_eq!(used(db.clone()).await, Some(at(100)));
    db.tokens.touch_access_token(t.id, at(159)).await.unwrap();
    assert_eq!(
        used(db.clone()).await,
        Some(at(100)),
        "within the minute: not written"
    );
    db.tokens.touch_access_token(t.id, at(161)).await.unwrap();
    assert_eq!(used(db.clone()).await, Some(at(161)));
}

async fn service_accounts_are_stored_rotated_and_deleted_with_their_audit(db: Repos) {
    let account = |name: &str, created: i64| StoredServiceAccount {
        id: Uuid::new_v4(),
        name: name.into(),
        role: Role::Admin,
        scopes: Scopes::of(&[Scope::UsersRead]),
        secret_hash: hash('s'),
        previous_secret_hash: None,
        previous_secret_expires_at: None,
        created_at: at(created),
        secret_rotated_at: at(created),
    };
    let (first, second) = (account("first", 10), account("second", 20));
    for a in [second.clone(), first.clone()] {
        let audit = vec![audit_event("service_account.created", Some(a.id), "{}")];
        db.oidc.create_service_account(a, audit).await.unwrap();
    }
    assert_eq!(
        db.oidc.find_service_account(first.id).await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(
        db.oidc.find_service_account(Uuid::new_v4()).await.unwrap(),
        None
    );
    assert_eq!(
        db.oidc.list_service_accounts().await.unwrap(),
        [first.clone(), second.clone()],
        "oldest first"
    );
    let rotated = StoredServiceAccount {
        secret_hash: hash('t'),
        previous_secret_hash: Some(hash('s')),
        previous_secret_expires_at: Some(at(100)),
        secret_rotated_at: at(50),
        ..first.clone()
    };
    let audit = vec![audit_event(
        "service_account.secret_rotated",
        Some(first.id),
        "{}",
    )];
    assert!(
        db.oidc
            .rotate_service_account_secret(rotated.clone(), audit)
            .await
            .unwrap()
    );
    assert_eq!(
        db.oidc.find_service_account(first.id).await.unwrap(),
        Some(rotated)
    );
    let ghost = account("ghost", 30);
    assert!(
        !db.oidc
            .rotate_service_account_secret(ghost.clone(), Vec::new())
            .await
            .unwrap()
    );
    assert!(
        db.oidc
            .find_service_account(ghost.id)
            .await
            .unwrap()
            .is_none(),
        "nothing created"
    );
    let audit = vec![audit_event("service_account.deleted", Some(first.id), "{}")];
    assert!(
        db.oidc
            .delete_service_account(first.id, audit)
            .await
            .unwrap()
    );
    assert!(
        !db.oidc
            .delete_service_account(first.id, Vec::new())
            .await
            .unwrap()
    );
    assert_eq!(db.oidc.list_service_accounts().await.unwrap(), [second]);
    assert_eq!(
        audit_types(&db, first.id).await,
        [
            "service_account.created",
            "service_account.secret_rotated",
            "service_account.deleted"
        ]
        .iter()
        .rev()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    );
}
