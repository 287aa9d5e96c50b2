//! What an attacker on the partners' side of the network can send: each is
//! refused (or answered `duplicate`) and changes nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use haven_entity::{inbound_events, token_transactions};
use serde_json::{Value, json};

use crate::helpers::*;

fn detail(body: &Value) -> &str {
    body["detail"].as_str().unwrap_or_default()
}

#[tokio::test]
async fn a_forged_delivery_listing_many_signatures_is_refused_before_any_hashing() {
    let s = spawn_app().await;
    let route = "/webhooks/aurora/booking-created";
    // 200 KB of body: one HMAC per listed candidate was 35 s for 5,000.
    let body = format!(
        r#"{{"id":"b_forged","guest_id":"g","total_price":1,"nights":1,"pad":"{}"}}"#,
        "x".repeat(200 * 1024)
    )
    .into_bytes();
    let mut headers = standard_headers(b"not the partner's key", "msg_forged", now(), &body);
    let forged = headers[2].1.clone();
    headers[2].1 = vec![forged.as_str(); 1_000].join(" ");
    let (status, answer) = post_raw(&s.app, route, body.clone(), &headers).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        detail(&answer).contains("longer than 512 bytes"),
        "{answer}"
    );

    // Nine short entries: refused by count, still before hashing.
    headers[2].1 = ["v1,Zm9v"; 9].join(" ");
    let (status, answer) = post_raw(&s.app, route, body.clone(), &headers).await;
    assert_eq!(status, 401, "{answer}");
    assert!(
        detail(&answer).contains("more than 8 signatures"),
        "{answer}"
    );

    // A timestamp at the edge of i64 is outside the window, not a panic.
    let mut extreme = standard_headers(AURORA_WHSEC_KEY, "msg_x", now(), &body);
    extreme[1].1 = i64::MIN.to_string();
    let (status, answer) = post_raw(&s.app, route, body, &extreme).await;
    assert_eq!(status, 401, "{answer}");
    assert!(detail(&answer).contains("300 s"), "{answer}");
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_signed_body_is_refused_by_a_route_it_was_not_written_for() {
    let s = spawn_app().await;
    let creation = json!({
        "id": "booking_replayed",
        "guest_id": "guest_replayed",
        "total_price": 100.0,
        "nights": 2
    });
    // The creation's own signature, posted unchanged to the cancellation.
    let (status, answer) = post_aurora(&s.app, "booking-cancelled", &creation).await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        detail(&answer).contains("`total_price`") && detail(&answer).contains("booking-cancelled"),
        "{answer}"
    );
    // A cancellation carries its reason (as the seed's do).
    let bare = json!({"id": "booking_replayed", "guest_id": "guest_replayed"});
    let (status, answer) = post_aurora(&s.app, "booking-cancelled", &bare).await;
    assert_eq!(
        (status, detail(&answer)),
        (422, "field `cancellation_reason` is required")
    );
    // A review replayed as a completion.
    let review = json!({"id": "rev_1", "booking_id": "b", "guest_id": "g", "rating": 5});
    let (status, answer) = post_aurora(&s.app, "booking-completed", &review).await;
    assert_eq!(status, 422, "{answer}");
    assert!(detail(&answer).contains("`rating`"), "{answer}");
    // An attendance replayed as a contribution.
    let attendance = json!({"id": "e1", "attendee_id": "u1", "name": "Wisdom Circle", "type": "wisdom_circle", "attended": true});
    let (status, answer) = post_tribe(&s.app, "contribution", &attendance).await;
    assert_eq!(status, 422, "{answer}");
    assert!(detail(&answer).contains("does not belong"), "{answer}");
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);

    // The body on its own route is fine.
    assert_eq!(
        post_aurora(&s.app, "booking-created", &creation).await,
        (200, json!({"status": "accepted"}))
    );
    s.finish().await;
}

#[tokio::test]
async fn a_standard_delivery_replayed_to_another_route_is_spent() {
    let s = spawn_app().await;
    // A minimal contribution is also a well-formed attendance: only the
    // delivery id, spent by the first route, tells them apart.
    let body = br#"{"id":"c_1","user_id":"u_1","type":"post"}"#.to_vec();
    let headers = standard_headers(TRIBE_SECRET.as_bytes(), "msg_c_1", now(), &body);
    assert_eq!(
        post_raw(
            &s.app,
            "/webhooks/tribe/contribution",
            body.clone(),
            &headers
        )
        .await,
        (200, json!({"status": "accepted"}))
    );
    assert_eq!(
        post_raw(&s.app, "/webhooks/tribe/event-attendance", body, &headers).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 1);
    s.finish().await;
}

#[tokio::test]
async fn the_same_event_under_a_new_delivery_id_or_the_other_scheme_is_a_duplicate() {
    let s = spawn_app().await;
    let route = "/webhooks/aurora/booking-created";
    let payload =
        json!({"id": "booking_twice", "guest_id": "g_twice", "total_price": 80.0, "nights": 1});
    let body = serde_json::to_vec(&payload).unwrap();
    let first = standard_headers(AURORA_WHSEC_KEY, "msg_a", now(), &body);
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &first).await,
        (200, json!({"status": "accepted"}))
    );
    let renamed = standard_headers(AURORA_WHSEC_KEY, "msg_b", now(), &body);
    assert_eq!(
        post_raw(&s.app, route, body, &renamed).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(
        post_aurora(&s.app, "booking-created", &payload).await,
        (200, json!({"status": "duplicate"}))
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 1);
    s.finish().await;
}

