//! Recording confirmed batches (`record::confirmed`) straight against the
//! database, on PostgreSQL and SQLite: a constant number of statements per
//! batch, and every request credited once whoever else records it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use chain_minter::minter::Request;
use chain_minter::minter::record::{self, Landed};
use haven_common::telemetry::TraceHeaders;
use haven_common::testing::db::TestDb;
use haven_entity::ledger::{self, Account};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::{SignedWei, users};
use haven_messages::ChainRequest;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, PaginatorTrait, QueryFilter};

use crate::helpers::{HNV, count_status, pending_mints};

/// `users` pending mints of 1, 2, ... HNV, and a second mint of 10 HNV to
/// the first user, claimed (`submitted`) as a batch about to be sent.
async fn claimed_batch(db: &DatabaseConnection, users: usize) -> Vec<Request> {
    let mut requests: Vec<Request> = pending_mints(db, "record", users, |i| i as u128 + 1)
        .await
        .into_iter()
        .map(|(request, to, amount)| {
            let ChainRequest::Mint(mint) = request else {
                panic!("a mint")
            };
            Request::Mint {
                tx_id: mint.tx_id,
                user_id: mint.user_id,
                to,
                amount,
                reason: mint.reason,
            }
        })
        .collect();
    let first = users::find_by_external_id(db, "record-0")
        .await
        .unwrap()
        .unwrap();
    let again = token_transactions::insert_pending(
        db,
        NewTokenTransaction {
            tx_id: "record-0-mint-again".into(),
            user_id: first.id,
            tx_type: TxType::Mint,
            amount: SignedWei::new(i128::try_from(10 * HNV).unwrap()),
            reason: "booking".into(),
            requested_by: None,
            accepted_at: None,
        },
    )
    .await
    .unwrap()
    .unwrap();
    let Request::Mint { to, .. } = &requests[0] else {
        unreachable!()
    };
    requests.push(Request::Mint {
        tx_id: again.id,
        user_id: "record-0".into(),
        to: *to,
        amount: 10 * HNV,
        reason: "booking".into(),
    });
    let ids: Vec<_> = requests.iter().map(Request::tx_id).collect();
    record::claim(db, &ids).await.unwrap();
    requests
}

async fn confirm(db: &DatabaseConnection, requests: &[Request]) -> usize {
    let landed = Landed {
        tx_hash: format!("0x{:064x}", 7),
        block_number: 7,
    };
    let batch: Vec<_> = requests
        .iter()
        .map(|request| (request, landed.clone(), TraceHeaders::default()))
        .collect();
    record::confirmed(db, &batch, true).await.unwrap().confirmed
}

/// Each user's available balance, in the order of `requests`' users.
async fn balances(db: &DatabaseConnection, users: usize) -> Vec<SignedWei> {
    let mut out = Vec::with_capacity(users);
    for i in 0..users {
        let user = users::find_by_external_id(db, &format!("record-{i}"))
            .await
            .unwrap()
            .unwrap();
        out.push(ledger::user_balance(db, user.id).await.unwrap().available);
    }
    out
}

fn hnv(n: i128) -> SignedWei {
    SignedWei::from_hnv(n).unwrap()
}

