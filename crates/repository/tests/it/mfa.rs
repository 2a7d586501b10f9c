//! Second factors in the repository contract (`MfaRepository`): a TOTP secret pending until a
//! first code confirms it, steps that only move forward, recovery codes spent once and replaced
//! whole, removal (with the sessions when asked) in one transaction with its audit events and
//! mail, the single-use pending second step of a login, passkeys (added, renamed and deleted by
//! their owner only, with their audit events and mail) and the single-use WebAuthn ceremonies.
//! Every backend, and through the gRPC boundary; the foreign keys per backend.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use domain::{
    AuditQuery, CeremonyKind, ConflictKind, Error, FactorRemoval, LockoutPolicy, LoginStart,
    MailClaim, MfaChallenge, MfaFactors, MfaMethod, MfaRepository, OutgoingMail, PasskeyChange,
    RecoveryCodeSet, RevokeReason, StoredPasskey, StoredTotp, TotpConfirmation, TotpEnrolment,
    UserId, UserRepository, WebauthnCeremony,
};
use repository::Backend;
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        a_pending_secret_is_replaced_and_a_confirmed_one_refused,
        a_confirmation_needs_the_pending_secret,
        a_confirmation_writes_the_codes_the_audit_and_the_mail,
        totp_steps_only_move_forward,
        concurrent_uses_of_one_step_let_one_through,
        recovery_codes_are_replaced_whole,
        a_recovery_code_is_spent_once_by_its_owner,
        removing_nothing_writes_nothing,
        removing_factors_revokes_the_sessions_when_asked,
        removing_factors_keeps_the_sessions_otherwise,
        a_challenge_is_spent_once_before_it_expires,
        expired_challenges_are_deleted,
        passkeys_are_added_listed_and_found,
        a_duplicate_or_orphan_passkey_is_refused,
        passkeys_are_renamed_and_deleted_by_their_owner_only,
        a_passkey_use_is_recorded,
        removing_factors_takes_the_passkeys_and_ceremonies,
        a_ceremony_is_taken_once,
        expired_ceremonies_are_deleted,
    ],
    database: [],
);

fn enrolment(user_id: UserId, secret_enc: &str, now: i64, tag: &str) -> TotpEnrolment {
    TotpEnrolment {
        user_id,
        totp: StoredTotp {
            secret_enc: secret_enc.into(),
            created_at: at(now),
            confirmed_at: None,
            last_step: None,
        },
        audit: vec![audit_event(
            "mfa.totp.setup",
            Some(user_id),
            &format!(r#"{{"tag":"{tag}"}}"#),
        )],
    }
}

fn notice(to: &str, now: i64) -> OutgoingMail {
    OutgoingMail {
        id: Uuid::new_v4(),
        recipient: to.to_owned(),
        subject: "security notice".into(),
        text_body: "a second factor changed".into(),
        html_body: "<p>a second factor changed</p>".into(),
        created_at: at(now),
        expires_at: None,
        limit: None,
    }
}

fn codes(chars: &[char]) -> Vec<String> {
    chars.iter().map(|c| hash(*c)).collect()
}

fn confirmation(
    user_id: UserId,
    secret_enc: &str,
    step: i64,
    code_chars: &[char],
    mail: Option<OutgoingMail>,
    now: i64,
) -> TotpConfirmation {
    TotpConfirmation {
        user_id,
        secret_enc: secret_enc.into(),
        step,
        recovery_code_hashes: codes(code_chars),
        audit: vec![audit_event("mfa.totp.enabled", Some(user_id), "{}")],
        mail,
        now: at(now),
    }
}

/// A confirmed secret (`enc-<user>`, last step 100) with the recovery codes `code_chars`.
async fn enrolled(db: &Repos, user_id: UserId, code_chars: &[char]) {
    let enc = format!("enc-{user_id}");
    db.mfa
        .begin_totp(enrolment(user_id, &enc, 10, "setup"))
        .await
        .unwrap();
    assert!(
        db.mfa
            .confirm_totp(confirmation(user_id, &enc, 100, code_chars, None, 20))
            .await
            .unwrap()
    );
}

fn removal(user_id: UserId, revoke_sessions: bool, mail: Option<OutgoingMail>) -> FactorRemoval {
    FactorRemoval {
        user_id,
        revoke_sessions,
        audit: vec![audit_event(
            "mfa.removed",
            Some(user_id),
            r#"{"sessions_revoked":null,"by":"test"}"#,
        )],
        mail,
        now: at(50),
    }
}

fn challenge(token: char, user_id: UserId, created: i64, expires: i64) -> MfaChallenge {
    MfaChallenge {
        token_hash: hash(token),
        user_id,
        network: "2001:db8:1:2::/64".into(),
        credential_version: 3,
        created_at: at(created),
        expires_at: at(expires),
        used_at: None,
    }
}

fn claim(now: i64) -> MailClaim {
    MailClaim {
        worker: "w".into(),
        now: at(now),
        lease: Duration::from_secs(60),
        limit: 10,
    }
}

/// `<type> <details>` of every audit event, sorted.
async fn audit_log(db: &Repos) -> Vec<String> {
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    let mut seen: Vec<String> = events
        .items
        .iter()
        .map(|e| format!("{} {}", e.r#type, e.details.as_deref().unwrap_or("")))
        .collect();
    seen.sort();
    seen
}

/// The details of the one `mfa.removed` event, as written.
async fn removal_details(db: &Repos) -> serde_json::Value {
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    let removed: Vec<_> = events
        .items
        .iter()
        .filter(|e| e.r#type == "mfa.removed")
        .collect();
    assert_eq!(removed.len(), 1, "{:?}", events.items);
    serde_json::from_str(removed[0].details.as_deref().unwrap()).unwrap()
}

async fn a_pending_secret_is_replaced_and_a_confirmed_one_refused(db: Repos) {
    let u = db.users.create(new_user("enroller")).await.unwrap();
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors::default()
    );
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "first"))
        .await
        .unwrap();
    let pending = StoredTotp {
        secret_enc: "enc-1".into(),
        created_at: at(10),
        confirmed_at: None,
        last_step: None,
    };
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors {
            totp: Some(pending),
            recovery_codes_left: 0,
            passkeys: 0,
        }
    );
    // Again: the pending secret is replaced, stored as pending whatever the enrolment says.
    let mut second = enrolment(u.id, "enc-2", 15, "second");
    second.totp.confirmed_at = Some(at(15));
    second.totp.last_step = Some(7);
    db.mfa.begin_totp(second).await.unwrap();
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    let totp = factors.totp.clone().unwrap();
    assert_eq!(
        (
            totp.secret_enc.as_str(),
            totp.created_at,
            totp.confirmed_at,
            totp.last_step
        ),
        ("enc-2", at(15), None, None)
    );
    assert!(!factors.any());
    // The first secret is gone: it confirms nothing.
    assert!(
        !db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 100, &['a'], None, 20))
            .await
            .unwrap()
    );
    assert!(
        db.mfa
            .confirm_totp(confirmation(u.id, "enc-2", 100, &['a'], None, 20))
            .await
            .unwrap()
    );

    // Confirmed: a new enrolment is refused and changes nothing.
    match db
        .mfa
        .begin_totp(enrolment(u.id, "enc-3", 30, "refused"))
        .await
    {
        Err(Error::Conflict {
            kind: ConflictKind::NotApplicable,
            ..
        }) => {}
        other => panic!("expected a not-applicable conflict, got {other:?}"),
    }
    let totp = db.mfa.find_factors(u.id).await.unwrap().totp.unwrap();
    assert_eq!(
        (totp.secret_enc.as_str(), totp.confirmed_at, totp.last_step),
        ("enc-2", Some(at(20)), Some(100))
    );

    // No such user, or a deleted one.
    let ghost = Uuid::new_v4();
    match db
        .mfa
        .begin_totp(enrolment(ghost, "enc-x", 30, "ghost"))
        .await
    {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert_eq!(
        db.mfa.find_factors(ghost).await.unwrap(),
        MfaFactors::default()
    );
    let gone = db.users.create(new_user("gone")).await.unwrap();
    assert!(db.users.soft_delete(gone.id, at(5)).await.unwrap());
    match db
        .mfa
        .begin_totp(enrolment(gone.id, "enc-x", 30, "deleted"))
        .await
    {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound for a deleted user, got {other:?}"),
    }
    assert_eq!(
        db.mfa.find_factors(gone.id).await.unwrap(),
        MfaFactors::default()
    );

    assert_eq!(
        audit_log(&db).await,
        [
            "mfa.totp.enabled {}",
            r#"mfa.totp.setup {"tag":"first"}"#,
            r#"mfa.totp.setup {"tag":"second"}"#,
        ],
        "the refused enrolments wrote no event"
    );
}

