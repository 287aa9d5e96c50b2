//! Posting movements: balanced or refused, atomic, idempotent, and correct
//! under concurrency.

use std::sync::Arc;

use haven_common::testing::db::TestDb;
use haven_entity::ledger::{self, Account, Movement, Posted};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::{EntityError, SignedWei, ledger_entries, ledger_movements};
use sea_orm::{DatabaseConnection, EntityTrait, PaginatorTrait, TransactionTrait};

use crate::helpers::user;

fn hnv(n: i128) -> SignedWei {
    SignedWei::from_hnv(n).unwrap()
}

/// Posts one movement in its own transaction, committing on success.
async fn post(conn: &DatabaseConnection, movement: &Movement) -> Result<Posted, EntityError> {
    let txn = conn.begin().await?;
    let posted = ledger::post(&txn, movement).await?;
    txn.commit().await?;
    Ok(posted)
}

async fn movements(conn: &DatabaseConnection) -> u64 {
    ledger_movements::Entity::find().count(conn).await.unwrap()
}

async fn unbalanced_is_refused(db: TestDb) {
    let conn = db.conn();
    let alice = user(conn, "alice").await;
    let unbalanced = Movement::new("mint:bad", MovementKind::Mint)
        .entry(Account::Supply, hnv(-100))
        .entry(Account::UserAvailable(alice.id), hnv(99));
    let err = post(conn, &unbalanced).await.unwrap_err();
    match err {
        EntityError::Unbalanced { reference, sum } => {
            assert_eq!(reference, "mint:bad");
            assert_eq!(sum, hnv(-1));
        }
        other => panic!("expected Unbalanced, got {other:?}"),
    }
    // Nor is a one-sided or zero movement.
    let one_sided = Movement::new("x", MovementKind::Mint).entry(Account::Supply, SignedWei::ZERO);
    assert!(matches!(
        post(conn, &one_sided).await,
        Err(EntityError::InvalidMovement(_))
    ));
    assert_eq!(movements(conn).await, 0);
    assert_eq!(
        ledger::user_balance(conn, alice.id)
            .await
            .unwrap()
            .available,
        SignedWei::ZERO
    );
    db.cleanup().await;
}

async fn balances_move_atomically(db: TestDb) {
    let conn = db.conn();
    let alice = user(conn, "alice").await;
    let available = Account::UserAvailable(alice.id);
    let reserved = Account::UserReserved(alice.id);

    let mint = Movement::transfer(
        "mint:1",
        MovementKind::Mint,
        Account::Supply,
        available,
        hnv(100),
    )
    .unwrap();
    assert!(matches!(
        post(conn, &mint).await.unwrap(),
        Posted::Applied(_)
    ));
    let reserve = Movement::transfer(
        "reserve:1",
        MovementKind::Reserve,
        available,
        reserved,
        hnv(30),
    )
    .unwrap();
    post(conn, &reserve).await.unwrap();

    let balance = ledger::user_balance(conn, alice.id).await.unwrap();
    assert_eq!((balance.available, balance.reserved), (hnv(70), hnv(30)));
    assert_eq!(balance.version, 2);
    assert_eq!(
        ledger::system_balance(conn, Account::Supply).await.unwrap(),
        hnv(-100)
    );

    // The same reference again changes nothing.
    assert_eq!(post(conn, &mint).await.unwrap(), Posted::Duplicate);
    assert_eq!(
        ledger::user_balance(conn, alice.id)
            .await
            .unwrap()
            .available,
        hnv(70)
    );

    // More than available: refused, and the transaction leaves no trace
    // (no movement, no entries, balances untouched).
    let too_much = Movement::transfer(
        "reserve:2",
        MovementKind::Reserve,
        available,
        reserved,
        hnv(71),
    )
    .unwrap();
    let err = post(conn, &too_much).await.unwrap_err();
    assert!(
        matches!(
            err,
            EntityError::InsufficientBalance {
                account: "user_available",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(movements(conn).await, 2);
    assert_eq!(ledger_entries::Entity::find().count(conn).await.unwrap(), 4);
    let balance = ledger::user_balance(conn, alice.id).await.unwrap();
    assert_eq!(
        (balance.available, balance.reserved, balance.version),
        (hnv(70), hnv(30), 2)
    );

    // A burn out of the reservation reaches the burned account.
    let burn = Movement::transfer(
        "burn:1",
        MovementKind::Burn,
        reserved,
        Account::Burned,
        hnv(30),
    )
    .unwrap();
    post(conn, &burn).await.unwrap();
    assert_eq!(
        ledger::system_balance(conn, Account::Burned).await.unwrap(),
        hnv(30)
    );
    assert_eq!(
        ledger::user_balance(conn, alice.id).await.unwrap().reserved,
        SignedWei::ZERO
    );

    // Several movements in one transaction roll back together.
    let txn = conn.begin().await.unwrap();
    ledger::post(
        &txn,
        &Movement::transfer(
            "mint:2",
            MovementKind::Mint,
            Account::Supply,
            available,
            hnv(5),
        )
        .unwrap(),
    )
    .await
    .unwrap();
    txn.rollback().await.unwrap();
    assert_eq!(
        ledger::user_balance(conn, alice.id)
            .await
            .unwrap()
            .available,
        hnv(70)
    );
    assert_eq!(movements(conn).await, 3);
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_refuses_unbalanced_movements() {
    unbalanced_is_refused(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_refuses_unbalanced_movements() {
    unbalanced_is_refused(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_moves_balances_atomically() {
    balances_move_atomically(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_moves_balances_atomically() {
    balances_move_atomically(TestDb::sqlite().await).await;
}

async fn concurrent_postings_all_land(db: TestDb) {
    const POSTINGS: i128 = 20;
    let conn = Arc::new(db.conn().clone());
    let alice = user(&conn, "alice").await;

    let tasks: Vec<_> = (0..POSTINGS)
        .map(|i| {
            let conn = Arc::clone(&conn);
            tokio::spawn(async move {
                let mint = Movement::transfer(
                    format!("mint:{i}"),
                    MovementKind::Mint,
                    Account::Supply,
                    Account::UserAvailable(alice.id),
                    hnv(1),
                )
                .unwrap();
                post(&conn, &mint).await
            })
        })
        .collect();
    for task in tasks {
        assert!(matches!(task.await.unwrap().unwrap(), Posted::Applied(_)));
    }

    let balance = ledger::user_balance(conn.as_ref(), alice.id).await.unwrap();
    assert_eq!(balance.available, hnv(POSTINGS));
    assert_eq!(balance.version, POSTINGS as i64);
    assert_eq!(
        ledger::system_balance(conn.as_ref(), Account::Supply)
            .await
            .unwrap(),
        hnv(-POSTINGS)
    );
    assert_eq!(movements(&conn).await, POSTINGS as u64);
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_twenty_concurrent_postings_on_one_balance_all_land() {
    concurrent_postings_all_land(TestDb::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_twenty_concurrent_postings_on_one_balance_all_land() {
    concurrent_postings_all_land(TestDb::sqlite().await).await;
}
