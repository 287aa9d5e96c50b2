//! `GET /token/balance/{user_id}` (the seed guide's `TestBalanceEndpoint`)
//! and the look-up by wallet or email.

use haven_entity::token_transactions::{TxStatus, TxType};
use serde_json::json;

use crate::helpers::{hnv, hnv_str, reserve, spawn_app, token_tx, user, wallet};

/// The seed guide's fixture user.
const SEED_USER: &str = "test_user_123";

#[tokio::test]
async fn the_seed_guides_balance_is_answered_exactly() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, SEED_USER, Some("test@example.com"), &wallet(0), true).await;
    token_tx(
        db,
        id,
        "seed-mint-1",
        TxType::Mint,
        hnv_str("1234.56"),
        "booking",
        TxStatus::Confirmed,
    )
    .await;

    let text = app
        .get_text(&format!("/token/balance/{SEED_USER}"), 200)
        .await;
    // Exact decimals in the JSON text itself, never a float artefact.
    assert!(text.contains(r#""balance":1234.56"#), "{text}");
    let body: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(body["user_id"], SEED_USER);
    assert_eq!(body["wallet_address"], wallet(0));
    assert_eq!(body["balance"], json!(1234.56));
    assert_eq!(body["available"], json!(1234.56));
    assert_eq!(body["reserved"], json!(0.0));
    assert_eq!(body["pending"], json!(0.0));
    app.finish().await;
}

#[tokio::test]
async fn an_unknown_user_is_a_404_user_not_found() {
    let app = spawn_app().await;
    let (status, body) = app.get_json("/token/balance/nonexistent").await;
    assert_eq!(status, 404);
    assert_eq!(body, json!({"detail": "User not found"}));
    app.finish().await;
}

#[tokio::test]
async fn pending_mints_and_reservations_are_shown_apart() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(db, "journey_guest_1", None, &wallet(1), false).await;
    // The seed journey: 240 (booking) + 100 (event), both confirmed.
    token_tx(
        db,
        id,
        "m-booking",
        TxType::Mint,
        hnv(240),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        id,
        "m-event",
        TxType::Mint,
        hnv(100),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    // A review reward queued, another sent: pending, not in the balance.
    token_tx(
        db,
        id,
        "m-review",
        TxType::Mint,
        hnv(50),
        "review",
        TxStatus::Pending,
    )
    .await;
    token_tx(
        db,
        id,
        "m-contrib",
        TxType::Mint,
        hnv_str("12.5"),
        "contribution",
        TxStatus::Submitted,
    )
    .await;
    // Neither failed nor cancelled mints count anywhere.
    token_tx(
        db,
        id,
        "m-failed",
        TxType::Mint,
        hnv(7),
        "booking",
        TxStatus::Failed,
    )
    .await;
    token_tx(
        db,
        id,
        "m-cancel",
        TxType::Mint,
        hnv(9),
        "booking",
        TxStatus::Cancelled,
    )
    .await;
    // A redemption of 200 reserved at ingress.
    reserve(db, id, "redeem-1", hnv(200)).await;

    let (status, body) = app.get_json("/token/balance/journey_guest_1").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["balance"], json!(340.0));
    assert_eq!(body["available"], json!(140.0));
    assert_eq!(body["reserved"], json!(200.0));
    assert_eq!(body["pending"], json!(62.5));
    app.finish().await;
}

