//! `GET /analytics/user/{user_id}` and `GET /analytics/token-stats` without
//! a chain, with a dead one, and through the cache.

use haven_entity::ledger::{Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use serde_json::{Value, json};

use crate::helpers::{
    hnv, post, reserve, set_redemption, spawn_app, spawn_app_with, token_tx, user, wallet,
};

#[tokio::test]
async fn user_analytics_add_up_earnings_and_redemptions() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, "analyst", Some("analyst@example.com"), &wallet(0), true).await;
    token_tx(
        db,
        id,
        "m1",
        TxType::Mint,
        hnv(240),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        id,
        "m2",
        TxType::Mint,
        hnv(100),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        id,
        "m3",
        TxType::Mint,
        hnv(50),
        "review",
        TxStatus::Submitted,
    )
    .await;
    // Redeemed 200 and paid; redeemed 30, refunded (does not count either way).
    let paid = reserve(db, id, "r1", hnv(200)).await;
    token_tx(
        db,
        id,
        "b1",
        TxType::Burn,
        hnv(200),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    set_redemption(db, paid, RedemptionState::Paid, Some("b1")).await;
    let refunded = reserve(db, id, "r2", hnv(30)).await;
    token_tx(
        db,
        id,
        "b2",
        TxType::Burn,
        hnv(30),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        id,
        &format!("refund-{refunded}"),
        TxType::Mint,
        hnv(30),
        "refund",
        TxStatus::Confirmed,
    )
    .await;
    set_redemption(db, refunded, RedemptionState::Refunded, Some("b2")).await;

    let (status, body) = app.get_json("/analytics/user/analyst").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "analyst");
    assert_eq!(body["email"], "analyst@example.com");
    assert_eq!(body["wallet_address"], wallet(0));
    assert_eq!(body["kyc_verified"], true);
    // 240 + 100 - 200 - 30 + 30.
    assert_eq!(body["balance"], json!(140.0));
    assert_eq!(body["available"], json!(140.0));
    assert_eq!(body["pending"], json!(50.0));
    assert_eq!(body["total_earned"], json!(340.0));
    assert_eq!(body["total_redeemed"], json!(200.0));
    assert_eq!(body["transaction_count"], 6);

    let (status, body) = app.get_json("/analytics/user/nonexistent").await;
    assert_eq!((status, body), (404, json!({"detail": "User not found"})));
    app.finish().await;
}

/// Seeds 500,000 HNV minted to three users and 50,000 burned (the seed
/// guide's figures), plus transactions that must not count.
async fn seed_known_mints_and_burns(app: &crate::helpers::Spawned) {
    let db = app.db();
    let a = user(db, "stats-a", None, &wallet(10), false).await;
    let b = user(db, "stats-b", None, &wallet(11), false).await;
    let c = user(db, "stats-c", None, &wallet(12), false).await;
    token_tx(
        db,
        a,
        "s1",
        TxType::Mint,
        hnv(300_000),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        b,
        "s2",
        TxType::Mint,
        hnv(150_000),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        c,
        "s3",
        TxType::Mint,
        hnv(50_000),
        "referral",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        a,
        "s4",
        TxType::Burn,
        hnv(40_000),
        "reversal",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        b,
        "s5",
        TxType::Burn,
        hnv(10_000),
        "reversal",
        TxStatus::Confirmed,
    )
    .await;
    // As when a redemption is paid: its payout moves from `burned` to
    // `payout`, and is still burned.
    post(
        db,
        Movement::transfer(
            "payout:seeded",
            MovementKind::Payout,
            Account::Burned,
            Account::Payout,
            hnv(9_800),
        )
        .expect("a valid movement"),
    )
    .await;
    // Not in the totals: pending, failed, cancelled.
    token_tx(
        db,
        c,
        "s6",
        TxType::Mint,
        hnv(999),
        "booking",
        TxStatus::Pending,
    )
    .await;
    token_tx(
        db,
        c,
        "s7",
        TxType::Mint,
        hnv(999),
        "booking",
        TxStatus::Failed,
    )
    .await;
    token_tx(
        db,
        c,
        "s8",
        TxType::Mint,
        hnv(999),
        "booking",
        TxStatus::Cancelled,
    )
    .await;
}

