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

/// A reward naming token transaction `tx_id` (NULL when `None`).
fn reward_sql(source: &str, user_id: uuid::Uuid, tx_id: Option<&str>) -> String {
    let tx_id = tx_id.map_or_else(|| "NULL".to_owned(), |tx_id| format!("'{tx_id}'"));
    format!(
        "INSERT INTO rewards (id, source_reference, user_id, rule, rule_version, amount, status, \
         token_tx_id, created_at, updated_at) VALUES ('{}', '{source}', '{user_id}', 'booking', 1, \
         CAST('1' AS wei_text), 'pending', {tx_id}, '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')",
        uuid::Uuid::now_v7()
    )
}

/// `rewards_token_tx_id_fkey` is checked at commit after
/// m20261209_000016_reward_mint_deferred and per statement again after its
/// down; the rewards (and, on SQLite, the rebuilt table's indexes) survive
/// both ways.
async fn the_reward_mint_check_moves_to_commit_and_back(db: TestDb) {
    use sea_orm::TransactionTrait;

    let conn = db.conn();
    Migrator::up(conn, None).await.unwrap();
    let user_id = uuid::Uuid::now_v7();
    conn.execute_unprepared(&format!(
        "INSERT INTO users (id, partner, external_id, wallet_address, derivation_index, \
         created_at, updated_at) VALUES ('{user_id}', 'tribe', 'u', '0x01', 1, \
         '2025-01-01T00:00:00Z', '2025-01-01T00:00:00Z')"
    ))
    .await
    .unwrap();
    conn.execute_unprepared(&reward_sql("kept", user_id, None))
        .await
        .unwrap();

    // At commit: the insert passes, the commit does not.
    let txn = conn.begin().await.unwrap();
    txn.execute_unprepared(&reward_sql("dangling", user_id, Some("reward_missing")))
        .await
        .unwrap();
    txn.commit().await.expect_err("checked at commit");

    // Per statement: the insert itself is refused.
    Migrator::down(conn, Some(1)).await.unwrap();
    let txn = conn.begin().await.unwrap();
    txn.execute_unprepared(&reward_sql("dangling", user_id, Some("reward_missing")))
        .await
        .expect_err("checked per statement");
    txn.rollback().await.unwrap();

    Migrator::up(conn, None).await.unwrap();
    let duplicate = conn
        .execute_unprepared(&reward_sql("kept", user_id, None))
        .await
        .expect_err("the kept reward is still there, its source still unique");
    assert!(
        duplicate.to_string().to_lowercase().contains("unique"),
        "{duplicate}"
    );
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_checks_a_rewards_mint_at_commit_after_migrating() {
    the_reward_mint_check_moves_to_commit_and_back(TestDb::postgres_empty().await).await;
}

#[tokio::test]
async fn sqlite_checks_a_rewards_mint_at_commit_after_migrating() {
    the_reward_mint_check_moves_to_commit_and_back(TestDb::sqlite_empty().await).await;
}