#[tokio::test]
async fn malformed_user_ids_are_422_never_500() {
    let app = spawn_app().await;
    let too_long = "a".repeat(256);
    for path in [
        format!("/token/balance/{too_long}"),
        // NUL and other control characters (PostgreSQL text cannot hold NUL).
        "/token/balance/a%00b".to_owned(),
        "/token/balance/a%0Ab".to_owned(),
        // Not UTF-8.
        "/token/balance/%FF%FE".to_owned(),
        "/token/balance/%20".to_owned(),
        format!("/analytics/user/{too_long}"),
        "/analytics/user/%00".to_owned(),
        "/analytics/transactions/%FF".to_owned(),
    ] {
        let (status, body) = app.get_json(&path).await;
        assert_eq!(status, 422, "{path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("user_id"),
            "{path}: {body}"
        );
    }
    // The longest allowed id, with SQL-ish and non-ASCII characters, is just unknown.
    for id in [
        "a".repeat(255),
        "x'%20OR%201=1--".to_owned(),
        "%C3%A9t%C3%A9".to_owned(),
    ] {
        let (status, body) = app.get_json(&format!("/token/balance/{id}")).await;
        assert_eq!(status, 404, "{id}: {body}");
    }
    app.finish().await;
}

#[tokio::test]
async fn users_can_be_looked_up_by_wallet_or_email() {
    let app = spawn_app().await;
    let db = app.db();
    let id = user(
        db,
        "guest-a",
        Some("Guest.A@Example.com"),
        &wallet(2),
        false,
    )
    .await;
    token_tx(
        db,
        id,
        "m-a",
        TxType::Mint,
        hnv(25),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    user(db, "guest-b", Some("shared@example.com"), &wallet(3), false).await;
    user(db, "guest-c", Some("shared@example.com"), &wallet(4), false).await;

    // Any letter case of the wallet finds the checksummed stored one.
    for query in [
        format!("wallet_address={}", wallet(2)),
        format!("wallet_address={}", wallet(2).to_lowercase()),
        "email=guest.a@example.com".to_owned(),
    ] {
        let (status, body) = app.get_json(&format!("/token/balance?{query}")).await;
        assert_eq!(status, 200, "{query}: {body}");
        assert_eq!(body["user_id"], "guest-a");
        assert_eq!(body["balance"], json!(25.0));
    }
    let (status, body) = app
        .get_json("/token/balance?email=shared@example.com")
        .await;
    assert_eq!(status, 409, "{body}");
    let (status, body) = app
        .get_json(&format!("/token/balance?wallet_address={}", wallet(9)))
        .await;
    assert_eq!((status, body), (404, json!({"detail": "User not found"})));
    for bad in [
        "",
        "wallet_address=0x1234",
        "wallet_address=742d35cc6634c0532925a3b844bc000000000002",
        "email=not-an-email",
        "email=a@b.c&wallet_address=0x742d35cc6634c0532925a3b844bc000000000002",
        "email=a@b.c&email=d@e.f",
    ] {
        let (status, body) = app.get_json(&format!("/token/balance?{bad}")).await;
        assert_eq!(status, 422, "{bad}: {body}");
    }
    app.finish().await;
}

#[tokio::test]
async fn concurrent_reads_batched_together_each_get_their_own_answer() {
    let app = spawn_app().await;
    let db = app.db();
    for i in 0..20u64 {
        let id = user(db, &format!("many-{i}"), None, &wallet(100 + i), false).await;
        let amount = hnv(i128::from(i) + 1);
        token_tx(
            db,
            id,
            &format!("many-tx-{i}"),
            TxType::Mint,
            amount,
            "event",
            TxStatus::Confirmed,
        )
        .await;
    }
    // 200 requests at once: every user ten times, and unknown users between.
    let requests = (0..200u64).map(|n| {
        let app = &app;
        async move {
            let i = n % 25;
            let (status, body) = app.get_json(&format!("/token/balance/many-{i}")).await;
            (i, status, body)
        }
    });
    for (i, status, body) in futures::future::join_all(requests).await {
        if i < 20 {
            assert_eq!(status, 200, "many-{i}: {body}");
            assert_eq!(body["user_id"], format!("many-{i}"));
            assert_eq!(body["balance"], json!((i + 1) as f64), "many-{i}");
        } else {
            assert_eq!((status, body), (404, json!({"detail": "User not found"})));
        }
    }
    app.finish().await;
}