async fn a_confirmation_needs_the_pending_secret(db: Repos) {
    let u = db.users.create(new_user("confirmer")).await.unwrap();
    // Nothing pending at all.
    assert!(
        !db.mfa
            .confirm_totp(confirmation(
                u.id,
                "enc-1",
                100,
                &['a'],
                Some(notice(&u.email, 20)),
                20
            ))
            .await
            .unwrap()
    );
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "setup"))
        .await
        .unwrap();
    // A stale secret (replaced meanwhile): nothing written, no codes, no event, no mail.
    assert!(
        !db.mfa
            .confirm_totp(confirmation(
                u.id,
                "enc-0",
                100,
                &['a', 'b'],
                Some(notice(&u.email, 20)),
                20
            ))
            .await
            .unwrap()
    );
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    assert_eq!(factors.totp.unwrap().confirmed_at, None);
    assert_eq!(factors.recovery_codes_left, 0);
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('a'), at(21))
            .await
            .unwrap()
    );
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 0);
    assert_eq!(audit_log(&db).await, [r#"mfa.totp.setup {"tag":"setup"}"#]);

    assert!(
        db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 100, &['a', 'b'], None, 20))
            .await
            .unwrap()
    );
    // Already confirmed: a second confirmation (another step, other codes) changes nothing.
    assert!(
        !db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 200, &['x', 'y', 'z'], None, 30))
            .await
            .unwrap()
    );
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    let totp = factors.totp.unwrap();
    assert_eq!(
        (totp.confirmed_at, totp.last_step),
        (Some(at(20)), Some(100))
    );
    assert_eq!(factors.recovery_codes_left, 2);
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('x'), at(31))
            .await
            .unwrap()
    );
    assert!(
        db.mfa
            .use_recovery_code(u.id, &hash('a'), at(31))
            .await
            .unwrap()
    );
}

async fn a_confirmation_writes_the_codes_the_audit_and_the_mail(db: Repos) {
    let u = db.users.create(new_user("careful")).await.unwrap();
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "setup"))
        .await
        .unwrap();
    let mail = notice(&u.email, 20);
    let mail_id = mail.id;
    let all = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j'];
    assert!(
        db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 4242, &all, Some(mail), 20))
            .await
            .unwrap()
    );
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    assert!(factors.totp_enabled());
    let totp = factors.totp.unwrap();
    assert_eq!(
        (
            totp.secret_enc.as_str(),
            totp.created_at,
            totp.confirmed_at,
            totp.last_step
        ),
        ("enc-1", at(10), Some(at(20)), Some(4242))
    );
    assert_eq!(factors.recovery_codes_left, 10);
    assert_eq!(
        audit_log(&db).await,
        ["mfa.totp.enabled {}", r#"mfa.totp.setup {"tag":"setup"}"#]
    );
    let mails = db.recovery.claim_mail(claim(21)).await.unwrap();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        (
            mails[0].id,
            mails[0].recipient.as_str(),
            mails[0].subject.as_str()
        ),
        (mail_id, u.email.as_str(), "security notice")
    );
    for c in all {
        assert!(
            db.mfa
                .use_recovery_code(u.id, &hash(c), at(22))
                .await
                .unwrap()
        );
    }
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        0
    );
}

