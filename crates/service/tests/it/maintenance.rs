//! The housekeeping round: old sessions and audit events go, newer ones stay, and while one
//! maintainer holds the job another does nothing until the lease runs out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use domain::{
    AuditEvent, AuditQuery, AuditRepository, MaintenanceRepository, NewSession, NewUser, Role,
    SessionRepository, Status, UserRepository,
};
use repository::testing::TestDb;
use service::ManualClock;
use service::maintenance::{LEASE, Maintainer, MaintenanceConfig, Purged};

#[tokio::test]
async fn one_maintainer_purges_and_the_other_waits_for_the_lease() {
    let t = TestDb::sqlite();
    let db = t.db().clone();
    let now = Utc::now();
    let days = |d: i64| now - TimeDelta::days(d);
    let user = UserRepository::create(
        &db,
        NewUser {
            id: uuid::Uuid::new_v4(),
            username: "keeper".into(),
            email: "keeper@example.com".into(),
            password_hash: "x".into(),
            first_name: None,
            last_name: None,
            phone: None,
            avatar_url: None,
            role: Role::User,
            status: Status::Active,
            is_verified: true,
            created_at: days(200),
        },
    )
    .await
    .unwrap();
    let session = |created: i64, expires: i64| NewSession {
        id: uuid::Uuid::new_v4(),
        user_id: user.id,
        credential_version: 0,
        refresh_token_hash: "h".repeat(64),
        user_agent: None,
        ip: None,
        created_at: days(created),
        expires_at: days(expires),
        max_live: 0,
        amr: vec!["pwd".into()],
    };
    // Expired 40 days ago (retention 30: goes); expired 10 days ago (stays).
    let old = SessionRepository::create(&db, session(100, 40))
        .await
        .unwrap();
    let newer = SessionRepository::create(&db, session(100, 10))
        .await
        .unwrap();
    for (age, action) in [(120, "old"), (10, "new")] {
        db.record(AuditEvent {
            id: uuid::Uuid::now_v7(),
            at: days(age),
            actor_id: None,
            subject_id: Some(user.id),
            r#type: action.into(),
            outcome: "success".into(),
            ip: None,
            request_id: None,
            details: None,
        })
        .await
        .unwrap();
    }
    let repo: Arc<dyn MaintenanceRepository> = Arc::new(db.clone());
    let clock = Arc::new(ManualClock::new(now));
    let config = MaintenanceConfig {
        session_retention: Duration::from_secs(30 * 86_400),
        audit_retention: Duration::from_secs(90 * 86_400),
        every: Duration::from_secs(3600),
    };
    let a = Maintainer::new(repo.clone(), clock.clone(), config.clone());
    let b = Maintainer::new(repo, clock.clone(), config);
    assert_eq!(
        a.run_once().await.unwrap(),
        Some(Purged {
            sessions: 1,
            audit_events: 1
        })
    );
    assert!(
        SessionRepository::find(&db, old.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        SessionRepository::find(&db, newer.id)
            .await
            .unwrap()
            .is_some()
    );
    let left = db
        .list_events(&AuditQuery::about(user.id, 10))
        .await
        .unwrap()
        .items;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].r#type, "new");
    // `a` holds the job: `b` stands by until the lease runs out.
    assert_eq!(b.run_once().await.unwrap(), None);
    clock.advance(LEASE + Duration::from_secs(1));
    assert_eq!(b.run_once().await.unwrap(), Some(Purged::default()));
    assert_eq!(a.run_once().await.unwrap(), None);
}