#[tokio::test]
async fn what_could_never_succeed_later_is_refused_at_the_door() {
    let s = spawn_app().await;
    user_with_balance(s.db(), "user_door", 0, false).await;
    let mint = |amount: Value, reason: &str, key: &str| json!({"user_id": "user_door", "amount": amount, "reason": reason, "idempotency_key": key});
    let cases = [
        // 43 bytes: the chain's reason code holds 32.
        (
            mint(json!(1.0), &"r".repeat(43), "k_reason"),
            "field `reason` is 43 bytes long; at most 32 bytes fit on chain",
        ),
        (
            mint(json!(1.0), &"é".repeat(17), "k_reason_utf8"),
            "field `reason` is 34 bytes long; at most 32 bytes fit on chain",
        ),
        (
            mint(
                json!(1.0),
                "ok",
                "refund_0190f7f4-0000-7000-8000-000000000000",
            ),
            "must not start with",
        ),
        (mint(json!(1.0), "ok", "Reward_1"), "must not start with"),
    ];
    for (payload, expected) in cases {
        let (status, answer) = post_command(&s.app, "/token/mint", &payload, Some(API_KEY)).await;
        assert_eq!(status, 422, "{payload}: {answer}");
        assert!(detail(&answer).contains(expected), "{payload}: {answer}");
    }
    // Nineteen decimals, all zeros (written raw: a Value would go through f64).
    let decimals = br#"{"user_id":"user_door","amount":1.0000000000000000000,"reason":"ok","idempotency_key":"k_decimals"}"#;
    let (status, answer) = post_raw(
        &s.app,
        "/token/mint",
        decimals.to_vec(),
        &[("X-API-Key".into(), API_KEY.into())],
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        detail(&answer).contains("more than 18 decimals"),
        "{answer}"
    );
    // A 32-byte reason is the longest that fits, and is queued.
    let (status, answer) = post_command(
        &s.app,
        "/token/mint",
        &mint(json!(1.0), &"r".repeat(32), "k_fits"),
        Some(API_KEY),
    )
    .await;
    assert_eq!(
        (status, &answer["status"]),
        (200, &json!("queued")),
        "{answer}"
    );
    let redeem = json!({"user_id": "user_door", "amount": 1.0, "withdrawal_method": "paypal", "idempotency_key": "redemption_1"});
    let (status, answer) = post_command(&s.app, "/token/redeem", &redeem, Some(API_KEY)).await;
    assert_eq!(status, 422, "{answer}");
    assert!(detail(&answer).contains("must not start with"), "{answer}");
    assert_eq!(count::<token_transactions::Entity>(s.db()).await, 1);

    // Ids of more than 255 characters, integer or string.
    let long_integer = format!(
        r#"{{"id":{},"guest_id":"g","total_price":1,"nights":1}}"#,
        "9".repeat(4_000)
    );
    let sig = hmac_hex(AURORA_SECRET.as_bytes(), long_integer.as_bytes());
    let (status, answer) = post_raw(
        &s.app,
        "/webhooks/aurora/booking-created",
        long_integer.into_bytes(),
        &[("X-Aurora-Signature".into(), sig)],
    )
    .await;
    assert_eq!(
        (status, detail(&answer)),
        (422, "field `id` must be 1 to 255 characters")
    );
    let long_string =
        json!({"id": "b".repeat(256), "guest_id": "g", "total_price": 1, "nights": 1});
    let (status, answer) = post_aurora(&s.app, "booking-created", &long_string).await;
    assert_eq!(
        (status, detail(&answer)),
        (422, "field `id` must be 1 to 255 characters")
    );
    // Nineteen decimals in a partner's price too.
    let price = r#"{"id":"b_dec","guest_id":"g","total_price":100.0000000000000000000,"nights":1}"#;
    let sig = hmac_hex(AURORA_SECRET.as_bytes(), price.as_bytes());
    let (status, answer) = post_raw(
        &s.app,
        "/webhooks/aurora/booking-created",
        price.as_bytes().to_vec(),
        &[("X-Aurora-Signature".into(), sig)],
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    assert!(
        detail(&answer).contains("more than 18 decimals"),
        "{answer}"
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);
    s.finish().await;
}

#[tokio::test]
async fn guessing_api_keys_is_throttled_per_address() {
    let s = spawn_app_with(&["--api-key-failures-per-minute", "2"]).await;
    user_with_balance(s.db(), "user_guess", 0, false).await;
    let mint = json!({"user_id": "user_guess", "amount": 1.0, "reason": "r", "idempotency_key": "k_guess"});
    for guess in ["guess-one-1", "guess-two-2"] {
        let (status, _) = post_command(&s.app, "/token/mint", &mint, Some(guess)).await;
        assert_eq!(status, 401);
    }
    let (retry_after, body) = mint_refused_with_429(&s.app, &mint).await;
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert!(detail(&body).contains("Too many wrong API keys"), "{body}");
    assert_eq!(count::<token_transactions::Entity>(s.db()).await, 0);
    s.finish().await;
}
