//! The recovery contract (`RecoveryRepository`): single-use mailed tokens bound to their user,
//! purpose, address and credentials, and the outbox that hands each mail to exactly one worker.
//! Run on every backend and through the gRPC boundary, like the rest of the contract.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashSet;
use std::time::Duration;

use domain::{
    Error, LockoutPolicy, LoginAttempt, MailClaim, MailLimit, MailSettlement, NewAccountToken,
    OutgoingMail, PasswordChange, Redemption, TOKEN_EXPIRED, TOKEN_SUPERSEDED, TOKEN_UNKNOWN,
    TOKEN_USED, Timestamp, TokenIssue, TokenPurpose, User, UserUpdate,
};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        a_reset_token_works_once_and_resets_everything,
        tokens_are_refused_with_a_reason,
        a_token_is_bound_to_its_user_purpose_address_and_credentials,
        issuing_is_throttled_per_user_and_purpose,
        each_mail_is_leased_to_one_worker,
        delivery_outcomes_and_purge,
        an_email_change_keeps_the_old_address_for_resets_and_its_revert,
        a_mail_whose_link_expired_is_given_up_never_sent,
        mails_are_limited_per_recipient_and_domain,
        a_redemption_is_audited_in_its_transaction,
    ],
    database: [],
);

fn token(
    user: &User,
    purpose: TokenPurpose,
    secret: char,
    version: u32,
    now: i64,
) -> NewAccountToken {
    NewAccountToken {
        id: Uuid::new_v4(),
        user_id: user.id,
        purpose,
        token_hash: hash(secret),
        email: user.email.clone(),
        credential_version: version,
        created_at: at(now),
        expires_at: at(now + 1800),
    }
}

fn mail(to: &str, now: i64) -> OutgoingMail {
    OutgoingMail {
        id: Uuid::new_v4(),
        recipient: to.to_owned(),
        subject: "subject".into(),
        text_body: "text with a link".into(),
        html_body: "<p>html with a link</p>".into(),
        created_at: at(now),
        expires_at: None,
        limit: None,
    }
}

fn issue(token: NewAccountToken, mail: Option<OutgoingMail>) -> TokenIssue {
    TokenIssue {
        throttle_since: token.created_at,
        token,
        mail,
        throttle_max: 0,
    }
}

fn redeem(secret: char, purpose: TokenPurpose, new_hash: Option<&str>, now: i64) -> Redemption {
    Redemption {
        audit: Vec::new(),
        token_hash: hash(secret),
        purpose,
        new_password_hash: new_hash.map(str::to_owned),
        now: at(now),
    }
}

fn refusal<T: std::fmt::Debug>(r: Result<T, Error>) -> String {
    match r {
        Err(Error::Validation(f)) => f.0["token"][0].clone(),
        other => panic!("expected a token refusal, got {other:?}"),
    }
}

fn claim(worker: &str, now: Timestamp) -> MailClaim {
    MailClaim {
        worker: worker.into(),
        now,
        lease: Duration::from_secs(60),
        limit: 10,
    }
}

