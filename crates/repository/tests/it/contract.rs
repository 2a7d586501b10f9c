//! The repository contract (domain/src/ports.rs), one body per behaviour, run against every
//! backend: SQLite always; PostgreSQL with ARCANA_TEST_POSTGRES_URL; MySQL/MariaDB with
//! ARCANA_TEST_MYSQL_URL and the `mysql` feature. The bodies that need only the ports also run
//! through the gRPC boundary (`grpc::<name>`: `RepositoryClient` → `RepositoryGrpc` → SQLite),
//! so both adapters keep one contract.
// Test code: a failed expectation panics. (clippy's allow-*-in-tests only covers #[test] fns.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use domain::{
    AuditCursor, AuditEvent, AuditPage, AuditQuery, Cursor, Error, LockoutPolicy, LoginAttempt,
    LoginCompletion, LoginStart, NewSession, PageInfo, PageRequest, PasswordChange, Rehash,
    RevokeReason, Role, SortOrder, Status, User, UserPage, UserQuery, UserRepository, UserSort,
    UserUpdate,
};
use repository::{Backend, Database};
use uuid::Uuid;

use crate::commands::*;
use crate::support::*;

contract_tests!(
    ports: [
        create_and_find,
        names_are_unique_case_insensitively,
        parallel_creates_of_one_name_yield_one_winner,
        soft_delete_frees_names_and_hides_the_user,
        update_changes_fields_and_email_key,
        last_admin_cannot_be_demoted_suspended_or_deleted,
        concurrent_demotions_keep_one_admin,
        list_filters_search_and_offset_pages,
        search_follows_every_write,
        list_sorts_in_byte_order_with_id_tie_break,
        keyset_walk_equals_offset_order,
        keyset_rejects_bad_cursors,
        failed_logins_lock_with_backoff,
        parallel_failed_logins_count_exactly_to_the_limit,
        login_success_resets_the_counters,
        success_keeps_a_lock_set_meanwhile,
        failures_are_counted_per_network_and_a_success_makes_it_known,
        password_change_is_one_unit,
        session_lifecycle,
        rotation_remembers_the_previous_hash,
        rotation_answers_the_owner_and_needs_a_live_session,
        session_with_owner_is_one_read,
        sessions_keep_their_authentication_methods,
        revoke_all_keeps_the_current_session,
        audit_events_newest_first,
        ping_and_count_on_a_fresh_repository,
        login_is_begun_and_completed_in_two_commands,
        a_failed_login_completion_keeps_nothing,
        a_user_change_revokes_and_audits_in_one_transaction,
        a_deletion_revokes_and_audits_in_one_transaction,
        ending_a_session_checks_its_owner_and_audits,
        revocations_and_password_changes_audit_what_they_revoked,
        an_account_is_created_with_its_audit_event_or_not_at_all,
    ],
    database: [ping_pool_state_and_migrations_are_idempotent],
);

