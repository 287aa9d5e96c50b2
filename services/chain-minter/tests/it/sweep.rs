//! The stuck-transaction sweep: rows left `pending` with no request to drive
//! them (a lost or dead-lettered message) are queued again and minted once;
//! rows older than `TX_GIVE_UP_AFTER` are left and counted for an operator.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use chrono::Utc;
use haven_entity::token_transactions::{self, TxStatus};
use sea_orm::{ActiveValue::Set, EntityTrait};

use crate::helpers::*;

/// Backdates a token transaction: recorded `recorded` ago, unchanged for `unchanged`.
async fn backdate(
    db: &sea_orm::DatabaseConnection,
    id: uuid::Uuid,
    recorded: chrono::Duration,
    unchanged: chrono::Duration,
) {
    token_transactions::Entity::update(token_transactions::ActiveModel {
        id: Set(id),
        created_at: Set(Utc::now() - recorded),
        updated_at: Set(Utc::now() - unchanged),
        ..Default::default()
    })
    .exec(db)
    .await
    .unwrap();
}

#[tokio::test]
async fn pending_rows_without_a_message_are_minted_once_and_old_ones_are_counted_stuck() {
    let s = spawn_stack(&[]).await;
    // Three mints recorded, their messages never published (lost).
    let mints = pending_mints(s.db(), "swept", 3, |i| 1 + i as u128).await;
    let id = |i: usize| match &mints[i].0 {
        haven_messages::ChainRequest::Mint(m) => m.tx_id,
        haven_messages::ChainRequest::Burn(b) => b.tx_id,
    };
    backdate(
        s.db(),
        id(0),
        chrono::Duration::hours(1),
        chrono::Duration::hours(1),
    )
    .await;
    backdate(
        s.db(),
        id(1),
        chrono::Duration::hours(1),
        chrono::Duration::minutes(5),
    )
    .await;
    // Recorded two days ago: past TX_GIVE_UP_AFTER.
    backdate(
        s.db(),
        id(2),
        chrono::Duration::days(2),
        chrono::Duration::days(2),
    )
    .await;

    let app = s
        .minter(
            &s.anvil.endpoint(),
            &[
                "--tx-sweep-interval",
                "200ms",
                "--tx-stale-after",
                "1s",
                "--tx-give-up-after",
                "1d",
            ],
        )
        .await;
    let db = s.db();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while count_status(db, TxStatus::Confirmed).await < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the swept mints were not confirmed"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Give the sweep a few more rounds: nothing is queued twice.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (i, (_, wallet, amount)) in mints.iter().enumerate().take(2) {
        assert_eq!(s.balance_of(*wallet).await, *amount, "mint {i} once");
    }
    assert_eq!(s.balance_of(mints[2].1).await, 0, "given up: not driven");
    let old = token_transactions::Entity::find_by_id(id(2))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.status, TxStatus::Pending);
    assert_eq!(
        metric_value(&app, "haven_chain_sweep_requeued_total").await,
        2.0
    );
    assert_eq!(
        metric_value(&app, "haven_chain_transactions_stuck").await,
        1.0
    );
    app.stop().await;
    s.finish().await;
}
