//! Partner webhooks: signatures, validation, durable exactly-once acceptance.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use haven_entity::{inbound_events, outbox};
use haven_messages::{PartnerEvent, names};
use serde_json::{Value, json};

use crate::helpers::*;

fn booking(id: &str) -> Value {
    json!({
        "id": id,
        "guest_id": "new_guest_789",
        "guest_email": "guest@example.com",
        "total_price": 150.0,
        "nights": 2
    })
}

#[tokio::test]
async fn the_seed_booking_is_accepted_queued_once_and_a_retry_is_a_duplicate() {
    let s = spawn_app().await;
    let (status, body) = post_aurora(&s.app, "booking-created", &booking("booking_456")).await;
    assert_eq!((status, body), (200, json!({"status": "accepted"})));

    // The partner retries after a lost response: 2xx, nothing new.
    let (status, body) = post_aurora(&s.app, "booking-created", &booking("booking_456")).await;
    assert_eq!((status, body), (200, json!({"status": "duplicate"})));

    let events = drain_queue::<PartnerEvent>(&s.deps, names::PARTNER_EVENTS, DELIVERY).await;
    assert_eq!(events.len(), 1, "{events:?}");
    let PartnerEvent::AuroraBookingCreated(b) = &events[0].payload else {
        panic!("{events:?}")
    };
    assert_eq!(
        (
            b.booking_id.as_str(),
            b.guest_id.as_str(),
            b.total_price.as_str(),
            b.nights
        ),
        ("booking_456", "new_guest_789", "150.0", 2)
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 1);
    let rows = outbox::Entity::find_all(s.db()).await;
    assert_eq!(rows.len(), 1);
    assert!(rows[0].published_at.is_some(), "the relay marks it sent");
    s.finish().await;
}

/// `find_all` for the outbox, oldest first.
trait FindAll {
    async fn find_all(db: &sea_orm::DatabaseConnection) -> Vec<outbox::Model>;
}

impl FindAll for outbox::Entity {
    async fn find_all(db: &sea_orm::DatabaseConnection) -> Vec<outbox::Model> {
        use sea_orm::{EntityTrait, QueryOrder};
        outbox::Entity::find()
            .order_by_asc(outbox::Column::Id)
            .all(db)
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn every_route_accepts_its_payload_in_both_spellings() {
    let s = spawn_app().await;
    let aurora = [
        (
            "booking-created",
            json!({"booking_id": "b1", "guestId": "g1", "totalPrice": "99.99", "numberOfNights": 1}),
        ),
        ("booking-completed", json!({"id": "b1", "guest_id": "g1"})),
        (
            "booking-cancelled",
            json!({"id": "b1", "guest_id": "g1", "cancellation_reason": "guest_requested"}),
        ),
        (
            "review-submitted",
            json!({"id": "r1", "booking_id": "b1", "guest_id": "g1", "rating": 5}),
        ),
    ];
    for (route, payload) in &aurora {
        let (status, body) = post_aurora(&s.app, route, payload).await;
        assert_eq!(
            (status, &body),
            (200, &json!({"status": "accepted"})),
            "{route}"
        );
    }
    let tribe = [
        (
            "event-attendance",
            json!({"event_id": "e1", "user_id": "g1", "event_name": "Circle", "event_type": "wisdom_circle"}),
        ),
        (
            "contribution",
            json!({"id": "c1", "user_id": "g1", "type": "guide", "quality_score": 1.5}),
        ),
        (
            "staking-started",
            json!({"id": "s1", "user_id": "g1", "amount": 1000}),
        ),
        (
            "coaching-milestone",
            json!({"user_id": "g1", "milestone_name": "first", "tier": "basic"}),
        ),
        (
            "referral-success",
            json!({"referrer_id": "g1", "referred_id": "g2", "tier": "gold"}),
        ),
    ];
    for (route, payload) in &tribe {
        let (status, body) = post_tribe(&s.app, route, payload).await;
        assert_eq!(
            (status, &body),
            (200, &json!({"status": "accepted"})),
            "{route}"
        );
    }
    let events = drain_queue::<PartnerEvent>(&s.deps, names::PARTNER_EVENTS, DELIVERY).await;
    let mut kinds: Vec<&str> = events.iter().map(|e| e.kind()).collect();
    kinds.sort_unstable();
    assert_eq!(
        kinds,
        [
            "aurora.booking_cancelled",
            "aurora.booking_completed",
            "aurora.booking_created",
            "aurora.review_submitted",
            "tribe.coaching_milestone",
            "tribe.contribution",
            "tribe.event_attendance",
            "tribe.referral_success",
            "tribe.staking_started",
        ]
    );
    s.finish().await;
}

#[tokio::test]
async fn hex_signatures_missing_wrong_tampered_and_rotated() {
    let s = spawn_app().await;
    let payload =
        json!({"id": "booking_123", "guest_id": "guest_456", "total_price": 100.0, "nights": 1});
    let body = serde_json::to_vec(&payload).unwrap();
    let route = "/webhooks/aurora/booking-created";

    let (status, detail) = post_raw(&s.app, route, body.clone(), &[]).await;
    assert_eq!(
        (status, detail),
        (401, json!({"detail": "Missing webhook signature"}))
    );

    let bad = [(
        "X-Aurora-Signature".to_owned(),
        "invalid_signature_xyz".to_owned(),
    )];
    let (status, detail) = post_raw(&s.app, route, body.clone(), &bad).await;
    assert_eq!(status, 401);
    assert!(
        detail["detail"]
            .as_str()
            .unwrap()
            .contains("Invalid signature")
    );

    // Signed, then the price changed in transit.
    let sig = seed_signature(&payload, AURORA_SECRET);
    let tampered =
        json!({"id": "booking_123", "guest_id": "guest_456", "total_price": 200.0, "nights": 1});
    let headers = [("X-Aurora-Signature".to_owned(), sig.clone())];
    let (status, _) = post_raw(
        &s.app,
        route,
        serde_json::to_vec(&tampered).unwrap(),
        &headers,
    )
    .await;
    assert_eq!(status, 401);

    // Tribe's secret does not sign for Aurora, nor Aurora's header for Tribe.
    let tribe_sig = [(
        "X-Aurora-Signature".to_owned(),
        hmac_hex(TRIBE_SECRET.as_bytes(), &body),
    )];
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &tribe_sig).await.0,
        401
    );
    let (status, _) = post_raw(
        &s.app,
        "/webhooks/tribe/contribution",
        body.clone(),
        &headers,
    )
    .await;
    assert_eq!(
        status, 401,
        "an Aurora header on a Tribe route is no signature"
    );

