//! The use-case commands of the repository ports: each is one transaction with the audit events
//! it records, and a failure between its steps leaves nothing half done. The failure is a real
//! one: an audit event whose id is already stored makes the last insert of the transaction fail
//! (a primary-key violation) after every other step ran.
use domain::{
    AuditEvent, AuditQuery, Error, LockoutPolicy, LoginAttempt, LoginBegun, LoginCompletion,
    LoginStart, PasswordChange, RevokeReason, Role, SessionEnd, Status, UserChange, UserDeletion,
    UserId, UserUpdate,
};
use uuid::Uuid;

use crate::support::*;

fn event(subject: UserId, action: &str, details: &str) -> AuditEvent {
    audit_event(action, Some(subject), details)
}

/// An event already stored: a command carrying it fails at its last step.
async fn stored_event(db: &Repos, subject: UserId) -> AuditEvent {
    let e = event(subject, "test.already_stored", "{}");
    db.audit.record(e.clone()).await.unwrap();
    e
}

async fn events(db: &Repos, subject: UserId, action: &str) -> Vec<serde_json::Value> {
    let query = AuditQuery {
        user_id: Some(subject),
        r#type: Some(action.into()),
        ..AuditQuery::default()
    };
    let page = db.audit.list_events(&query).await.unwrap();
    page.items
        .iter()
        .map(|e| serde_json::from_str(e.details.as_deref().unwrap_or("{}")).unwrap())
        .collect()
}

fn start(login: &str, now: i64) -> LoginStart {
    LoginStart {
        login: login.into(),
        network: NET.into(),
        policy: LockoutPolicy::default(),
        now: at(now),
    }
}