fn conflict(r: Result<impl std::fmt::Debug, Error>) -> String {
    match r {
        Err(Error::Conflict { message: m, .. }) => m,
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// `Database` implements both `UserRepository` and `SessionRepository`, which each have a
/// `create`: say which one (for the tests of the diesel adapter alone).
fn repo(db: &Database) -> &dyn UserRepository {
    db
}

fn ids(page: &UserPage) -> Vec<Uuid> {
    page.items.iter().map(|u| u.id).collect()
}

fn query(page: PageRequest, per_page: u32, sort: UserSort, order: SortOrder) -> UserQuery {
    UserQuery {
        page,
        per_page,
        sort,
        order,
        ..UserQuery::default()
    }
}

// ---------------------------------------------------------------------------------------------
// users: create, find, uniqueness

async fn create_and_find(db: Repos) {
    let mut n = new_user("Alice");
    n.email = "Alice.Smith@Example.COM".into();
    n.first_name = Some("Alice".into());
    n.phone = Some("+1 555 0100".into());
    n.is_verified = true;
    // sub-microsecond precision is not kept
    n.created_at = at(10) + Duration::from_nanos(1_234_567);
    let created = db.users.create(n.clone()).await.unwrap();
    assert_eq!(created.id, n.id);
    assert_eq!(created.username, "Alice");
    assert_eq!(
        created.email, "alice.smith@example.com",
        "stored lower-case"
    );
    assert_eq!(created.created_at, at(10) + Duration::from_micros(1_234));
    assert_eq!(created.updated_at, created.created_at);
    assert_eq!(created.last_login_at, None);
    assert!(created.is_verified);

    let found = db.users.find_by_id(n.id).await.unwrap().unwrap();
    assert_eq!(found, created);
    assert_eq!(db.users.find_by_id(Uuid::new_v4()).await.unwrap(), None);

    for login in [
        "alice",
        "ALICE",
        "Alice",
        "alice.smith@example.com",
        "ALICE.SMITH@example.com",
    ] {
        let c = db.users.find_credentials(login).await.unwrap();
        let c = c.unwrap_or_else(|| panic!("{login} not found"));
        assert_eq!(c.user, created);
        assert_eq!(c.password_hash, n.password_hash);
        assert_eq!(c.failed_login_count, 0);
        assert_eq!(c.locked_until, None);
    }
    assert!(db.users.find_credentials("alic").await.unwrap().is_none());
    assert!(db.users.find_credentials("%").await.unwrap().is_none());
    let c = db
        .users
        .find_credentials_by_id(n.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user, created);
    assert!(
        db.users
            .find_credentials_by_id(Uuid::new_v4())
            .await
            .unwrap()
            .is_none()
    );
}

async fn names_are_unique_case_insensitively(db: Repos) {
    db.users.create(new_user("Bob")).await.unwrap();

    let mut same_name = new_user("bOB");
    same_name.email = "other@example.com".into();
    assert_eq!(
        conflict(db.users.create(same_name).await),
        "username already taken"
    );

    let mut same_email = new_user("robert");
    same_email.email = "BOB@EXAMPLE.COM".into();
    assert_eq!(
        conflict(db.users.create(same_email).await),
        "email already registered"
    );

    // the id of a user, reused
    let existing = db
        .users
        .find_credentials("bob")
        .await
        .unwrap()
        .unwrap()
        .user;
    let mut same_id = new_user("carol");
    same_id.id = existing.id;
    assert!(matches!(
        db.users.create(same_id).await,
        Err(Error::Conflict { .. })
    ));

    let page = db.users.list(&UserQuery::default()).await.unwrap();
    assert_eq!(page.items.len(), 1);
}

async fn parallel_creates_of_one_name_yield_one_winner(db: Repos) {
    let mut tasks = Vec::new();
    for i in 0..20 {
        let db = db.clone();
        // every case variant of the same name, each with its own email
        let name: String = "racer"
            .chars()
            .enumerate()
            .map(|(j, c)| {
                if (i >> j) & 1 == 1 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        let mut u = new_user(&name);
        u.email = format!("racer{i}@example.com");
        tasks.push(tokio::spawn(async move { db.users.create(u).await }));
    }
    let (mut ok, mut conflicts) = (0, 0);
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(Error::Conflict { message: m, .. }) => {
                assert_eq!(m, "username already taken");
                conflicts += 1;
            }
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert_eq!((ok, conflicts), (1, 19));
}

async fn soft_delete_frees_names_and_hides_the_user(db: Repos) {
    let u = db.users.create(new_user("Dora")).await.unwrap();
    let other = db.users.create(new_user("Eve")).await.unwrap();

    assert!(db.users.soft_delete(u.id, at(100)).await.unwrap());
    assert!(
        !db.users.soft_delete(u.id, at(101)).await.unwrap(),
        "already deleted"
    );
    assert!(
        !db.users.soft_delete(Uuid::new_v4(), at(101)).await.unwrap(),
        "absent"
    );

    let deleted = db.users.find_by_id(u.id).await.unwrap().unwrap();
    assert_eq!(deleted.status, Status::Deleted);
    assert_eq!(deleted.updated_at, at(100));
    assert!(db.users.find_credentials("dora").await.unwrap().is_none());
    assert!(
        db.users
            .find_credentials("dora@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.users
            .find_credentials_by_id(u.id)
            .await
            .unwrap()
            .is_none()
    );
    let update = UserUpdate {
        first_name: Some(Some("x".into())),
        ..Default::default()
    };
    assert_eq!(db.users.update(u.id, update, at(102)).await.unwrap(), None);

    let page = db.users.list(&UserQuery::default()).await.unwrap();
    assert_eq!(
        ids(&page),
        vec![other.id],
        "deleted users are not listed by default"
    );
    let deleted_only = UserQuery {
        status: Some(Status::Deleted),
        ..UserQuery::default()
    };
    assert_eq!(
        ids(&db.users.list(&deleted_only).await.unwrap()),
        vec![u.id]
    );

    // both names are free again, in any case
    let again = db.users.create(new_user("DORA")).await.unwrap();
    assert_eq!(again.email, "dora@example.com");
    assert_eq!(
        db.users
            .find_credentials("dora")
            .await
            .unwrap()
            .unwrap()
            .user
            .id,
        again.id
    );
}

async fn update_changes_fields_and_email_key(db: Repos) {
    let mut n = new_user("frank");
    n.first_name = Some("Frank".into());
    n.last_name = Some("Castle".into());
    let u = db.users.create(n).await.unwrap();
    db.users.create(new_user("grace")).await.unwrap();

    let update = UserUpdate {
        email: Some("Frank.New@Example.org".into()),
        first_name: Some(None),
        last_name: Some(Some("Smith".into())),
        phone: Some(Some("+44 20 7946 0000".into())),
        avatar_url: Some(Some("https://example.org/f.png".into())),
        is_verified: Some(true),
        password_hash: Some("new-hash".into()),
        ..Default::default()
    };
    let updated = db
        .users
        .update(u.id, update, at(50))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.email, "frank.new@example.org");
    assert_eq!(updated.first_name, None);
    assert_eq!(updated.last_name.as_deref(), Some("Smith"));
    assert_eq!(updated.phone.as_deref(), Some("+44 20 7946 0000"));
    assert_eq!(
        updated.avatar_url.as_deref(),
        Some("https://example.org/f.png")
    );
    // Decided against the stored row (security round 2, item 4): a new address is never
    // verified, whatever the update says (the old code stored the `true` it was given).
    assert!(!updated.is_verified);
    assert_eq!(updated.updated_at, at(50));
    assert_eq!(updated.created_at, u.created_at);
    assert_eq!(db.users.find_by_id(u.id).await.unwrap().unwrap(), updated);

    let c = db
        .users
        .find_credentials("FRANK.NEW@example.org")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user.id, u.id);
    assert_eq!(c.password_hash, "new-hash");
    assert!(
        db.users
            .find_credentials("frank@example.com")
            .await
            .unwrap()
            .is_none()
    );
    // The same address in another case keeps the flag it has; only then may it be set.
    let same = UserUpdate {
        email: Some("FRANK.NEW@example.org".into()),
        is_verified: Some(true),
        ..Default::default()
    };
    assert!(
        db.users
            .update(u.id, same, at(51))
            .await
            .unwrap()
            .unwrap()
            .is_verified
    );
    let moved = UserUpdate {
        email: Some("frank.newer@example.org".into()),
        is_verified: Some(true),
        ..Default::default()
    };
    let moved = db.users.update(u.id, moved, at(52)).await.unwrap().unwrap();
    assert!(
        !moved.is_verified,
        "a verified account moving to a new address"
    );
    let back = UserUpdate {
        email: Some("Frank.New@Example.org".into()),
        ..Default::default()
    };
    let updated = db.users.update(u.id, back, at(53)).await.unwrap().unwrap();
    // the old address is free, the new one taken
    let mut reuse = new_user("henry");
    reuse.email = "frank@example.com".into();
    db.users.create(reuse).await.unwrap();
    let steal = UserUpdate {
        email: Some("GRACE@example.com".into()),
        ..Default::default()
    };
    assert_eq!(
        conflict(db.users.update(u.id, steal, at(60)).await),
        "email already registered"
    );
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap(),
        updated,
        "unchanged"
    );

    // role and status changes, an empty update, an unknown user
    let promoted = UserUpdate {
        role: Some(Role::Guest),
        status: Some(Status::Suspended),
        ..Default::default()
    };
    let p = db
        .users
        .update(u.id, promoted, at(70))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((p.role, p.status), (Role::Guest, Status::Suspended));
    let same = db
        .users
        .update(u.id, UserUpdate::default(), at(80))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(same, p, "an empty update changes nothing");
    assert_eq!(
        db.users
            .update(Uuid::new_v4(), UserUpdate::default(), at(80))
            .await
            .unwrap(),
        None
    );
    let delete = UserUpdate {
        status: Some(Status::Deleted),
        ..Default::default()
    };
    assert!(matches!(
        db.users.update(u.id, delete, at(90)).await,
        Err(Error::Validation(f)) if f.0.contains_key("status")
    ));
}

async fn last_admin_cannot_be_demoted_suspended_or_deleted(db: Repos) {
    const LAST: &str = "the last active admin cannot be demoted, suspended or deleted";
    let root = db
        .users
        .create(with_role(new_user("root"), Role::Admin))
        .await
        .unwrap();
    // an inactive admin does not count
    let mut idle = with_role(new_user("idle-admin"), Role::Admin);
    idle.status = Status::Inactive;
    db.users.create(idle).await.unwrap();
    assert_eq!(db.users.count_active_admins().await.unwrap(), 1);

    for update in [
        UserUpdate {
            role: Some(Role::User),
            ..Default::default()
        },
        UserUpdate {
            role: Some(Role::Guest),
            ..Default::default()
        },
        UserUpdate {
            status: Some(Status::Suspended),
            ..Default::default()
        },
        UserUpdate {
            status: Some(Status::Inactive),
            ..Default::default()
        },
        UserUpdate {
            status: Some(Status::Suspended),
            first_name: Some(Some("x".into())),
            ..Default::default()
        },
    ] {
        assert_eq!(
            conflict(db.users.update(root.id, update, at(10)).await),
            LAST
        );
    }
    assert_eq!(conflict(db.users.soft_delete(root.id, at(10)).await), LAST);
    assert_eq!(
        db.users.find_by_id(root.id).await.unwrap().unwrap(),
        root,
        "nothing changed"
    );

    // allowed: changes that keep an active admin
    let keep = UserUpdate {
        role: Some(Role::Admin),
        status: Some(Status::Active),
        first_name: Some(Some("Root".into())),
        ..Default::default()
    };
    db.users
        .update(root.id, keep, at(11))
        .await
        .unwrap()
        .unwrap();

    // with a second active admin the first may go; then the second is the last
    let second = db
        .users
        .create(with_role(new_user("second"), Role::Admin))
        .await
        .unwrap();
    let demote = UserUpdate {
        role: Some(Role::User),
        ..Default::default()
    };
    let r = db
        .users
        .update(root.id, demote.clone(), at(12))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.role, Role::User);
    assert_eq!(
        conflict(db.users.update(second.id, demote, at(13)).await),
        LAST
    );
    assert_eq!(
        conflict(db.users.soft_delete(second.id, at(13)).await),
        LAST
    );

    // non-admins are never blocked by the guard
    assert!(db.users.soft_delete(root.id, at(14)).await.unwrap());
    assert_eq!(db.users.count_active_admins().await.unwrap(), 1);
}

async fn concurrent_demotions_keep_one_admin(db: Repos) {
    // Each round races a demotion of one admin against the deletion of the other, with no third
    // active admin: exactly one may succeed. The survivor is retired when the next pair exists.
    let mut survivor: Option<Uuid> = None;
    for round in 0..6 {
        let a = db
            .users
            .create(with_role(new_user(&format!("a{round}")), Role::Admin))
            .await
            .unwrap();
        let b = db
            .users
            .create(with_role(new_user(&format!("b{round}")), Role::Admin))
            .await
            .unwrap();
        if let Some(s) = survivor {
            let retire = UserUpdate {
                status: Some(Status::Inactive),
                ..Default::default()
            };
            db.users.update(s, retire, at(1)).await.unwrap().unwrap();
        }
        assert_eq!(db.users.count_active_admins().await.unwrap(), 2);
        let (da, db2) = (db.clone(), db.clone());
        let ta = tokio::spawn(async move {
            let demote = UserUpdate {
                role: Some(Role::User),
                ..Default::default()
            };
            da.users.update(a.id, demote, at(2)).await
        });
        let tb = tokio::spawn(async move { db2.users.soft_delete(b.id, at(2)).await });
        let (ra, rb) = (ta.await.unwrap(), tb.await.unwrap());
        assert_eq!(
            usize::from(ra.is_ok()) + usize::from(rb.is_ok()),
            1,
            "round {round}: exactly one may win: {ra:?} {rb:?}"
        );
        for r in [ra.as_ref().err(), rb.as_ref().err()].into_iter().flatten() {
            assert!(matches!(r, Error::Conflict { .. }), "{r:?}");
        }
        assert_eq!(db.users.count_active_admins().await.unwrap(), 1);
        survivor = Some(if ra.is_ok() { b.id } else { a.id });
    }
}

// ---------------------------------------------------------------------------------------------
// users: list

/// 12 users with distinct facts; returns them in creation order.
async fn seed_for_filters(db: &Repos) -> Vec<User> {
    type Spec<'a> = (
        &'a str,
        &'a str,
        Option<&'a str>,
        Option<&'a str>,
        Role,
        Status,
        i64,
    );
    let specs: &[Spec] = &[
        (
            "alice",
            "alice@example.com",
            Some("Alice"),
            Some("Smith"),
            Role::Admin,
            Status::Active,
            0,
        ),
        (
            "bob",
            "bob@example.org",
            Some("Robert"),
            Some("Jones"),
            Role::User,
            Status::Active,
            10,
        ),
        (
            "Charlie_X",
            "charlie@example.com",
            None,
            None,
            Role::User,
            Status::Active,
            20,
        ),
        (
            "charlieX",
            "charliex@example.com",
            None,
            None,
            Role::User,
            Status::Inactive,
            30,
        ),
        (
            "dave",
            "dave@example.net",
            Some("David"),
            Some("100%real"),
            Role::Guest,
            Status::Active,
            40,
        ),
        (
            "erin",
            "erin@example.com",
            Some("Érin"),
            None,
            Role::User,
            Status::Suspended,
            50,
        ),
        (
            "frank",
            "frank@smith.io",
            None,
            None,
            Role::User,
            Status::Active,
            60,
        ),
        (
            "gina",
            "gina@example.com",
            Some("Gina"),
            Some("SMITHERS"),
            Role::Admin,
            Status::Active,
            70,
        ),
        (
            "hank",
            "hank@example.com",
            None,
            None,
            Role::User,
            Status::Active,
            80,
        ),
        (
            "ivy",
            "ivy@example.com",
            None,
            None,
            Role::Guest,
            Status::Inactive,
            90,
        ),
        (
            "jack",
            "jack@example.com",
            None,
            None,
            Role::User,
            Status::Active,
            100,
        ),
        (
            "kate",
            "kate@example.com",
            None,
            None,
            Role::User,
            Status::Active,
            110,
        ),
    ];
    let mut out = Vec::new();
    for (name, email, first, last, role, status, t) in specs {
        let mut u = new_user(name);
        u.email = (*email).into();
        u.first_name = first.map(Into::into);
        u.last_name = last.map(Into::into);
        u.role = *role;
        u.status = *status;
        u.created_at = at(*t);
        out.push(db.users.create(u).await.unwrap());
    }
    out
}