    assert_eq!(
        count::<inbound_events::Entity>(s.db()).await,
        0,
        "nothing stored"
    );

    // Both active secrets verify, over the raw body and the canonical form.
    let old = [(
        "X-Aurora-Signature".to_owned(),
        hmac_hex(AURORA_OLD_SECRET.as_bytes(), &body),
    )];
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &old).await,
        (200, json!({"status": "accepted"}))
    );
    let current = [("X-Aurora-Signature".to_owned(), format!("sha256={sig}"))];
    assert_eq!(
        post_raw(&s.app, route, body, &current).await,
        (200, json!({"status": "duplicate"}))
    );
    s.finish().await;
}

#[tokio::test]
async fn standard_webhooks_valid_tampered_missing_stale_and_future() {
    let s = spawn_app().await;
    let route = "/webhooks/aurora/review-submitted";
    let body = br#"{"id":"rev_1","guest_id":"g1","rating":4}"#.to_vec();

    let stale = standard_headers(AURORA_WHSEC_KEY, "msg_1", now() - 301, &body);
    let (status, detail) = post_raw(&s.app, route, body.clone(), &stale).await;
    assert_eq!(status, 401);
    assert!(
        detail["detail"].as_str().unwrap().contains("300 s"),
        "{detail}"
    );

    let future = standard_headers(AURORA_WHSEC_KEY, "msg_1", now() + 301, &body);
    assert_eq!(post_raw(&s.app, route, body.clone(), &future).await.0, 401);

    let mut missing_id = standard_headers(AURORA_WHSEC_KEY, "msg_1", now(), &body);
    missing_id.retain(|(name, _)| name != "webhook-id");
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &missing_id).await.0,
        401
    );

    let valid = standard_headers(AURORA_WHSEC_KEY, "msg_1", now(), &body);
    let tampered = br#"{"id":"rev_1","guest_id":"g1","rating":5}"#.to_vec();
    assert_eq!(post_raw(&s.app, route, tampered, &valid).await.0, 401);

    let wrong_key = standard_headers(b"another key", "msg_1", now(), &body);
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &wrong_key).await.0,
        401
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);

    // Within the window either way, with several signatures listed.
    let mut listed = standard_headers(AURORA_WHSEC_KEY, "msg_1", now() - 299, &body);
    listed[2].1 = format!("v1,bm90IGEgc2lnbmF0dXJl {}", listed[2].1);
    assert_eq!(
        post_raw(&s.app, route, body.clone(), &listed).await,
        (200, json!({"status": "accepted"}))
    );
    // The same webhook-id again is the same delivery.
    let again = standard_headers(AURORA_WHSEC_KEY, "msg_1", now() + 299, &body);
    assert_eq!(
        post_raw(&s.app, route, body, &again).await,
        (200, json!({"status": "duplicate"}))
    );
    s.finish().await;
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413_before_being_read() {
    let s = spawn_app_with(&["--max-body-size", "64KiB"]).await;
    let route = format!("{}/webhooks/aurora/booking-created", s.app.address);

    // Declared length: refused from the headers.
    let big = vec![b' '; 10 * 1024 * 1024];
    let response = s.app.client.post(&route).body(big).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
    let body: Value = response.json().await.unwrap();
    assert!(body["detail"].as_str().unwrap().contains("65536"), "{body}");

    // Chunked, no length: the server stops at the cap instead of reading
    // 10 MiB; the stream is cut short when the answer comes back.
    let chunks =
        futures::stream::iter((0..160).map(|_| Ok::<_, std::io::Error>(vec![b' '; 64 * 1024])));
    let response = s
        .app
        .client
        .post(&route)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await;
    match response {
        Ok(response) => assert_eq!(response.status().as_u16(), 413),
        // The server may close the connection before the client finished sending.
        Err(err) => assert!(err.is_request() || err.is_body(), "{err}"),
    }
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);
    s.finish().await;
}

