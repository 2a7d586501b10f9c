//! Housekeeping in the repository contract: the cap on live sessions per user, the bound on the
//! session list, purges of old sessions and audit events in batches, and the job lease that lets
//! one replica at a time purge. Every backend, and through the gRPC boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain::{AuditEvent, AuditQuery, MAX_LISTED_SESSIONS, RevokeReason};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        opening_a_session_over_the_cap_revokes_the_oldest,
        the_session_list_is_bounded,
        old_sessions_and_audit_events_are_purged_in_batches,
        one_holder_at_a_time_holds_a_lease,
    ],
    database: [],
);

async fn opening_a_session_over_the_cap_revokes_the_oldest(db: Repos) {
    let u = db.users.create(new_user("collector")).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..4 {
        let mut s = new_session(u.id, i, 3600);
        s.max_live = 3;
        ids.push(db.sessions.create(s).await.unwrap().id);
    }
    let first = db.sessions.find(ids[0]).await.unwrap().unwrap();
    assert!(first.revoked_at.is_some(), "the oldest goes");
    assert_eq!(
        first.revoked_reason.as_deref(),
        Some(RevokeReason::SessionLimit.as_str())
    );
    let live = db.sessions.list_live_for_user(u.id, at(10)).await.unwrap();
    let live: Vec<_> = live.iter().map(|s| s.id).collect();
    assert_eq!(live, vec![ids[3], ids[2], ids[1]]);
    // A session revoked otherwise does not count; no cap (0) keeps them all.
    db.sessions
        .revoke(ids[3], RevokeReason::Logout, at(11))
        .await
        .unwrap();
    let mut s = new_session(u.id, 12, 3600);
    s.max_live = 3;
    let fifth = db.sessions.create(s).await.unwrap().id;
    let live = db.sessions.list_live_for_user(u.id, at(13)).await.unwrap();
    assert_eq!(live.len(), 3, "{live:?}");
    assert!(live.iter().any(|s| s.id == fifth));
    for i in 0..3 {
        db.sessions
            .create(new_session(u.id, 20 + i, 3600))
            .await
            .unwrap();
    }
    assert_eq!(
        db.sessions
            .list_live_for_user(u.id, at(30))
            .await
            .unwrap()
            .len(),
        6
    );
}

async fn the_session_list_is_bounded(db: Repos) {
    let u = db.users.create(new_user("hoarder")).await.unwrap();
    let n = i64::from(MAX_LISTED_SESSIONS) + 5;
    for i in 0..n {
        db.sessions
            .create(new_session(u.id, i, 100_000))
            .await
            .unwrap();
    }
    let listed = db.sessions.list_live_for_user(u.id, at(n)).await.unwrap();
    assert_eq!(listed.len(), MAX_LISTED_SESSIONS as usize);
    // The newest ones.
    assert_eq!(listed[0].created_at, at(n - 1));
}

async fn old_sessions_and_audit_events_are_purged_in_batches(db: Repos) {
    let u = db.users.create(new_user("tidy")).await.unwrap();
    let expired = db.sessions.create(new_session(u.id, 0, 10)).await.unwrap();
    let revoked = db
        .sessions
        .create(new_session(u.id, 0, 100_000))
        .await
        .unwrap();
    db.sessions
        .revoke(revoked.id, RevokeReason::Logout, at(20))
        .await
        .unwrap();
    let live = db
        .sessions
        .create(new_session(u.id, 0, 100_000))
        .await
        .unwrap();
    let recent = db
        .sessions
        .create(new_session(u.id, 0, 1000))
        .await
        .unwrap();
    // Before 500: the expired (10) and the revoked (20) go, one per batch here.
    assert_eq!(db.maintenance.purge_sessions(at(500), 1).await.unwrap(), 1);
    assert_eq!(db.maintenance.purge_sessions(at(500), 1).await.unwrap(), 1);
    assert_eq!(db.maintenance.purge_sessions(at(500), 1).await.unwrap(), 0);
    for gone in [expired.id, revoked.id] {
        assert!(db.sessions.find(gone).await.unwrap().is_none());
    }
    for kept in [live.id, recent.id] {
        assert!(db.sessions.find(kept).await.unwrap().is_some());
    }

    let event = |t: i64| AuditEvent {
        id: Uuid::now_v7(),
        at: at(t),
        actor_id: None,
        subject_id: Some(u.id),
        r#type: "auth.login".into(),
        outcome: "success".into(),
        ip: None,
        request_id: None,
        details: None,
    };
    for t in [0, 1, 2, 1000] {
        db.audit.record(event(t)).await.unwrap();
    }
    assert_eq!(db.maintenance.purge_audit(at(500), 2).await.unwrap(), 2);
    assert_eq!(db.maintenance.purge_audit(at(500), 2).await.unwrap(), 1);
    assert_eq!(db.maintenance.purge_audit(at(500), 2).await.unwrap(), 0);
    let left = db
        .audit
        .list_events(&AuditQuery::about(u.id, 10))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].at, at(1000));
}

async fn one_holder_at_a_time_holds_a_lease(db: Repos) {
    let m = &db.maintenance;
    assert!(m.try_lease("purge", "a", at(0), at(600)).await.unwrap());
    assert!(!m.try_lease("purge", "b", at(10), at(610)).await.unwrap());
    // The holder may extend it; another job has its own lease.
    assert!(m.try_lease("purge", "a", at(20), at(620)).await.unwrap());
    assert!(m.try_lease("other", "b", at(20), at(620)).await.unwrap());
    // Expired: anyone takes it over, and the old holder is then refused.
    assert!(m.try_lease("purge", "b", at(620), at(1220)).await.unwrap());
    assert!(!m.try_lease("purge", "a", at(630), at(1230)).await.unwrap());
}
