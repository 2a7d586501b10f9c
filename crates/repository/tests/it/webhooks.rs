//! Webhooks in the repository contract (`WebhookRepository`): events queued in the transaction
//! of the change they report (and not when it rolls back) for the endpoints subscribed to them;
//! one user's events leased one at a time, in order; leases that expire and settlements that
//! need them; giving up disables the endpoint and queues the admins' notices; endpoints stored,
//! changed and deleted with their deliveries. Every backend, and through the gRPC boundary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use domain::{
    ConflictKind, DeliveryClaim, DeliveryOutcome, DeliveryQuery, DeliverySettlement,
    DeliveryStatus, Error, OutgoingMail, QueuedDelivery, StoredWebhook, TestDelivery, Webhook,
};
use uuid::Uuid;

use crate::support::*;

contract_tests!(
    ports: [
        events_are_queued_with_their_change_for_the_endpoints_that_want_them,
        one_users_events_are_leased_one_at_a_time_in_order,
        a_lease_expires_and_an_outcome_needs_it,
        giving_up_disables_the_endpoint_until_it_is_resumed,
        endpoints_are_stored_changed_and_deleted_with_their_deliveries,
    ],
    database: [],
);

fn endpoint(events: &[&str]) -> StoredWebhook {
    StoredWebhook {
        webhook: Webhook {
            id: Uuid::new_v4(),
            url: "https://hooks.example.com/in".into(),
            events: events.iter().map(|e| (*e).to_owned()).collect(),
            description: "crm".into(),
            enabled: true,
            disabled_reason: None,
            created_at: at(0),
            updated_at: at(0),
        },
        secret_enc: "sealed".into(),
    }
}

fn claim(worker: &str, now: i64) -> DeliveryClaim {
    DeliveryClaim {
        worker: worker.into(),
        now: at(now),
        lease: Duration::from_secs(30),
        limit: 50,
    }
}

fn settle(
    d: &QueuedDelivery,
    worker: &str,
    now: i64,
    outcome: DeliveryOutcome,
) -> DeliverySettlement {
    DeliverySettlement {
        id: d.id,
        worker: worker.into(),
        now: at(now),
        outcome,
        status: Some(500),
        error: Some("answered 500".into()),
        response_excerpt: Some("x".repeat(3000)),
    }
}

async fn deliveries(db: &Repos, webhook: Uuid) -> Vec<domain::WebhookDelivery> {
    let q = DeliveryQuery {
        after: None,
        per_page: 100,
    };
    db.webhooks.list_deliveries(webhook, q).await.unwrap().items
}