/// Search answers from the current rows after inserts, renames, email changes and soft deletes
/// (the trigram indexes are maintained by the database, not by the adapter), and takes any text.
async fn search_follows_every_write(db: Repos) {
    let found = |s: &'static str| {
        let db = db.clone();
        async move {
            let q = UserQuery {
                search: Some(s.into()),
                per_page: 100,
                ..Default::default()
            };
            let page = db.users.list(&q).await.unwrap();
            let PageInfo::Offset { total, .. } = page.pagination else {
                panic!("an offset page was asked for")
            };
            assert_eq!(total, page.items.len() as u64, "total agrees with the page");
            page.items
                .iter()
                .map(|u| u.username.clone())
                .collect::<Vec<_>>()
        }
    };
    let mut n = new_user("quokka_one");
    n.first_name = Some("Wilhelmina".into());
    let u = db.users.create(n).await.unwrap();
    db.users.create(new_user("other_user")).await.unwrap();
    assert_eq!(found("okka_o").await, ["quokka_one"]);
    assert_eq!(found("HELMIN").await, ["quokka_one"]);

    let rename = UserUpdate {
        first_name: Some(Some("Bartholomew".into())),
        email: Some("numbat@zoo.example".into()),
        ..Default::default()
    };
    db.users.update(u.id, rename, at(1)).await.unwrap().unwrap();
    assert!(found("helmin").await.is_empty(), "the old name is gone");
    assert!(
        found("quokka_one@example").await.is_empty(),
        "the old email is gone"
    );
    assert_eq!(found("tholom").await, ["quokka_one"]);
    assert_eq!(found("numbat@zoo").await, ["quokka_one"]);
    let clear = UserUpdate {
        first_name: Some(None),
        ..Default::default()
    };
    db.users.update(u.id, clear, at(2)).await.unwrap().unwrap();
    assert!(found("tholom").await.is_empty(), "a cleared name is gone");

    // the index's query syntax is not exposed: quotes, operators and short strings are text
    for text in [
        "\"quokka",
        "qu\"ok",
        "quokka OR other",
        "NEAR(a b)",
        "*",
        "ka_",
        "q",
    ] {
        let hits = found(text).await;
        assert!(hits.len() <= 2, "{text:?}: {hits:?}");
    }
    assert_eq!(found("ka_").await, ["quokka_one"]);
    assert!(found("quokka OR other").await.is_empty());

    db.users.soft_delete(u.id, at(3)).await.unwrap();
    assert!(
        found("okka_o").await.is_empty(),
        "deleted users are not found"
    );
}

async fn list_filters_search_and_offset_pages(db: Repos) {
    let users = seed_for_filters(&db).await;
    let gone = db.users.create(new_user("zed")).await.unwrap();
    db.users.soft_delete(gone.id, at(5)).await.unwrap();
    let by_name = |names: &[&str]| -> HashSet<Uuid> {
        names
            .iter()
            .map(|n| users.iter().find(|u| u.username == *n).unwrap().id)
            .collect()
    };
    let names = |q: UserQuery| {
        let db = db.clone();
        async move {
            let q = UserQuery { per_page: 100, ..q };
            let page = db.users.list(&q).await.unwrap();
            page.items.iter().map(|u| u.id).collect::<HashSet<_>>()
        }
    };

    let all = names(UserQuery::default()).await;
    assert_eq!(all.len(), 12, "every status but deleted");
    assert_eq!(
        names(UserQuery {
            role: Some(Role::Admin),
            ..Default::default()
        })
        .await,
        by_name(&["alice", "gina"])
    );
    assert_eq!(
        names(UserQuery {
            status: Some(Status::Inactive),
            ..Default::default()
        })
        .await,
        by_name(&["charlieX", "ivy"])
    );
    assert_eq!(
        names(UserQuery {
            role: Some(Role::Guest),
            status: Some(Status::Active),
            ..Default::default()
        })
        .await,
        by_name(&["dave"])
    );

    let search = |s: &str| UserQuery {
        search: Some(s.into()),
        ..Default::default()
    };
    // username, email, first and last name; case-insensitive
    assert_eq!(names(search("ALI")).await, by_name(&["alice"]));
    assert_eq!(
        names(search("smith")).await,
        by_name(&["alice", "frank", "gina"])
    );
    assert_eq!(names(search("EXAMPLE.ORG")).await, by_name(&["bob"]));
    assert_eq!(names(search("robert")).await, by_name(&["bob"]));
    // LIKE wildcards are literal
    assert_eq!(names(search("_")).await, by_name(&["Charlie_X"]));
    assert_eq!(names(search("%")).await, by_name(&["dave"]));
    assert_eq!(names(search("e_x")).await, by_name(&["Charlie_X"]));
    assert_eq!(names(search("charliex")).await, by_name(&["charlieX"]));
    assert_eq!(names(search("nobody")).await, HashSet::new());
    // non-ASCII text matches itself
    assert_eq!(names(search("Érin")).await, by_name(&["erin"]));
    // search combines with the other filters
    let mut q = search("smith");
    q.role = Some(Role::Admin);
    assert_eq!(names(q).await, by_name(&["alice", "gina"]));

    // created_after is inclusive, created_before exclusive
    let range = UserQuery {
        created_after: Some(at(20)),
        created_before: Some(at(60)),
        ..Default::default()
    };
    assert_eq!(
        names(range).await,
        by_name(&["Charlie_X", "charlieX", "dave", "erin"])
    );

    // offset pages: totals, page counts, the last partial page, a page past the end
    let mut seen = Vec::new();
    for page in 1..=4u32 {
        let q = query(
            PageRequest::Offset { page },
            5,
            UserSort::CreatedAt,
            SortOrder::Asc,
        );
        let p = db.users.list(&q).await.unwrap();
        assert_eq!(p.pagination, PageInfo::offset(page, 5, 12));
        let expected_len = [5, 5, 2, 0][page as usize - 1];
        assert_eq!(p.items.len(), expected_len, "page {page}");
        seen.extend(ids(&p));
    }
    let creation_order: Vec<Uuid> = users.iter().map(|u| u.id).collect();
    assert_eq!(seen, creation_order);
    let mut filtered = query(
        PageRequest::Offset { page: 1 },
        1,
        UserSort::CreatedAt,
        SortOrder::Desc,
    );
    filtered.role = Some(Role::Admin);
    let p = db.users.list(&filtered).await.unwrap();
    assert_eq!(p.pagination, PageInfo::offset(1, 1, 2));
    assert_eq!(p.items[0].username, "gina");
}