async fn a_batch_is_recorded_in_statements_that_do_not_grow_with_it(db: TestDb) {
    const USERS: usize = 12;
    let conn = db.conn();
    let requests = claimed_batch(conn, USERS).await;

    // Counts every statement of the recording, per table.
    let counts = Arc::new([
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    ]);
    let mut counted = conn.clone();
    let seen = Arc::clone(&counts);
    counted.set_metric_callback(move |info| {
        seen[0].fetch_add(1, Ordering::SeqCst);
        for (slot, table) in [(1, "token_transactions"), (2, "user_balances")] {
            if info.statement.sql.contains(table) {
                seen[slot].fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    assert_eq!(confirm(&counted, &requests).await, USERS + 1);
    let [all, token_transactions, user_balances] =
        counts.each_ref().map(|count| count.load(Ordering::SeqCst));
    assert_eq!(
        token_transactions,
        2,
        "one read and one conditional update for {} rows",
        USERS + 1
    );
    assert_eq!(user_balances, 2, "one read and one write for {USERS} users");
    // The rows read; marked; rewards minted; movements and their entries
    // inserted; user balances read and written; the supply read and
    // written (BEGIN and COMMIT are not counted). No event: nobody waits on
    // a reward's mint.
    assert!(
        all <= 9,
        "{all} statements to record a batch of {}",
        USERS + 1
    );

    assert_eq!(
        count_status(conn, TxStatus::Confirmed).await,
        USERS as u64 + 1
    );
    let mut expected: Vec<SignedWei> = (1..=USERS as i128).map(hnv).collect();
    expected[0] = hnv(11);
    assert_eq!(balances(conn, USERS).await, expected, "summed per user");
    let minted: i128 = expected.iter().map(|b| b.get()).sum();
    assert_eq!(
        ledger::system_balance(conn, Account::Supply).await.unwrap(),
        SignedWei::new(-minted)
    );
    let row = token_transactions::Entity::find_by_id(requests[3].tx_id())
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.tx_hash.as_deref(), row.block_number),
        (Some(format!("0x{:064x}", 7).as_str()), Some(7))
    );
    assert!(row.confirmed_at.is_some() && row.final_at.is_some());

    // The batch recorded again (a redelivery, the sweep, the start-up
    // reconciliation) credits nothing and announces nothing.
    let outbox = haven_entity::outbox::Entity::find()
        .count(conn)
        .await
        .unwrap();
    assert_eq!(confirm(conn, &requests).await, 0);
    assert_eq!(balances(conn, USERS).await, expected);
    assert_eq!(
        haven_entity::outbox::Entity::find()
            .count(conn)
            .await
            .unwrap(),
        outbox
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_records_a_batch_in_statements_that_do_not_grow_with_it() {
    a_batch_is_recorded_in_statements_that_do_not_grow_with_it(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_records_a_batch_in_statements_that_do_not_grow_with_it() {
    a_batch_is_recorded_in_statements_that_do_not_grow_with_it(TestDb::sqlite().await).await;
}

/// Two replicas (or a redelivered copy in another batch) recording the same
/// requests at once, and a request twice in one batch: each is credited and
/// recorded once.
async fn racing_recordings_credit_each_request_once(db: TestDb) {
    const USERS: usize = 8;
    let conn = db.conn();
    let requests = claimed_batch(conn, USERS).await;
    let mut doubled = requests.clone();
    doubled.push(requests[2].clone());
    let (first, second) = tokio::join!(confirm(conn, &doubled), confirm(conn, &requests));
    assert_eq!(first + second, USERS + 1, "each recorded once");
    let mut expected: Vec<SignedWei> = (1..=USERS as i128).map(hnv).collect();
    expected[0] = hnv(11);
    assert_eq!(balances(conn, USERS).await, expected, "each credited once");
    assert_eq!(
        haven_entity::ledger_movements::Entity::find()
            .count(conn)
            .await
            .unwrap(),
        USERS as u64 + 1
    );
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_racing_recordings_credit_each_request_once() {
    racing_recordings_credit_each_request_once(TestDb::new().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_racing_recordings_credit_each_request_once() {
    racing_recordings_credit_each_request_once(TestDb::sqlite().await).await;
}

/// A reward's mint is confirmed in the ledger and announced to no one; a
/// refund's mint is announced (redemption-payout finishes the redemption on
/// it), with its own correlation.
async fn only_the_confirmations_someone_waits_on_are_announced(db: TestDb) {
    const USERS: usize = 4;
    let conn = db.conn();
    let requests = claimed_batch(conn, USERS).await;
    let refund = requests[1].tx_id();
    token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::Reason,
            sea_orm::sea_query::Expr::value(haven_messages::REFUND_REASON),
        )
        .filter(token_transactions::Column::Id.eq(refund))
        .exec(conn)
        .await
        .unwrap();

    let batch: Vec<_> = requests
        .iter()
        .map(|request| {
            let landed = Landed {
                tx_hash: format!("0x{:064x}", 9),
                block_number: 9,
            };
            (request, landed, TraceHeaders::default())
        })
        .collect();
    let recorded = record::confirmed(conn, &batch, false).await.unwrap();
    assert_eq!(recorded.confirmed, USERS + 1);
    assert_eq!(recorded.announced, 1, "the refund only");
    let queued = haven_entity::outbox::Entity::find()
        .all(conn)
        .await
        .unwrap();
    assert_eq!(queued.len(), 1);
    let event = haven_messages::Envelope::<haven_messages::ChainEvent>::decode(&queued[0].payload)
        .unwrap()
        .payload;
    let haven_messages::ChainEvent::Confirmed(confirmed) = event else {
        panic!("a confirmed event: {event:?}")
    };
    assert_eq!(confirmed.tx_id, refund);
    assert_eq!(
        count_status(conn, TxStatus::Confirmed).await,
        USERS as u64 + 1
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_announces_only_the_confirmations_someone_waits_on() {
    only_the_confirmations_someone_waits_on_are_announced(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_announces_only_the_confirmations_someone_waits_on() {
    only_the_confirmations_someone_waits_on_are_announced(TestDb::sqlite().await).await;
}
