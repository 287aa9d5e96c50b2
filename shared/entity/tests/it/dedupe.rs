//! Inbound event dedupe and idempotency keys.

use chrono::Duration;
use haven_common::testing::db::TestDb;
use haven_entity::idempotency_keys::{self, Claim};
use haven_entity::inbound_events::{self, NewInboundEvent, Recorded};
use haven_entity::outbox::{self, NewOutboxMessage};
use sea_orm::TransactionTrait;
use serde_json::json;
use uuid::Uuid;

async fn dedupe(db: TestDb) {
    let conn = db.conn();
    let event = NewInboundEvent {
        partner: "aurora".into(),
        kind: "booking-created".into(),
        event_key: "b-1".into(),
        delivery_id: Some("msg_1".into()),
        message_id: Uuid::now_v7(),
        payload: json!({"id": "b-1", "total_price": 100.0}),
    };

    // The dedupe insert shares a transaction with the outbox insert; a
    // duplicate must not poison that transaction.
    let txn = conn.begin().await.unwrap();
    assert_eq!(
        inbound_events::record(&txn, event.clone()).await.unwrap(),
        Recorded::Accepted
    );
    assert_eq!(
        inbound_events::record(&txn, event.clone()).await.unwrap(),
        Recorded::Duplicate
    );
    let id = outbox::enqueue(
        &txn,
        NewOutboxMessage {
            message_id: event.message_id,
            exchange: "haven.events".into(),
            routing_key: "aurora.booking-created".into(),
            payload: b"{}".to_vec(),
            headers: None,
        },
    )
    .await
    .unwrap();
    txn.commit().await.unwrap();
    assert_eq!(
        inbound_events::record(conn, event.clone()).await.unwrap(),
        Recorded::Duplicate
    );
    // A delivery id is spent once per partner, whatever the kind: the same
    // signed delivery replayed to another route is a duplicate there.
    let replayed = NewInboundEvent {
        kind: "booking-cancelled".into(),
        ..event.clone()
    };
    assert_eq!(
        inbound_events::record(conn, replayed).await.unwrap(),
        Recorded::Duplicate
    );
    let other_kind = NewInboundEvent {
        kind: "booking-cancelled".into(),
        delivery_id: Some("msg_2".into()),
        ..event.clone()
    };
    assert_eq!(
        inbound_events::record(conn, other_kind).await.unwrap(),
        Recorded::Accepted
    );
    // The hex scheme has no delivery id: NULLs never collide.
    let hex = |kind: &str| NewInboundEvent {
        kind: kind.into(),
        delivery_id: None,
        ..event.clone()
    };
    assert_eq!(
        inbound_events::record(conn, hex("booking-completed"))
            .await
            .unwrap(),
        Recorded::Accepted
    );
    assert_eq!(
        inbound_events::record(conn, hex("review-submitted"))
            .await
            .unwrap(),
        Recorded::Accepted
    );

    let pending = outbox::unpublished(conn, 10).await.unwrap();
    assert_eq!(pending.len(), 1);
    outbox::mark_failed(conn, id, "broker down").await.unwrap();
    let pending = outbox::unpublished(conn, 10).await.unwrap();
    assert_eq!(
        (pending[0].attempts, pending[0].last_error.as_deref()),
        (1, Some("broker down"))
    );
    outbox::mark_published(conn, id).await.unwrap();
    assert!(outbox::unpublished(conn, 10).await.unwrap().is_empty());

    // Idempotency keys: claim, in progress, completed, mismatch, release, expiry.
    let ttl = Duration::hours(24);
    let claim = |hash: &'static str| idempotency_keys::claim(conn, "token.mint", "k1", hash, ttl);
    assert_eq!(claim("h1").await.unwrap(), Claim::Claimed);
    assert_eq!(claim("h1").await.unwrap(), Claim::InProgress);
    assert_eq!(claim("h2").await.unwrap(), Claim::Mismatch);
    let response = json!({"status": "queued", "tx_id": "k1"});
    idempotency_keys::complete(conn, "token.mint", "k1", 200, response.clone())
        .await
        .unwrap();
    assert_eq!(
        claim("h1").await.unwrap(),
        Claim::Completed {
            status_code: 200,
            response
        }
    );
    // Same key, other scope: independent.
    assert_eq!(
        idempotency_keys::claim(conn, "token.redeem", "k1", "h9", ttl)
            .await
            .unwrap(),
        Claim::Claimed
    );
    idempotency_keys::release(conn, "token.redeem", "k1")
        .await
        .unwrap();
    assert_eq!(
        idempotency_keys::claim(conn, "token.redeem", "k1", "h9", ttl)
            .await
            .unwrap(),
        Claim::Claimed
    );
    // An expired key is forgotten.
    assert_eq!(
        idempotency_keys::claim(conn, "token.mint", "k2", "h1", Duration::seconds(-1))
            .await
            .unwrap(),
        Claim::Claimed
    );
    assert_eq!(
        idempotency_keys::claim(conn, "token.mint", "k2", "h2", ttl)
            .await
            .unwrap(),
        Claim::Claimed
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_dedupes_events_and_idempotency_keys() {
    dedupe(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_dedupes_events_and_idempotency_keys() {
    dedupe(TestDb::sqlite().await).await;
}
