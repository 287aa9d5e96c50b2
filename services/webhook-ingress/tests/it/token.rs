//! Token commands: API keys, idempotency, mint queueing, redemption reservations.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use haven_entity::ledger;
use haven_entity::redemptions::{self, RedemptionState};
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_messages::{ChainRequest, RedemptionCommand, names};
use sea_orm::{ActiveModelTrait, ActiveValue::Set};
use serde_json::{Value, json};

use crate::helpers::*;

fn hnv(n: i128) -> haven_entity::SignedWei {
    haven_entity::SignedWei::from_hnv(n).unwrap()
}

#[tokio::test]
async fn api_keys_missing_403_wrong_401_and_any_active_key_works() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "user_auth", 0, false).await;
    let mint = json!({"user_id": "user_auth", "amount": 100.0, "reason": "test"});
    let (status, body) = post_command(&s.app, "/token/mint", &mint, None).await;
    assert_eq!((status, body), (403, json!({"detail": "Missing API key"})));
    let (status, body) = post_command(&s.app, "/token/mint", &mint, Some("wrong_key_123")).await;
    assert_eq!((status, body), (401, json!({"detail": "Invalid API key"})));
    let (status, _) = post_command(&s.app, "/token/redeem", &mint, Some("test_ke")).await;
    assert_eq!(status, 401);
    assert_eq!(
        post_command(&s.app, "/token/mint", &mint, Some(API_KEY))
            .await
            .0,
        200
    );
    assert_eq!(
        post_command(&s.app, "/token/mint", &mint, Some(API_KEY_2))
            .await
            .0,
        200
    );
    s.finish().await;
}

#[tokio::test]
async fn mint_is_queued_once_per_key_and_a_changed_request_is_refused() {
    let s = spawn_app().await;
    let user = user_with_balance(s.db(), "user_mint", 0, false).await;
    let payload = json!({
        "user_id": "user_mint",
        "amount": 100.0,
        "reason": "booking_reward_123",
        "idempotency_key": "mint_key_1"
    });
    let (status, first) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["tx_id"], "mint_key_1");
    assert_eq!(first["amount"], json!(100.0));

    let (status, again) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    assert_eq!(status, 200);
    let mut expected = first.clone();
    expected["status"] = json!("duplicate");
    assert_eq!(again, expected, "the original answer, marked duplicate");

    let mut changed = payload.clone();
    changed["amount"] = json!(101);
    let (status, body) = post_command(&s.app, "/token/mint", &changed, Some(API_KEY)).await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("mint_key_1"),
        "{body}"
    );

    let tx = token_transactions::find_by_tx_id(s.db(), "mint_key_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (tx.user_id, tx.tx_type, tx.amount, tx.status),
        (user, TxType::Mint, hnv(100), TxStatus::Pending)
    );
    assert_eq!(tx.chain_reference.len(), 32, "a 32-byte on-chain reference");
    // Who asked: the key's name, never the key.
    assert_eq!(tx.requested_by.as_deref(), Some(API_KEY_NAME));

    let requests = drain_queue::<ChainRequest>(&s.deps, names::CHAIN_REQUESTS, DELIVERY).await;
    assert_eq!(requests.len(), 1);
    let ChainRequest::Mint(m) = &requests[0].payload else {
        panic!()
    };
    assert_eq!(
        (m.tx_id, m.amount_wei, m.user_id.as_str()),
        (tx.id, 100 * 10u128.pow(18), "user_mint")
    );
    let wallet = haven_entity::users::find_by_external_id(s.db(), "user_mint")
        .await
        .unwrap()
        .unwrap()
        .wallet_address;
    assert_eq!(m.to_address, wallet);
    s.finish().await;
}

#[tokio::test]
async fn mint_keys_from_the_header_or_generated_and_unknown_users_404() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "user_keys", 0, false).await;
    let payload = json!({"user_id": "user_keys", "amount": "2.5", "reason": "manual"});
    let response = s
        .app
        .client
        .post(format!("{}/token/mint", s.app.address))
        .header("X-API-Key", API_KEY)
        .header("Idempotency-Key", "header_key_1")
        .json(&payload)
        .send()
        .await
        .unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        (body["status"].clone(), body["tx_id"].clone()),
        (json!("queued"), json!("header_key_1"))
    );

    let (_, a) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    let (_, b) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    assert_eq!(
        (a["status"].clone(), b["status"].clone()),
        (json!("queued"), json!("queued"))
    );
    assert_ne!(a["tx_id"], b["tx_id"], "no key: each request is new");

    let unknown = json!({"user_id": "nonexistent_user", "amount": 100.0, "reason": "test"});
    let (status, body) = post_command(&s.app, "/token/mint", &unknown, Some(API_KEY)).await;
    assert_eq!((status, body), (404, json!({"detail": "User not found"})));
    s.finish().await;
}

