//! OpenID Connect clients in the repository contract: stored and read back whole, keyset pages
//! in id order, replace and delete with their audit events in the same transaction, a taken id
//! refused. Every backend, and through the gRPC boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain::{
    AuditQuery, ClientQuery, CodeRedemption, ConflictKind, Consent, Error, IdTokenAlg, NewCode,
    OidcClient, PageInfo, Redeemed, RevokeReason, StoredClient, UserId,
};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        a_client_is_stored_whole,
        clients_come_in_keyset_pages,
        replace_and_delete_write_their_audit_events,
        a_taken_client_id_is_a_conflict,
        a_code_is_spent_once_and_its_reuse_revokes_the_tokens,
        unknown_expired_and_foreign_codes_are_unusable,
        a_consent_is_replaced_whole,
        deleting_a_client_revokes_what_it_was_given,
    ],
    database: [],
);

fn client(n: u128, public: bool) -> StoredClient {
    StoredClient {
        client: OidcClient {
            client_id: Uuid::from_u128(n),
            name: format!("App {n}"),
            redirect_uris: vec![
                format!("https://app{n}.example/cb?x=1&y=\"2\""),
                "http://localhost:8080/cb".into(),
            ],
            post_logout_redirect_uris: vec![format!("https://app{n}.example/bye")],
            public,
            allowed_scopes: vec!["openid".into(), "email".into()],
            require_consent: !public,
            id_token_signed_response_alg: if public {
                IdTokenAlg::EdDSA
            } else {
                IdTokenAlg::RS256
            },
            created_at: at(n as i64),
            updated_at: at(n as i64 + 1),
        },
        secret_hash: (!public).then(|| format!("{:064x}", n)),
    }
}

async fn a_client_is_stored_whole(db: Repos) {
    for (n, public) in [(1, false), (2, true)] {
        let c = client(n, public);
        db.oidc.create_client(c.clone(), vec![]).await.unwrap();
        let back = db.oidc.find_client(c.client.client_id).await.unwrap();
        assert_eq!(back, Some(c));
    }
    assert_eq!(db.oidc.find_client(Uuid::from_u128(9)).await.unwrap(), None);
}

async fn clients_come_in_keyset_pages(db: Repos) {
    for n in [5u128, 3, 4, 1, 2] {
        db.oidc
            .create_client(client(n, false), vec![])
            .await
            .unwrap();
    }
    let mut seen = Vec::new();
    let mut query = ClientQuery {
        after: None,
        per_page: 2,
    };
    loop {
        let page = db.oidc.list_clients(&query).await.unwrap();
        assert!(page.items.len() <= 2);
        seen.extend(page.items.iter().map(|c| c.client_id.as_u128()));
        let PageInfo::Keyset { next_cursor, .. } = page.pagination else {
            panic!("an offset page")
        };
        match next_cursor {
            Some(c) => query.after = Some(c.parse().unwrap()),
            None => break,
        }
    }
    assert_eq!(seen, [1, 2, 3, 4, 5]);
}