async fn a_reset_token_works_once_and_resets_everything(db: Repos) {
    let u = db.users.create(new_user("forgetful")).await.unwrap();
    let s1 = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    let s2 = db
        .sessions
        .create(new_session(u.id, 0, 3600))
        .await
        .unwrap();
    // Locked out by failures.
    let policy = LockoutPolicy::default();
    for _ in 0..policy.max_failures {
        db.users
            .reserve_login_attempt(reservation(u.id, at(1), policy))
            .await
            .unwrap();
    }
    assert!(matches!(
        db.users
            .reserve_login_attempt(reservation(u.id, at(2), policy))
            .await
            .unwrap(),
        LoginAttempt::Locked { .. }
    ));
    let stored = db
        .recovery
        .issue_token(issue(
            token(&u, TokenPurpose::Reset, 'r', 0, 10),
            Some(mail(&u.email, 10)),
        ))
        .await
        .unwrap();
    assert!(stored);

    let after = db
        .recovery
        .redeem_token(redeem('r', TokenPurpose::Reset, Some("pbkdf2:new"), 20))
        .await
        .unwrap();
    assert_eq!(after.id, u.id);
    let creds = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash, "pbkdf2:new");
    assert_eq!(
        creds.credential_version, 1,
        "the credential version moves on"
    );
    assert_eq!(creds.failed_login_count, 0, "the lockout is cleared");
    assert_eq!(creds.locked_until, None);
    for s in [s1.id, s2.id] {
        let s = db.sessions.find(s).await.unwrap().unwrap();
        assert!(s.revoked_at.is_some(), "every session ends");
        assert_eq!(s.revoked_reason.as_deref(), Some("password_reset"));
    }
    // Once only.
    let again = db
        .recovery
        .redeem_token(redeem('r', TokenPurpose::Reset, Some("pbkdf2:other"), 21))
        .await;
    assert_eq!(refusal(again), TOKEN_USED);
    let creds = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        creds.password_hash, "pbkdf2:new",
        "a refused token changes nothing"
    );
}

async fn tokens_are_refused_with_a_reason(db: Repos) {
    let u = db.users.create(new_user("refused")).await.unwrap();
    db.recovery
        .issue_token(issue(token(&u, TokenPurpose::Reset, 'e', 0, 0), None))
        .await
        .unwrap();
    // Unknown.
    let r = db
        .recovery
        .redeem_token(redeem('z', TokenPurpose::Reset, Some("h"), 10))
        .await;
    assert_eq!(refusal(r), TOKEN_UNKNOWN);
    // Expired: 30 minutes after issue, not a second later.
    let r = db
        .recovery
        .redeem_token(redeem('e', TokenPurpose::Reset, Some("h"), 1800))
        .await;
    assert_eq!(refusal(r), TOKEN_EXPIRED);
    let creds = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(creds.password_hash, "h");
    // Just before expiry it works.
    db.recovery
        .redeem_token(redeem('e', TokenPurpose::Reset, Some("h"), 1799))
        .await
        .unwrap();
}

