//! KYC: an operator records a user's check (`POST /users/{user_id}/kyc`),
//! kept with who asked; and the redemption threshold applies to what a user
//! redeems over a rolling window, so it cannot be split.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use haven_entity::{kyc_decisions, redemptions, users};
use sea_orm::EntityTrait;
use serde_json::{Value, json};

use crate::helpers::*;

fn redeem(user: &str, amount: u32, key: &str) -> Value {
    json!({"user_id": user, "amount": amount, "withdrawal_method": "bank_transfer", "idempotency_key": key})
}

async fn kyc(s: &Spawned, user: &str, body: &Value, key: Option<&str>) -> (u16, Value) {
    post_command(&s.app, &format!("/users/{user}/kyc"), body, key).await
}

#[tokio::test]
async fn an_operator_records_kyc_with_who_asked_and_the_user_can_then_redeem_above_the_threshold() {
    let s = spawn_app().await;
    let id = user_with_balance(s.db(), "guest_kyc", 30_000, false).await;

    // Unverified: 10,001 HNV is refused.
    let (status, answer) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_kyc", 10_001, "r1"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert!(
        answer["detail"].as_str().unwrap().contains("KYC"),
        "{answer}"
    );

    let (status, answer) = kyc(
        &s,
        "guest_kyc",
        &json!({"verified": true, "reference": "vendor-check-77"}),
        Some(API_KEY_2),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["user_id"], "guest_kyc");
    assert_eq!(answer["kyc_verified"], true);
    assert!(
        answer["updated_at"].as_str().unwrap().contains('T'),
        "{answer}"
    );
    let user = users::Entity::find_by_id(id)
        .one(s.db())
        .await
        .unwrap()
        .unwrap();
    assert!(user.kyc_verified);
    let history = kyc_decisions::history(s.db(), id).await.unwrap();
    assert_eq!(history.len(), 1);
    assert!(history[0].verified);
    assert_eq!(history[0].reference.as_deref(), Some("vendor-check-77"));
    // Who asked: the second key's name (it has none: its position), never the key.
    assert_eq!(history[0].decided_by, API_KEY_2_NAME, "{:?}", history[0]);

    let (status, answer) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_kyc", 10_001, "r2"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 200, "{answer}");

    // Revoked: refused again, and both decisions are kept, newest first.
    let (status, answer) = kyc(&s, "guest_kyc", &json!({"verified": false}), Some(API_KEY)).await;
    assert_eq!(
        (status, answer["kyc_verified"].clone()),
        (200, json!(false)),
        "{answer}"
    );
    let history = kyc_decisions::history(s.db(), id).await.unwrap();
    assert_eq!(
        history.iter().map(|d| d.verified).collect::<Vec<_>>(),
        [false, true]
    );
    assert_eq!(history[0].decided_by, API_KEY_NAME);
    let (status, _) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_kyc", 10_001, "r3"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 403);
    s.finish().await;
}

#[tokio::test]
async fn kyc_refusals_change_nothing() {
    let s = spawn_app().await;
    let id = user_with_balance(s.db(), "guest_door", 0, false).await;
    let cases: [(&str, Value, Option<&str>, u16, &str); 7] = [
        (
            "guest_door",
            json!({"verified": true}),
            None,
            403,
            "Missing API key",
        ),
        (
            "guest_door",
            json!({"verified": true}),
            Some("wrong_key_123"),
            401,
            "Invalid API key",
        ),
        (
            "nobody",
            json!({"verified": true}),
            Some(API_KEY),
            404,
            "User not found",
        ),
        (
            "guest_door",
            json!({"verified": "yes"}),
            Some(API_KEY),
            422,
            "verified",
        ),
        ("guest_door", json!({}), Some(API_KEY), 422, "verified"),
        (
            "guest_door",
            json!({"verified": true, "admin": true}),
            Some(API_KEY),
            422,
            "admin",
        ),
        (
            "guest_door",
            json!({"verified": true, "reference": "x".repeat(256)}),
            Some(API_KEY),
            422,
            "reference",
        ),
    ];
    for (user, body, key, expected, detail) in cases {
        let (status, answer) = kyc(&s, user, &body, key).await;
        assert_eq!(status, expected, "{body}: {answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap_or_default()
                .contains(detail),
            "{body}: {answer}"
        );
    }
    assert!(kyc_decisions::history(s.db(), id).await.unwrap().is_empty());
    let user = users::Entity::find_by_id(id)
        .one(s.db())
        .await
        .unwrap()
        .unwrap();
    assert!(!user.kyc_verified);
    s.finish().await;
}

#[tokio::test]
async fn the_threshold_applies_to_a_rolling_window_so_split_redemptions_add_up() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "guest_split", 20_000, false).await;
    // 4,000 + 4,000 = 8,000: under 10,000.
    for key in ["s1", "s2"] {
        let (status, answer) = post_command(
            &s.app,
            "/token/redeem",
            &redeem("guest_split", 4_000, key),
            Some(API_KEY),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
    }
    // A third 4,000 would make 12,000 within 30 days.
    let (status, answer) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_split", 4_000, "s3"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        answer["detail"],
        "Redemptions adding up to more than 10000.0 HNV within 30 days need a KYC-verified user"
    );
    // 2,000 still fits (10,000 is not more than 10,000).
    let (status, answer) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_split", 2_000, "s4"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(count::<redemptions::Entity>(s.db()).await, 3);
    s.finish().await;
}

#[tokio::test]
async fn concurrent_split_redemptions_cannot_each_miss_the_other() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "guest_race", 50_000, false).await;
    // Ten concurrent redemptions of 3,000: at most three fit under 10,000.
    let bodies: Vec<Value> = (0..10)
        .map(|i| redeem("guest_race", 3_000, &format!("race_{i}")))
        .collect();
    let answers = futures::future::join_all(
        bodies
            .iter()
            .map(|body| post_command(&s.app, "/token/redeem", body, Some(API_KEY))),
    )
    .await;
    let accepted = answers.iter().filter(|(status, _)| *status == 200).count();
    let refused = answers.iter().filter(|(status, _)| *status == 403).count();
    assert_eq!((accepted, refused), (3, 7), "{answers:?}");
    s.finish().await;
}

#[tokio::test]
async fn a_shorter_window_is_a_setting() {
    let s = spawn_app_with(&["--kyc-window", "1s"]).await;
    user_with_balance(s.db(), "guest_window", 20_000, false).await;
    let (status, _) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_window", 8_000, "w1"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    // The first is out of the window by now.
    let (status, answer) = post_command(
        &s.app,
        "/token/redeem",
        &redeem("guest_window", 8_000, "w2"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    s.finish().await;
}