fn assert_seeded_totals(body: &Value) {
    assert_eq!(body["total_minted"], json!(500000.0), "{body}");
    assert_eq!(body["total_burned"], json!(50000.0), "{body}");
    assert_eq!(body["circulating_supply"], json!(450000.0), "{body}");
    assert_eq!(body["total_users"], 3, "{body}");
    assert_eq!(body["total_transactions"], 8, "{body}");
    assert_eq!(body["pending_transactions"], 1, "{body}");
}

#[tokio::test]
async fn token_stats_after_known_mints_and_burns_without_a_chain() {
    let app = spawn_app_with(&["--stats-cache-ttl", "0s"]).await;
    let (status, body) = app.get_json("/analytics/token-stats").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total_minted"], json!(0.0));
    assert_eq!(body["total_users"], 0);

    seed_known_mints_and_burns(&app).await;
    let (status, body) = app.get_json("/analytics/token-stats").await;
    assert_eq!(status, 200, "{body}");
    assert_seeded_totals(&body);
    assert_eq!(body["chain"]["status"], "not_configured");
    assert_eq!(body["chain"]["total_supply"], Value::Null);
    assert!(body["cached_at"].is_string());
    assert!(body["cache_age_seconds"].as_f64().unwrap() < 1.0);
    app.finish().await;
}

#[tokio::test]
async fn token_stats_answers_the_database_figures_when_the_chain_is_down() {
    // Nothing listens on port 1: every chain read fails at once.
    let app = spawn_app_with(&[
        "--stats-cache-ttl",
        "0s",
        "--rpc-url",
        "http://127.0.0.1:1",
        "--contract-address",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--reconcile-interval",
        "0s",
    ])
    .await;
    seed_known_mints_and_burns(&app).await;
    let (status, body) = app.get_json("/analytics/token-stats").await;
    assert_eq!(status, 200, "{body}");
    assert_seeded_totals(&body);
    assert_eq!(body["chain"]["status"], "unavailable");
    assert!(body["chain"]["detail"].is_string());
    assert_eq!(body["chain"]["total_supply"], Value::Null);
    assert_eq!(body["chain"]["matches_database"], Value::Null);
    let metrics = app.get_text("/metrics", 200).await;
    assert!(
        metrics.contains(r#"haven_token_stats_chain_up{service="read-api"} 0"#),
        "{metrics}"
    );
    // Reconciliation is configured but off: nothing to show yet.
    let (status, body) = app.get_json("/analytics/reconciliation").await;
    assert_eq!(status, 404, "{body}");
    app.finish().await;
}

#[tokio::test]
async fn token_stats_are_cached_and_say_how_old_they_are() {
    let app = spawn_app_with(&["--stats-cache-ttl", "1h"]).await;
    let db = app.db();
    let id = user(db, "cached", None, &wallet(20), false).await;
    token_tx(
        db,
        id,
        "c1",
        TxType::Mint,
        hnv(10),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    let (_, first) = app.get_json("/analytics/token-stats").await;
    assert_eq!(first["total_minted"], json!(10.0));
    // A mint after the first read is not seen until the cache expires.
    token_tx(
        db,
        id,
        "c2",
        TxType::Mint,
        hnv(5),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let (_, second) = app.get_json("/analytics/token-stats").await;
    assert_eq!(second["total_minted"], json!(10.0));
    assert_eq!(second["cached_at"], first["cached_at"]);
    assert!(
        second["cache_age_seconds"].as_f64().unwrap() >= 0.05,
        "{second}"
    );
    assert_eq!(second["chain"]["status"], "not_configured");
    let (status, body) = app.get_json("/analytics/reconciliation").await;
    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("not configured"),
        "{body}"
    );
    app.finish().await;
}