async fn a_token_is_bound_to_its_user_purpose_address_and_credentials(db: Repos) {
    let a = db.users.create(new_user("alpha")).await.unwrap();
    let b = db.users.create(new_user("bravo")).await.unwrap();
    for (t, secret) in [
        (token(&a, TokenPurpose::Verify, 'v', 0, 0), 'v'),
        (token(&a, TokenPurpose::Reset, 'p', 0, 0), 'p'),
        (token(&b, TokenPurpose::Verify, 'm', 0, 0), 'm'),
        (token(&b, TokenPurpose::Reset, 'c', 0, 0), 'c'),
    ] {
        assert_eq!(t.token_hash, hash(secret));
        db.recovery.issue_token(issue(t, None)).await.unwrap();
    }
    // A verification token is no reset token, and the other way round.
    let r = db
        .recovery
        .redeem_token(redeem('v', TokenPurpose::Reset, Some("h"), 5))
        .await;
    assert_eq!(refusal(r), TOKEN_UNKNOWN);
    let r = db
        .recovery
        .redeem_token(redeem('p', TokenPurpose::Verify, None, 5))
        .await;
    assert_eq!(refusal(r), TOKEN_UNKNOWN);

    // A's verification token verifies A, and only A.
    let verified = db
        .recovery
        .redeem_token(redeem('v', TokenPurpose::Verify, None, 5))
        .await
        .unwrap();
    assert_eq!(verified.id, a.id);
    assert!(verified.is_verified);
    assert!(
        db.users
            .find_by_id(a.id)
            .await
            .unwrap()
            .unwrap()
            .is_verified
    );
    assert!(
        !db.users
            .find_by_id(b.id)
            .await
            .unwrap()
            .unwrap()
            .is_verified
    );

    // A's reset token was issued at credential version 0: a password change voids it.
    db.users
        .change_password(PasswordChange {
            audit: Vec::new(),
            user_id: a.id,
            new_hash: "changed".into(),
            verified_hash: None,
            attempt: None,
            attempt_network: String::new(),
            keep_session: None,
            now: at(6),
        })
        .await
        .unwrap();
    let r = db
        .recovery
        .redeem_token(redeem('p', TokenPurpose::Reset, Some("h"), 7))
        .await;
    assert_eq!(refusal(r), TOKEN_SUPERSEDED);
    let creds = db
        .users
        .find_credentials_by_id(a.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(creds.password_hash, "changed");

    // B's verification link was sent to the old address: an email change voids it.
    db.users
        .update(
            b.id,
            UserUpdate {
                email: Some("bravo-new@example.com".into()),
                ..UserUpdate::default()
            },
            at(8),
        )
        .await
        .unwrap();
    let r = db
        .recovery
        .redeem_token(redeem('m', TokenPurpose::Verify, None, 9))
        .await;
    assert_eq!(refusal(r), TOKEN_SUPERSEDED);
    assert!(
        !db.users
            .find_by_id(b.id)
            .await
            .unwrap()
            .unwrap()
            .is_verified
    );

    // A deleted user's token is void.
    db.users.soft_delete(b.id, at(10)).await.unwrap();
    let r = db
        .recovery
        .redeem_token(redeem('c', TokenPurpose::Reset, Some("h"), 11))
        .await;
    assert_eq!(refusal(r), TOKEN_SUPERSEDED);
}

async fn issuing_is_throttled_per_user_and_purpose(db: Repos) {
    let u = db.users.create(new_user("spammed")).await.unwrap();
    let throttled = |secret: char, purpose: TokenPurpose, now: i64| TokenIssue {
        token: token(&u, purpose, secret, 0, now),
        mail: Some(mail(&u.email, now)),
        throttle_since: at(now - 900),
        throttle_max: 2,
    };
    assert!(
        db.recovery
            .issue_token(throttled('a', TokenPurpose::Reset, 0))
            .await
            .unwrap()
    );
    assert!(
        db.recovery
            .issue_token(throttled('b', TokenPurpose::Reset, 10))
            .await
            .unwrap()
    );
    // The third within the window is refused, with nothing stored (neither token nor mail).
    assert!(
        !db.recovery
            .issue_token(throttled('c', TokenPurpose::Reset, 20))
            .await
            .unwrap()
    );
    let r = db
        .recovery
        .redeem_token(redeem('c', TokenPurpose::Reset, Some("h"), 21))
        .await;
    assert_eq!(refusal(r), TOKEN_UNKNOWN);
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 2);
    // Another purpose has its own budget; the window moves on.
    assert!(
        db.recovery
            .issue_token(throttled('d', TokenPurpose::Verify, 20))
            .await
            .unwrap()
    );
    assert!(
        db.recovery
            .issue_token(throttled('e', TokenPurpose::Reset, 901))
            .await
            .unwrap()
    );
    // No token for a deleted user.
    db.users.soft_delete(u.id, at(950)).await.unwrap();
    assert!(
        !db.recovery
            .issue_token(throttled('f', TokenPurpose::Verify, 2000))
            .await
            .unwrap()
    );
}