async fn events_are_queued_with_their_change_for_the_endpoints_that_want_them(db: Repos) {
    let sessions = endpoint(&["session.created", "user.updated"]);
    let created = endpoint(&["user.created"]);
    for w in [&sessions, &created] {
        db.webhooks
            .create_webhook(w.clone(), Vec::new())
            .await
            .unwrap();
    }
    let u = db
        .users
        .create_user(
            new_user("ada"),
            vec![audit_event("user.created", None, "{}")],
        )
        .await
        .unwrap();
    // The audit record names no subject here: the event is about nobody in particular.
    assert_eq!(deliveries(&db, created.webhook.id).await.len(), 1);
    assert!(deliveries(&db, sessions.webhook.id).await.is_empty());

    // A change that rolls back queues nothing.
    let e = db
        .users
        .create_user(
            new_user("ada"),
            vec![audit_event("user.created", None, "{}")],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            Error::Conflict {
                kind: ConflictKind::Duplicate,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(deliveries(&db, created.webhook.id).await.len(), 1);

    // Not every audit record is an event; a login is session.created.
    db.audit
        .record_all(vec![
            audit_event("oidc.client.created", Some(u.id), "{}"),
            audit_event("auth.login", Some(u.id), r#"{"session_id":"s1"}"#),
        ])
        .await
        .unwrap();
    let queued = deliveries(&db, sessions.webhook.id).await;
    assert_eq!(queued.len(), 1);
    let d = &queued[0];
    assert_eq!(
        (d.event_type.as_str(), d.status),
        ("session.created", DeliveryStatus::Pending)
    );
    assert_eq!(d.attempts, 0);

    let leased = db
        .webhooks
        .claim_deliveries(claim("w1", 100))
        .await
        .unwrap();
    assert_eq!(leased.len(), 2);
    let login = leased
        .iter()
        .find(|l| l.event_type == "session.created")
        .unwrap();
    assert_eq!(login.message_id, d.message_id);
    assert_eq!(
        (login.url.as_str(), login.secret_enc.as_str()),
        ("https://hooks.example.com/in", "sealed")
    );
    let body: serde_json::Value = serde_json::from_str(&login.payload).unwrap();
    assert_eq!(body["type"], "session.created");
    assert_eq!(body["data"]["user"]["username"], "ada");
    assert_eq!(body["data"]["details"]["session_id"], "s1");
    assert!(!login.payload.contains("pbkdf2"), "{}", login.payload);
}

async fn one_users_events_are_leased_one_at_a_time_in_order(db: Repos) {
    let w = endpoint(&["user.updated"]);
    db.webhooks
        .create_webhook(w.clone(), Vec::new())
        .await
        .unwrap();
    let u = db.users.create(new_user("grace")).await.unwrap();
    let v = db.users.create(new_user("linus")).await.unwrap();
    for n in 0..3 {
        let e = audit_event("user.updated", Some(u.id), &format!(r#"{{"n":{n}}}"#));
        db.audit.record_all(vec![e]).await.unwrap();
    }
    db.audit
        .record_all(vec![audit_event("user.updated", Some(v.id), r#"{"n":9}"#)])
        .await
        .unwrap();
    let n_of = |d: &QueuedDelivery| {
        let body: serde_json::Value = serde_json::from_str(&d.payload).unwrap();
        body["data"]["details"]["n"].as_i64().unwrap()
    };
    // The head of each user's line only.
    let mut first = db
        .webhooks
        .claim_deliveries(claim("w1", 100))
        .await
        .unwrap();
    first.sort_by_key(n_of);
    assert_eq!(first.iter().map(n_of).collect::<Vec<_>>(), [0, 9]);
    // Leased or backing off, the head still holds the line.
    assert!(
        db.webhooks
            .claim_deliveries(claim("w2", 101))
            .await
            .unwrap()
            .is_empty()
    );
    let head = &first[0];
    let retry = DeliveryOutcome::Retry(at(200));
    assert!(
        db.webhooks
            .settle_delivery(settle(head, "w1", 102, retry))
            .await
            .unwrap()
    );
    let other = settle(&first[1], "w1", 102, DeliveryOutcome::Delivered);
    assert!(db.webhooks.settle_delivery(other).await.unwrap());
    assert!(
        db.webhooks
            .claim_deliveries(claim("w2", 150))
            .await
            .unwrap()
            .is_empty()
    );
    // Due again: the same message, a second attempt; delivered, the next one comes.
    let again = db
        .webhooks
        .claim_deliveries(claim("w2", 200))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].message_id.as_str(), again[0].attempts),
        (head.message_id.as_str(), 2)
    );
    assert_eq!(again[0].first_attempt_at, at(100));
    let ok = settle(&again[0], "w2", 201, DeliveryOutcome::Delivered);
    assert!(db.webhooks.settle_delivery(ok).await.unwrap());
    let next = db
        .webhooks
        .claim_deliveries(claim("w2", 202))
        .await
        .unwrap();
    assert_eq!(next.iter().map(n_of).collect::<Vec<_>>(), [1]);

    let log = deliveries(&db, w.webhook.id).await;
    let done = log
        .iter()
        .find(|d| d.message_id == head.message_id)
        .unwrap();
    assert_eq!(done.status, DeliveryStatus::Delivered);
    assert_eq!(done.last_status, Some(500));
    assert_eq!(done.response_excerpt.as_ref().map(String::len), Some(1024));
    assert_eq!(done.delivered_at, Some(at(201)));
}

async fn a_lease_expires_and_an_outcome_needs_it(db: Repos) {
    let w = endpoint(&["auth.login_failed"]);
    db.webhooks
        .create_webhook(w.clone(), Vec::new())
        .await
        .unwrap();
    let mut failed = audit_event("auth.login", None, r#"{"reason":"unknown_user"}"#);
    failed.outcome = "failure".into();
    db.audit.record_all(vec![failed]).await.unwrap();
    let mine = db
        .webhooks
        .claim_deliveries(claim("w1", 100))
        .await
        .unwrap();
    assert_eq!(mine.len(), 1);
    assert!(
        db.webhooks
            .claim_deliveries(claim("w2", 110))
            .await
            .unwrap()
            .is_empty()
    );
    // w1 died: after the lease w2 takes it, and w1's late outcome is not recorded.
    let taken = db
        .webhooks
        .claim_deliveries(claim("w2", 131))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].message_id, mine[0].message_id);
    let late = settle(&mine[0], "w1", 132, DeliveryOutcome::Delivered);
    assert!(!db.webhooks.settle_delivery(late).await.unwrap());
    let ok = settle(&taken[0], "w2", 133, DeliveryOutcome::Delivered);
    assert!(db.webhooks.settle_delivery(ok).await.unwrap());
    assert_eq!(
        deliveries(&db, w.webhook.id).await[0].status,
        DeliveryStatus::Delivered
    );
}

async fn giving_up_disables_the_endpoint_until_it_is_resumed(db: Repos) {
    let w = endpoint(&["user.updated"]);
    db.webhooks
        .create_webhook(w.clone(), Vec::new())
        .await
        .unwrap();
    let u = db.users.create(new_user("hopper")).await.unwrap();
    for _ in 0..2 {
        let e = audit_event("user.updated", Some(u.id), "{}");
        db.audit.record_all(vec![e]).await.unwrap();
    }
    let d = db
        .webhooks
        .claim_deliveries(claim("w1", 100))
        .await
        .unwrap()
        .remove(0);
    let notice = OutgoingMail {
        id: Uuid::new_v4(),
        recipient: "admin@example.com".into(),
        subject: "webhook disabled".into(),
        text_body: "disabled".into(),
        html_body: "<p>disabled</p>".into(),
        created_at: at(100),
        expires_at: None,
        limit: None,
    };
    let give_up = DeliveryOutcome::GiveUp {
        notices: vec![notice],
        audit: vec![audit_event("webhook.disabled", None, "{}")],
    };
    assert!(
        db.webhooks
            .settle_delivery(settle(&d, "w1", 101, give_up))
            .await
            .unwrap()
    );
    let stored = db
        .webhooks
        .find_webhook(w.webhook.id)
        .await
        .unwrap()
        .unwrap();
    assert!(!stored.webhook.enabled);
    assert!(
        stored
            .webhook
            .disabled_reason
            .as_deref()
            .unwrap()
            .contains("answered 500")
    );
    assert_eq!(db.recovery.outbox_stats().await.unwrap().pending, 1);
    // Disabled: nothing goes out, but events are still queued.
    db.audit
        .record_all(vec![audit_event("user.updated", Some(u.id), "{}")])
        .await
        .unwrap();
    assert!(
        db.webhooks
            .claim_deliveries(claim("w1", 500))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(deliveries(&db, w.webhook.id).await.len(), 3);
    // Resumed: the failed one no longer holds the line; retried by hand it is due again.
    let mut resumed = stored.webhook.clone();
    resumed.enabled = true;
    resumed.disabled_reason = None;
    assert!(
        db.webhooks
            .update_webhook(resumed, Vec::new())
            .await
            .unwrap()
    );
    let next = db
        .webhooks
        .claim_deliveries(claim("w1", 501))
        .await
        .unwrap();
    assert_eq!(next.len(), 1);
    assert_ne!(next[0].id, d.id);
    let retried = db
        .webhooks
        .retry_delivery(w.webhook.id, d.id, at(502), Vec::new())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(retried.status, DeliveryStatus::Pending);
    assert!(
        db.webhooks
            .retry_delivery(Uuid::new_v4(), d.id, at(502), Vec::new())
            .await
            .unwrap()
            .is_none()
    );
}

async fn endpoints_are_stored_changed_and_deleted_with_their_deliveries(db: Repos) {
    let a = endpoint(&["user.created"]);
    let b = endpoint(&["user.deleted", "mfa.enabled"]);
    db.webhooks
        .create_webhook(a.clone(), Vec::new())
        .await
        .unwrap();
    db.webhooks
        .create_webhook(b.clone(), Vec::new())
        .await
        .unwrap();
    let all = db.webhooks.list_webhooks().await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(
        db.webhooks.find_webhook(b.webhook.id).await.unwrap(),
        Some(b.clone())
    );

    let mut changed = a.webhook.clone();
    changed.events = vec!["user.updated".into()];
    changed.url = "https://hooks.example.com/v2".into();
    assert!(
        db.webhooks
            .update_webhook(changed.clone(), Vec::new())
            .await
            .unwrap()
    );
    let stored = db
        .webhooks
        .find_webhook(a.webhook.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.webhook, stored.secret_enc),
        (changed, "sealed".to_owned())
    );

    // A test delivery is queued already leased to its sender.
    let test = |id| TestDelivery {
        webhook_id: id,
        event_id: Uuid::now_v7(),
        payload: r#"{"type":"webhook.test"}"#.into(),
        worker: "api".into(),
        now: at(10),
        lease: Duration::from_secs(30),
    };
    let t = db
        .webhooks
        .queue_test_delivery(test(a.webhook.id))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((t.event_type.as_str(), t.attempts), ("webhook.test", 1));
    assert!(
        db.webhooks
            .claim_deliveries(claim("w1", 11))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        db.webhooks
            .settle_delivery(settle(&t, "api", 12, DeliveryOutcome::Delivered))
            .await
            .unwrap()
    );
    let found = db
        .webhooks
        .find_delivery(a.webhook.id, t.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.status, DeliveryStatus::Delivered);
    assert!(
        db.webhooks
            .find_delivery(b.webhook.id, t.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        db.webhooks
            .queue_test_delivery(test(Uuid::new_v4()))
            .await
            .unwrap()
            .is_none()
    );
    // Purged once old, delivered or failed (never pending).
    assert_eq!(db.webhooks.purge_deliveries(at(11)).await.unwrap(), 1);

    db.webhooks
        .queue_test_delivery(test(a.webhook.id))
        .await
        .unwrap();
    assert!(
        db.webhooks
            .delete_webhook(a.webhook.id, Vec::new())
            .await
            .unwrap()
    );
    assert!(
        !db.webhooks
            .delete_webhook(a.webhook.id, Vec::new())
            .await
            .unwrap()
    );
    assert!(deliveries(&db, a.webhook.id).await.is_empty());
    assert_eq!(db.webhooks.list_webhooks().await.unwrap(), vec![b]);
}
