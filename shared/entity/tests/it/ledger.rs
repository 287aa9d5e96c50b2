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

/// Counts the statements run through a clone of `conn` that mention `table`.
fn counting(
    conn: &DatabaseConnection,
    table: &'static str,
) -> (DatabaseConnection, Arc<std::sync::atomic::AtomicUsize>) {
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut counted = conn.clone();
    let seen = Arc::clone(&count);
    counted.set_metric_callback(move |info| {
        if info.statement.sql.contains(table) {
            seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    (counted, count)
}

async fn post_many(
    conn: &DatabaseConnection,
    movements: &[Movement],
) -> Result<Vec<Posted>, EntityError> {
    let txn = conn.begin().await?;
    let posted = ledger::post_many(&txn, movements).await?;
    txn.commit().await?;
    Ok(posted)
}

fn mint(reference: &str, user: uuid::Uuid, amount: SignedWei) -> Movement {
    Movement::transfer(
        reference,
        MovementKind::Mint,
        Account::Supply,
        Account::UserAvailable(user),
        amount,
    )
    .unwrap()
}

/// A batch of movements over several users (what a confirmed batch of
/// mints and burns posts) moves every user's balances exactly, reading and
/// writing the user rows once for the whole batch, not once per user.
async fn a_batch_moves_all_user_balances_in_one_read_and_one_write(db: TestDb) {
    let conn = db.conn();
    let alice = user(conn, "alice").await;
    let bob = user(conn, "bob").await;
    let carol = user(conn, "carol").await;
    // Bob holds 10 for a burn; an amount beyond 2^64 wei checks exactness.
    let big = SignedWei::new(123_456_789_012_345_678_901_234_567);
    post(conn, &mint("mint:bob-0", bob.id, hnv(10)))
        .await
        .unwrap();
    post(
        conn,
        &Movement::reserve("reserve:bob", bob.id, hnv(10)).unwrap(),
    )
    .await
    .unwrap();

    let (counted, statements) = counting(conn, "user_balances");
    let batch = [
        mint("mint:alice-1", alice.id, big),
        mint("mint:alice-2", alice.id, hnv(4)),
        mint("mint:bob-1", bob.id, hnv(5)),
        Movement::transfer(
            "burn:bob",
            MovementKind::Burn,
            Account::UserReserved(bob.id),
            Account::Burned,
            hnv(10),
        )
        .unwrap(),
        mint("mint:carol-1", carol.id, hnv(7)),
        // Posted before: nothing moves twice.
        mint("mint:bob-0", bob.id, hnv(10)),
    ];
    let posted = post_many(&counted, &batch).await.unwrap();
    assert_eq!(posted[5], Posted::Duplicate);
    assert!(posted[..5].iter().all(|p| matches!(p, Posted::Applied(_))));
    assert_eq!(
        statements.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one read and one write of the user rows for three users"
    );

    let alice_balance = ledger::user_balance(conn, alice.id).await.unwrap();
    assert_eq!(
        (
            alice_balance.available,
            alice_balance.reserved,
            alice_balance.version
        ),
        (big.checked_add(hnv(4)).unwrap(), SignedWei::ZERO, 1)
    );
    let bob_balance = ledger::user_balance(conn, bob.id).await.unwrap();
    assert_eq!(
        (
            bob_balance.available,
            bob_balance.reserved,
            bob_balance.version
        ),
        (hnv(5), SignedWei::ZERO, 3)
    );
    let carol_balance = ledger::user_balance(conn, carol.id).await.unwrap();
    assert_eq!(
        (carol_balance.available, carol_balance.version),
        (hnv(7), 1)
    );
    assert_eq!(
        ledger::system_balance(conn, Account::Supply).await.unwrap(),
        hnv(-26).checked_sub(big).unwrap()
    );
    assert_eq!(
        ledger::system_balance(conn, Account::Burned).await.unwrap(),
        hnv(10)
    );

    // The same batch again (a redelivery) changes nothing.
    let again = post_many(conn, &batch).await.unwrap();
    assert!(again.iter().all(|p| *p == Posted::Duplicate));
    assert_eq!(
        ledger::user_balance(conn, bob.id).await.unwrap(),
        bob_balance
    );

    // One user overdrawn refuses the whole batch, leaving no trace.
    let overdrawn = [
        mint("mint:alice-3", alice.id, hnv(1)),
        Movement::transfer(
            "burn:carol",
            MovementKind::Burn,
            Account::UserReserved(carol.id),
            Account::Burned,
            hnv(1),
        )
        .unwrap(),
    ];
    let err = post_many(conn, &overdrawn).await.unwrap_err();
    assert!(
        matches!(
            err,
            EntityError::InsufficientBalance {
                account: "user_reserved",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        ledger::user_balance(conn, alice.id).await.unwrap(),
        alice_balance
    );
    assert_eq!(movements(conn).await, 7);
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_moves_a_batchs_user_balances_in_one_read_and_one_write() {
    a_batch_moves_all_user_balances_in_one_read_and_one_write(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_moves_a_batchs_user_balances_in_one_read_and_one_write() {
    a_batch_moves_all_user_balances_in_one_read_and_one_write(TestDb::sqlite().await).await;
}

/// A user without a balance row (made other than by `users::find_or_create`)
/// gets one inside a batch, as with a single posting.
async fn a_batch_creates_missing_balance_rows(db: TestDb) {
    use haven_entity::user_balances;
    use sea_orm::{ColumnTrait, QueryFilter};

    let conn = db.conn();
    let alice = user(conn, "alice").await;
    let bob = user(conn, "bob").await;
    user_balances::Entity::delete_many()
        .filter(user_balances::Column::UserId.eq(bob.id))
        .exec(conn)
        .await
        .unwrap();
    post_many(
        conn,
        &[
            mint("mint:alice", alice.id, hnv(2)),
            mint("mint:bob", bob.id, hnv(3)),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        ledger::user_balance(conn, bob.id).await.unwrap(),
        ledger::Balance {
            available: hnv(3),
            reserved: SignedWei::ZERO,
            version: 1
        }
    );
    assert_eq!(
        ledger::user_balance(conn, alice.id)
            .await
            .unwrap()
            .available,
        hnv(2)
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_creates_missing_balance_rows_in_a_batch() {
    a_batch_creates_missing_balance_rows(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_creates_missing_balance_rows_in_a_batch() {
    a_batch_creates_missing_balance_rows(TestDb::sqlite().await).await;
}

/// Concurrent batches crediting the same users, listed in different
/// orders, all land, without a deadlock (the rows are locked in id order).
async fn concurrent_batches_on_the_same_users_all_land(db: TestDb) {
    const BATCHES: usize = 12;
    let conn = Arc::new(db.conn().clone());
    let mut users = Vec::new();
    for name in ["a", "b", "c", "d", "e"] {
        users.push(user(&conn, name).await.id);
    }
    let tasks: Vec<_> = (0..BATCHES)
        .map(|batch| {
            let conn = Arc::clone(&conn);
            let mut users = users.clone();
            let shift = batch % users.len();
            users.rotate_left(shift);
            if batch % 2 == 1 {
                users.reverse();
            }
            tokio::spawn(async move {
                let movements: Vec<Movement> = users
                    .iter()
                    .map(|id| mint(&format!("mint:{batch}:{id}"), *id, hnv(1)))
                    .collect();
                post_many(&conn, &movements).await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    for id in &users {
        let balance = ledger::user_balance(conn.as_ref(), *id).await.unwrap();
        assert_eq!(
            (balance.available, balance.version),
            (hnv(BATCHES as i128), BATCHES as i64)
        );
    }
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_concurrent_batches_on_the_same_users_all_land() {
    concurrent_batches_on_the_same_users_all_land(TestDb::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_concurrent_batches_on_the_same_users_all_land() {
    concurrent_batches_on_the_same_users_all_land(TestDb::sqlite().await).await;
}