async fn totp_steps_only_move_forward(db: Repos) {
    let u = db.users.create(new_user("stepper")).await.unwrap();
    // No secret, then a pending one: no step is accepted.
    assert!(!db.mfa.use_totp_step(u.id, 1).await.unwrap());
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "setup"))
        .await
        .unwrap();
    assert!(!db.mfa.use_totp_step(u.id, 1).await.unwrap());
    assert_eq!(
        db.mfa
            .find_factors(u.id)
            .await
            .unwrap()
            .totp
            .unwrap()
            .last_step,
        None
    );
    assert!(
        db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 100, &['a'], None, 20))
            .await
            .unwrap()
    );
    // The confirming code's step is spent.
    assert!(!db.mfa.use_totp_step(u.id, 100).await.unwrap());
    assert!(!db.mfa.use_totp_step(u.id, 99).await.unwrap());
    assert!(db.mfa.use_totp_step(u.id, 101).await.unwrap());
    assert!(!db.mfa.use_totp_step(u.id, 101).await.unwrap(), "a replay");
    assert!(
        !db.mfa.use_totp_step(u.id, 100).await.unwrap(),
        "an older step"
    );
    assert!(db.mfa.use_totp_step(u.id, 105).await.unwrap());
    assert_eq!(
        db.mfa
            .find_factors(u.id)
            .await
            .unwrap()
            .totp
            .unwrap()
            .last_step,
        Some(105)
    );
    // Another account's steps are its own.
    let other = db.users.create(new_user("other_stepper")).await.unwrap();
    enrolled(&db, other.id, &[]).await;
    assert!(db.mfa.use_totp_step(other.id, 101).await.unwrap());
    assert!(!db.mfa.use_totp_step(Uuid::new_v4(), 1000).await.unwrap());
}

async fn concurrent_uses_of_one_step_let_one_through(db: Repos) {
    let u = db.users.create(new_user("racer")).await.unwrap();
    enrolled(&db, u.id, &[]).await;
    for step in [200, 201, 202] {
        let calls: Vec<_> = (0..6)
            .map(|_| {
                let mfa = db.mfa.clone();
                tokio::spawn(async move { mfa.use_totp_step(u.id, step).await })
            })
            .collect();
        let mut won = 0;
        for call in calls {
            if call.await.unwrap().unwrap() {
                won += 1;
            }
        }
        assert_eq!(won, 1, "step {step}");
    }
}

async fn recovery_codes_are_replaced_whole(db: Repos) {
    let u = db.users.create(new_user("replacer")).await.unwrap();
    let set = |chars: &[char], tag: &str| RecoveryCodeSet {
        user_id: u.id,
        code_hashes: codes(chars),
        audit: vec![audit_event(
            "mfa.recovery_codes.regenerated",
            Some(u.id),
            &format!(r#"{{"tag":"{tag}"}}"#),
        )],
        now: at(40),
    };
    // Without a confirmed secret: refused, nothing written.
    assert!(
        !db.mfa
            .replace_recovery_codes(set(&['a'], "none"))
            .await
            .unwrap()
    );
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "setup"))
        .await
        .unwrap();
    assert!(
        !db.mfa
            .replace_recovery_codes(set(&['a'], "pending"))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        0
    );
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('a'), at(41))
            .await
            .unwrap()
    );

    assert!(
        db.mfa
            .confirm_totp(confirmation(u.id, "enc-1", 100, &['a', 'b', 'c'], None, 20))
            .await
            .unwrap()
    );
    assert!(
        db.mfa
            .use_recovery_code(u.id, &hash('a'), at(30))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        2
    );
    assert!(
        db.mfa
            .replace_recovery_codes(set(&['d', 'e'], "new"))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        2
    );
    for old in ['b', 'c'] {
        assert!(
            !db.mfa
                .use_recovery_code(u.id, &hash(old), at(41))
                .await
                .unwrap(),
            "the old set is dead"
        );
    }
    assert!(
        db.mfa
            .use_recovery_code(u.id, &hash('d'), at(41))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        1
    );
    // The secret stays as it was.
    let totp = db.mfa.find_factors(u.id).await.unwrap().totp.unwrap();
    assert_eq!(
        (totp.confirmed_at, totp.last_step),
        (Some(at(20)), Some(100))
    );
    assert_eq!(
        audit_log(&db).await,
        [
            "mfa.recovery_codes.regenerated {\"tag\":\"new\"}",
            "mfa.totp.enabled {}",
            r#"mfa.totp.setup {"tag":"setup"}"#,
        ]
    );
}

async fn a_recovery_code_is_spent_once_by_its_owner(db: Repos) {
    let u = db.users.create(new_user("holder")).await.unwrap();
    let other = db.users.create(new_user("stranger")).await.unwrap();
    enrolled(&db, u.id, &['a', 'b']).await;
    enrolled(&db, other.id, &['c']).await;
    assert!(
        !db.mfa
            .use_recovery_code(other.id, &hash('a'), at(30))
            .await
            .unwrap(),
        "another account's code"
    );
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('f'), at(30))
            .await
            .unwrap()
    );
    assert!(
        db.mfa
            .use_recovery_code(u.id, &hash('a'), at(30))
            .await
            .unwrap()
    );
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('a'), at(31))
            .await
            .unwrap(),
        "spent"
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().recovery_codes_left,
        1
    );
    assert_eq!(
        db.mfa
            .find_factors(other.id)
            .await
            .unwrap()
            .recovery_codes_left,
        1
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().methods(),
        [domain::MfaMethod::Totp, domain::MfaMethod::RecoveryCode]
    );
    assert!(
        db.mfa
            .use_recovery_code(u.id, &hash('b'), at(32))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap().methods(),
        [domain::MfaMethod::Totp]
    );
}