async fn list_sorts_in_byte_order_with_id_tie_break(db: Repos) {
    // mixed case: byte order puts upper case first, in every backend
    let names = ["delta", "Bravo", "alpha", "Charlie", "echo", "ALPHA2"];
    let mut users = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut u = new_user(name);
        u.created_at = at(i as i64 / 2); // pairs share a timestamp
        users.push(db.users.create(u).await.unwrap());
    }
    // last logins: some never
    for (i, u) in users.iter().enumerate().filter(|(i, _)| i % 3 != 0) {
        db.users
            .record_login_success(success(u.id, at(1000 - i as i64), 0, None))
            .await
            .unwrap();
    }
    let users: Vec<User> = {
        let mut v = Vec::new();
        for u in &users {
            v.push(db.users.find_by_id(u.id).await.unwrap().unwrap());
        }
        v
    };

    for sort in [
        UserSort::CreatedAt,
        UserSort::Username,
        UserSort::Email,
        UserSort::LastLoginAt,
    ] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            let mut expected = users.clone();
            expected.sort_by(|a, b| {
                let key = |u: &User| match sort {
                    UserSort::CreatedAt => (None, Some(u.created_at.timestamp_micros()), u.id),
                    UserSort::Username => (Some(u.username.clone()), None, u.id),
                    UserSort::Email => (Some(u.email.clone()), None, u.id),
                    // never logged in sorts as the oldest
                    UserSort::LastLoginAt => {
                        (None, u.last_login_at.map(|t| t.timestamp_micros()), u.id)
                    }
                };
                key(a).cmp(&key(b))
            });
            if order == SortOrder::Desc {
                expected.reverse();
            }
            let q = query(PageRequest::Offset { page: 1 }, 100, sort, order);
            let got = db.users.list(&q).await.unwrap();
            assert_eq!(
                got.items.iter().map(|u| &u.username).collect::<Vec<_>>(),
                expected.iter().map(|u| &u.username).collect::<Vec<_>>(),
                "{sort:?} {order:?}"
            );
        }
    }
}

async fn keyset_walk(db: &Repos, base: &UserQuery, per_page: u32) -> Vec<Uuid> {
    let mut out = Vec::new();
    let mut after = None;
    for _ in 0..1000 {
        let q = UserQuery {
            page: PageRequest::Keyset { after },
            per_page,
            ..base.clone()
        };
        let page = db.users.list(&q).await.unwrap();
        assert!(page.items.len() <= per_page as usize);
        out.extend(ids(&page));
        let PageInfo::Keyset {
            per_page: pp,
            next_cursor,
        } = page.pagination
        else {
            panic!("keyset request answered with {:?}", page.pagination)
        };
        assert_eq!(pp, per_page);
        match next_cursor {
            Some(c) => {
                assert_eq!(
                    page.items.len(),
                    per_page as usize,
                    "a cursor only after a full page"
                );
                after = Some(Cursor::decode(&c).unwrap());
            }
            None => return out,
        }
    }
    panic!("keyset walk does not end");
}

async fn keyset_walk_equals_offset_order(db: Repos) {
    // 23 users; created_at in groups of three equal values, names unrelated to creation order
    let mut created = Vec::new();
    for i in 0..23i64 {
        let name = format!(
            "{}{:02}",
            ["mike", "Alpha", "zulu", "bravo", "Kilo"][(i % 5) as usize],
            (i * 7) % 23
        );
        let mut u = new_user(&name);
        u.created_at = at(i / 3);
        if i % 4 == 0 {
            u.role = Role::Guest;
        }
        created.push(db.users.create(u).await.unwrap());
    }
    for sort in [UserSort::CreatedAt, UserSort::Username, UserSort::Email] {
        for order in [SortOrder::Asc, SortOrder::Desc] {
            for role in [None, Some(Role::Guest)] {
                let base = UserQuery {
                    sort,
                    order,
                    role,
                    ..UserQuery::default()
                };
                let offset_order = ids(&db
                    .users
                    .list(&UserQuery {
                        per_page: 100,
                        ..base.clone()
                    })
                    .await
                    .unwrap());
                let expected_len = if role.is_some() { 6 } else { 23 };
                assert_eq!(offset_order.len(), expected_len);
                for per_page in [1, 4, 6, 23, 100] {
                    let walked = keyset_walk(&db, &base, per_page).await;
                    assert_eq!(
                        walked, offset_order,
                        "{sort:?} {order:?} {role:?} per_page {per_page}"
                    );
                    let unique: HashSet<_> = walked.iter().collect();
                    assert_eq!(unique.len(), walked.len(), "no duplicates");
                }
                // offset pages of 4 agree as well
                let mut paged = Vec::new();
                for page in 1..=6 {
                    let q = UserQuery {
                        page: PageRequest::Offset { page },
                        per_page: 4,
                        ..base.clone()
                    };
                    paged.extend(ids(&db.users.list(&q).await.unwrap()));
                }
                assert_eq!(paged, offset_order);
            }
        }
    }
    // a cursor keeps its place when rows are added before it
    let base = UserQuery {
        sort: UserSort::CreatedAt,
        order: SortOrder::Asc,
        ..Default::default()
    };
    let first = db
        .users
        .list(&UserQuery {
            page: PageRequest::Keyset { after: None },
            per_page: 5,
            ..base.clone()
        })
        .await
        .unwrap();
    let PageInfo::Keyset {
        next_cursor: Some(c),
        ..
    } = first.pagination
    else {
        panic!()
    };
    let mut early = new_user("early");
    early.created_at = at(-100);
    db.users.create(early).await.unwrap();
    let second = db
        .users
        .list(&UserQuery {
            page: PageRequest::Keyset {
                after: Some(Cursor::decode(&c).unwrap()),
            },
            per_page: 5,
            ..base
        })
        .await
        .unwrap();
    let all: Vec<Uuid> = created.iter().map(|u| u.id).collect();
    let mut by_created = created.clone();
    by_created.sort_by_key(|u| (u.created_at, u.id));
    let expected: Vec<Uuid> = by_created[5..10].iter().map(|u| u.id).collect();
    assert_eq!(ids(&second), expected);
    assert_eq!(all.len(), 23);
}

async fn keyset_rejects_bad_cursors(db: Repos) {
    let u = db.users.create(new_user("solo")).await.unwrap();
    let field = |r: Result<UserPage, Error>| match r {
        Err(Error::Validation(f)) => f.0.keys().cloned().collect::<Vec<_>>(),
        other => panic!("expected a validation error, got {other:?}"),
    };
    let last_login = query(
        PageRequest::Keyset { after: None },
        10,
        UserSort::LastLoginAt,
        SortOrder::Asc,
    );
    assert_eq!(field(db.users.list(&last_login).await), ["cursor"]);
    let c = Cursor::after(&u, UserSort::Username, SortOrder::Asc).unwrap();
    let mismatched = query(
        PageRequest::Keyset { after: Some(c) },
        10,
        UserSort::Email,
        SortOrder::Asc,
    );
    assert_eq!(field(db.users.list(&mismatched).await), ["cursor"]);
    // an empty result set: no items, no cursor
    let c = Cursor::after(&u, UserSort::Username, SortOrder::Asc).unwrap();
    let past = query(
        PageRequest::Keyset { after: Some(c) },
        10,
        UserSort::Username,
        SortOrder::Asc,
    );
    let page = db.users.list(&past).await.unwrap();
    assert!(page.items.is_empty());
    assert_eq!(
        page.pagination,
        PageInfo::Keyset {
            per_page: 10,
            next_cursor: None
        }
    );
}

// ---------------------------------------------------------------------------------------------
// users: lockout