pub async fn login_is_begun_and_completed_in_two_commands(db: Repos) {
    assert_eq!(
        db.users.begin_login(start("nobody", 1)).await.unwrap(),
        None
    );
    let u = db.users.create(new_user("Lena")).await.unwrap();
    // By email, in any case: the credentials and an attempt, counted before any hashing.
    let LoginBegun {
        credentials,
        attempt,
        factors,
    } = db
        .users
        .begin_login(start("LENA@example.com", 2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(factors, domain::MfaFactors::default(), "no second factor");
    assert_eq!(credentials.user.id, u.id);
    assert_eq!(credentials.password_hash, "pbkdf2:sha256:1000$salt$Lena");
    let LoginAttempt::Reserved { attempt, .. } = attempt else {
        panic!("reserved: {attempt:?}")
    };
    assert_eq!(attempt, 1);
    let failures = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(failures.failed_login_count, 1, "counted at the start");

    let session = new_session(u.id, 3, 3600);
    let completion = LoginCompletion {
        success: success(u.id, at(3), attempt, None),
        session: Some(session.clone()),
        audit: vec![event(u.id, "auth.login", r#"{"rehashed":false}"#)],
    };
    db.users.complete_login(completion).await.unwrap();
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user.last_login_at, Some(at(3)));
    assert_eq!(c.failed_login_count, 0, "the attempt given back");
    let opened = db.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(opened.user_id, u.id);
    assert_eq!(events(&db, u.id, "auth.login").await.len(), 1);
}

pub async fn a_failed_login_completion_keeps_nothing(db: Repos) {
    let u = db.users.create(new_user("mona")).await.unwrap();
    let begun = db
        .users
        .begin_login(start("mona", 1))
        .await
        .unwrap()
        .unwrap();
    let LoginAttempt::Reserved { attempt, .. } = begun.attempt else {
        panic!("reserved")
    };
    let taken = stored_event(&db, u.id).await;
    let session = new_session(u.id, 2, 3600);
    let completion = LoginCompletion {
        success: success(u.id, at(2), attempt, None),
        session: Some(session.clone()),
        audit: vec![taken],
    };
    db.users.complete_login(completion).await.unwrap_err();
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user.last_login_at, None, "the success was rolled back");
    assert_eq!(c.failed_login_count, 1, "the attempt still counts");
    assert_eq!(db.sessions.find(session.id).await.unwrap(), None);

    // A session opened with credentials that changed since: refused, the success with it.
    let stale = domain::NewSession {
        credential_version: 7,
        ..new_session(u.id, 3, 3600)
    };
    let completion = LoginCompletion {
        success: success(u.id, at(3), attempt, None),
        session: Some(stale.clone()),
        audit: vec![event(u.id, "auth.login", "{}")],
    };
    let refused = db.users.complete_login(completion).await.unwrap_err();
    assert!(matches!(refused, Error::InvalidCredentials), "{refused:?}");
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user.last_login_at, None);
    assert_eq!(db.sessions.find(stale.id).await.unwrap(), None);
    assert!(events(&db, u.id, "auth.login").await.is_empty());
}

pub async fn a_user_change_revokes_and_audits_in_one_transaction(db: Repos) {
    db.users
        .create(with_role(new_user("keeper"), Role::Admin))
        .await
        .unwrap();
    let u = db
        .users
        .create(with_role(new_user("deputy"), Role::Admin))
        .await
        .unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let change = |audit: Vec<AuditEvent>| UserChange {
        id: u.id,
        update: UserUpdate {
            role: Some(Role::User),
            ..UserUpdate::default()
        },
        revoke: Some(RevokeReason::RoleChanged),
        audit,
        now: at(5),
    };
    // A failure at the last step: neither the role nor the sessions changed.
    let taken = stored_event(&db, u.id).await;
    db.users.change_user(change(vec![taken])).await.unwrap_err();
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    assert_eq!(
        db.sessions.find(s.id).await.unwrap().unwrap().revoked_at,
        None
    );

    let placeholder = r#"{"from":"","sessions_revoked":0,"to":"user"}"#;
    let changed = db
        .users
        .change_user(change(vec![event(u.id, "user.role_changed", placeholder)]))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(changed.role, Role::User);
    let gone = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(gone.revoked_reason.as_deref(), Some("role_changed"));
    let audit = events(&db, u.id, "user.role_changed").await;
    assert_eq!(
        audit,
        [serde_json::json!({"from": "admin", "sessions_revoked": 1, "to": "user"})],
        "completed with what the transaction decided"
    );
    // A deleted (or absent) user: nothing written.
    let absent = UserChange {
        id: Uuid::new_v4(),
        ..change(vec![event(u.id, "user.role_changed", "{}")])
    };
    assert_eq!(db.users.change_user(absent).await.unwrap(), None);
    assert_eq!(events(&db, u.id, "user.role_changed").await.len(), 1);
}

pub async fn a_deletion_revokes_and_audits_in_one_transaction(db: Repos) {
    let u = db.users.create(new_user("gone")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let deletion = |audit: Vec<AuditEvent>| UserDeletion {
        id: u.id,
        audit,
        now: at(5),
    };
    let taken = stored_event(&db, u.id).await;
    db.users
        .delete_user(deletion(vec![taken]))
        .await
        .unwrap_err();
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap().status,
        Status::Active
    );
    assert_eq!(
        db.sessions.find(s.id).await.unwrap().unwrap().revoked_at,
        None
    );

    let e = event(u.id, "user.deleted", r#"{"sessions_revoked":0}"#);
    assert!(
        db.users
            .delete_user(deletion(vec![e.clone()]))
            .await
            .unwrap()
    );
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap().status,
        Status::Deleted
    );
    let s = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(s.revoked_reason.as_deref(), Some("user_deleted"));
    assert_eq!(
        events(&db, u.id, "user.deleted").await,
        [serde_json::json!({"sessions_revoked": 1})]
    );
    // Again: nothing to delete, nothing written.
    let again = event(u.id, "user.deleted", "{}");
    assert!(!db.users.delete_user(deletion(vec![again])).await.unwrap());
    assert_eq!(events(&db, u.id, "user.deleted").await.len(), 1);
}

pub async fn ending_a_session_checks_its_owner_and_audits(db: Repos) {
    let u = db.users.create(new_user("owner")).await.unwrap();
    let other = db.users.create(new_user("other")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let end = |user_id: UserId, live_only: bool, audit: Vec<AuditEvent>| SessionEnd {
        id: s.id,
        user_id: Some(user_id),
        reason: RevokeReason::RevokedByUser,
        live_only,
        audit,
        now: at(5),
    };
    let logged = |who| vec![event(who, "auth.session_revoked", "{}")];
    // Someone else's session: nothing.
    assert!(
        !db.sessions
            .end_session(end(other.id, true, logged(other.id)))
            .await
            .unwrap()
    );
    assert!(
        events(&db, other.id, "auth.session_revoked")
            .await
            .is_empty()
    );
    // A failure at the last step: still live.
    let taken = stored_event(&db, u.id).await;
    db.sessions
        .end_session(end(u.id, true, vec![taken]))
        .await
        .unwrap_err();
    assert_eq!(
        db.sessions.find(s.id).await.unwrap().unwrap().revoked_at,
        None
    );
    // The owner's: revoked and audited.
    assert!(
        db.sessions
            .end_session(end(u.id, true, logged(u.id)))
            .await
            .unwrap()
    );
    let ended = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(ended.revoked_reason.as_deref(), Some("revoked_by_user"));
    // No longer live: refused when only a live one may end; else answered (logout twice).
    assert!(
        !db.sessions
            .end_session(end(u.id, true, logged(u.id)))
            .await
            .unwrap()
    );
    assert!(
        db.sessions
            .end_session(end(u.id, false, logged(u.id)))
            .await
            .unwrap()
    );
    let again = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(again.revoked_at, ended.revoked_at, "revoked once");
    assert_eq!(events(&db, u.id, "auth.session_revoked").await.len(), 2);
}

pub async fn revocations_and_password_changes_audit_what_they_revoked(db: Repos) {
    let u = db.users.create(new_user("many")).await.unwrap();
    for _ in 0..3 {
        db.sessions
            .create(new_session(u.id, 0, 3600))
            .await
            .unwrap();
    }
    let keep = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let change = PasswordChange {
        user_id: u.id,
        new_hash: "pbkdf2:sha256:1000$salt$next".into(),
        verified_hash: None,
        attempt: None,
        attempt_network: String::new(),
        keep_session: Some(keep.id),
        now: at(5),
        audit: vec![event(
            u.id,
            "user.password_changed",
            r#"{"sessions_revoked":0}"#,
        )],
    };
    // A failure at the last step: the old password, every session live.
    let taken = stored_event(&db, u.id).await;
    let failing = PasswordChange {
        audit: vec![taken],
        ..change.clone()
    };
    db.users.change_password(failing).await.unwrap_err();
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.password_hash, "pbkdf2:sha256:1000$salt$many");
    assert_eq!(
        db.sessions
            .list_live_for_user(u.id, at(5))
            .await
            .unwrap()
            .len(),
        4
    );

    assert_eq!(db.users.change_password(change).await.unwrap(), Some(3));
    assert_eq!(
        events(&db, u.id, "user.password_changed").await,
        [serde_json::json!({"sessions_revoked": 3})]
    );
    let mut all = user_revocation(u.id, RevokeReason::LogoutAll, at(6), None);
    all.audit = vec![event(u.id, "auth.logout_all", r#"{"revoked_count":0}"#)];
    assert_eq!(db.sessions.revoke_all_for_user(all).await.unwrap(), 1);
    assert_eq!(
        events(&db, u.id, "auth.logout_all").await,
        [serde_json::json!({"revoked_count": 1})]
    );
}

pub async fn an_account_is_created_with_its_audit_event_or_not_at_all(db: Repos) {
    let nu = new_user("fresh");
    let taken = stored_event(&db, nu.id).await;
    db.users
        .create_user(nu.clone(), vec![taken])
        .await
        .unwrap_err();
    assert_eq!(db.users.find_by_id(nu.id).await.unwrap(), None);
    let created = db
        .users
        .create_user(nu.clone(), vec![event(nu.id, "auth.register", "{}")])
        .await
        .unwrap();
    assert_eq!(created.id, nu.id);
    assert_eq!(events(&db, nu.id, "auth.register").await.len(), 1);
}