#[tokio::test]
async fn bad_content_types_and_bodies_get_clear_4xx_and_change_nothing() {
    let s = spawn_app().await;
    let route = "/webhooks/aurora/booking-created";
    let send = |body: Vec<u8>, content_type: &'static str| {
        let sig = hmac_hex(AURORA_SECRET.as_bytes(), &body);
        let client = s.app.client.clone();
        let url = format!("{}{route}", s.app.address);
        async move {
            let response = client
                .post(url)
                .header("content-type", content_type)
                .header("X-Aurora-Signature", sig)
                .body(body)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            (status, response.json::<Value>().await.unwrap())
        }
    };
    let (status, body) = send(b"id=1".to_vec(), "application/x-www-form-urlencoded").await;
    assert_eq!(
        (status, body),
        (
            415,
            json!({"detail": "Content-Type must be application/json"})
        )
    );
    let (status, body) = send(b"not json".to_vec(), "application/json").await;
    assert_eq!(status, 422, "{body}");

    // Each field's bad value, named in the detail.
    let cases = [
        (
            json!({"guest_id": "g", "total_price": 1, "nights": 1}),
            "`id`",
        ),
        (
            json!({"id": "b", "total_price": 1, "nights": 1}),
            "`guest_id`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "nights": 1}),
            "`total_price`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": -1, "nights": 1}),
            "`total_price`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": 0, "nights": 1}),
            "`total_price`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": "NaN", "nights": 1}),
            "`total_price`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": "1.0000000000000000001", "nights": 1}),
            "`total_price`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": 1, "nights": 0}),
            "`nights`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": 1, "nights": "two"}),
            "`nights`",
        ),
        (
            json!({"id": "b", "guest_id": "g", "total_price": 1, "nights": 1, "guest_email": 5}),
            "`guest_email`",
        ),
        (
            json!({"id": ["b"], "guest_id": "g", "total_price": 1, "nights": 1}),
            "`id`",
        ),
        (
            json!({"id": "", "guest_id": "g", "total_price": 1, "nights": 1}),
            "`id`",
        ),
    ];
    for (payload, field) in cases {
        let (status, body) = send(serde_json::to_vec(&payload).unwrap(), "application/json").await;
        assert_eq!(status, 422, "{payload}: {body}");
        let detail = body["detail"].as_str().unwrap();
        assert!(detail.contains(field), "{payload}: {detail}");
    }
    let review = |rating: Value| json!({"id": "r", "guest_id": "g", "rating": rating});
    for rating in [json!(0), json!(6), json!(4.5), json!("5")] {
        let (status, body) = post_aurora(&s.app, "review-submitted", &review(rating.clone())).await;
        assert_eq!(status, 422, "{rating}: {body}");
        assert!(body["detail"].as_str().unwrap().contains("`rating`"));
    }
    let (status, body) = post_tribe(
        &s.app,
        "event-attendance",
        &json!({"id": "e", "attendee_id": "u", "attended": "yes"}),
    )
    .await;
    assert_eq!(status, 422);
    assert!(
        body["detail"].as_str().unwrap().contains("`attended`"),
        "{body}"
    );
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);
    assert_eq!(count::<outbox::Entity>(s.db()).await, 0);
    s.finish().await;
}

