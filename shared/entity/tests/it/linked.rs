//! `linked::insert`: a reward, its mint and the mint's outbox message are
//! written together, each only when the one before it was; one statement on
//! PostgreSQL.

use haven_common::db::begin_write;
use haven_common::testing::db::TestDb;
use haven_entity::linked::{self, LinkedRow};
use haven_entity::outbox::{self, NewOutboxMessage};
use haven_entity::rewards::{self, NewReward, RewardStatus};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::{EntityError, SignedWei, users};
use sea_orm::{EntityTrait, PaginatorTrait, TransactionTrait};
use uuid::Uuid;

use crate::helpers::user;

/// The three rows of a reward for `source` paying `hnv` to `user` with
/// mint `tx_id`, and the mint row as written.
fn reward_chain(
    user: &users::Model,
    source: &str,
    tx_id: &str,
    hnv: i128,
) -> (token_transactions::Model, Vec<LinkedRow>) {
    let amount = SignedWei::from_hnv(hnv).unwrap();
    let reward = rewards::linked_row(NewReward {
        id: Uuid::now_v7(),
        source_reference: source.into(),
        user_id: user.id,
        rule: "booking".into(),
        rule_version: 1,
        amount,
        status: RewardStatus::Pending,
        token_tx_id: Some(tx_id.into()),
    });
    let mint = token_transactions::new_pending(NewTokenTransaction {
        tx_id: tx_id.into(),
        user_id: user.id,
        tx_type: TxType::Mint,
        amount,
        reason: "booking".into(),
        requested_by: None,
        accepted_at: Some(chrono::Utc::now()),
    });
    let message = outbox::linked_row(NewOutboxMessage {
        message_id: Uuid::now_v7(),
        exchange: "haven.events".into(),
        routing_key: "chain.request.mint".into(),
        payload: br#"{"tx_id":"x"}"#.to_vec(),
        headers: None,
    });
    let mint_row = token_transactions::linked_row(&mint);
    (mint, vec![reward, mint_row, message])
}

async fn counts(db: &sea_orm::DatabaseConnection) -> (u64, u64, u64) {
    (
        rewards::Entity::find().count(db).await.unwrap(),
        token_transactions::Entity::find().count(db).await.unwrap(),
        outbox::Entity::find().count(db).await.unwrap(),
    )
}

async fn rows_are_written_together_or_not_at_all(db: TestDb) {
    let (conn, log) = db.recording();
    let alice = user(&conn, "alice").await;

    // All three, in one statement on PostgreSQL.
    let (mint, rows) = reward_chain(&alice, "aurora:booking:B1", "reward_1", 50);
    let txn = begin_write(&conn).await.unwrap();
    log.take();
    assert_eq!(linked::insert(&txn, &rows).await.unwrap(), 3);
    let statements = log.take().len();
    txn.commit().await.unwrap();
    if db.is_postgres() {
        assert_eq!(statements, 1, "one statement on PostgreSQL");
    } else {
        assert_eq!(statements, 3, "one per row on SQLite");
    }
    assert_eq!(counts(&conn).await, (1, 1, 1));
    let stored = token_transactions::find_by_tx_id(&conn, "reward_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.status, TxStatus::Pending);
    assert_eq!(stored.amount, mint.amount);
    assert_eq!(stored.id, mint.id);
    assert_eq!(stored.chain_reference, mint.chain_reference);
    let reward = rewards::find_by_source_reference(&conn, "aurora:booking:B1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reward.token_tx_id.as_deref(), Some("reward_1"));
    assert_eq!(reward.amount, SignedWei::from_hnv(50).unwrap());

    // The same source again: nothing at all, its mint and message included.
    let (_, rows) = reward_chain(&alice, "aurora:booking:B1", "reward_2", 70);
    let txn = conn.begin().await.unwrap();
    assert_eq!(linked::insert(&txn, &rows).await.unwrap(), 0);
    txn.commit().await.unwrap();
    assert_eq!(counts(&conn).await, (1, 1, 1));

    // A new reward whose mint id is taken: the mint is a plain insert, so
    // the clash is an error, and the caller's rollback leaves nothing.
    let (_, rows) = reward_chain(&alice, "aurora:booking:B2", "reward_1", 70);
    let txn = conn.begin().await.unwrap();
    let clash = linked::insert(&txn, &rows).await.unwrap_err();
    assert!(
        matches!(clash, EntityError::UniqueViolation(_)),
        "{clash:?}"
    );
    txn.rollback().await.unwrap();
    assert_eq!(counts(&conn).await, (1, 1, 1));
    assert_eq!(linked::insert(&conn, &[]).await.unwrap(), 0);
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_writes_linked_rows_together_or_not_at_all() {
    rows_are_written_together_or_not_at_all(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_writes_linked_rows_together_or_not_at_all() {
    rows_are_written_together_or_not_at_all(TestDb::sqlite().await).await;
}