async fn removing_nothing_writes_nothing(db: Repos) {
    let u = db.users.create(new_user("bare")).await.unwrap();
    let s = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap();
    assert!(
        !db.mfa
            .remove_factors(removal(u.id, true, Some(notice(&u.email, 50))))
            .await
            .unwrap()
    );
    assert!(
        db.sessions
            .find(s.id)
            .await
            .unwrap()
            .unwrap()
            .is_live(at(51))
    );
    assert!(audit_log(&db).await.is_empty());
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 0);
    assert!(
        !db.mfa
            .remove_factors(removal(Uuid::new_v4(), true, None))
            .await
            .unwrap()
    );

    // A pending secret is a factor to remove.
    db.mfa
        .begin_totp(enrolment(u.id, "enc-1", 10, "setup"))
        .await
        .unwrap();
    assert!(
        db.mfa
            .remove_factors(removal(u.id, false, None))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors::default()
    );
    assert!(
        !db.mfa
            .remove_factors(removal(u.id, false, None))
            .await
            .unwrap(),
        "removed already"
    );
}

async fn removing_factors_revokes_the_sessions_when_asked(db: Repos) {
    let u = db.users.create(new_user("remover")).await.unwrap();
    let other = db.users.create(new_user("bystander")).await.unwrap();
    enrolled(&db, u.id, &['a', 'b']).await;
    enrolled(&db, other.id, &['c']).await;
    let live = [
        db.sessions
            .create(new_session(u.id, 1, 3600))
            .await
            .unwrap()
            .id,
        db.sessions
            .create(new_session(u.id, 2, 3600))
            .await
            .unwrap()
            .id,
    ];
    let ended = db
        .sessions
        .create(new_session(u.id, 3, 3600))
        .await
        .unwrap()
        .id;
    assert!(
        db.sessions
            .revoke(ended, RevokeReason::Logout, at(5))
            .await
            .unwrap()
    );
    let theirs = db
        .sessions
        .create(new_session(other.id, 1, 3600))
        .await
        .unwrap()
        .id;
    db.mfa
        .create_mfa_challenge(challenge('m', u.id, 40, 340))
        .await
        .unwrap();
    db.mfa
        .create_mfa_challenge(challenge('n', other.id, 40, 340))
        .await
        .unwrap();

    let mail = notice(&u.email, 50);
    let mail_id = mail.id;
    assert!(
        db.mfa
            .remove_factors(removal(u.id, true, Some(mail)))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors::default()
    );
    assert!(
        !db.mfa
            .use_recovery_code(u.id, &hash('b'), at(51))
            .await
            .unwrap()
    );
    assert!(!db.mfa.use_totp_step(u.id, 1000).await.unwrap());
    assert_eq!(
        db.mfa.find_mfa_challenge(&hash('m')).await.unwrap(),
        None,
        "its pending logins go"
    );
    for id in live {
        let s = db.sessions.find(id).await.unwrap().unwrap();
        assert_eq!(s.revoked_at, Some(at(50)));
        assert_eq!(
            s.revoked_reason.as_deref(),
            Some(RevokeReason::FactorsRemoved.as_str())
        );
    }
    let s = db.sessions.find(ended).await.unwrap().unwrap();
    assert_eq!(
        (s.revoked_at, s.revoked_reason.as_deref()),
        (Some(at(5)), Some("logout")),
        "a revoked session keeps its reason"
    );
    // Another account keeps everything.
    assert!(
        db.sessions
            .find(theirs)
            .await
            .unwrap()
            .unwrap()
            .is_live(at(51))
    );
    assert!(db.mfa.find_factors(other.id).await.unwrap().totp_enabled());
    assert!(
        db.mfa
            .find_mfa_challenge(&hash('n'))
            .await
            .unwrap()
            .is_some()
    );

    assert_eq!(
        removal_details(&db).await,
        serde_json::json!({"sessions_revoked": 2, "by": "test"})
    );
    let mails = db.recovery.claim_mail(claim(51)).await.unwrap();
    assert_eq!(mails.iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id]);
}

async fn removing_factors_keeps_the_sessions_otherwise(db: Repos) {
    let u = db.users.create(new_user("keeper")).await.unwrap();
    enrolled(&db, u.id, &['a']).await;
    let s = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap()
        .id;
    assert!(
        db.mfa
            .remove_factors(removal(u.id, false, Some(notice(&u.email, 50))))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors::default()
    );
    let session = db.sessions.find(s).await.unwrap().unwrap();
    assert_eq!((session.revoked_at, session.revoked_reason), (None, None));
    assert_eq!(
        removal_details(&db).await,
        serde_json::json!({"sessions_revoked": 0, "by": "test"})
    );
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 1);
    // Enrolment starts over.
    db.mfa
        .begin_totp(enrolment(u.id, "enc-again", 60, "again"))
        .await
        .unwrap();
    assert!(!db.mfa.find_factors(u.id).await.unwrap().any());
}

async fn a_challenge_is_spent_once_before_it_expires(db: Repos) {
    let u = db.users.create(new_user("challenged")).await.unwrap();
    let c = challenge('a', u.id, 10, 310);
    db.mfa.create_mfa_challenge(c.clone()).await.unwrap();
    assert_eq!(
        db.mfa.find_mfa_challenge(&hash('a')).await.unwrap(),
        Some(c.clone())
    );
    assert!(
        db.mfa
            .spend_mfa_challenge(&hash('a'), at(20))
            .await
            .unwrap()
    );
    assert!(
        !db.mfa
            .spend_mfa_challenge(&hash('a'), at(21))
            .await
            .unwrap(),
        "spent"
    );
    let spent = db
        .mfa
        .find_mfa_challenge(&hash('a'))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        spent,
        MfaChallenge {
            used_at: Some(at(20)),
            ..c
        }
    );

    db.mfa
        .create_mfa_challenge(challenge('b', u.id, 10, 310))
        .await
        .unwrap();
    assert!(
        !db.mfa
            .spend_mfa_challenge(&hash('b'), at(310))
            .await
            .unwrap(),
        "expired at its expiry"
    );
    assert!(
        !db.mfa
            .spend_mfa_challenge(&hash('b'), at(400))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa
            .find_mfa_challenge(&hash('b'))
            .await
            .unwrap()
            .unwrap()
            .used_at,
        None
    );
    assert!(
        db.mfa
            .spend_mfa_challenge(&hash('b'), at(309))
            .await
            .unwrap()
    );

    assert_eq!(db.mfa.find_mfa_challenge(&hash('f')).await.unwrap(), None);
    assert!(
        !db.mfa
            .spend_mfa_challenge(&hash('f'), at(20))
            .await
            .unwrap()
    );
}