async fn each_mail_is_leased_to_one_worker(db: Repos) {
    let u = db.users.create(new_user("mailed")).await.unwrap();
    let secrets = ['1', '2', '3', '4', '5', '6', '7', '8'];
    for (i, s) in secrets.iter().enumerate() {
        let t = token(&u, TokenPurpose::Verify, *s, 0, i as i64);
        db.recovery
            .issue_token(issue(t, Some(mail(&u.email, i as i64))))
            .await
            .unwrap();
    }
    // Four workers claim at once: every mail goes to exactly one of them.
    let now = at(100);
    let claims = (0..4).map(|w| {
        let db = db.clone();
        async move {
            db.recovery
                .claim_mail(claim(&format!("w{w}"), now))
                .await
                .unwrap()
        }
    });
    let leased: Vec<_> = futures_join_all(claims)
        .await
        .into_iter()
        .flatten()
        .collect();
    let ids: HashSet<Uuid> = leased.iter().map(|m| m.id).collect();
    assert_eq!(leased.len(), 8, "{leased:?}");
    assert_eq!(ids.len(), 8, "a mail was leased twice");
    assert!(leased.iter().all(|m| m.attempts == 1));
    assert_eq!(leased[0].text_body, "text with a link");
    // While leased, nobody else gets them; after the lease, somebody does.
    assert!(
        db.recovery
            .claim_mail(claim("late", at(159)))
            .await
            .unwrap()
            .is_empty()
    );
    let again = db
        .recovery
        .claim_mail(claim("late", at(161)))
        .await
        .unwrap();
    assert_eq!(again.len(), 8);
    assert!(again.iter().all(|m| m.attempts == 2));
}

async fn delivery_outcomes_and_purge(db: Repos) {
    let u = db.users.create(new_user("outcomes")).await.unwrap();
    for (i, s) in ['x', 'y', 'z'].iter().enumerate() {
        db.recovery
            .issue_token(issue(
                token(&u, TokenPurpose::Verify, *s, 0, 0),
                Some(mail(&u.email, i as i64)),
            ))
            .await
            .unwrap();
    }
    let mut mails = db.recovery.claim_mail(claim("w", at(10))).await.unwrap();
    mails.sort_by_key(|m| m.created_at);
    assert_eq!(mails.len(), 3);
    let settle = |i: usize, worker: &str, sent: bool, retry_at: Option<Timestamp>| MailSettlement {
        id: mails[i].id,
        worker: worker.into(),
        sent,
        retry_at,
        error: (!sent).then(|| "451 try later".to_owned()),
        now: at(11),
    };
    // Only the lease holder settles.
    assert!(
        !db.recovery
            .settle_mail(settle(0, "thief", true, None))
            .await
            .unwrap()
    );
    assert!(
        db.recovery
            .settle_mail(settle(0, "w", true, None))
            .await
            .unwrap()
    );
    assert!(
        db.recovery
            .settle_mail(settle(1, "w", false, Some(at(30))))
            .await
            .unwrap()
    );
    assert!(
        db.recovery
            .settle_mail(settle(2, "w", false, None))
            .await
            .unwrap()
    );
    // Settled once: a second outcome for a sent mail changes nothing.
    assert!(
        !db.recovery
            .settle_mail(settle(0, "w", false, Some(at(12))))
            .await
            .unwrap()
    );
    let stats = db.recovery.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.failed), (1, 1));
    // The retry is due at 30, not before; the sent and given-up mails never come back.
    assert!(
        db.recovery
            .claim_mail(claim("w", at(29)))
            .await
            .unwrap()
            .is_empty()
    );
    let retry = db.recovery.claim_mail(claim("w", at(30))).await.unwrap();
    assert_eq!(retry.len(), 1);
    assert_eq!(retry[0].id, mails[1].id);
    assert_eq!(retry[0].attempts, 2);

    // Purge: delivered/given-up mails and used/expired tokens older than the horizon.
    let before = db.recovery.purge_recovery(at(5)).await.unwrap();
    assert_eq!(before, 0, "nothing is old enough yet");
    let purged = db.recovery.purge_recovery(at(4000)).await.unwrap();
    // 2 settled mails + 3 expired tokens (issued at 0, 30 minutes each).
    assert_eq!(purged, 5);
    let stats = db.recovery.outbox_stats().await.unwrap();
    assert_eq!(
        (stats.pending, stats.failed),
        (1, 0),
        "a pending mail is never purged"
    );
}