async fn replace_and_delete_write_their_audit_events(db: Repos) {
    let c = client(7, false);
    let id = c.client.client_id;
    let created = audit_event("oidc.client.created", None, r#"{"client_id":"7"}"#);
    db.oidc
        .create_client(c.clone(), vec![created])
        .await
        .unwrap();
    let mut changed = c.clone();
    changed.client.name = "Renamed".into();
    changed.client.redirect_uris = vec!["https://new.example/cb".into()];
    changed.client.require_consent = false;
    changed.client.id_token_signed_response_alg = IdTokenAlg::EdDSA;
    changed.client.updated_at = at(100);
    changed.secret_hash = Some("f".repeat(64));
    // The creation instant stays whatever the replacement says.
    let mut sent = changed.clone();
    sent.client.created_at = at(50);
    let updated = audit_event("oidc.client.updated", None, "{}");
    assert!(db.oidc.update_client(sent, vec![updated]).await.unwrap());
    assert_eq!(db.oidc.find_client(id).await.unwrap(), Some(changed));
    // Absent: nothing written, no event.
    let ghost = audit_event("oidc.client.updated", None, r#"{"ghost":true}"#);
    assert!(
        !db.oidc
            .update_client(client(8, false), vec![ghost.clone()])
            .await
            .unwrap()
    );
    assert!(
        !db.oidc
            .delete_client(Uuid::from_u128(8), vec![ghost], at(101))
            .await
            .unwrap()
    );
    let deleted = audit_event("oidc.client.deleted", None, "{}");
    assert!(
        db.oidc
            .delete_client(id, vec![deleted], at(102))
            .await
            .unwrap()
    );
    assert_eq!(db.oidc.find_client(id).await.unwrap(), None);
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    let mut types: Vec<&str> = events.items.iter().map(|e| e.r#type.as_str()).collect();
    types.sort_unstable();
    assert_eq!(
        types,
        [
            "oidc.client.created",
            "oidc.client.deleted",
            "oidc.client.updated"
        ]
    );
}

async fn a_taken_client_id_is_a_conflict(db: Repos) {
    db.oidc
        .create_client(client(3, false), vec![])
        .await
        .unwrap();
    let mut again = client(3, true);
    again.client.name = "Other".into();
    let event = audit_event("oidc.client.created", None, "{}");
    match db.oidc.create_client(again, vec![event]).await {
        Err(Error::Conflict {
            kind: ConflictKind::Duplicate,
            ..
        }) => {}
        other => panic!("expected a duplicate conflict, got {other:?}"),
    }
    assert_eq!(
        db.oidc.find_client(Uuid::from_u128(3)).await.unwrap(),
        Some(client(3, false))
    );
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    assert!(
        events.items.is_empty(),
        "the refused creation wrote no event"
    );
}

fn code(hash: char, client: u128, user: UserId, sso: Uuid, expires: i64) -> NewCode {
    NewCode {
        code_hash: hash.to_string().repeat(64),
        client_id: Uuid::from_u128(client),
        user_id: user,
        sso_session_id: sso,
        redirect_uri: "https://app.example/cb?a=1".into(),
        scopes: vec!["openid".into(), "email".into(), "offline_access".into()],
        nonce: Some("n-0S6_WzA2Mj".into()),
        code_challenge: Some("E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM".into()),
        auth_time: at(5),
        created_at: at(10),
        expires_at: at(expires),
    }
}

fn redemption(hash: char, user: UserId, now: i64, tag: &str) -> CodeRedemption {
    CodeRedemption {
        code_hash: hash.to_string().repeat(64),
        session: new_session(user, now, 3600),
        audit: vec![audit_event(
            "oidc.token",
            Some(user),
            &format!(r#"{{"tag":"{tag}"}}"#),
        )],
        reuse_audit: vec![audit_event(
            "oidc.code_reuse",
            Some(user),
            &format!(r#"{{"tag":"{tag}"}}"#),
        )],
        now: at(now),
    }
}

async fn a_code_is_spent_once_and_its_reuse_revokes_the_tokens(db: Repos) {
    let u = db.users.create(new_user("coder")).await.unwrap();
    db.oidc
        .create_client(client(1, false), vec![])
        .await
        .unwrap();
    let sso = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap()
        .id;
    let c = code('a', 1, u.id, sso, 70);
    db.oidc.create_code(c.clone()).await.unwrap();
    let stored = db.oidc.find_code(&c.code_hash).await.unwrap().unwrap();
    assert_eq!(
        (stored.code, stored.used_at, stored.session_id),
        (c.clone(), None, None)
    );

    let mut first = redemption('a', u.id, 20, "first");
    first.session.amr = vec!["pwd".into(), "otp".into()];
    let sid = first.session.id;
    let Redeemed::Issued(grant) = db.oidc.redeem_code(first).await.unwrap() else {
        panic!("a fresh code is spent")
    };
    assert_eq!(grant.session_id, sid);
    assert_eq!(grant.client_id, Uuid::from_u128(1));
    assert_eq!(grant.sso_session_id, sso);
    assert_eq!(grant.scopes, c.scopes);
    assert_eq!(grant.auth_time, at(5));
    assert_eq!(db.oidc.find_grant(sid).await.unwrap(), Some(grant));
    let issued = db.sessions.find(sid).await.unwrap().unwrap();
    assert!(issued.is_live(at(21)));
    assert_eq!(issued.amr, ["pwd", "otp"], "the session keeps its amr");
    let spent = db.oidc.find_code(&c.code_hash).await.unwrap().unwrap();
    assert_eq!((spent.used_at, spent.session_id), (Some(at(20)), Some(sid)));

    // Again (within its minute, or long after): the tokens from it are revoked.
    let again = redemption('a', u.id, 40, "again");
    let second = again.session.id;
    assert_eq!(
        db.oidc.redeem_code(again).await.unwrap(),
        Redeemed::Reused { revoked: 1 }
    );
    let s = db.sessions.find(sid).await.unwrap().unwrap();
    assert_eq!(
        s.revoked_reason.as_deref(),
        Some(RevokeReason::CodeReuse.as_str())
    );
    assert!(
        db.sessions.find(second).await.unwrap().is_none(),
        "no session for a reuse"
    );
    assert!(
        db.sessions
            .find(sso)
            .await
            .unwrap()
            .unwrap()
            .is_live(at(41)),
        "the SSO session stays"
    );
    assert_eq!(
        db.oidc
            .redeem_code(redemption('a', u.id, 500, "late"))
            .await
            .unwrap(),
        Redeemed::Reused { revoked: 0 }
    );
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    let mut seen: Vec<String> = events
        .items
        .iter()
        .map(|e| format!("{} {}", e.r#type, e.details.as_deref().unwrap_or("")))
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            r#"oidc.code_reuse {"tag":"again"}"#,
            r#"oidc.code_reuse {"tag":"late"}"#,
            r#"oidc.token {"tag":"first"}"#,
        ]
    );
}

async fn unknown_expired_and_foreign_codes_are_unusable(db: Repos) {
    let u = db.users.create(new_user("late_coder")).await.unwrap();
    let other = db.users.create(new_user("other_coder")).await.unwrap();
    db.oidc
        .create_client(client(2, true), vec![])
        .await
        .unwrap();
    let sso = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap()
        .id;
    db.oidc
        .create_code(code('b', 2, u.id, sso, 70))
        .await
        .unwrap();
    assert_eq!(db.oidc.find_code(&"f".repeat(64)).await.unwrap(), None);
    for (hash, user, now) in [('f', u.id, 20), ('b', u.id, 70), ('b', other.id, 20)] {
        let r = redemption(hash, user, now, "x");
        let sid = r.session.id;
        assert_eq!(db.oidc.redeem_code(r).await.unwrap(), Redeemed::Unusable);
        assert!(db.sessions.find(sid).await.unwrap().is_none());
    }
    // Still unspent: the refusals changed nothing.
    let stored = db.oidc.find_code(&"b".repeat(64)).await.unwrap().unwrap();
    assert_eq!(stored.used_at, None);
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    assert!(events.items.is_empty());
}

async fn a_consent_is_replaced_whole(db: Repos) {
    let u = db.users.create(new_user("consenter")).await.unwrap();
    db.oidc
        .create_client(client(3, false), vec![])
        .await
        .unwrap();
    let id = Uuid::from_u128(3);
    assert_eq!(db.oidc.find_consent(u.id, id).await.unwrap(), None);
    let first = Consent {
        user_id: u.id,
        client_id: id,
        scopes: vec!["openid".into(), "email".into()],
        granted_at: at(10),
    };
    db.oidc.save_consent(first.clone(), vec![]).await.unwrap();
    assert_eq!(db.oidc.find_consent(u.id, id).await.unwrap(), Some(first));
    let second = Consent {
        user_id: u.id,
        client_id: id,
        scopes: vec!["openid".into(), "profile".into(), "roles".into()],
        granted_at: at(20),
    };
    let event = audit_event("oidc.consent", Some(u.id), "{}");
    db.oidc
        .save_consent(second.clone(), vec![event])
        .await
        .unwrap();
    assert_eq!(db.oidc.find_consent(u.id, id).await.unwrap(), Some(second));
    let events = db.audit.list_events(&AuditQuery::default()).await.unwrap();
    assert_eq!(events.items.len(), 1);
}

async fn deleting_a_client_revokes_what_it_was_given(db: Repos) {
    let u = db.users.create(new_user("leaver")).await.unwrap();
    db.oidc
        .create_client(client(4, false), vec![])
        .await
        .unwrap();
    db.oidc
        .create_client(client(5, false), vec![])
        .await
        .unwrap();
    let sso = db
        .sessions
        .create(new_session(u.id, 1, 3600))
        .await
        .unwrap()
        .id;
    db.oidc
        .create_code(code('c', 4, u.id, sso, 70))
        .await
        .unwrap();
    db.oidc
        .create_code(code('d', 5, u.id, sso, 70))
        .await
        .unwrap();
    db.oidc
        .create_code(code('e', 4, u.id, sso, 70))
        .await
        .unwrap();
    let r = redemption('c', u.id, 20, "c");
    let gone = r.session.id;
    db.oidc.redeem_code(r).await.unwrap();
    let r = redemption('d', u.id, 20, "d");
    let kept = r.session.id;
    db.oidc.redeem_code(r).await.unwrap();
    let consent = Consent {
        user_id: u.id,
        client_id: Uuid::from_u128(4),
        scopes: vec!["openid".into()],
        granted_at: at(10),
    };
    db.oidc.save_consent(consent, vec![]).await.unwrap();

    assert!(
        db.oidc
            .delete_client(Uuid::from_u128(4), vec![], at(30))
            .await
            .unwrap()
    );
    let s = db.sessions.find(gone).await.unwrap().unwrap();
    assert_eq!(s.revoked_at, Some(at(30)));
    assert_eq!(
        s.revoked_reason.as_deref(),
        Some(RevokeReason::ClientDeleted.as_str())
    );
    assert_eq!(db.oidc.find_grant(gone).await.unwrap(), None);
    assert_eq!(
        db.oidc
            .find_consent(u.id, Uuid::from_u128(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        db.oidc.find_code(&"e".repeat(64)).await.unwrap(),
        None,
        "its codes go"
    );
    // Another client's tokens and the SSO session stay.
    assert!(
        db.sessions
            .find(kept)
            .await
            .unwrap()
            .unwrap()
            .is_live(at(31))
    );
    assert!(db.oidc.find_grant(kept).await.unwrap().is_some());
    assert!(
        db.sessions
            .find(sso)
            .await
            .unwrap()
            .unwrap()
            .is_live(at(31))
    );
}
