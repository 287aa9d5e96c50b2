//! `GET /analytics/transactions/{user_id}`: the seed guide's case, order,
//! paging boundaries, statuses and redemptions.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

use chrono::{Duration, Utc};
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{TxStatus, TxType};
use serde_json::{Value, json};

use crate::helpers::{
    hnv, reserve, set_created_at, set_redemption, spawn_app, token_tx, user, wallet,
};

fn tx_ids(body: &Value) -> Vec<String> {
    body["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|tx| tx["tx_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn the_seed_guides_five_transactions_are_listed_newest_first() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(
        db,
        "test_user_123",
        Some("test@example.com"),
        &wallet(0),
        true,
    )
    .await;
    // As the seed guide: tx_0..tx_4, mints at even i, burns at odd i, i * 100 HNV, confirmed.
    // Mints first so the burns have a balance to come out of.
    let base = Utc::now() - Duration::hours(1);
    for i in [0i64, 2, 4, 1, 3] {
        let tx_type = if i % 2 == 0 {
            TxType::Mint
        } else {
            TxType::Burn
        };
        let amount = if i == 0 {
            hnv(1)
        } else {
            hnv(i128::from(i) * 100)
        };
        let row = token_tx(
            db,
            id,
            &format!("tx_{i}"),
            tx_type,
            amount,
            "test",
            TxStatus::Confirmed,
        )
        .await;
        set_created_at(db, row, base + Duration::seconds(i)).await;
    }

    let (status, body) = app.get_json("/analytics/transactions/test_user_123").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user_id"], "test_user_123");
    assert_eq!(body["count"], 5);
    assert_eq!(body["total"], 5);
    assert_eq!(body["limit"], 50);
    assert_eq!(body["offset"], 0);
    assert_eq!(tx_ids(&body), ["tx_4", "tx_3", "tx_2", "tx_1", "tx_0"]);
    let tx3 = &body["transactions"][1];
    assert_eq!(tx3["user_id"], "test_user_123");
    assert_eq!(tx3["tx_type"], "burn");
    assert_eq!(tx3["amount"], json!(300.0));
    assert_eq!(tx3["reason"], "test");
    assert_eq!(tx3["status"], "confirmed");
    assert!(tx3["blockchain_tx"].as_str().unwrap().starts_with("0x"));
    assert!(tx3["created_at"].as_str().unwrap().ends_with('Z'), "{tx3}");
    assert!(tx3["confirmed_at"].is_string());
    assert_eq!(tx3["redemption_id"], Value::Null);
    assert_eq!(body["transactions"][0]["tx_type"], "mint");
    app.finish().await;
}

#[tokio::test]
async fn pages_are_stable_and_never_overlap_even_for_equal_times() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, "pager", None, &wallet(1), false).await;
    let same = Utc::now() - Duration::minutes(5);
    for i in 0..7 {
        let row = token_tx(
            db,
            id,
            &format!("p{i}"),
            TxType::Mint,
            hnv(1),
            "event",
            TxStatus::Confirmed,
        )
        .await;
        // Three share one time; the rest are later, one second apart.
        let at = if i < 3 {
            same
        } else {
            same + Duration::seconds(i)
        };
        set_created_at(db, row, at).await;
    }
    let (_, all) = app
        .get_json("/analytics/transactions/pager?limit=500")
        .await;
    let all = tx_ids(&all);
    assert_eq!(all.len(), 7);
    assert_eq!(&all[..4], ["p6", "p5", "p4", "p3"]);
    let mut paged = Vec::new();
    for offset in 0..4 {
        let (status, body) = app
            .get_json(&format!(
                "/analytics/transactions/pager?limit=2&offset={}",
                offset * 2
            ))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["total"], 7);
        paged.extend(tx_ids(&body));
    }
    assert_eq!(paged, all, "pages concatenate to the whole history");
    // Asking twice gives the same order.
    let (_, again) = app
        .get_json("/analytics/transactions/pager?limit=500")
        .await;
    assert_eq!(tx_ids(&again), all);
    // Past the end: an empty page, not an error.
    let (status, body) = app.get_json("/analytics/transactions/pager?offset=7").await;
    assert_eq!((status, body["count"].clone()), (200, json!(0)));
    app.finish().await;
}

#[tokio::test]
async fn paging_parameters_out_of_range_are_422() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, "bounds", None, &wallet(2), false).await;
    for i in 0..3 {
        token_tx(
            db,
            id,
            &format!("b{i}"),
            TxType::Mint,
            hnv(1),
            "event",
            TxStatus::Pending,
        )
        .await;
    }
    for (query, count) in [
        ("limit=1", 1),
        ("limit=500", 3),
        ("limit=2&offset=2", 1),
        ("offset=0", 3),
    ] {
        let (status, body) = app
            .get_json(&format!("/analytics/transactions/bounds?{query}"))
            .await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["count"], count, "{query}");
    }
    for query in [
        "limit=0",
        "limit=501",
        "limit=-1",
        "limit=abc",
        "limit=",
        "limit=2.5",
        "offset=-1",
        "offset=abc",
        "offset=1e3",
        "offset=99999999999999999999999",
        "limit=1&limit=2",
    ] {
        let (status, body) = app
            .get_json(&format!("/analytics/transactions/bounds?{query}"))
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(
            detail.contains("limit") || detail.contains("offset"),
            "{query}: {detail}"
        );
    }
    // An unknown user is a 404 whatever the paging; bad paging is checked first.
    let (status, body) = app.get_json("/analytics/transactions/nobody?limit=5").await;
    assert_eq!((status, body), (404, json!({"detail": "User not found"})));
    app.finish().await;
}