/// `join_all` without the futures crate: poll every claim concurrently on the runtime.
async fn futures_join_all<F, T>(futs: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Security round 2, item 1: an update that replaces the address writes the change, its revert
/// link, the new address's verification token and the mails in one transaction; while the new
/// address is unverified, reset links go to the verified address it replaced (for 7 days); the
/// revert link restores that address (verified), ends every session, and works once.
async fn an_email_change_keeps_the_old_address_for_resets_and_its_revert(db: Repos) {
    let u = db.users.create(new_user("mover")).await.unwrap();
    // Never verified: no reset recipient at all.
    assert_eq!(
        db.recovery.reset_recipient(u.id, at(0)).await.unwrap(),
        None
    );
    let verified = UserUpdate {
        is_verified: Some(true),
        ..Default::default()
    };
    db.users
        .update(u.id, verified, at(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        db.recovery
            .reset_recipient(u.id, at(0))
            .await
            .unwrap()
            .as_deref(),
        Some("mover@example.com")
    );
    let change = |expected: &str, secret: char, now: i64| domain::EmailChange {
        id: Uuid::new_v4(),
        expected_email: expected.to_owned(),
        revert_token_hash: hash(secret),
        revert_expires_at: at(now + 7 * 86_400),
        verify_token: Some(NewAccountToken {
            email: "new@example.net".into(),
            ..token(&u, TokenPurpose::Verify, 'v', 0, now)
        }),
        mails: vec![mail("mover@example.com", now), mail("new@example.net", now)],
    };
    // A caller that read another address meanwhile changes nothing.
    let stale = UserUpdate {
        email: Some("new@example.net".into()),
        email_change: Some(change("someone@example.com", 'x', 10)),
        ..Default::default()
    };
    assert!(matches!(
        db.users.update(u.id, stale, at(10)).await,
        Err(Error::Conflict { .. })
    ));
    assert_eq!(
        db.users.find_by_id(u.id).await.unwrap().unwrap().email,
        "mover@example.com"
    );
    let session = db
        .sessions
        .create(new_session(u.id, 10, 1_000_000))
        .await
        .unwrap();
    let moving = UserUpdate {
        email: Some("New@example.net".into()),
        email_change: Some(change("mover@example.com", 'a', 10)),
        ..Default::default()
    };
    let moved = db
        .users
        .update(u.id, moving, at(10))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(moved.email, "new@example.net");
    assert!(!moved.is_verified);
    // Both mails are in the outbox with the change.
    let claimed = db
        .recovery
        .claim_mail(MailClaim {
            worker: "w".into(),
            now: at(11),
            lease: Duration::from_secs(60),
            limit: 10,
        })
        .await
        .unwrap();
    let mut to: Vec<_> = claimed.iter().map(|m| m.recipient.clone()).collect();
    to.sort();
    assert_eq!(to, ["mover@example.com", "new@example.net"]);
    // Resets go to the replaced, verified address, for 7 days after the change.
    assert_eq!(
        db.recovery
            .reset_recipient(u.id, at(5))
            .await
            .unwrap()
            .as_deref(),
        Some("mover@example.com")
    );
    assert_eq!(
        db.recovery.reset_recipient(u.id, at(11)).await.unwrap(),
        None
    );
    // The verification token for the new address works.
    let redeem = |secret: char, purpose: TokenPurpose, now: i64| Redemption {
        audit: Vec::new(),
        token_hash: hash(secret),
        purpose,
        new_password_hash: None,
        now: at(now),
    };
    // The revert link: a wrong purpose or an unknown token is refused.
    let e = db
        .recovery
        .redeem_token(redeem('z', TokenPurpose::RevertEmail, 12))
        .await;
    assert!(
        matches!(e, Err(Error::Validation(ref f)) if f.0["token"][0] == TOKEN_UNKNOWN),
        "{e:?}"
    );
    let e = db
        .recovery
        .redeem_token(redeem('a', TokenPurpose::Verify, 12))
        .await;
    assert!(
        matches!(e, Err(Error::Validation(ref f)) if f.0["token"][0] == TOKEN_UNKNOWN),
        "{e:?}"
    );
    let back = db
        .recovery
        .redeem_token(redeem('a', TokenPurpose::RevertEmail, 12))
        .await
        .unwrap();
    assert_eq!(back.email, "mover@example.com");
    assert!(back.is_verified, "the link was read at the old address");
    let s = db.sessions.find(session.id).await.unwrap().unwrap();
    assert_eq!(s.revoked_reason.as_deref(), Some("email_reverted"));
    let e = db
        .recovery
        .redeem_token(redeem('a', TokenPurpose::RevertEmail, 13))
        .await;
    assert!(
        matches!(e, Err(Error::Validation(ref f)) if f.0["token"][0] == TOKEN_USED),
        "{e:?}"
    );
    // The verification link of the abandoned address no longer counts.
    let e = db
        .recovery
        .redeem_token(redeem('v', TokenPurpose::Verify, 13))
        .await;
    assert!(
        matches!(e, Err(Error::Validation(ref f)) if f.0["token"][0] == TOKEN_SUPERSEDED),
        "{e:?}"
    );
    // Expired revert links are refused.
    let again = UserUpdate {
        email: Some("third@example.net".into()),
        email_change: Some(domain::EmailChange {
            verify_token: None,
            mails: vec![],
            ..change("mover@example.com", 'b', 20)
        }),
        ..Default::default()
    };
    db.users.update(u.id, again, at(20)).await.unwrap().unwrap();
    let e = db
        .recovery
        .redeem_token(redeem('b', TokenPurpose::RevertEmail, 20 + 7 * 86_400))
        .await;
    assert!(
        matches!(e, Err(Error::Validation(ref f)) if f.0["token"][0] == TOKEN_EXPIRED),
        "{e:?}"
    );
}

/// A reset mail that could not be delivered before its link expired is given up (counted as
/// failed) the next time the outbox is claimed, never handed to SMTP late; one still live is.
async fn a_mail_whose_link_expired_is_given_up_never_sent(db: Repos) {
    let u = db.users.create(new_user("latecomer")).await.unwrap();
    let reset = token(&u, TokenPurpose::Reset, 'r', 0, 0);
    let mut late = mail(&u.email, 0);
    late.expires_at = Some(reset.expires_at);
    db.recovery
        .issue_token(issue(reset, Some(late)))
        .await
        .unwrap();
    let verify = token(&u, TokenPurpose::Verify, 'v', 0, 0);
    let mut live = mail(&u.email, 0);
    live.expires_at = Some(at(10_000));
    let live_id = live.id;
    db.recovery
        .issue_token(issue(verify, Some(live)))
        .await
        .unwrap();
    // The reset link expired at 1800 s; the outbox is claimed after that.
    let claimed = db.recovery.claim_mail(claim("w", at(1801))).await.unwrap();
    assert_eq!(
        claimed.iter().map(|m| m.id).collect::<Vec<_>>(),
        [live_id],
        "only the live link goes out"
    );
    let stats = db.recovery.outbox_stats().await.unwrap();
    assert_eq!((stats.pending, stats.failed), (1, 1));
    // The live one is leased to w; the given-up one is never claimed again.
    assert!(
        db.recovery
            .claim_mail(claim("w2", at(1802)))
            .await
            .unwrap()
            .is_empty()
    );
}

/// A mail with a limit is queued only while its recipient (any case) and its domain received
/// fewer since the limit's start; over it nothing is issued. A mail without a limit always goes.
async fn mails_are_limited_per_recipient_and_domain(db: Repos) {
    let limit = |since| MailLimit {
        since: at(since),
        per_recipient: 2,
        per_domain: 3,
    };
    let mut secrets = ('a'..='z').collect::<Vec<_>>().into_iter();
    let mut send = async |name: &str, to: &str, now: i64, lim: Option<MailLimit>| {
        let u = db.users.create(new_user(name)).await.unwrap();
        let mut m = mail(to, now);
        m.limit = lim;
        db.recovery
            .issue_token(issue(
                token(&u, TokenPurpose::Verify, secrets.next().unwrap(), 0, now),
                Some(m),
            ))
            .await
            .unwrap()
    };
    assert!(send("b1", "victim@bombed.example", 10, Some(limit(0))).await);
    assert!(send("b2", "VICTIM@bombed.example", 11, Some(limit(0))).await);
    assert!(
        !send("b3", "victim@bombed.example", 12, Some(limit(0))).await,
        "a third mail to the address within the window"
    );
    assert!(send("b4", "other@bombed.example", 13, Some(limit(0))).await);
    assert!(
        !send("b5", "third@bombed.example", 14, Some(limit(0))).await,
        "a fourth mail to the domain"
    );
    // A domain whose name holds a LIKE wildcard is not confused with others.
    assert!(send("b6", "x@bombed_example", 15, Some(limit(0))).await);
    // Outside the window, and without a limit, mails go.
    assert!(send("b7", "victim@bombed.example", 20, Some(limit(16))).await);
    assert!(send("b8", "victim@bombed.example", 21, None).await);
    let stats = db.recovery.outbox_stats().await.unwrap();
    assert_eq!(stats.pending, 6);
}

/// The redemption and its audit event are one transaction: the event names the user (its
/// subject, and its actor when the owner followed the link), and a failure at the last step
/// leaves the token unspent and the password unchanged.
async fn a_redemption_is_audited_in_its_transaction(db: Repos) {
    let u = db.users.create(new_user("audited")).await.unwrap();
    for (secret, purpose) in [('r', TokenPurpose::Reset), ('v', TokenPurpose::Verify)] {
        let t = token(&u, purpose, secret, 0, 10);
        assert!(db.recovery.issue_token(issue(t, None)).await.unwrap());
    }
    // An event id already stored: the redemption fails at its last step.
    let taken = audit_event("test.already_stored", None, "{}");
    db.audit.record(taken.clone()).await.unwrap();
    let mut failing = redeem('r', TokenPurpose::Reset, Some("pbkdf2:new"), 20);
    failing.audit = vec![taken];
    db.recovery.redeem_token(failing).await.unwrap_err();
    let creds = db
        .users
        .find_credentials_by_id(u.id)
        .await
        .unwrap()
        .unwrap();
    assert_ne!(creds.password_hash, "pbkdf2:new", "rolled back");

    let mut reset = redeem('r', TokenPurpose::Reset, Some("pbkdf2:new"), 21);
    reset.audit = vec![audit_event("auth.password_reset", None, "{}")];
    db.recovery.redeem_token(reset).await.unwrap();
    let mut verify = redeem('v', TokenPurpose::Verify, None, 22);
    verify.audit = vec![audit_event("auth.email_verified", None, r#"{"email":""}"#)];
    db.recovery.redeem_token(verify).await.unwrap();
    let query = domain::AuditQuery {
        user_id: Some(u.id),
        ..domain::AuditQuery::default()
    };
    let events = db.audit.list_events(&query).await.unwrap().items;
    let find = |t: &str| events.iter().find(|e| e.r#type == t).unwrap().clone();
    let reset = find("auth.password_reset");
    assert_eq!((reset.subject_id, reset.actor_id), (Some(u.id), None));
    let verified = find("auth.email_verified");
    assert_eq!(
        (verified.subject_id, verified.actor_id),
        (Some(u.id), Some(u.id))
    );
    assert_eq!(
        verified.details.as_deref(),
        Some(r#"{"email":"a***@example.com"}"#)
    );
}
