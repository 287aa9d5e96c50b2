//! A reward may name its mint before the mint exists in the same
//! transaction (reward-calculator inserts it so, then decides the mint), and
//! still no transaction commits a reward naming a mint that does not exist:
//! `rewards_token_tx_id_fkey` is checked at commit, on both backends.

use haven_common::testing::db::TestDb;
use haven_entity::SignedWei;
use haven_entity::rewards::{self, MintPointer, NewReward, RewardStatus};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxType};
use haven_entity::users;
use sea_orm::{DatabaseConnection, TransactionTrait};
use uuid::Uuid;

use crate::helpers::user;

/// Inserts a pending reward for `source` pointing at mint `tx_id`.
async fn reward_naming(
    db: &impl sea_orm::ConnectionTrait,
    user: &users::Model,
    source: &str,
    tx_id: &str,
) -> rewards::Model {
    rewards::insert(
        db,
        NewReward {
            id: Uuid::now_v7(),
            source_reference: source.into(),
            user_id: user.id,
            rule: "booking".into(),
            rule_version: 1,
            amount: SignedWei::new(240),
            status: RewardStatus::Pending,
            token_tx_id: Some(tx_id.into()),
        },
    )
    .await
    .unwrap()
    .expect("inserted")
}

async fn the_mint_is_checked_at_commit(db: &DatabaseConnection) {
    let alice = user(db, "alice").await;

    // Reward first, its mint later in the same transaction: commits.
    let txn = db.begin().await.unwrap();
    let granted = reward_naming(&txn, &alice, "s:minted", "reward_m").await;
    token_transactions::insert_pending(
        &txn,
        NewTokenTransaction {
            tx_id: "reward_m".into(),
            user_id: alice.id,
            tx_type: TxType::Mint,
            amount: SignedWei::new(240),
            reason: "booking".into(),
            requested_by: None,
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .expect("inserted");
    txn.commit().await.unwrap();
    let stored = rewards::find_by_source_reference(db, "s:minted")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.token_tx_id.as_deref(), Some("reward_m"));
    assert_eq!(stored.id, granted.id);

    // Pointing at a mint that never comes: the commit is refused, nothing stays.
    let txn = db.begin().await.unwrap();
    reward_naming(&txn, &alice, "s:dangling", "reward_missing").await;
    let err = txn.commit().await.expect_err("a reward naming no mint");
    assert!(
        err.to_string().to_lowercase().contains("foreign key"),
        "{err}"
    );
    assert!(
        rewards::find_by_source_reference(db, "s:dangling")
            .await
            .unwrap()
            .is_none()
    );

    // A grant that ends without a mint clears the pointer: commits.
    let txn = db.begin().await.unwrap();
    let held = reward_naming(&txn, &alice, "s:held", "reward_h").await;
    assert!(
        rewards::transition(
            &txn,
            held.id,
            RewardStatus::Pending,
            RewardStatus::Held,
            MintPointer::Clear,
        )
        .await
        .unwrap()
    );
    txn.commit().await.unwrap();
    let stored = rewards::find_by_source_reference(db, "s:held")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.token_tx_id),
        (RewardStatus::Held, None)
    );

    // Keep leaves the pointer alone.
    assert!(
        rewards::transition(
            db,
            granted.id,
            RewardStatus::Pending,
            RewardStatus::Cancelled,
            MintPointer::Keep,
        )
        .await
        .unwrap()
    );
    let stored = rewards::find_by_source_reference(db, "s:minted")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.token_tx_id.as_deref()),
        (RewardStatus::Cancelled, Some("reward_m"))
    );

    // Set names a mint, checked at commit too.
    let txn = db.begin().await.unwrap();
    assert!(
        rewards::transition(
            &txn,
            held.id,
            RewardStatus::Held,
            RewardStatus::Pending,
            MintPointer::Set("reward_missing".into()),
        )
        .await
        .unwrap()
    );
    txn.commit()
        .await
        .expect_err("a released reward naming no mint");
    let stored = rewards::find_by_source_reference(db, "s:held")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (stored.status, stored.token_tx_id),
        (RewardStatus::Held, None)
    );
}

#[tokio::test]
async fn postgres_checks_a_rewards_mint_at_commit() {
    let db = TestDb::new().await;
    the_mint_is_checked_at_commit(db.conn()).await;
    db.cleanup().await;
}

#[tokio::test]
async fn sqlite_checks_a_rewards_mint_at_commit() {
    let db = TestDb::sqlite().await;
    the_mint_is_checked_at_commit(db.conn()).await;
    db.cleanup().await;
}