async fn expired_challenges_are_deleted(db: Repos) {
    let u = db.users.create(new_user("returning")).await.unwrap();
    let other = db.users.create(new_user("elsewhere")).await.unwrap();
    db.mfa
        .create_mfa_challenge(challenge('a', u.id, 0, 300))
        .await
        .unwrap();
    db.mfa
        .create_mfa_challenge(challenge('b', u.id, 100, 400))
        .await
        .unwrap();
    db.mfa
        .create_mfa_challenge(challenge('c', other.id, 0, 300))
        .await
        .unwrap();
    // A new login of the account at 350: its challenges expired before then go.
    db.mfa
        .create_mfa_challenge(challenge('d', u.id, 350, 650))
        .await
        .unwrap();
    assert_eq!(db.mfa.find_mfa_challenge(&hash('a')).await.unwrap(), None);
    assert!(
        db.mfa
            .find_mfa_challenge(&hash('b'))
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        db.mfa
            .find_mfa_challenge(&hash('c'))
            .await
            .unwrap()
            .is_some(),
        "another account's stay"
    );
    // The purge takes every challenge that expired before its cutoff.
    db.recovery.purge_recovery(at(500)).await.unwrap();
    for gone in ['b', 'c'] {
        assert_eq!(db.mfa.find_mfa_challenge(&hash(gone)).await.unwrap(), None);
    }
    assert!(
        db.mfa
            .find_mfa_challenge(&hash('d'))
            .await
            .unwrap()
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// passkeys and WebAuthn ceremonies

/// Passkey `n` of `user_id`: credential id `cred-<n>`, created at `created`.
fn passkey(n: u128, user_id: UserId, created: i64) -> StoredPasskey {
    StoredPasskey {
        id: Uuid::from_u128(n),
        user_id,
        credential_id: format!("cred-{n}"),
        name: format!("key {n}"),
        credential: format!(r#"{{"cred":{n},"counter":0}}"#),
        created_at: at(created),
        last_used_at: None,
    }
}

/// A change of a passkey of `user_id`: one `action` event tagged `tag`, and `mail`.
fn change(user_id: UserId, action: &str, tag: &str, mail: Option<OutgoingMail>) -> PasskeyChange {
    PasskeyChange {
        user_id,
        audit: vec![audit_event(
            action,
            Some(user_id),
            &format!(r#"{{"tag":"{tag}"}}"#),
        )],
        mail,
        now: at(50),
    }
}

fn ceremony(
    n: u128,
    kind: CeremonyKind,
    user_id: Option<UserId>,
    created: i64,
    expires: i64,
) -> WebauthnCeremony {
    WebauthnCeremony {
        id: Uuid::from_u128(n),
        kind,
        user_id,
        state: format!(r#"{{"challenge":"c{n}"}}"#),
        created_at: at(created),
        expires_at: at(expires),
        used_at: None,
    }
}

fn login(username: &str, now: i64) -> LoginStart {
    LoginStart {
        login: username.into(),
        network: NET.into(),
        policy: LockoutPolicy::default(),
        now: at(now),
    }
}

async fn passkeys_are_added_listed_and_found(db: Repos) {
    let u = db.users.create(new_user("keyholder")).await.unwrap();
    let other = db.users.create(new_user("neighbour")).await.unwrap();
    assert!(db.mfa.list_passkeys(u.id).await.unwrap().is_empty());
    // Oldest first, then by id.
    let newest = passkey(1, u.id, 20);
    let (first, second) = (passkey(2, u.id, 10), passkey(3, u.id, 10));
    let mail = notice(&u.email, 50);
    let mail_id = mail.id;
    db.mfa
        .add_passkey(
            newest.clone(),
            change(u.id, "mfa.passkey.added", "1", Some(mail)),
        )
        .await
        .unwrap();
    for p in [second.clone(), first.clone()] {
        let tag = p.id.as_u128().to_string();
        db.mfa
            .add_passkey(p, change(u.id, "mfa.passkey.added", &tag, None))
            .await
            .unwrap();
    }
    let theirs = passkey(4, other.id, 5);
    db.mfa
        .add_passkey(
            theirs.clone(),
            change(other.id, "mfa.passkey.added", "4", None),
        )
        .await
        .unwrap();
    assert_eq!(
        db.mfa.list_passkeys(u.id).await.unwrap(),
        [first.clone(), second.clone(), newest.clone()]
    );
    assert_eq!(
        db.mfa.list_passkeys(other.id).await.unwrap(),
        vec![theirs.clone()]
    );
    assert!(
        db.mfa
            .list_passkeys(Uuid::new_v4())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        db.mfa.find_passkey("cred-3").await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(db.mfa.find_passkey("cred-4").await.unwrap(), Some(theirs));
    assert_eq!(db.mfa.find_passkey("cred-9").await.unwrap(), None);
    assert_eq!(
        db.mfa.find_passkey("CRED-3").await.unwrap(),
        None,
        "credential ids are case-sensitive"
    );

    // Passkeys alone are a second factor.
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    assert_eq!(
        factors,
        MfaFactors {
            totp: None,
            recovery_codes_left: 0,
            passkeys: 3,
        }
    );
    assert!(factors.any());
    assert_eq!(factors.methods(), [MfaMethod::Passkey]);
    let begun = db.users.begin_login(login("keyholder", 60)).await.unwrap();
    assert_eq!(
        begun.unwrap().factors,
        factors,
        "begin_login reads them too"
    );
    // With TOTP and recovery codes: in the order offered.
    enrolled(&db, u.id, &['a']).await;
    let factors = db.mfa.find_factors(u.id).await.unwrap();
    assert_eq!(factors.passkeys, 3);
    assert_eq!(
        factors.methods(),
        [MfaMethod::Totp, MfaMethod::Passkey, MfaMethod::RecoveryCode]
    );
    let begun = db.users.begin_login(login("keyholder", 61)).await.unwrap();
    assert_eq!(begun.unwrap().factors, factors);
    assert_eq!(db.mfa.find_factors(other.id).await.unwrap().passkeys, 1);

    let log: Vec<String> = audit_log(&db)
        .await
        .into_iter()
        .filter(|e| e.starts_with("mfa.passkey"))
        .collect();
    assert_eq!(
        log,
        [1, 2, 3, 4].map(|n| format!(r#"mfa.passkey.added {{"tag":"{n}"}}"#))
    );
    let mails = db.recovery.claim_mail(claim(51)).await.unwrap();
    assert_eq!(mails.iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id]);
}

async fn a_duplicate_or_orphan_passkey_is_refused(db: Repos) {
    let u = db.users.create(new_user("first")).await.unwrap();
    let other = db.users.create(new_user("second")).await.unwrap();
    let p = passkey(1, u.id, 10);
    db.mfa
        .add_passkey(p.clone(), change(u.id, "mfa.passkey.added", "ok", None))
        .await
        .unwrap();
    // The same credential id again, for its owner or anyone else: refused, nothing written.
    for (id, owner) in [(2, u.id), (3, other.id)] {
        let again = StoredPasskey {
            credential_id: p.credential_id.clone(),
            ..passkey(id, owner, 20)
        };
        let mail = notice("x@example.com", 20);
        match db
            .mfa
            .add_passkey(again, change(owner, "mfa.passkey.added", "dup", Some(mail)))
            .await
        {
            Err(Error::Conflict {
                kind: ConflictKind::Duplicate,
                message,
            }) => assert_eq!(message, "this passkey is registered already"),
            other => panic!("expected a duplicate conflict, got {other:?}"),
        }
    }
    assert_eq!(db.mfa.list_passkeys(u.id).await.unwrap(), vec![p.clone()]);
    assert!(db.mfa.list_passkeys(other.id).await.unwrap().is_empty());
    assert_eq!(
        db.mfa.find_passkey(&p.credential_id).await.unwrap(),
        Some(p)
    );

    // No such user, or a deleted one.
    let ghost = Uuid::new_v4();
    match db
        .mfa
        .add_passkey(
            passkey(4, ghost, 20),
            change(ghost, "mfa.passkey.added", "ghost", None),
        )
        .await
    {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    let gone = db.users.create(new_user("gone")).await.unwrap();
    assert!(db.users.soft_delete(gone.id, at(5)).await.unwrap());
    match db
        .mfa
        .add_passkey(
            passkey(5, gone.id, 20),
            change(
                gone.id,
                "mfa.passkey.added",
                "deleted",
                Some(notice(&u.email, 20)),
            ),
        )
        .await
    {
        Err(Error::NotFound) => {}
        other => panic!("expected NotFound for a deleted user, got {other:?}"),
    }
    for n in [4, 5] {
        assert_eq!(
            db.mfa.find_passkey(&format!("cred-{n}")).await.unwrap(),
            None
        );
    }
    assert_eq!(db.mfa.find_factors(gone.id).await.unwrap().passkeys, 0);
    assert_eq!(
        audit_log(&db)
            .await
            .into_iter()
            .filter(|e| e.starts_with("mfa."))
            .collect::<Vec<_>>(),
        [r#"mfa.passkey.added {"tag":"ok"}"#],
        "the refused additions wrote no event"
    );
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 0);
}

async fn passkeys_are_renamed_and_deleted_by_their_owner_only(db: Repos) {
    let u = db.users.create(new_user("owner")).await.unwrap();
    let other = db.users.create(new_user("intruder")).await.unwrap();
    let (p, q) = (passkey(1, u.id, 10), passkey(2, u.id, 20));
    for k in [&p, &q] {
        db.mfa
            .add_passkey(k.clone(), change(u.id, "mfa.passkey.added", "add", None))
            .await
            .unwrap();
    }
    let before = audit_log(&db).await;

    // Another account's id, or an unknown passkey: nothing written.
    let stranger = change(
        other.id,
        "mfa.passkey.renamed",
        "stranger",
        Some(notice(&other.email, 50)),
    );
    assert!(
        !db.mfa
            .rename_passkey(p.id, "mine now", stranger.clone())
            .await
            .unwrap()
    );
    assert!(!db.mfa.delete_passkey(p.id, stranger).await.unwrap());
    let unknown = change(u.id, "mfa.passkey.renamed", "unknown", None);
    assert!(
        !db.mfa
            .rename_passkey(Uuid::from_u128(9), "nope", unknown.clone())
            .await
            .unwrap()
    );
    assert!(
        !db.mfa
            .delete_passkey(Uuid::from_u128(9), unknown)
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.list_passkeys(u.id).await.unwrap(),
        [p.clone(), q.clone()]
    );
    assert_eq!(audit_log(&db).await, before);
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 0);

    // The owner.
    assert!(
        db.mfa
            .rename_passkey(
                p.id,
                "work laptop",
                change(u.id, "mfa.passkey.renamed", "rename", None)
            )
            .await
            .unwrap()
    );
    let renamed = StoredPasskey {
        name: "work laptop".into(),
        ..p.clone()
    };
    assert_eq!(
        db.mfa.find_passkey(&p.credential_id).await.unwrap(),
        Some(renamed.clone())
    );
    let mail = notice(&u.email, 50);
    let mail_id = mail.id;
    assert!(
        db.mfa
            .delete_passkey(
                q.id,
                change(u.id, "mfa.passkey.deleted", "delete", Some(mail))
            )
            .await
            .unwrap()
    );
    assert!(
        !db.mfa
            .delete_passkey(q.id, change(u.id, "mfa.passkey.deleted", "again", None))
            .await
            .unwrap(),
        "deleted already"
    );
    assert_eq!(db.mfa.list_passkeys(u.id).await.unwrap(), [renamed]);
    assert_eq!(db.mfa.find_passkey(&q.credential_id).await.unwrap(), None);
    assert_eq!(db.mfa.find_factors(u.id).await.unwrap().passkeys, 1);
    let mut expected = before.clone();
    expected.push(r#"mfa.passkey.deleted {"tag":"delete"}"#.to_owned());
    expected.push(r#"mfa.passkey.renamed {"tag":"rename"}"#.to_owned());
    expected.sort();
    assert_eq!(audit_log(&db).await, expected);
    let mails = db.recovery.claim_mail(claim(51)).await.unwrap();
    assert_eq!(mails.iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id]);
}

async fn a_passkey_use_is_recorded(db: Repos) {
    let u = db.users.create(new_user("signer")).await.unwrap();
    let (p, q) = (passkey(1, u.id, 10), passkey(2, u.id, 20));
    for k in [&p, &q] {
        db.mfa
            .add_passkey(k.clone(), change(u.id, "mfa.passkey.added", "add", None))
            .await
            .unwrap();
    }
    let counted = r#"{"cred":1,"counter":7}"#.to_owned();
    assert!(
        db.mfa
            .record_passkey_use(p.id, counted.clone(), at(70))
            .await
            .unwrap()
    );
    let used = StoredPasskey {
        credential: counted,
        last_used_at: Some(at(70)),
        ..p.clone()
    };
    assert_eq!(
        db.mfa.find_passkey(&p.credential_id).await.unwrap(),
        Some(used.clone())
    );
    assert_eq!(
        db.mfa.find_passkey(&q.credential_id).await.unwrap(),
        Some(q.clone()),
        "the other passkey is untouched"
    );
    assert!(
        !db.mfa
            .record_passkey_use(Uuid::from_u128(9), "{}".into(), at(71))
            .await
            .unwrap(),
        "gone"
    );
    assert_eq!(db.mfa.list_passkeys(u.id).await.unwrap(), [used, q]);
}

async fn removing_factors_takes_the_passkeys_and_ceremonies(db: Repos) {
    let u = db.users.create(new_user("unplugged")).await.unwrap();
    let other = db.users.create(new_user("plugged")).await.unwrap();
    db.mfa
        .add_passkey(
            passkey(1, u.id, 10),
            change(u.id, "mfa.passkey.added", "1", None),
        )
        .await
        .unwrap();
    db.mfa
        .add_passkey(
            passkey(2, other.id, 10),
            change(other.id, "mfa.passkey.added", "2", None),
        )
        .await
        .unwrap();
    let ceremonies = [
        ceremony(1, CeremonyKind::Registration, Some(u.id), 40, 340),
        ceremony(2, CeremonyKind::SecondFactor, Some(u.id), 40, 340),
        ceremony(3, CeremonyKind::SecondFactor, Some(other.id), 40, 340),
        ceremony(4, CeremonyKind::Passwordless, None, 40, 340),
    ];
    for c in &ceremonies {
        db.mfa.create_ceremony(c.clone()).await.unwrap();
    }
    let s = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap()
        .id;

    // Passkeys are the only factor: there is something to remove.
    let mail = notice(&u.email, 50);
    let mail_id = mail.id;
    assert!(
        db.mfa
            .remove_factors(removal(u.id, true, Some(mail)))
            .await
            .unwrap()
    );
    assert_eq!(
        db.mfa.find_factors(u.id).await.unwrap(),
        MfaFactors::default()
    );
    assert!(db.mfa.list_passkeys(u.id).await.unwrap().is_empty());
    assert_eq!(db.mfa.find_passkey("cred-1").await.unwrap(), None);
    for c in &ceremonies[..2] {
        assert_eq!(
            db.mfa.take_ceremony(c.id, c.kind, at(60)).await.unwrap(),
            None,
            "its ceremonies go"
        );
    }
    // Another account's, and a passwordless one (nobody's), stay.
    for c in &ceremonies[2..] {
        assert_eq!(
            db.mfa.take_ceremony(c.id, c.kind, at(60)).await.unwrap(),
            Some(WebauthnCeremony {
                used_at: Some(at(60)),
                ..c.clone()
            })
        );
    }
    assert_eq!(db.mfa.find_factors(other.id).await.unwrap().passkeys, 1);
    assert_eq!(
        db.sessions.find(s).await.unwrap().unwrap().revoked_at,
        Some(at(50))
    );
    assert_eq!(
        removal_details(&db).await,
        serde_json::json!({"sessions_revoked": 1, "by": "test"})
    );
    let mails = db.recovery.claim_mail(claim(51)).await.unwrap();
    assert_eq!(mails.iter().map(|m| m.id).collect::<Vec<_>>(), [mail_id]);
    assert!(
        !db.mfa
            .remove_factors(removal(u.id, false, None))
            .await
            .unwrap(),
        "removed already"
    );
}

async fn a_ceremony_is_taken_once(db: Repos) {
    let u = db.users.create(new_user("ceremonial")).await.unwrap();
    let reg = ceremony(1, CeremonyKind::Registration, Some(u.id), 10, 310);
    let solo = ceremony(2, CeremonyKind::Passwordless, None, 10, 310);
    for c in [&reg, &solo] {
        db.mfa.create_ceremony(c.clone()).await.unwrap();
    }
    // Another kind takes nothing, and leaves it.
    for kind in [CeremonyKind::SecondFactor, CeremonyKind::Passwordless] {
        assert_eq!(
            db.mfa.take_ceremony(reg.id, kind, at(20)).await.unwrap(),
            None
        );
    }
    assert_eq!(
        db.mfa
            .take_ceremony(reg.id, CeremonyKind::Registration, at(20))
            .await
            .unwrap(),
        Some(WebauthnCeremony {
            used_at: Some(at(20)),
            ..reg.clone()
        })
    );
    assert_eq!(
        db.mfa
            .take_ceremony(reg.id, CeremonyKind::Registration, at(21))
            .await
            .unwrap(),
        None,
        "taken"
    );
    // Expired at its expiry.
    assert_eq!(
        db.mfa
            .take_ceremony(solo.id, CeremonyKind::Passwordless, at(310))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.mfa
            .take_ceremony(solo.id, CeremonyKind::Passwordless, at(309))
            .await
            .unwrap(),
        Some(WebauthnCeremony {
            used_at: Some(at(309)),
            ..solo
        })
    );
    assert_eq!(
        db.mfa
            .take_ceremony(Uuid::from_u128(9), CeremonyKind::Registration, at(20))
            .await
            .unwrap(),
        None,
        "unknown"
    );
}

async fn expired_ceremonies_are_deleted(db: Repos) {
    let u = db.users.create(new_user("ceremonies")).await.unwrap();
    let kind = CeremonyKind::SecondFactor;
    db.mfa
        .create_ceremony(ceremony(1, kind, Some(u.id), 0, 300))
        .await
        .unwrap();
    db.mfa
        .create_ceremony(ceremony(2, kind, None, 100, 400))
        .await
        .unwrap();
    db.mfa
        .create_ceremony(ceremony(3, kind, Some(u.id), 100, 450))
        .await
        .unwrap();
    // A new ceremony at 350: whoever's, those expired before then go.
    db.mfa
        .create_ceremony(ceremony(4, kind, None, 350, 650))
        .await
        .unwrap();
    // Taken at 200 (before any expiry): only the deleted one is missing.
    assert_eq!(
        db.mfa
            .take_ceremony(Uuid::from_u128(1), kind, at(200))
            .await
            .unwrap(),
        None
    );
    assert!(
        db.mfa
            .take_ceremony(Uuid::from_u128(2), kind, at(200))
            .await
            .unwrap()
            .is_some()
    );
    // The purge takes every ceremony that expired before its cutoff, used or not.
    db.recovery.purge_recovery(at(500)).await.unwrap();
    for gone in [2, 3] {
        assert_eq!(
            db.mfa
                .take_ceremony(Uuid::from_u128(gone), kind, at(200))
                .await
                .unwrap(),
            None
        );
    }
    assert!(
        db.mfa
            .take_ceremony(Uuid::from_u128(4), kind, at(360))
            .await
            .unwrap()
            .is_some()
    );
}

// ---------------------------------------------------------------------------------------------
// the foreign keys: a user deleted from the table takes its factors and challenges along (no
// port deletes a user row: this is the schema's promise, checked per backend)

fn delete_user_row(backend: Backend, url: &str, id: UserId) {
    use diesel::Connection;
    use diesel::connection::SimpleConnection;
    let sql = format!("DELETE FROM users WHERE id = '{id}'");
    match backend {
        Backend::Sqlite => {
            let path = url.strip_prefix("sqlite://").unwrap();
            let mut c = diesel::SqliteConnection::establish(path).unwrap();
            c.batch_execute(&format!("PRAGMA foreign_keys = ON; {sql}"))
                .unwrap();
        }
        Backend::Postgres => diesel::PgConnection::establish(url)
            .unwrap()
            .batch_execute(&sql)
            .unwrap(),
        #[cfg(feature = "mysql")]
        Backend::Mysql => diesel::MysqlConnection::establish(url)
            .unwrap()
            .batch_execute(&sql)
            .unwrap(),
        #[cfg(not(feature = "mysql"))]
        Backend::Mysql => unreachable!("skipped without the mysql feature"),
    }
}

async fn deleting_a_user_takes_its_factors_along(backend: Backend) {
    let Some(t) = repository::testing::TestDb::from_env(backend) else {
        let reason = repository::testing::TestDb::skip_reason(backend).unwrap_or_default();
        let test = format!("deleting_a_user_takes_its_factors_along on {backend}");
        repository::testing::skipped(&test, &reason);
        return;
    };
    let db = t.db().clone();
    let u = UserRepository::create(&db, new_user("doomed"))
        .await
        .unwrap();
    let other = UserRepository::create(&db, new_user("survivor"))
        .await
        .unwrap();
    for id in [u.id, other.id] {
        let enc = format!("enc-{id}");
        db.begin_totp(enrolment(id, &enc, 10, "setup"))
            .await
            .unwrap();
        assert!(
            db.confirm_totp(confirmation(id, &enc, 100, &['a', 'b'], None, 20))
                .await
                .unwrap()
        );
    }
    db.create_mfa_challenge(challenge('m', u.id, 40, 340))
        .await
        .unwrap();
    db.create_mfa_challenge(challenge('n', other.id, 40, 340))
        .await
        .unwrap();

    db.add_passkey(
        passkey(1, u.id, 30),
        change(u.id, "mfa.passkey.added", "1", None),
    )
    .await
    .unwrap();
    db.create_ceremony(ceremony(1, CeremonyKind::Registration, Some(u.id), 40, 340))
        .await
        .unwrap();

    delete_user_row(backend, t.url(), u.id);

    assert_eq!(db.find_passkey("cred-1").await.unwrap(), None);
    assert_eq!(
        db.take_ceremony(Uuid::from_u128(1), CeremonyKind::Registration, at(50))
            .await
            .unwrap(),
        None
    );

    assert_eq!(db.find_by_id(u.id).await.unwrap(), None);
    assert_eq!(db.find_factors(u.id).await.unwrap(), MfaFactors::default());
    assert_eq!(db.find_mfa_challenge(&hash('m')).await.unwrap(), None);
    // Another account keeps its own.
    let theirs = db.find_factors(other.id).await.unwrap();
    assert!(theirs.totp_enabled());
    assert_eq!(theirs.recovery_codes_left, 2);
    assert!(db.find_mfa_challenge(&hash('n')).await.unwrap().is_some());
    // An enrolment for the deleted id is refused: its user is gone.
    assert!(matches!(
        db.begin_totp(enrolment(u.id, "enc-late", 60, "late")).await,
        Err(Error::NotFound)
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_deleting_a_user_takes_its_factors_along() {
    deleting_a_user_takes_its_factors_along(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_deleting_a_user_takes_its_factors_along() {
    deleting_a_user_takes_its_factors_along(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_deleting_a_user_takes_its_factors_along() {
    deleting_a_user_takes_its_factors_along(Backend::Mysql).await;
}
