//! The same reads on SQLite, which `cargo xtask up` uses by default: every
//! statement is written for both backends.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

use clap::Parser as _;
use haven_common::testing::app::TestApp;
use haven_common::testing::db::TestDb;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use read_api::Config;
use serde_json::{Value, json};

use crate::helpers::{hnv, hnv_str, reserve, set_redemption, token_tx, user, wallet};

async fn get(app: &TestApp<read_api::Error>, path: &str) -> (u16, Value) {
    let res = app.get(path).await;
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn every_read_works_on_sqlite() {
    let db = TestDb::sqlite().await;
    let conn = db.conn();
    let id = user(conn, "lite", Some("Lite@Example.com"), &wallet(0), false).await;
    let other = user(conn, "lite-2", None, &wallet(1), false).await;
    token_tx(
        conn,
        id,
        "l1",
        TxType::Mint,
        hnv_str("0.1"),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        conn,
        id,
        "l2",
        TxType::Mint,
        hnv_str("0.2"),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        conn,
        id,
        "l3",
        TxType::Mint,
        hnv(240),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        conn,
        id,
        "l4",
        TxType::Mint,
        hnv_str("12.5"),
        "review",
        TxStatus::Pending,
    )
    .await;
    token_tx(
        conn,
        other,
        "l5",
        TxType::Mint,
        hnv(1),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    let paid = reserve(conn, id, "lr1", hnv(40)).await;
    token_tx(
        conn,
        id,
        "lb1",
        TxType::Burn,
        hnv(40),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    set_redemption(conn, paid, RedemptionState::Paid, Some("lb1")).await;
    let reserved = reserve(conn, id, "lr2", hnv(100)).await;

    let args = [
        "read-api",
        "--database-url",
        db.url(),
        "--stats-cache-ttl",
        "0s",
    ];
    let config = Config::try_parse_from(args).unwrap();
    let app = TestApp::spawn(|listener, shutdown| read_api::run(config, listener, shutdown)).await;

    let (status, body) = get(&app, "/token/balance/lite").await;
    assert_eq!(status, 200, "{body}");
    // 0.1 + 0.2 + 240 - 40, added as integers of wei: exactly 200.3.
    assert_eq!(body["balance"], json!(200.3));
    assert_eq!(body["available"], json!(100.3));
    assert_eq!(body["reserved"], json!(100.0));
    assert_eq!(body["pending"], json!(12.5));
    let (status, _) = get(&app, "/token/balance?email=lite@example.com").await;
    assert_eq!(status, 200);
    let (status, _) = get(&app, "/token/balance/nobody").await;
    assert_eq!(status, 404);

    let (status, body) = get(&app, "/analytics/user/lite").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_earned"], json!(240.3));
    assert_eq!(body["total_redeemed"], json!(40.0));
    assert_eq!(body["transaction_count"], 5);

    let (status, body) = get(&app, "/analytics/transactions/lite?limit=2").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 6);
    assert_eq!(body["count"], 2);
    assert_eq!(body["transactions"][0]["tx_id"], reserved.to_string());
    assert_eq!(body["transactions"][0]["status"], "pending");
    assert_eq!(body["transactions"][1]["tx_id"], "lb1");
    assert_eq!(body["transactions"][1]["redemption_state"], "paid");

    let (status, body) = get(&app, "/analytics/token-stats").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_minted"], json!(241.3));
    assert_eq!(body["total_burned"], json!(40.0));
    assert_eq!(body["circulating_supply"], json!(201.3));
    assert_eq!(body["total_users"], 2);
    assert_eq!(body["total_transactions"], 6);
    assert_eq!(body["pending_transactions"], 1);

    app.stop().await;
    db.cleanup().await;
}