#[tokio::test]
async fn statuses_follow_the_spec_and_redemptions_show_their_state() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, "redeemer", None, &wallet(3), false).await;
    let mut at = Utc::now() - Duration::minutes(10);
    let mut step = |row: uuid::Uuid| {
        at += Duration::seconds(1);
        (row, at)
    };
    for (tx_id, status) in [
        ("m-confirmed", TxStatus::Confirmed),
        ("m-submitted", TxStatus::Submitted),
        ("m-pending", TxStatus::Pending),
        ("m-failed", TxStatus::Failed),
        ("m-cancelled", TxStatus::Cancelled),
    ] {
        let row = token_tx(db, id, tx_id, TxType::Mint, hnv(500), "booking", status).await;
        let (row, at) = step(row);
        set_created_at(db, row, at).await;
    }
    // Redemption 1: burned and paid.
    let paid = reserve(db, id, "r-paid", hnv(100)).await;
    let burn = token_tx(
        db,
        id,
        "burn-paid",
        TxType::Burn,
        hnv(100),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    let (burn, at_burn) = step(burn);
    set_created_at(db, burn, at_burn).await;
    set_redemption(db, paid, RedemptionState::Paid, Some("burn-paid")).await;
    // Redemption 2: burned, payout failed for good, refunded by a mint.
    let refunded = reserve(db, id, "r-refunded", hnv(40)).await;
    let burn = token_tx(
        db,
        id,
        "burn-refunded",
        TxType::Burn,
        hnv(40),
        "redemption",
        TxStatus::Confirmed,
    )
    .await;
    let (burn, at_burn) = step(burn);
    set_created_at(db, burn, at_burn).await;
    let refund = token_tx(
        db,
        id,
        &format!("refund:{refunded}"),
        TxType::Mint,
        hnv(40),
        "refund",
        TxStatus::Confirmed,
    )
    .await;
    let (refund, at_refund) = step(refund);
    set_created_at(db, refund, at_refund).await;
    set_redemption(
        db,
        refunded,
        RedemptionState::Refunded,
        Some("burn-refunded"),
    )
    .await;
    // Redemption 3: just reserved at ingress, no burn yet (newest of all).
    let reserved = reserve(db, id, "r-reserved", hnv(25)).await;

    let (status, body) = app.get_json("/analytics/transactions/redeemer").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["total"], 9);
    let txs = body["transactions"].as_array().unwrap();
    let by_id = |tx_id: &str| {
        txs.iter()
            .find(|tx| tx["tx_id"] == tx_id)
            .unwrap_or_else(|| panic!("{tx_id} missing from {body}"))
            .clone()
    };
    assert_eq!(by_id("m-confirmed")["status"], "confirmed");
    // `submitted` is SPEC.md's `pending`; it has its chain hash already.
    assert_eq!(by_id("m-submitted")["status"], "pending");
    assert!(by_id("m-submitted")["blockchain_tx"].is_string());
    assert_eq!(by_id("m-pending")["status"], "pending");
    assert_eq!(by_id("m-pending")["blockchain_tx"], Value::Null);
    assert_eq!(by_id("m-failed")["status"], "failed");
    assert_eq!(by_id("m-cancelled")["status"], "cancelled");

    let burn = by_id("burn-paid");
    assert_eq!(burn["tx_type"], "burn");
    assert_eq!(burn["reason"], "redemption");
    assert_eq!(burn["redemption_id"], paid.to_string());
    assert_eq!(burn["redemption_state"], "paid");
    let burn = by_id("burn-refunded");
    assert_eq!(burn["redemption_state"], "refunded");
    let refund = by_id(&format!("refund:{refunded}"));
    assert_eq!(refund["tx_type"], "mint");
    assert_eq!(refund["redemption_id"], refunded.to_string());
    assert_eq!(refund["redemption_state"], "refunded");

    // The reservation without a burn: a pending redemption burn, newest first.
    let first = &txs[0];
    assert_eq!(first["tx_id"], reserved.to_string());
    assert_eq!(first["tx_type"], "burn");
    assert_eq!(first["reason"], "redemption");
    assert_eq!(first["amount"], json!(25.0));
    assert_eq!(first["status"], "pending");
    assert_eq!(first["redemption_id"], reserved.to_string());
    assert_eq!(first["redemption_state"], "reserved");

    // Once its burn is requested the reservation row gives way to the burn.
    let burn = token_tx(
        db,
        id,
        "burn-reserved",
        TxType::Burn,
        hnv(25),
        "redemption",
        TxStatus::Pending,
    )
    .await;
    let _ = burn;
    set_redemption(
        db,
        reserved,
        RedemptionState::BurnRequested,
        Some("burn-reserved"),
    )
    .await;
    let (_, body) = app.get_json("/analytics/transactions/redeemer").await;
    assert_eq!(body["total"], 9);
    let ids = tx_ids(&body);
    assert!(!ids.contains(&reserved.to_string()), "{ids:?}");
    let burn = body["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|tx| tx["tx_id"] == "burn-reserved")
        .unwrap()
        .clone();
    assert_eq!(burn["status"], "pending");
    assert_eq!(burn["redemption_state"], "burn_requested");
    app.finish().await;
}
