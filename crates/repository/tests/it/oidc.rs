//! OpenID Connect clients in the repository contract: stored and read back whole, keyset pages
//! in id order, replace and delete with their audit events in the same transaction, a taken id
//! refused. Every backend, and through the gRPC boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use domain::{
    AuditQuery, ClientQuery, ConflictKind, Error, IdTokenAlg, OidcClient, PageInfo, StoredClient,
};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        a_client_is_stored_whole,
        clients_come_in_keyset_pages,
        replace_and_delete_write_their_audit_events,
        a_taken_client_id_is_a_conflict,
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
            .delete_client(Uuid::from_u128(8), vec![ghost])
            .await
            .unwrap()
    );
    let deleted = audit_event("oidc.client.deleted", None, "{}");
    assert!(db.oidc.delete_client(id, vec![deleted]).await.unwrap());
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