async fn failed_logins_lock_with_backoff(db: Repos) {
    let policy = LockoutPolicy {
        max_failures: 3,
        base_lock: Duration::from_secs(30),
        max_lock: Duration::from_secs(100),
    };
    let u = db.users.create(new_user("target")).await.unwrap();
    let t0 = at(1000);
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0, policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 1,
            account_failures: 1,
            last_success: None,
            locked_until: None
        }
    );
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0, policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 2,
            account_failures: 2,
            last_success: None,
            locked_until: None
        }
    );
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0 + secs(1), policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 3,
            account_failures: 3,
            last_success: None,
            locked_until: Some(t0 + secs(31))
        }
    );
    // while locked nothing is counted
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0 + secs(30), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked {
            locked_until: t0 + secs(31)
        }
    );
    // The account counts every network's failures but is not locked as a whole: another
    // network may try (its own first attempt), told how many failed before it.
    let c = db.users.find_credentials("target").await.unwrap().unwrap();
    assert_eq!((c.failed_login_count, c.locked_until), (3, None));
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation_from(
                "198.51.100.0/24",
                u.id,
                t0 + secs(30),
                policy
            ))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 1,
            account_failures: 4,
            last_success: None,
            locked_until: None
        }
    );
    // after the lock: the next failure locks again, twice as long, then capped
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0 + secs(31), policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 4,
            account_failures: 5,
            last_success: None,
            locked_until: Some(t0 + secs(91))
        }
    );
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, t0 + secs(200), policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 5,
            account_failures: 6,
            last_success: None,
            locked_until: Some(t0 + secs(300))
        }
    );
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(Uuid::new_v4(), t0, policy))
            .await
            .unwrap(),
        LoginAttempt::UnknownUser
    );
    let gone = db.users.create(new_user("gone")).await.unwrap();
    db.users.soft_delete(gone.id, t0).await.unwrap();
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(gone.id, t0, policy))
            .await
            .unwrap(),
        LoginAttempt::UnknownUser
    );
    // profile timestamps are not touched by the counters
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap().updated_at,
        u.updated_at
    );
}

async fn parallel_failed_logins_count_exactly_to_the_limit(db: Repos) {
    let policy = LockoutPolicy::default();
    let u = db.users.create(new_user("popular")).await.unwrap();
    let now = at(5000);
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            db.users
                .reserve_login_attempt(reservation(u.id, now, policy))
                .await
        }));
    }
    let (mut counted, mut locked) = (Vec::new(), 0);
    for t in tasks {
        match t.await.unwrap().unwrap() {
            LoginAttempt::Reserved { attempt, .. } => counted.push(attempt),
            LoginAttempt::Locked { locked_until } => {
                assert_eq!(locked_until, now + secs(30));
                locked += 1;
            }
            LoginAttempt::UnknownUser => panic!("the user exists"),
        }
    }
    counted.sort_unstable();
    assert_eq!(counted, vec![1, 2, 3, 4, 5], "every count exactly once");
    assert_eq!(locked, 15);
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, now, policy))
            .await
            .unwrap(),
        LoginAttempt::Locked {
            locked_until: now + secs(30)
        }
    );
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.failed_login_count, 5, "the account counted each once");
}

async fn login_success_resets_the_counters(db: Repos) {
    let policy = LockoutPolicy {
        max_failures: 2,
        ..LockoutPolicy::default()
    };
    let u = db.users.create(new_user("back")).await.unwrap();
    for _ in 0..2 {
        db.users
            .reserve_login_attempt(reservation(u.id, at(10), policy))
            .await
            .unwrap();
    }
    db.users
        .record_login_success(success(u.id, at(100), 2, None))
        .await
        .unwrap();
    let c = db.users.find_credentials("back").await.unwrap().unwrap();
    assert_eq!((c.failed_login_count, c.locked_until), (0, None));
    assert_eq!(c.user.last_login_at, Some(at(100)));
    assert_eq!(c.user.updated_at, u.updated_at, "not a profile change");
    assert_eq!(c.password_hash, "pbkdf2:sha256:1000$salt$back");

    // A re-hash over a hash that is no longer stored is dropped...
    db.users
        .record_login_success(success(
            u.id,
            at(150),
            0,
            Some(Rehash {
                verified_hash: "pbkdf2:sha256:1000$salt$other".into(),
                new_hash: "pbkdf2:sha256:600000$stale$hash".into(),
            }),
        ))
        .await
        .unwrap();
    let c = db.users.find_credentials("back").await.unwrap().unwrap();
    assert_eq!(c.password_hash, "pbkdf2:sha256:1000$salt$back");
    // ...over the verified one it is applied.
    db.users
        .record_login_success(success(
            u.id,
            at(200),
            0,
            Some(Rehash {
                verified_hash: "pbkdf2:sha256:1000$salt$back".into(),
                new_hash: "pbkdf2:sha256:600000$new$hash".into(),
            }),
        ))
        .await
        .unwrap();
    let c = db.users.find_credentials("back").await.unwrap().unwrap();
    assert_eq!(c.password_hash, "pbkdf2:sha256:600000$new$hash");
    assert_eq!(c.user.last_login_at, Some(at(200)));
    assert!(matches!(
        db.users
            .record_login_success(success(Uuid::new_v4(), at(1), 1, None))
            .await,
        Err(Error::NotFound)
    ));
}

async fn success_keeps_a_lock_set_meanwhile(db: Repos) {
    let policy = LockoutPolicy {
        max_failures: 3,
        ..LockoutPolicy::default()
    };
    let u = db.users.create(new_user("meanwhile")).await.unwrap();
    let mine = db
        .users
        .reserve_login_attempt(reservation(u.id, at(10), policy))
        .await
        .unwrap();
    assert_eq!(
        mine,
        LoginAttempt::Reserved {
            attempt: 1,
            account_failures: 1,
            last_success: None,
            locked_until: None
        }
    );
    // Two more attempts while the first is being checked: the last one locks.
    db.users
        .reserve_login_attempt(reservation(u.id, at(10), policy))
        .await
        .unwrap();
    let LoginAttempt::Reserved {
        locked_until: Some(until),
        ..
    } = db
        .users
        .reserve_login_attempt(reservation(u.id, at(10), policy))
        .await
        .unwrap()
    else {
        panic!("the third attempt locks")
    };
    assert!(matches!(
        db.users
            .reserve_login_attempt(reservation(u.id, at(11), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked { .. }
    ));
    // The first attempt was right: it logs in, but the network's lock does not go away.
    db.users
        .record_login_success(success(u.id, at(12), 1, None))
        .await
        .unwrap();
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation(u.id, at(13), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked {
            locked_until: until
        }
    );
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.user.last_login_at, Some(at(12)));
}

async fn failures_are_counted_per_network_and_a_success_makes_it_known(db: Repos) {
    let policy = LockoutPolicy {
        max_failures: 2,
        ..LockoutPolicy::default()
    };
    let (a, b) = ("203.0.113.0/24", "2001:db8:1:2::/64");
    let u = db.users.create(new_user("networks")).await.unwrap();
    for _ in 0..2 {
        db.users
            .reserve_login_attempt(reservation_from(a, u.id, at(10), policy))
            .await
            .unwrap();
    }
    assert!(matches!(
        db.users
            .reserve_login_attempt(reservation_from(a, u.id, at(11), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked { .. }
    ));
    // Network b is free; its success makes it known, clears the account's count and gives
    // b's attempt back, but a stays locked.
    let LoginAttempt::Reserved { attempt, .. } = db
        .users
        .reserve_login_attempt(reservation_from(b, u.id, at(12), policy))
        .await
        .unwrap()
    else {
        panic!("b is not locked")
    };
    let mut ok = success(u.id, at(13), attempt, None);
    ok.network = b.into();
    db.users.record_login_success(ok).await.unwrap();
    assert_eq!(
        db.users
            .reserve_login_attempt(reservation_from(b, u.id, at(14), policy))
            .await
            .unwrap(),
        LoginAttempt::Reserved {
            attempt: 1,
            account_failures: 1,
            last_success: Some(at(13)),
            locked_until: None
        }
    );
    assert!(matches!(
        db.users
            .reserve_login_attempt(reservation_from(a, u.id, at(14), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked { .. }
    ));
}

async fn password_change_is_one_unit(db: Repos) {
    let u = db.users.create(new_user("changer")).await.unwrap();
    let keep = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let other = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let old_hash = "pbkdf2:sha256:1000$salt$changer".to_owned();
    let policy = LockoutPolicy::default();
    let LoginAttempt::Reserved { attempt, .. } = db
        .users
        .reserve_login_attempt(reservation(u.id, at(5), policy))
        .await
        .unwrap()
    else {
        panic!("reserved")
    };
    // Compare-and-set on the verified hash.
    let stale = PasswordChange {
        audit: Vec::new(),
        user_id: u.id,
        new_hash: "pbkdf2:sha256:1000$salt$new".into(),
        verified_hash: Some("pbkdf2:sha256:1000$salt$other".into()),
        attempt: Some(attempt),
        attempt_network: NET.into(),
        keep_session: Some(keep.id),
        now: at(10),
    };
    conflict(db.users.change_password(stale.clone()).await);
    let revoked = db
        .users
        .change_password(PasswordChange {
            audit: Vec::new(),
            verified_hash: Some(old_hash),
            ..stale.clone()
        })
        .await
        .unwrap();
    assert_eq!(revoked, Some(1));
    let c = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c.password_hash, "pbkdf2:sha256:1000$salt$new");
    assert_eq!(c.credential_version, 1);
    assert_eq!(
        (c.failed_login_count, c.locked_until),
        (0, None),
        "attempt given back"
    );
    let kept = db.sessions.find(keep.id).await.unwrap().unwrap();
    assert_eq!((kept.revoked_at, kept.credential_version), (None, 1));
    let gone = db.sessions.find(other.id).await.unwrap().unwrap();
    assert_eq!(gone.revoked_reason.as_deref(), Some("password_changed"));
    // A login that verified the old password (version 0) cannot open a session any more.
    assert!(matches!(
        db.sessions.create(new_session(u.id, 20, 3600)).await,
        Err(Error::InvalidCredentials)
    ));
    let mut fresh = new_session(u.id, 20, 3600);
    fresh.credential_version = 1;
    db.sessions.create(fresh).await.unwrap();
    // An admin's change (no compare-and-set), and absent or deleted users.
    let by_admin = PasswordChange {
        audit: Vec::new(),
        verified_hash: None,
        attempt: None,
        keep_session: None,
        ..stale.clone()
    };
    assert_eq!(
        db.users.change_password(by_admin.clone()).await.unwrap(),
        Some(2)
    );
    assert_eq!(
        db.users
            .find_credentials_by_id(u.id)
            .await
            .unwrap()
            .unwrap()
            .credential_version,
        2
    );
    let absent = PasswordChange {
        audit: Vec::new(),
        user_id: Uuid::new_v4(),
        ..by_admin.clone()
    };
    assert_eq!(db.users.change_password(absent).await.unwrap(), None);
    db.users.soft_delete(u.id, at(30)).await.unwrap();
    assert_eq!(db.users.change_password(by_admin).await.unwrap(), None);
}

async fn rotation_remembers_the_previous_hash(db: Repos) {
    let u = db.users.create(new_user("rot")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    assert_eq!(
        (s.previous_refresh_hash.as_deref(), s.rotated_at),
        (None, None)
    );
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('a'), &hash('b'), at(10)))
            .await
            .unwrap()
            .is_some()
    );
    let r = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(r.refresh_token_hash, hash('b'));
    assert_eq!(r.previous_refresh_hash, Some(hash('a')));
    assert_eq!(r.rotated_at, Some(at(10)));
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('b'), &hash('c'), at(20)))
            .await
            .unwrap()
            .is_some()
    );
    let r = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(
        (r.previous_refresh_hash, r.rotated_at, r.generation),
        (Some(hash('b')), Some(at(20)), 2)
    );
}