#[tokio::test]
async fn a_transaction_recorded_before_with_the_key_is_a_duplicate() {
    // The seed guide's test_mint_duplicate_rejected: the row exists already.
    let s = spawn_app().await;
    user_with_balance(s.db(), "user_seed_dup", 0, false).await;
    let payload = json!({"user_id": "user_seed_dup", "amount": 100.0, "reason": "booking_reward_123", "idempotency_key": "mint_key_1"});
    assert_eq!(
        post_command(&s.app, "/token/mint", &payload, Some(API_KEY))
            .await
            .0,
        200
    );
    let tx = token_transactions::find_by_tx_id(s.db(), "mint_key_1")
        .await
        .unwrap()
        .unwrap();
    let mut confirmed: token_transactions::ActiveModel = tx.into();
    confirmed.status = Set(TxStatus::Confirmed);
    confirmed.tx_hash = Set(Some("0xabc123".into()));
    confirmed.update(s.db()).await.unwrap();
    let (status, body) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    assert_eq!((status, body["status"].clone()), (200, json!("duplicate")));
    s.finish().await;
}

#[tokio::test]
async fn amounts_follow_the_money_rules() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "user_amounts", 0, false).await;
    for amount in [
        json!(0),
        json!(-5),
        json!("abc"),
        json!("NaN"),
        json!("Infinity"),
        json!("1.0000000000000000001"),
        json!(null),
        json!(true),
        json!(1_000_000_001),
    ] {
        let payload = json!({"user_id": "user_amounts", "amount": amount, "reason": "r"});
        let (status, body) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
        assert_eq!(status, 422, "{amount}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains("amount"),
            "{amount}: {body}"
        );
    }
    for (payload, field) in [
        (json!({"amount": 1, "reason": "r"}), "user_id"),
        (json!({"user_id": "user_amounts", "amount": 1}), "reason"),
        (
            json!({"user_id": "user_amounts", "amount": 1, "reason": ""}),
            "reason",
        ),
        (json!({"user_id": 5, "amount": 1, "reason": "r"}), "user_id"),
        (
            json!({"user_id": "user_amounts", "amount": 1, "reason": "r", "idempotency_key": "a\u{0}b"}),
            "idempotency_key",
        ),
    ] {
        let (status, body) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
        assert_eq!(status, 422, "{payload}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(field),
            "{payload}: {body}"
        );
    }
    // 18 decimals is fine, and exact.
    let payload = json!({"user_id": "user_amounts", "amount": "0.000000000000000001", "reason": "r", "idempotency_key": "tiny"});
    let (status, body) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
    assert_eq!((status, body["amount"].clone()), (200, json!(1e-18)));
    let tx = token_transactions::find_by_tx_id(s.db(), "tiny")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.amount, haven_entity::SignedWei::new(1));
    s.finish().await;
}

#[tokio::test]
async fn redeem_reserves_the_balance_and_queues_the_redemption() {
    let s = spawn_app().await;
    let user = user_with_balance(s.db(), "user_redeem", 1000, false).await;
    let payload = json!({
        "user_id": "user_redeem",
        "amount": 500.0,
        "withdrawal_method": "bank_transfer",
        "idempotency_key": "redeem_key_1"
    });
    let (status, first) = post_command(&s.app, "/token/redeem", &payload, Some(API_KEY_2)).await;
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["burn_amount"], json!(500.0));
    assert_eq!(first["payout_amount"], json!(490.0));
    assert_eq!(first["fee_amount"], json!(10.0));

    let balance = ledger::user_balance(s.db(), user).await.unwrap();
    assert_eq!((balance.available, balance.reserved), (hnv(500), hnv(500)));

    let (status, again) = post_command(&s.app, "/token/redeem", &payload, Some(API_KEY)).await;
    let mut expected = first.clone();
    expected["status"] = json!("duplicate");
    assert_eq!((status, again), (200, expected));
    let balance = ledger::user_balance(s.db(), user).await.unwrap();
    assert_eq!(balance.reserved, hnv(500), "reserved once");

    let mut other = payload.clone();
    other["withdrawal_method"] = json!("paypal");
    assert_eq!(
        post_command(&s.app, "/token/redeem", &other, Some(API_KEY))
            .await
            .0,
        422
    );

    let row = redemptions::find_by_idempotency_key(s.db(), "redeem_key_1")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (row.state, row.amount, row.payout_amount),
        (RedemptionState::Reserved, hnv(500), hnv(490))
    );
    // Who asked first: the bare second key, by its position's name. The
    // retry with the other key changed nothing.
    assert_eq!(row.requested_by.as_deref(), Some(API_KEY_2_NAME));
    let commands =
        drain_queue::<RedemptionCommand>(&s.deps, names::REDEMPTION_REQUESTS, DELIVERY).await;
    assert_eq!(commands.len(), 1);
    let RedemptionCommand::Requested(r) = &commands[0].payload;
    assert_eq!(
        (r.redemption_id, r.amount_wei, r.payout_wei),
        (row.request_id, 500 * 10u128.pow(18), 490 * 10u128.pow(18))
    );
    s.finish().await;
}

