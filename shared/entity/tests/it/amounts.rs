//! Amounts survive the database exactly, beyond what a float can hold.

use chrono::Utc;
use haven_common::testing::db::TestDb;
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::{SignedWei, ledger_accounts, user_balances};
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::helpers::user;

/// 10^27 + 1 wei: the supply cap plus one wei, 28 significant digits.
const BIG: i128 = 1_000_000_000_000_000_000_000_000_001;

async fn round_trip(db: TestDb) {
    let conn = db.conn();
    let user = user(conn, "big-spender").await;
    let id = Uuid::now_v7();
    let now = Utc::now();
    token_transactions::Entity::insert(token_transactions::ActiveModel {
        id: Set(id),
        tx_id: Set("tx-big".into()),
        chain_reference: Set(vec![7; 32]),
        user_id: Set(user.id),
        tx_type: Set(TxType::Mint),
        amount: Set(SignedWei::new(BIG)),
        reason: Set("test".into()),
        status: Set(TxStatus::Pending),
        tx_hash: Set(None),
        block_number: Set(None),
        last_error: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        submitted_at: Set(None),
        confirmed_at: Set(None),
        final_at: Set(None),
        reorgs: Set(0),
        requested_by: Set(None),
        accepted_at: Set(None),
    })
    .exec_without_returning(conn)
    .await
    .unwrap();

    let read = token_transactions::Entity::find_by_id(id)
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.amount, SignedWei::new(BIG));
    assert_eq!(read.amount.to_string(), "1000000000000000000000000001");

    // Filtering by an exact amount goes through the same cast.
    let found = token_transactions::Entity::find()
        .filter(token_transactions::Column::Amount.eq(SignedWei::new(BIG)))
        .all(conn)
        .await
        .unwrap();
    assert_eq!(found.len(), 1);

    // Negative and update paths too.
    ledger_accounts::Entity::update_many()
        .set(ledger_accounts::ActiveModel {
            balance: Set(SignedWei::new(-BIG)),
            ..Default::default()
        })
        .filter(ledger_accounts::Column::Id.eq("supply"))
        .exec(conn)
        .await
        .unwrap();
    let supply = ledger_accounts::Entity::find_by_id("supply")
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(supply.balance, SignedWei::new(-BIG));

    let balance = user_balances::Entity::find_by_id(user.id)
        .one(conn)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(balance.available, SignedWei::ZERO);
    db.cleanup().await;
}

#[tokio::test]
async fn ten_to_the_27_plus_one_round_trips_on_postgres() {
    round_trip(TestDb::new().await).await;
}

#[tokio::test]
async fn ten_to_the_27_plus_one_round_trips_on_sqlite() {
    round_trip(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn postgres_stores_amounts_as_numeric() {
    // On PostgreSQL the amount columns are a domain over NUMERIC(78,0),
    // so SUMs in reports are exact and non-numbers are refused.
    use sea_orm::ConnectionTrait;
    let db = TestDb::new().await;
    assert!(
        db.conn()
            .execute_unprepared("SELECT 'abc'::wei_text")
            .await
            .is_err()
    );
    let row = db
        .conn()
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT format_type(typbasetype, typtypmod) AS t FROM pg_type WHERE typname = 'wei_text'",
        ))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(row.try_get::<String>("", "t").unwrap(), "numeric(78,0)");
    db.cleanup().await;
}
