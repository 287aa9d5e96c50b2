//! The schema migrates up, all the way down and up again on both backends.
#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message

use haven_common::testing::db::TestDb;
use haven_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

const TABLES: &[&str] = &[
    "users",
    "user_balances",
    "ledger_accounts",
    "ledger_movements",
    "ledger_entries",
    "inbound_events",
    "outbox",
    "idempotency_keys",
    "token_transactions",
    "rewards",
    "redemptions",
    "redemption_states",
    "signer_leases",
    "chain_deployments",
    "signer_nonces",
    "bookings",
    "stakes",
    "emission_periods",
    "job_runs",
];

async fn tables(db: &DatabaseConnection) -> Vec<String> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT table_name AS name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY 1"
        }
        _ => "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY 1",
    };
    db.query_all_raw(Statement::from_string(backend, sql))
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get::<String>("", "name").unwrap())
        .collect()
}

async fn up_down_up(db: TestDb) {
    let conn = db.conn();
    Migrator::up(conn, None).await.unwrap();
    let after_up = tables(conn).await;
    for table in TABLES {
        assert!(
            after_up.iter().any(|t| t == table),
            "{table} missing after up: {after_up:?}"
        );
    }
    let status = Migrator::get_pending_migrations(conn).await.unwrap();
    assert!(status.is_empty(), "nothing pending after up");

    Migrator::down(conn, None).await.unwrap();
    let after_down = tables(conn).await;
    for table in TABLES {
        assert!(
            !after_down.iter().any(|t| t == table),
            "{table} left after down: {after_down:?}"
        );
    }
    assert_eq!(
        Migrator::get_applied_migrations(conn).await.unwrap().len(),
        0,
        "nothing applied after down"
    );

    // Down must remove everything up creates (domain, sequence, counter
    // table), or this second up fails.
    Migrator::up(conn, None).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(conn).await.unwrap().len(),
        Migrator::migrations().len()
    );

    // `fresh` (drop everything, migrate again) works on a populated schema too.
    Migrator::fresh(conn).await.unwrap();
    assert_eq!(
        Migrator::get_applied_migrations(conn).await.unwrap().len(),
        Migrator::migrations().len()
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_migrates_up_down_and_up_again() {
    up_down_up(TestDb::postgres_empty().await).await;
}

#[tokio::test]
async fn sqlite_migrates_up_down_and_up_again() {
    up_down_up(TestDb::sqlite_empty().await).await;
}

#[tokio::test]
async fn postgres_down_one_step_at_a_time() {
    let db = TestDb::postgres_empty().await;
    let conn = db.conn();
    Migrator::up(conn, None).await.unwrap();
    for remaining in (0..Migrator::migrations().len()).rev() {
        Migrator::down(conn, Some(1)).await.unwrap();
        assert_eq!(
            Migrator::get_applied_migrations(conn).await.unwrap().len(),
            remaining
        );
    }
    db.cleanup().await;
}

#[tokio::test]
async fn a_dropped_test_database_is_removed_from_the_server() {
    let db = TestDb::new().await;
    let name = db.url().rsplit('/').next().unwrap().to_owned();
    assert!(name.starts_with("haven_test_"));
    drop(db);

    let admin = TestDb::postgres_empty().await;
    let rows = admin
        .conn()
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT 1 AS one FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        ))
        .await
        .unwrap();
    assert!(rows.is_empty(), "{name} is still on the server");
    admin.cleanup().await;
}