#[tokio::test]
async fn redeem_refusals_change_nothing() {
    let s = spawn_app().await;
    let user = user_with_balance(s.db(), "user_refusals", 5_000, false).await;
    user_with_balance(s.db(), "user_kyc", 20_000, true).await;
    let redeem = |user: &str, amount: Value, method: &str, address: Option<&str>, key: &str| {
        let mut body = json!({"user_id": user, "amount": amount, "withdrawal_method": method, "idempotency_key": key});
        if let Some(a) = address {
            body["withdrawal_address"] = json!(a);
        }
        body
    };
    let cases = [
        (
            redeem("user_refusals", json!(6_000), "bank_transfer", None, "k1"),
            400,
            "Insufficient balance",
        ),
        (
            redeem("user_refusals", json!(10_001), "bank_transfer", None, "k2"),
            403,
            "KYC",
        ),
        (
            redeem("nobody", json!(1), "bank_transfer", None, "k3"),
            404,
            "User not found",
        ),
        (
            redeem("user_refusals", json!(1), "cheque", None, "k4"),
            422,
            "withdrawal_method",
        ),
        (
            redeem("user_refusals", json!(1), "crypto", None, "k5"),
            422,
            "withdrawal_address",
        ),
        (
            redeem(
                "user_refusals",
                json!(1),
                "crypto",
                Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAeD"),
                "k6",
            ),
            422,
            "withdrawal_address",
        ),
        (
            redeem("user_refusals", json!(-1), "paypal", None, "k7"),
            422,
            "amount",
        ),
        (
            json!({"user_id": "user_refusals", "amount": 1, "withdrawal_method": "paypal"}),
            422,
            "idempotency_key",
        ),
    ];
    for (payload, status, detail) in cases {
        let (got, body) = post_command(&s.app, "/token/redeem", &payload, Some(API_KEY)).await;
        assert_eq!(got, status, "{payload}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(detail),
            "{payload}: {body}"
        );
    }
    let balance = ledger::user_balance(s.db(), user).await.unwrap();
    assert_eq!((balance.available, balance.reserved), (hnv(5_000), hnv(0)));
    assert_eq!(count::<redemptions::Entity>(s.db()).await, 0);

    // KYC-verified users may redeem above the threshold; crypto to a checksummed address.
    let ok = redeem(
        "user_kyc",
        json!(15_000),
        "crypto",
        Some("0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"),
        "k8",
    );
    let (status, body) = post_command(&s.app, "/token/redeem", &ok, Some(API_KEY)).await;
    assert_eq!(
        (status, body["payout_amount"].clone()),
        (200, json!(14_700.0)),
        "{body}"
    );
    s.finish().await;
}

#[tokio::test]
async fn fifty_concurrent_redemptions_of_a_tenth_reserve_exactly_ten() {
    let s = spawn_app_with(&["--rate-limit-per-minute", "0"]).await;
    let user = user_with_balance(s.db(), "user_race", 1000, false).await;
    let answers = futures::future::join_all((0..50).map(|i| {
        let payload = json!({
            "user_id": "user_race",
            "amount": 100,
            "withdrawal_method": "bank_transfer",
            "idempotency_key": format!("race_{i}")
        });
        let app = &s.app;
        async move { post_command(app, "/token/redeem", &payload, Some(API_KEY)).await }
    }))
    .await;
    let accepted = answers.iter().filter(|(st, _)| *st == 200).count();
    let refused = answers
        .iter()
        .filter(|(st, b)| *st == 400 && b["detail"] == "Insufficient balance")
        .count();
    assert_eq!((accepted, refused), (10, 40), "{answers:?}");
    let balance = ledger::user_balance(s.db(), user).await.unwrap();
    assert_eq!((balance.available, balance.reserved), (hnv(0), hnv(1000)));
    assert_eq!(count::<redemptions::Entity>(s.db()).await, 10);
    let commands = drain_queue::<RedemptionCommand>(
        &s.deps,
        names::REDEMPTION_REQUESTS,
        Duration::from_secs(3),
    )
    .await;
    assert_eq!(commands.len(), 10);
    s.finish().await;
}

#[tokio::test]
async fn commands_are_rate_limited_per_key_with_retry_after() {
    let s = spawn_app_with(&["--rate-limit-per-minute", "3"]).await;
    user_with_balance(s.db(), "user_rate", 0, false).await;
    let payload = json!({"user_id": "user_rate", "amount": 1, "reason": "r"});
    for _ in 0..3 {
        assert_eq!(
            post_command(&s.app, "/token/mint", &payload, Some(API_KEY))
                .await
                .0,
            200
        );
    }
    let (retry_after, _) = mint_refused_with_429(&s.app, &payload).await;
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    // Another key has its own budget; webhooks are not limited.
    assert_eq!(
        post_command(&s.app, "/token/mint", &payload, Some(API_KEY_2))
            .await
            .0,
        200
    );
    for i in 0..5 {
        let booking =
            json!({"id": format!("b{i}"), "guest_id": "g", "total_price": 1, "nights": 1});
        assert_eq!(
            post_aurora(&s.app, "booking-created", &booking).await.0,
            200
        );
    }
    assert_eq!(count::<token_transactions::Entity>(s.db()).await, 4);
    s.finish().await;
}