/// A rotation answers the session as rotated with its owner, in one call, and swaps nothing
/// for a session that is not live: expired, opened with older credentials, or whose owner is
/// not active.
async fn rotation_answers_the_owner_and_needs_a_live_session(db: Repos) {
    let u = db.users.create(new_user("rotlive")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let o = db
        .sessions
        .rotate(rotation(s.id, &hash('a'), &hash('b'), at(10)))
        .await
        .unwrap()
        .expect("rotated");
    assert_eq!(o.session, db.sessions.find(s.id).await.unwrap().unwrap());
    assert_eq!(o.user, db.users.find_by_id(u.id).await.unwrap().unwrap());
    assert_eq!(o.credential_version, 0);

    let expired = rotation(s.id, &hash('b'), &hash('c'), at(3600));
    assert_eq!(db.sessions.rotate(expired).await.unwrap(), None, "expired");

    let suspend = UserUpdate {
        status: Some(Status::Suspended),
        ..Default::default()
    };
    db.users
        .update(u.id, suspend, at(11))
        .await
        .unwrap()
        .unwrap();
    let r = rotation(s.id, &hash('b'), &hash('c'), at(12));
    assert_eq!(
        db.sessions.rotate(r).await.unwrap(),
        None,
        "owner suspended"
    );
    let activate = UserUpdate {
        status: Some(Status::Active),
        ..Default::default()
    };
    db.users
        .update(u.id, activate, at(13))
        .await
        .unwrap()
        .unwrap();

    let change = PasswordChange {
        audit: Vec::new(),
        user_id: u.id,
        new_hash: "pbkdf2:sha256:1000$salt$new".into(),
        verified_hash: None,
        attempt: None,
        attempt_network: String::new(),
        keep_session: None,
        now: at(14),
    };
    db.users.change_password(change).await.unwrap().unwrap();
    let r = rotation(s.id, &hash('b'), &hash('c'), at(15));
    assert_eq!(
        db.sessions.rotate(r).await.unwrap(),
        None,
        "older credentials"
    );
    let after = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(
        (after.refresh_token_hash, after.generation),
        (hash('b'), 1),
        "nothing was swapped"
    );
}

async fn session_with_owner_is_one_read(db: Repos) {
    let u = db.users.create(new_user("owner")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let o = db.sessions.find_with_owner(s.id).await.unwrap().unwrap();
    assert_eq!(o.session, s);
    assert_eq!(o.user, db.users.find_by_id(u.id).await.unwrap().unwrap());
    assert_eq!(o.credential_version, 0);
    assert!(o.is_live(at(10)));
    assert!(!o.is_live(at(3600)), "expired");
    assert_eq!(
        db.sessions.find_with_owner(Uuid::new_v4()).await.unwrap(),
        None
    );
    db.users.soft_delete(u.id, at(5)).await.unwrap();
    let o = db.sessions.find_with_owner(s.id).await.unwrap().unwrap();
    assert!(!o.is_live(at(10)), "the owner is deleted");
}

/// A session keeps how its login was authenticated (RFC 8176 `amr`), in its order, through
/// every read: opened on its own or by a completed login, and after a rotation.
async fn sessions_keep_their_authentication_methods(db: Repos) {
    let two_factors = vec!["pwd".to_owned(), "otp".to_owned()];
    let u = db.users.create(new_user("amr")).await.unwrap();
    let new = NewSession {
        amr: two_factors.clone(),
        ..new_session(u.id, 0, 3600)
    };
    let s = db.sessions.create(new).await.unwrap();
    assert_eq!(s.amr, two_factors, "answered by create");
    let found = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(found.amr, two_factors, "find");
    let o = db.sessions.find_with_owner(s.id).await.unwrap().unwrap();
    assert_eq!(o.session.amr, two_factors, "find_with_owner");
    let rotated = db
        .sessions
        .rotate(rotation(s.id, &hash('a'), &hash('b'), at(10)))
        .await
        .unwrap()
        .expect("rotated");
    assert_eq!(rotated.session.amr, two_factors, "kept by a rotation");

    // A password alone, next to it.
    let pwd = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap();
    let found = db.sessions.find(pwd.id).await.unwrap().unwrap();
    assert_eq!(found.amr, ["pwd"]);
    let live = db.sessions.list_live_for_user(u.id, at(20)).await.unwrap();
    let mut listed: Vec<_> = live.iter().map(|s| (s.id, s.amr.clone())).collect();
    listed.sort();
    let mut expected = vec![
        (s.id, two_factors.clone()),
        (pwd.id, vec!["pwd".to_owned()]),
    ];
    expected.sort();
    assert_eq!(listed, expected, "list_live_for_user");

    // Opened by a completed login.
    let begun = db
        .users
        .begin_login(LoginStart {
            login: "amr".into(),
            network: NET.into(),
            policy: LockoutPolicy::default(),
            now: at(30),
        })
        .await
        .unwrap()
        .unwrap();
    let LoginAttempt::Reserved { attempt, .. } = begun.attempt else {
        panic!("reserved: {:?}", begun.attempt)
    };
    let new = NewSession {
        amr: two_factors.clone(),
        ..new_session(u.id, 30, 3600)
    };
    let completion = LoginCompletion {
        success: success(u.id, at(30), attempt, None),
        session: Some(new.clone()),
        audit: Vec::new(),
    };
    db.users.complete_login(completion).await.unwrap();
    let found = db.sessions.find(new.id).await.unwrap().unwrap();
    assert_eq!(found.amr, two_factors, "opened by complete_login");
    let o = db.sessions.find_with_owner(new.id).await.unwrap().unwrap();
    assert_eq!(o.session.amr, two_factors);
}

// ---------------------------------------------------------------------------------------------
// sessions

async fn session_lifecycle(db: Repos) {
    let u = db.users.create(new_user("sess")).await.unwrap();
    let new = new_session(u.id, 0, 3600);
    let s = db.sessions.create(new.clone()).await.unwrap();
    assert_eq!(s.id, new.id);
    assert_eq!(s.generation, 0);
    assert_eq!(s.last_used_at, at(0));
    assert_eq!(s.expires_at, at(3600));
    assert_eq!((s.revoked_at, s.revoked_reason.as_deref()), (None, None));
    assert_eq!(s.user_agent.as_deref(), Some("test-agent/1.0"));
    assert_eq!(db.sessions.find(s.id).await.unwrap().unwrap(), s);
    assert_eq!(db.sessions.find(Uuid::new_v4()).await.unwrap(), None);

    // compare-and-swap rotation
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('a'), &hash('b'), at(10)))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('a'), &hash('c'), at(11)))
            .await
            .unwrap()
            .is_none(),
        "old hash"
    );
    let r = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(
        (r.refresh_token_hash, r.generation, r.last_used_at),
        (hash('b'), 1, at(10))
    );
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('b'), &hash('c'), at(12)))
            .await
            .unwrap()
            .is_some()
    );
    assert_eq!(db.sessions.find(s.id).await.unwrap().unwrap().generation, 2);
    assert!(
        db.sessions
            .rotate(rotation(Uuid::new_v4(), &hash('c'), &hash('d'), at(12)))
            .await
            .unwrap()
            .is_none()
    );

    // revoke
    assert!(
        db.sessions
            .revoke(s.id, RevokeReason::Logout, at(20))
            .await
            .unwrap()
    );
    assert!(
        !db.sessions
            .revoke(s.id, RevokeReason::Logout, at(21))
            .await
            .unwrap(),
        "already revoked"
    );
    assert!(
        !db.sessions
            .revoke(Uuid::new_v4(), RevokeReason::Logout, at(21))
            .await
            .unwrap()
    );
    let r = db.sessions.find(s.id).await.unwrap().unwrap();
    assert_eq!(
        (r.revoked_at, r.revoked_reason.as_deref()),
        (Some(at(20)), Some("logout"))
    );
    assert!(
        db.sessions
            .rotate(rotation(s.id, &hash('c'), &hash('d'), at(22)))
            .await
            .unwrap()
            .is_none(),
        "revoked"
    );

    // a session needs a user
    assert!(matches!(
        db.sessions.create(new_session(Uuid::new_v4(), 0, 10)).await,
        Err(Error::NotFound)
    ));

    // parallel rotations of one token: exactly one wins
    let s = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for i in 0..10u8 {
        let db = db.clone();
        let next = hash(char::from(b'0' + i));
        tasks.push(tokio::spawn(async move {
            db.sessions
                .rotate(rotation(s.id, &hash('a'), &next, at(30)))
                .await
        }));
    }
    let mut wins = 0;
    for t in tasks {
        wins += usize::from(t.await.unwrap().unwrap().is_some());
    }
    assert_eq!(wins, 1);
    assert_eq!(db.sessions.find(s.id).await.unwrap().unwrap().generation, 1);
}

