//! Findings of the attacker's review of the auth core (lockout bursts, forged refresh secrets,
//! password changes racing logins, revocation as one unit, email verification), each as a test
//! that failed before the fix.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use crate::common::*;
use domain::{AuthService, Error, PasswordInput, Role, UserPatch, UserService};
use service::ServiceConfig;

/// Iterations at which one verification takes well over the 50 ms the tests wait (≈ 80 ms per
/// 600k in an optimised build; the crypto crate is optimised in test builds too).
const SLOW_ITERATIONS: u32 = 1_000_000;

/// Wait until a password verification beyond the first `before` has started.
async fn started_evaluating(app: &TestApp, before: u64) {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while app.hasher.verifications() <= before {
        assert!(
            std::time::Instant::now() < deadline,
            "no verification started"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn slow_app_config() -> ServiceConfig {
    ServiceConfig {
        password_iterations: SLOW_ITERATIONS,
        ..config()
    }
}

// ---- 1. lockout reserved before hashing ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_cannot_outguess_the_lockout() {
    let app = Arc::new(TestApp::with_config(slow_app_config()).await);
    app.register("burst").await;
    for _ in 0..4 {
        let e = app.login("burst", "Wrong-password-1").await.unwrap_err();
        assert!(matches!(e, Error::InvalidCredentials), "{e:?}");
    }
    let evaluated_before = app.hasher.verifications();
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move { app.login("burst", &format!("Wrong-password-{i}")).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    // However loaded the machine, the right password arrives once a burst password is being
    // evaluated (by then the old code had counted nothing yet).
    started_evaluating(&app, evaluated_before).await;
    let right = app.login("burst", PASSWORD).await;
    assert!(
        matches!(right, Err(Error::Locked { .. })),
        "the right password arriving after the limit must answer LOCKED, got {right:?}"
    );
    let mut invalid = 0;
    for t in burst {
        match t.await.unwrap() {
            Err(Error::InvalidCredentials) => invalid += 1,
            Err(Error::Locked { .. }) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(invalid, 1, "exactly the 5th attempt was evaluated");
    assert_eq!(
        app.hasher.verifications() - evaluated_before,
        1,
        "at most one burst password was hashed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_burst_cannot_outguess_the_current_password_check() {
    let app = Arc::new(TestApp::with_config(slow_app_config()).await);
    let (_, p) = app.user("changer").await;
    let change = |current: String| PasswordInput {
        current_password: Some(current),
        new_password: "Brand-new-pass-9".into(),
    };
    for _ in 0..4 {
        let e = app
            .users
            .change_password(&by(&p), p.user_id, change("Wrong-password-1".into()))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    }
    let evaluated_before = app.hasher.verifications();
    let burst: Vec<_> = (0..30)
        .map(|i| {
            let (app, change) = (app.clone(), change(format!("Wrong-password-{i}")));
            tokio::spawn(async move { app.users.change_password(&by(&p), p.user_id, change).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    started_evaluating(&app, evaluated_before).await;
    let right = app
        .users
        .change_password(&by(&p), p.user_id, change(PASSWORD.into()))
        .await;
    assert!(matches!(right, Err(Error::Locked { .. })), "{right:?}");
    for t in burst {
        let r = t.await.unwrap();
        assert!(
            matches!(r, Err(Error::Forbidden(_) | Error::Locked { .. })),
            "{r:?}"
        );
    }
    // The password did not change.
    app.clock.advance_secs(16 * 60);
    app.login("changer", PASSWORD).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn success_does_not_clear_a_lock_set_meanwhile() {
    // Four failures, then the right password and four wrong ones in flight together: the
    // wrong ones reserve the remaining attempt(s) and lock; the success must not unlock.
    let app = Arc::new(TestApp::with_config(slow_app_config()).await);
    app.register("meanwhile").await;
    for _ in 0..3 {
        app.login("meanwhile", "Wrong-password-1")
            .await
            .unwrap_err();
    }
    let evaluated_before = app.hasher.verifications();
    let right = {
        let app = app.clone();
        tokio::spawn(async move { app.login("meanwhile", PASSWORD).await })
    };
    // The right password is being hashed (its attempt reserved) when the wrong ones come.
    started_evaluating(&app, evaluated_before).await;
    let wrong: Vec<_> = (0..4)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.login("meanwhile", "Wrong-password-1").await })
        })
        .collect();
    right.await.unwrap().unwrap();
    for t in wrong {
        t.await.unwrap().unwrap_err();
    }
    let e = app.login("meanwhile", PASSWORD).await.unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e:?}");
}

// ---- 2. a forged refresh secret changes nothing ------------------------------------------

#[tokio::test]
async fn a_forged_refresh_secret_does_not_revoke_the_session() {
    let app = TestApp::new().await;
    let (s, p) = app.user("victim").await;
    // The session id is in every access token; the secret is not.
    let forged = format!("{}.{}", p.session_id.simple(), "A".repeat(43));
    let e = app.auth.refresh(&ctx(), &forged).await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized), "{e:?}");
    assert!(
        app.session_live(&p).await,
        "the stranger's session survives"
    );
    app.auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap();
}

#[tokio::test]
async fn an_older_generation_is_reuse_only_when_it_was_really_issued() {
    let app = TestApp::new().await;
    let (s1, p) = app.user("gen").await;
    let s2 = app
        .auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap();
    // A forgery after rotations: still nothing happens.
    let forged = format!("{}.{}", p.session_id.simple(), "B".repeat(43));
    app.auth.refresh(&ctx(), &forged).await.unwrap_err();
    assert!(app.session_live(&p).await);
    // The real previous generation: reuse, the family dies.
    app.auth
        .refresh(&ctx(), &s1.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(!app.session_live(&p).await);
    app.auth
        .refresh(&ctx(), &s2.tokens.refresh_token)
        .await
        .unwrap_err();
}

// ---- 3. refresh reuse grace (opt-in) -------------------------------------------------------

#[tokio::test]
async fn within_the_grace_the_previous_token_is_accepted_once_more() {
    let app = TestApp::with_config(ServiceConfig {
        refresh_reuse_grace: Duration::from_secs(10),
        ..config()
    })
    .await;
    let (a, p) = app.user("tabs").await;
    let b = app
        .auth
        .refresh(&ctx(), &a.tokens.refresh_token)
        .await
        .unwrap();
    app.clock.advance_secs(3);
    // Second tab (or a lost answer): A again, within the grace: a fresh pair, same session.
    let c = app
        .auth
        .refresh(&ctx(), &a.tokens.refresh_token)
        .await
        .unwrap();
    let pc = app.principal(&c);
    assert_eq!(pc.session_id, p.session_id);
    assert!(app.session_live(&p).await);
    // Only once: A a third time is not accepted, and is not treated as theft either.
    app.auth
        .refresh(&ctx(), &a.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(app.session_live(&p).await);
    // The newest token works.
    let d = app
        .auth
        .refresh(&ctx(), &c.tokens.refresh_token)
        .await
        .unwrap();
    // After the grace, reuse of a displaced token revokes the family as before.
    app.clock.advance_secs(11);
    app.auth
        .refresh(&ctx(), &c.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(!app.session_live(&p).await);
    app.auth
        .refresh(&ctx(), &d.tokens.refresh_token)
        .await
        .unwrap_err();
    drop(b);
}

#[tokio::test]
async fn without_a_grace_reuse_revokes_at_once() {
    let app = TestApp::new().await;
    assert_eq!(app.config.refresh_reuse_grace, Duration::ZERO);
    let (a, p) = app.user("strict").await;
    app.auth
        .refresh(&ctx(), &a.tokens.refresh_token)
        .await
        .unwrap();
    app.auth
        .refresh(&ctx(), &a.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(!app.session_live(&p).await);
}

// ---- 4. a password change and a racing login -----------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_racing_a_password_change_cannot_open_a_session_or_restore_the_old_password() {
    let app = Arc::new(TestApp::new().await);
    // A slow, outdated hash: verification takes long and asks for a re-hash.
    let old = crypto::hash_password("Old-password-1", SLOW_ITERATIONS);
    let user = insert_with_hash(&app, "racer", &old).await;
    let (_, admin) = app.admin("boss").await;
    let login = {
        let app = app.clone();
        tokio::spawn(async move { app.login("racer", "Old-password-1").await })
    };
    tokio::time::sleep(Duration::from_millis(40)).await;
    app.users
        .change_password(
            &by(&admin),
            user.id,
            PasswordInput {
                current_password: None,
                new_password: "New-password-2".into(),
            },
        )
        .await
        .unwrap();
    if let Ok(raced) = login.await.unwrap() {
        let p = app.principal(&raced);
        assert!(
            !app.session_live(&p).await,
            "a session opened with the old password survived the change"
        );
        app.auth
            .refresh(&ctx(), &raced.tokens.refresh_token)
            .await
            .unwrap_err();
    }
    let e = app.login("racer", "Old-password-1").await.unwrap_err();
    assert!(
        matches!(e, Error::InvalidCredentials),
        "the old password came back: {e:?}"
    );
    app.login("racer", "New-password-2").await.unwrap();
}

// ---- 5. role change and revocation are one unit --------------------------------------------

/// The change, the revocation and the audit event are one repository command: the repository
/// fills in what only its transaction knows (the previous role, how many sessions died).
#[tokio::test]
async fn a_role_change_revokes_and_audits_in_one_command() {
    let app = TestApp::new().await;
    let (_, boss) = app.admin("boss").await;
    let (_, deputy) = app.admin("deputy").await;
    assert!(app.session_live(&deputy).await);
    let changed = app
        .users
        .set_role(&by(&boss), deputy.user_id, "user")
        .await
        .unwrap();
    assert_eq!(changed.role, Role::User);
    assert!(
        !app.session_live(&deputy).await,
        "the token still says admin: it must not be accepted"
    );
    let events = app.audit(deputy.user_id).await;
    let e = events
        .iter()
        .find(|e| e.r#type == "user.role_changed")
        .expect("role change audited");
    let d: serde_json::Value = serde_json::from_str(e.details.as_deref().unwrap()).unwrap();
    assert_eq!(d["from"], "admin");
    assert_eq!(d["to"], "user");
    assert_eq!(d["sessions_revoked"], 1);
}

#[tokio::test]
async fn a_suspension_revokes_and_audits_in_one_command() {
    let app = TestApp::new().await;
    let (_, boss) = app.admin("boss").await;
    let (_, p) = app.user("sus").await;
    app.users
        .set_status(&by(&boss), p.user_id, "suspended")
        .await
        .unwrap();
    assert!(!app.session_live(&p).await);
    let events = app.audit(p.user_id).await;
    let e = events
        .iter()
        .find(|e| e.r#type == "user.status_changed")
        .expect("status change audited");
    let d: serde_json::Value = serde_json::from_str(e.details.as_deref().unwrap()).unwrap();
    assert_eq!(d["from"], "active");
    assert_eq!(d["to"], "suspended");
    assert_eq!(d["sessions_revoked"], 1);
}

// ---- 6. a new email is unverified ----------------------------------------------------------

#[tokio::test]
async fn changing_the_email_clears_is_verified() {
    let app = TestApp::new().await;
    let (_, boss) = app.admin("boss").await;
    let (_, p) = app.user("mover").await;
    app.users.verify_user(&by(&boss), p.user_id).await.unwrap();
    // The same address (any case) keeps the flag.
    let same = app
        .users
        .update_user(
            &by(&p),
            p.user_id,
            UserPatch {
                email: Some("MOVER@example.com".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(same.is_verified);
    let moved = app
        .users
        .update_user(
            &by(&p),
            p.user_id,
            UserPatch {
                email: Some("elsewhere@example.com".into()),
                current_password: Some(PASSWORD.into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    assert!(!moved.is_verified, "a new address is not verified");
    assert!(!app.fetch(p.user_id).await.is_verified);
    let events = app.audit(p.user_id).await;
    assert!(
        events.iter().any(|e| e.r#type == "user.updated"
            && e.details
                .as_deref()
                .is_some_and(|d| d.contains("\"old_email\":\"m***@example.com\""))),
        "no audit of the cleared verification: {events:?}"
    );
}

// ---- round 2, item 6: a reset token is looked up before any hashing --------------------------

/// The old code hashed the new password (a full PBKDF2 run) before it knew whether the token was
/// any good: 1 hash per bogus request. Now a read-only lookup comes first: 0.
#[tokio::test]
async fn a_bogus_reset_token_costs_no_password_hash() {
    let app = TestApp::new().await;
    let before = app.hasher.hashes();
    for token in ["A".repeat(43), "not-even-close".to_owned()] {
        let e = app
            .auth
            .reset_password(
                &ctx(),
                domain::ResetPasswordInput {
                    token,
                    new_password: "Better456".into(),
                },
            )
            .await
            .unwrap_err();
        match e {
            Error::Validation(f) => assert_eq!(f.0["token"], [domain::TOKEN_UNKNOWN]),
            other => panic!("expected a token refusal, got {other:?}"),
        }
    }
    assert_eq!(app.hasher.hashes(), before, "no hash for a bogus token");
    // A real one still costs exactly one.
    let link = app.auth.reset_link("bogus-check").await;
    assert!(matches!(link, Err(Error::NotFound)));
    app.register("realtoken").await;
    let link = app.auth.reset_link("realtoken").await.unwrap();
    let token = link.split("#token=").nth(1).unwrap().to_owned();
    let before = app.hasher.hashes();
    app.auth
        .reset_password(
            &ctx(),
            domain::ResetPasswordInput {
                token,
                new_password: "Better456".into(),
            },
        )
        .await
        .unwrap();
    assert_eq!(app.hasher.hashes(), before + 1);
}

// ---- round 2, item 3: ARCANA_REQUIRE_VERIFIED_EMAIL holds for sessions ---------------------

/// The old code checked the flag at password login only: the session opened at registration
/// refreshed and edited the profile forever (both answered Ok). Now such a session may read
/// the account and end sessions; everything else, refresh included, is EMAIL_NOT_VERIFIED
/// until the address is verified — and again after an email change un-verifies it.
#[tokio::test]
async fn an_unverified_session_can_only_read_until_verified() {
    let mut config = config();
    config.recovery.require_verified_email = true;
    let app = TestApp::with_config(config).await;
    let (_, boss) = app.admin("boss").await;
    let (s, p) = app.user("pending").await;
    let name = |n: &str| UserPatch {
        first_name: Some(Some(n.into())),
        ..UserPatch::default()
    };
    let e = app
        .users
        .update_user(&by(&p), p.user_id, name("Pat"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    let e = app.users.get_user(&by(&p), p.user_id).await.unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    let e = app.auth.list_sessions(&by(&p)).await.unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    let e = app
        .auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    // Reading the account still works.
    assert_eq!(app.auth.me(&by(&p)).await.unwrap().username, "pending");

    // Verified: the same refresh token renews the session; edits work.
    app.users.verify_user(&by(&boss), p.user_id).await.unwrap();
    let renewed = app
        .auth
        .refresh(&ctx(), &s.tokens.refresh_token)
        .await
        .unwrap();
    let p = app.principal(&renewed);
    app.users
        .update_user(&by(&p), p.user_id, name("Pat"))
        .await
        .unwrap();

    // An email change un-verifies the account: the session is read-only again.
    app.users
        .update_user(
            &by(&p),
            p.user_id,
            UserPatch {
                email: Some("pending2@example.com".into()),
                current_password: Some(PASSWORD.into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let e = app
        .users
        .update_user(&by(&p), p.user_id, name("Again"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    let e = app
        .auth
        .refresh(&ctx(), &renewed.tokens.refresh_token)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::EmailNotVerified), "{e:?}");
    app.auth.logout(&by(&p)).await.unwrap();
}

// ---- round 2, item 2: lockout per (account, client network) ---------------------------------

/// A stranger's guesses lock the stranger's network, never the owner's: failures are counted per
/// (account, IPv4 /24 or IPv6 /64).
#[tokio::test]
async fn strangers_cannot_lock_the_owner_out() {
    let app = TestApp::new().await;
    app.register("owner").await;
    for _ in 0..5 {
        let e = app
            .login_from("203.0.113.7", "owner", "Wrong-password-1")
            .await
            .unwrap_err();
        assert!(matches!(e, Error::InvalidCredentials), "{e:?}");
    }
    // The attacker's network is locked, its neighbours in the /24 too, without a hash.
    let hashed = app.hasher.verifications();
    for ip in ["203.0.113.7", "203.0.113.200"] {
        let e = app.login_from(ip, "owner", PASSWORD).await.unwrap_err();
        assert!(matches!(e, Error::Locked { .. }), "{ip}: {e:?}");
    }
    assert_eq!(app.hasher.verifications(), hashed);
    // The owner, elsewhere, signs in (the old code answered LOCKED here).
    app.login_from("198.51.100.20", "owner", PASSWORD)
        .await
        .unwrap();
    // IPv6: one /64 is one network, the next /64 another.
    for _ in 0..5 {
        app.login_from("2001:db8:1:2::1", "owner", "Wrong-password-1")
            .await
            .unwrap_err();
    }
    let e = app
        .login_from("2001:db8:1:2:ffff::9", "owner", PASSWORD)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Locked { .. }), "{e:?}");
    app.login_from("2001:db8:1:3::1", "owner", PASSWORD)
        .await
        .unwrap();
}

/// Guesses from many networks slow the account down (a capped delay before the hash) instead of
/// locking it; a network the owner signed in from within 30 days is not slowed.
#[tokio::test]
async fn many_networks_slow_the_account_down_and_spare_known_networks() {
    let app = TestApp::new().await;
    app.register("target").await;
    // `n` wrong passwords for "target", each from its own /24 (10.<i>.<subnet>.1).
    let strangers = async |subnet: u8, n: u8| {
        for i in 0..n {
            let e = app
                .login_from(&format!("10.{i}.{subnet}.1"), "target", "Wrong-password-1")
                .await
                .unwrap_err();
            assert!(matches!(e, Error::InvalidCredentials), "network {i}: {e:?}");
        }
    };
    app.login_from("198.51.100.20", "target", PASSWORD)
        .await
        .unwrap();
    app.clock.advance_secs(24 * 3600);
    strangers(0, 40).await;
    let slowed = app.clock.paused();
    assert!(!slowed.is_empty(), "40 failures slowed nothing down");
    assert!(
        slowed.iter().all(|d| *d <= Duration::from_secs(2)),
        "{slowed:?}"
    );
    assert_eq!(*slowed.last().unwrap(), Duration::from_secs(2));
    // An unknown network is slowed but lets the right password in.
    app.clock.take_paused();
    app.login_from("172.16.5.5", "target", PASSWORD)
        .await
        .unwrap();
    assert_eq!(app.clock.take_paused(), [Duration::from_secs(2)]);
    // That success reset the account's count: the next stranger is not slowed.
    app.login_from("10.99.0.1", "target", "Wrong-password-1")
        .await
        .unwrap_err();
    assert!(app.clock.take_paused().is_empty());
    strangers(1, 40).await;
    app.clock.take_paused();
    // The known network (success a day ago) is not slowed.
    app.login_from("198.51.100.77", "target", PASSWORD)
        .await
        .unwrap();
    assert!(app.clock.take_paused().is_empty());
    // After 30 days without a success from it, a network is a stranger again.
    strangers(2, 40).await;
    app.clock.advance_secs(31 * 24 * 3600);
    strangers(3, 10).await;
    app.clock.take_paused();
    app.login_from("198.51.100.77", "target", PASSWORD)
        .await
        .unwrap();
    assert_eq!(app.clock.take_paused(), [Duration::from_secs(2)]);
}

/// The current-password checks (password change, email change) count per network too: a
/// stranger's guesses at login do not block the owner's change from their own network.
#[tokio::test]
async fn the_current_password_check_is_counted_per_network() {
    let app = TestApp::new().await;
    let (_, p) = app.user("mover").await;
    for _ in 0..6 {
        app.login_from("203.0.113.7", "mover", "Wrong-password-1")
            .await
            .unwrap_err();
    }
    app.users
        .change_password(
            &by(&p),
            p.user_id,
            PasswordInput {
                current_password: Some(PASSWORD.into()),
                new_password: "Brand-new-pass-9".into(),
            },
        )
        .await
        .unwrap();
}