#[tokio::test]
async fn a_hundred_concurrent_deliveries_of_one_event_queue_it_once() {
    let s = spawn_app().await;
    let payload = booking("booking_concurrent");
    let answers = futures::future::join_all(
        (0..100).map(|_| post_aurora(&s.app, "booking-created", &payload)),
    )
    .await;
    let accepted = answers
        .iter()
        .filter(|(st, b)| *st == 200 && b["status"] == "accepted")
        .count();
    let duplicate = answers
        .iter()
        .filter(|(st, b)| *st == 200 && b["status"] == "duplicate")
        .count();
    assert_eq!((accepted, duplicate), (1, 99), "{answers:?}");
    assert_eq!(count::<outbox::Entity>(s.db()).await, 1);
    let events =
        drain_queue::<PartnerEvent>(&s.deps, names::PARTNER_EVENTS, Duration::from_secs(3)).await;
    assert_eq!(events.len(), 1);
    s.finish().await;
}

#[tokio::test]
async fn with_the_database_down_webhooks_get_503_and_nothing_is_half_written() {
    let s = spawn_app_with(&["--database-acquire-timeout", "1s"]).await;
    s.app.wait_for_health(200, Duration::from_secs(30)).await;
    s.deps.db_proxy().cut();
    let (status, body) = post_aurora(&s.app, "booking-created", &booking("booking_db_down")).await;
    assert_eq!(status, 503, "{body}");
    assert!(
        !body["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("postgres")
    );
    s.deps.db_proxy().restore();
    assert_eq!(count::<inbound_events::Entity>(s.db()).await, 0);
    assert_eq!(count::<outbox::Entity>(s.db()).await, 0);
    // The partner's retry goes through once the database is back.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, _) = post_aurora(&s.app, "booking-created", &booking("booking_db_down")).await;
        if status == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery: {status}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(count::<outbox::Entity>(s.db()).await, 1);
    s.finish().await;
}

#[tokio::test]
async fn events_accepted_while_the_broker_is_away_are_published_by_the_next_process() {
    // The broker is unreachable: the event is durable in the database and
    // accepted, but cannot be published before this process stops (the
    // crash between commit and publish).
    let s = spawn_app().await;
    s.app.wait_for_health(200, Duration::from_secs(30)).await;
    s.deps.amqp_proxy.cut();
    let (status, body) = post_aurora(&s.app, "booking-created", &booking("booking_relay")).await;
    assert_eq!((status, body), (200, json!({"status": "accepted"})));
    let Spawned { app, deps } = s;
    app.stop().await;
    let rows = outbox::Entity::find_all(deps.db.conn()).await;
    assert_eq!(rows.len(), 1);
    assert!(
        rows[0].published_at.is_none(),
        "not published while the broker was away"
    );

    // A new process with the broker back publishes it, once.
    deps.amqp_proxy.restore();
    let app = spawn_on(&deps, &[]).await;
    let events = drain_queue::<PartnerEvent>(&deps, names::PARTNER_EVENTS, DELIVERY).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].message_id, rows[0].message_id);
    let rows = outbox::Entity::find_all(deps.db.conn()).await;
    assert!(rows[0].published_at.is_some());
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn webhook_outcomes_are_counted_by_partner_and_reason() {
    let s = spawn_app().await;
    post_aurora(&s.app, "booking-created", &booking("booking_metrics")).await;
    post_raw(&s.app, "/webhooks/tribe/contribution", b"{}".to_vec(), &[]).await;
    let text = s.app.get("/metrics").await.text().await.unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("haven_webhooks_total{")
            && l.contains("outcome=\"accepted\"")
            && l.contains("partner=\"aurora\"")
            && l.ends_with(" 1")),
        "{text}"
    );
    assert!(
        text.lines().any(|l| l.starts_with("haven_webhooks_total{")
            && l.contains("reason=\"missing_signature\"")
            && l.contains("partner=\"tribe\"")),
        "{text}"
    );
    assert!(!text.contains(AURORA_SECRET), "no secret in metrics");
    s.finish().await;
}