async fn revoke_all_keeps_the_current_session(db: Repos) {
    let u = db.users.create(new_user("many")).await.unwrap();
    let other = db.users.create(new_user("other")).await.unwrap();
    let a = db
        .sessions
        .create(new_session(u.id, 0, 1000))
        .await
        .unwrap();
    let b = db
        .sessions
        .create(new_session(u.id, 10, 1000))
        .await
        .unwrap();
    let c = db
        .sessions
        .create(new_session(u.id, 20, 1000))
        .await
        .unwrap();
    let expired = db.sessions.create(new_session(u.id, 30, 50)).await.unwrap();
    let revoked = db
        .sessions
        .create(new_session(u.id, 40, 1000))
        .await
        .unwrap();
    let foreign = db
        .sessions
        .create(new_session(other.id, 0, 1000))
        .await
        .unwrap();
    db.sessions
        .revoke(revoked.id, RevokeReason::RevokedByUser, at(45))
        .await
        .unwrap();

    let live: Vec<Uuid> = db
        .sessions
        .list_live_for_user(u.id, at(100))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(
        live,
        vec![c.id, b.id, a.id],
        "newest first, no expired or revoked"
    );
    let at_49: Vec<Uuid> = db
        .sessions
        .list_live_for_user(u.id, at(49))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(at_49, vec![expired.id, c.id, b.id, a.id]);

    // the expired one is still unrevoked, so it counts
    let n = db
        .sessions
        .revoke_all_for_user(user_revocation(
            u.id,
            RevokeReason::PasswordChanged,
            at(100),
            Some(b.id),
        ))
        .await
        .unwrap();
    assert_eq!(n, 3);
    let live: Vec<Uuid> = db
        .sessions
        .list_live_for_user(u.id, at(100))
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(live, vec![b.id]);
    let ra = db.sessions.find(a.id).await.unwrap().unwrap();
    assert_eq!(ra.revoked_reason.as_deref(), Some("password_changed"));
    let rr = db.sessions.find(revoked.id).await.unwrap().unwrap();
    assert_eq!(
        (rr.revoked_at, rr.revoked_reason.as_deref()),
        (Some(at(45)), Some("revoked_by_user")),
        "an earlier revocation is kept"
    );
    assert_eq!(
        db.sessions
            .list_live_for_user(other.id, at(100))
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        db.sessions
            .find(foreign.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at,
        None
    );

    let n = db
        .sessions
        .revoke_all_for_user(user_revocation(
            u.id,
            RevokeReason::LogoutAll,
            at(200),
            None,
        ))
        .await
        .unwrap();
    assert_eq!(n, 1);
    assert!(
        db.sessions
            .list_live_for_user(u.id, at(100))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.sessions
            .revoke_all_for_user(user_revocation(
                u.id,
                RevokeReason::LogoutAll,
                at(300),
                None
            ))
            .await
            .unwrap(),
        0
    );
}

// ---------------------------------------------------------------------------------------------
// audit

async fn audit_events_newest_first(db: Repos) {
    let subject = Uuid::new_v4();
    let actor = Uuid::new_v4();
    let event = |t: i64, action: &str, subject: Option<Uuid>| AuditEvent {
        id: Uuid::now_v7(),
        at: at(t),
        actor_id: Some(actor),
        subject_id: subject,
        r#type: action.into(),
        outcome: "success".into(),
        ip: Some("::1".into()),
        request_id: Some("req-1".into()),
        details: Some(r#"{"k":"v"}"#.into()),
    };
    let first = event(1, "auth.login", Some(subject));
    db.audit.record(first.clone()).await.unwrap();
    db.audit
        .record(event(3, "user.role_changed", Some(subject)))
        .await
        .unwrap();
    db.audit
        .record(event(2, "auth.logout", Some(subject)))
        .await
        .unwrap();
    db.audit
        .record(event(4, "auth.login", Some(Uuid::new_v4())))
        .await
        .unwrap();
    let mut bare = event(5, "auth.login", None);
    bare.actor_id = None;
    bare.ip = None;
    bare.request_id = None;
    bare.details = None;
    bare.outcome = "failure".into();
    db.audit.record(bare.clone()).await.unwrap();

    let list = |q: AuditQuery| {
        let db = &db;
        async move { db.audit.list_events(&q).await.unwrap() }
    };
    let types =
        |p: &AuditPage| -> Vec<String> { p.items.iter().map(|e| e.r#type.clone()).collect() };

    let about = list(AuditQuery::about(subject, 10)).await;
    assert_eq!(
        types(&about),
        ["user.role_changed", "auth.logout", "auth.login"]
    );
    assert_eq!(about.items[2], first, "every field round-trips");
    // the actor's events include those about someone else
    assert_eq!(list(AuditQuery::about(actor, 10)).await.items.len(), 4);
    assert!(
        list(AuditQuery::about(Uuid::new_v4(), 10))
            .await
            .items
            .is_empty()
    );
    let q = |f: fn(&mut AuditQuery)| {
        let mut q = AuditQuery {
            per_page: 10,
            ..AuditQuery::default()
        };
        f(&mut q);
        q
    };
    // the table may hold other tests' events: every filter below pins this test's rows
    let logins = list(q(|q| q.r#type = Some("auth.login".into()))).await;
    assert!(logins.items.iter().all(|e| e.r#type == "auth.login"));
    assert!(logins.items.contains(&first) && logins.items.contains(&bare));
    let failures = list(q(|q| q.outcome = Some("failure".into()))).await;
    assert!(failures.items.contains(&bare) && !failures.items.contains(&first));
    // since is inclusive, until exclusive
    let window = list(AuditQuery {
        since: Some(at(2)),
        until: Some(at(4)),
        ..AuditQuery::about(subject, 10)
    })
    .await;
    assert_eq!(types(&window), ["user.role_changed", "auth.logout"]);

    // keyset pages: two, then one, then the end; the same order, nothing twice
    let page1 = list(AuditQuery::about(actor, 2)).await;
    let PageInfo::Keyset {
        next_cursor: Some(c1),
        per_page: 2,
    } = &page1.pagination
    else {
        panic!("expected a next page: {:?}", page1.pagination)
    };
    let page2 = list(AuditQuery {
        after: Some(AuditCursor::decode(c1).unwrap()),
        ..AuditQuery::about(actor, 2)
    })
    .await;
    assert_eq!(
        types(&page1)
            .into_iter()
            .chain(types(&page2))
            .collect::<Vec<_>>(),
        [
            "auth.login",
            "user.role_changed",
            "auth.logout",
            "auth.login"
        ]
    );
    assert_eq!(page2.items[1], first);
    assert!(
        matches!(
            page2.pagination,
            PageInfo::Keyset {
                next_cursor: None,
                ..
            }
        ),
        "the last page has no cursor: {:?}",
        page2.pagination
    );
    // events at the same instant are told apart by id
    let same: Vec<AuditEvent> = (0..3)
        .map(|_| event(7, "auth.refresh", Some(subject)))
        .collect();
    for e in &same {
        db.audit.record(e.clone()).await.unwrap();
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = list(AuditQuery {
            after,
            r#type: Some("auth.refresh".into()),
            ..AuditQuery::about(subject, 1)
        })
        .await;
        seen.extend(page.items.iter().map(|e| e.id));
        match page.pagination {
            PageInfo::Keyset {
                next_cursor: Some(c),
                ..
            } => after = Some(AuditCursor::decode(&c).unwrap()),
            _ => break,
        }
    }
    let mut want: Vec<Uuid> = same.iter().map(|e| e.id).collect();
    want.sort();
    want.reverse();
    assert_eq!(seen, want);
}

// ---------------------------------------------------------------------------------------------
// operations

async fn ping_and_count_on_a_fresh_repository(db: Repos) {
    db.users.ping().await.unwrap();
    assert_eq!(db.users.count_active_admins().await.unwrap(), 0);
    assert!(
        db.users
            .list(&UserQuery::default())
            .await
            .unwrap()
            .items
            .is_empty()
    );
}

async fn ping_pool_state_and_migrations_are_idempotent(db: Database) {
    db.ping().await.unwrap();
    db.run_migrations().await.unwrap();
    db.run_migrations().await.unwrap();
    let (connections, idle) = db.pool_state();
    assert!(
        connections >= 1 && idle <= connections,
        "{connections} {idle}"
    );
    assert_eq!(db.count_active_admins().await.unwrap(), 0);
    assert_ne!(format!("{db:?}"), "");
}

// ---------------------------------------------------------------------------------------------
// connecting (no server needed)

fn closed_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

#[test]
fn connecting_to_a_closed_port_is_unavailable() {
    let port = closed_port();
    let mut urls = vec![format!("postgres://postgres:secret@127.0.0.1:{port}/test")];
    if cfg!(feature = "mysql") {
        urls.push(format!("mysql://root:secret@127.0.0.1:{port}/test"));
        urls.push(format!("mariadb://root@127.0.0.1:{port}/test"));
    }
    for url in urls {
        let started = std::time::Instant::now();
        assert!(
            matches!(Database::connect(&url, 2), Err(Error::Unavailable)),
            "{url}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "fails fast: {url}"
        );
    }
}

#[test]
fn an_unusable_sqlite_path_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    let url = format!("sqlite://{}/arcana.db", file.display());
    assert!(matches!(
        Database::connect(&url, 2),
        Err(Error::Unavailable)
    ));
}

#[test]
fn unknown_schemes_are_rejected() {
    for url in ["redis://localhost", "arcana.db", ""] {
        assert!(
            matches!(Database::connect(url, 2), Err(Error::Validation(f)) if f.0.contains_key("database_url")),
            "{url}"
        );
    }
}

#[tokio::test]
async fn sqlite_files_get_their_directory_and_memory_works() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/deeper/arcana.db", dir.path().display());
    let db = Database::connect(&url, 4).unwrap();
    assert_eq!(db.backend(), Backend::Sqlite);
    db.run_migrations().await.unwrap();
    repo(&db).create(new_user("filed")).await.unwrap();
    assert!(dir.path().join("nested/deeper/arcana.db").exists());

    let mem = Database::connect("sqlite::memory:", 8).unwrap();
    mem.run_migrations().await.unwrap();
    let u = repo(&mem).create(new_user("inmemory")).await.unwrap();
    assert_eq!(mem.find_by_id(u.id).await.unwrap().unwrap(), u);
    assert_eq!(
        mem.pool_state().0,
        1,
        "one connection holds the in-memory database"
    );
}

// ---------------------------------------------------------------------------------------------
// a server that drops the pooled connections (restart, failover, idle kill)

/// Close every connection of the test database except the caller's own, as a server restart or
/// an idle-connection killer would.
fn kill_server_connections(backend: Backend, url: &str) {
    use diesel::{Connection, RunQueryDsl};
    match backend {
        Backend::Postgres => {
            let mut c = diesel::PgConnection::establish(url).unwrap();
            diesel::sql_query(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .execute(&mut c)
            .unwrap();
        }
        #[cfg(feature = "mysql")]
        Backend::Mysql => {
            use diesel::sql_types::{Nullable, Text};
            let mut c = diesel::MysqlConnection::establish(url).unwrap();
            let ids: Option<String> = diesel::select(diesel::dsl::sql::<Nullable<Text>>(
                "(SELECT GROUP_CONCAT(ID) FROM information_schema.PROCESSLIST \
                 WHERE DB = DATABASE() AND ID <> CONNECTION_ID())",
            ))
            .get_result(&mut c)
            .unwrap();
            for id in ids.iter().flat_map(|s| s.split(',')) {
                // A connection may end by itself meanwhile.
                let _ = diesel::sql_query(format!("KILL {id}")).execute(&mut c);
            }
        }
        other => panic!("no server connections to kill on {other}"),
    }
}

/// The pool does not run a validation query before every checkout: a connection is pinged only
/// after it sat idle, or when a sibling was found dead. So an idle pool whose connections the
/// server dropped recovers without a single failed call, and a busy one loses at most the call
/// that met the first dead connection.
async fn dropped_server_connections_are_replaced(backend: Backend) {
    let Some(t) = repository::testing::TestDb::from_env(backend) else {
        let reason = repository::testing::TestDb::skip_reason(backend).unwrap_or_default();
        let test = format!("dropped_server_connections_are_replaced on {backend}");
        repository::testing::skipped(&test, &reason);
        return;
    };
    let db = t.db().clone();
    let user = repo(&db).create(new_user("survivor")).await.unwrap();
    // Eight calls at once: the pool holds several connections.
    let warm = || async {
        let calls: Vec<_> = (0..8)
            .map(|_| {
                let db = db.clone();
                tokio::spawn(async move { db.find_by_id(user.id).await })
            })
            .collect();
        for call in calls {
            assert_eq!(call.await.unwrap().unwrap().unwrap().id, user.id);
        }
    };

    warm().await;
    kill_server_connections(backend, t.url());
    tokio::time::sleep(Duration::from_millis(700)).await;
    for i in 0..10 {
        let found = db.find_by_id(user.id).await;
        assert!(
            matches!(&found, Ok(Some(u)) if u.id == user.id),
            "call {i} after an idle pool lost its connections: {found:?}"
        );
    }

    warm().await;
    kill_server_connections(backend, t.url());
    let mut failed = 0;
    for _ in 0..20 {
        match db.find_by_id(user.id).await {
            Ok(Some(u)) => assert_eq!(u.id, user.id),
            Err(Error::Unavailable) => failed += 1,
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert!(
        failed <= 1,
        "{failed} of 20 calls failed after a busy pool lost its connections"
    );
    db.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_dropped_server_connections_are_replaced() {
    dropped_server_connections_are_replaced(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_dropped_server_connections_are_replaced() {
    dropped_server_connections_are_replaced(Backend::Mysql).await;
}
