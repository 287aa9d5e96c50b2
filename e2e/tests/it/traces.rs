//! One webhook is one trace, and one redemption: with `OTEL_EXPORTER_OTLP_ENDPOINT` pointed at
//! an in-process OTLP receiver, the request span of webhook-ingress, the
//! consumer spans of reward-calculator and chain-minter and the chain
//! transaction's spans share one trace id, and every consumer span carries
//! the message's correlation id.
//!
//! The services run in this test's process, so they share its one
//! subscriber and resource (`service.name` = the name given to `init`);
//! each span is told apart by what it is: the route, the queue, the send.

use std::sync::Arc;
use std::time::Duration;

use clap::Parser as _;
use haven_common::config::TelemetryConfig;
use haven_common::telemetry;
use haven_e2e::Pipeline;
use haven_e2e::otlp::{OtlpReceiver, ReceivedSpan};
use haven_entity::redemptions::RedemptionState;
use haven_entity::token_transactions::{self, TxStatus};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde_json::json;

use super::settled;

#[derive(clap::Parser)]
struct Settings {
    #[command(flatten)]
    telemetry: TelemetryConfig,
}

/// The spans of the trace whose webhook-ingress request span is for
/// `route`, once the receiver holds a consumer span of `last_queue` in it.
async fn trace_of_request(
    receiver: &OtlpReceiver,
    guard: &Arc<telemetry::TelemetryGuard>,
    route: &str,
    last_queue: &str,
) -> Vec<ReceivedSpan> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let guard = Arc::clone(guard);
        tokio::task::spawn_blocking(move || guard.flush())
            .await
            .unwrap();
        let spans = receiver.spans();
        let request = spans
            .iter()
            .find(|s| s.attribute("http.route") == Some(route) && s.kind == 2);
        if let Some(request) = request {
            let trace: Vec<ReceivedSpan> = spans
                .iter()
                .filter(|s| s.trace_id == request.trace_id)
                .cloned()
                .collect();
            if trace
                .iter()
                .any(|s| s.attribute("queue") == Some(last_queue))
            {
                return trace;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no complete trace for {route}; spans: {:#?}",
            spans
                .iter()
                .map(|s| (&s.name, &s.trace_id))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Whether `span`'s chain of parents within `trace` reaches `ancestor`.
fn descends_from(trace: &[ReceivedSpan], span: &ReceivedSpan, ancestor: &ReceivedSpan) -> bool {
    let mut parent = span.parent_span_id.as_str();
    for _ in 0..trace.len() {
        if parent == ancestor.span_id {
            return true;
        }
        match trace.iter().find(|s| s.span_id == parent) {
            Some(up) => parent = &up.parent_span_id,
            None => return false,
        }
    }
    false
}

fn one<'a>(
    trace: &'a [ReceivedSpan],
    what: &str,
    test: impl Fn(&ReceivedSpan) -> bool,
) -> &'a ReceivedSpan {
    let found: Vec<&ReceivedSpan> = trace.iter().filter(|s| test(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "{what}: {found:#?} in {:#?}",
        trace.iter().map(|s| &s.name).collect::<Vec<_>>()
    );
    found[0]
}

#[tokio::test]
async fn one_webhook_is_one_trace_to_its_mint_and_a_redemption_one_to_its_payout() {
    let receiver = OtlpReceiver::start().await;
    let settings = Settings::try_parse_from([
        "haven-e2e",
        "--otlp-endpoint",
        receiver.url(),
        "--otel-service-name",
        "haven-e2e-trace",
    ])
    .unwrap();
    let guard = Arc::new(
        telemetry::init("haven-e2e", &settings.telemetry)
            .expect("the only subscriber of this test process"),
    );
    assert!(guard.exporting());

    let p = Pipeline::start(&[], &[]).await;
    let booking = json!({"id": "booking_traced", "guest_id": "guest_traced", "total_price": 100, "nights": 1});
    assert_eq!(
        p.webhook("/webhooks/aurora/booking-created", &booking)
            .await,
        (200, json!({"status": "accepted"}))
    );
    let user = settled(&p, "guest_traced", 1).await;
    let minted = token_transactions::Entity::find()
        .filter(token_transactions::Column::UserId.eq(user.id))
        .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
        .one(p.db())
        .await
        .unwrap()
        .unwrap();

    let trace = trace_of_request(
        &receiver,
        &guard,
        "/webhooks/aurora/booking-created",
        "chain-minter.requests",
    )
    .await;
    assert!(
        trace.iter().all(|s| s.service == "haven-e2e-trace"),
        "the service name is the resource's"
    );

    // webhook-ingress: the request span (a root: the test sent no
    // traceparent) with its request id, and the outbox row's span under it.
    let request = one(&trace, "request span", |s| s.kind == 2);
    assert_eq!(request.parent_span_id, "", "the request starts the trace");
    assert_eq!(request.name, "POST /webhooks/aurora/booking-created");
    assert_eq!(request.attribute("http.response.status_code"), Some("200"));
    assert!(
        uuid::Uuid::parse_str(request.attribute("request_id").unwrap_or_default()).is_ok(),
        "{request:?}"
    );

    // reward-calculator: its consumer span continues the trace, a
    // descendant of the request through the span that wrote the outbox row.
    let calculated = one(&trace, "reward-calculator consumer span", |s| {
        s.attribute("queue") == Some("reward-calculator.partner-events")
    });
    assert_eq!(calculated.kind, 5, "a consumer span");
    assert!(
        descends_from(&trace, calculated, request),
        "{calculated:#?} hangs under the request"
    );

    // chain-minter: its consumer span, then the chain transaction.
    let minting = one(&trace, "chain-minter consumer span", |s| {
        s.attribute("queue") == Some("chain-minter.requests")
    });
    assert_eq!(minting.kind, 5);
    let chain_tx = one(&trace, "the chain transaction's span", |s| {
        s.name == "mint_batch"
    });
    assert!(descends_from(&trace, chain_tx, minting));
    let sent = one(&trace, "the sender's send span", |s| s.name == "send");
    assert_eq!(sent.parent_span_id, chain_tx.span_id);
    assert_eq!(
        sent.attribute("tx_hash"),
        minted.tx_hash.as_deref(),
        "the span of the very transaction that minted"
    );
    assert!(trace.iter().any(|s| s.name == "confirm"));

    // Every consumer span carries the message's correlation id: the
    // partner event's id, which the chain request inherited.
    let correlation = calculated
        .attribute("correlation_id")
        .expect("the consumer span has the correlation id");
    assert_eq!(Some(correlation), calculated.attribute("message_id"));
    assert_eq!(minting.attribute("correlation_id"), Some(correlation));

    // A redemption is one trace from its command to its payout: the
    // request, redemption-payout, chain-minter's burn, and the confirmed
    // burn back in redemption-payout, which pays.
    let redeem = json!({
        "user_id": "guest_traced",
        "amount": 50.0,
        "withdrawal_method": "bank_transfer",
        "idempotency_key": "redeem_traced"
    });
    let (status, body) = p.command("/token/redeem", &redeem).await;
    assert_eq!(status, 200, "{body}");
    let request_id: uuid::Uuid = body["request_id"].as_str().unwrap().parse().unwrap();
    p.wait_redemption(request_id, RedemptionState::Paid, Duration::from_secs(60))
        .await;
    let trace = trace_of_request(
        &receiver,
        &guard,
        "/token/redeem",
        "redemption-payout.chain-events",
    )
    .await;
    let request = one(&trace, "the redeem request span", |s| s.kind == 2);
    let burning = one(&trace, "chain-minter's consumer span of the burn", |s| {
        s.attribute("queue") == Some("chain-minter.requests")
    });
    assert!(descends_from(&trace, burning, request));
    let burn = one(&trace, "the burn's chain transaction", |s| s.name == "burn");
    assert!(descends_from(&trace, burn, burning));
    assert!(
        trace.iter().any(
            |s| s.attribute("queue") == Some("redemption-payout.chain-events")
                && descends_from(&trace, s, burning)
        ),
        "the confirmed burn's event continues the trace into the payout"
    );
    assert!(
        trace
            .iter()
            .any(|s| s.attribute("queue") == Some("redemption-payout.requests")),
        "redemption-payout took the request in the same trace"
    );

    p.stop().await;
    Arc::try_unwrap(guard).expect("the only guard").shutdown();
}
