//! The Goose scenarios against the real services (webhook-ingress,
//! reward-calculator, chain-minter, redemption-payout, read-api in-process on
//! PostgreSQL, RabbitMQ and anvil): every request of every scenario is made
//! and answered as the API promises, and what the webhooks and commands
//! asked for is recorded once.
#![allow(clippy::unwrap_used)]

use goose::config::GooseConfiguration;
use gumdrop::Options as _;
use haven_e2e::{API_KEY, AURORA_SECRET, Pipeline, TRIBE_SECRET};
use load_tests::goose_scenarios::{self, Pacing, Targets};
use std::time::Duration;

/// Every request name the scenarios make (Goose keys them `METHOD name`).
const EVERY_REQUEST: &[&str] = &[
    "POST /webhooks/aurora/booking-created [raw]",
    "POST /webhooks/aurora/booking-created [canonical]",
    "POST /webhooks/aurora/booking-created [standard]",
    "POST /webhooks/aurora/booking-created [forged]",
    "POST /webhooks/tribe/event-attendance [raw]",
    "POST /webhooks/tribe/event-attendance [standard]",
    "POST /token/mint",
    "POST /token/mint [repeat]",
    "POST /token/redeem",
    "GET /token/balance/{user_id}",
    "GET /analytics/user/{user_id}",
    "GET /analytics/transactions/{user_id}",
    "GET /analytics/token-stats",
    "GET /health [webhook-ingress]",
    "GET /health [read-api]",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_scenario_request_is_answered_as_the_api_promises() {
    let pipeline = Pipeline::start(&[], &[]).await;
    let reads = pipeline.start_read_api(&[]).await;
    let targets = Targets::new(
        &pipeline.ingress.address,
        &reads.address,
        API_KEY,
        AURORA_SECRET,
        TRIBE_SECRET,
    )
    .unwrap();
    let run_id = targets.run_id().to_owned();
    // 10 users: 3 send webhooks, 1 token commands, 6 read.
    // Every request counts, those before all users were started included.
    let config = GooseConfiguration::parse_args_default(&[
        "--users=10",
        "--hatch-rate=10",
        "--run-time=12",
        "--quiet",
        "--no-reset-metrics",
    ])
    .unwrap();
    let pacing = Pacing {
        min: Duration::from_millis(10),
        max: Duration::from_millis(30),
    };
    let metrics = goose_scenarios::attack(targets, pacing, config)
        .await
        .unwrap();

    let errors: Vec<String> = metrics
        .errors
        .values()
        .map(|e| format!("{} {} x{}: {}", e.method, e.name, e.occurrences, e.error))
        .collect();
    assert!(errors.is_empty(), "failed requests:\n{}", errors.join("\n"));
    for name in EVERY_REQUEST {
        let Some(request) = metrics.requests.get(*name) else {
            let made: Vec<&String> = metrics.requests.keys().collect();
            panic!("{name} was never made; made: {made:?}");
        };
        assert!(request.success_count > 0, "{name}: no success");
        assert_eq!(request.fail_count, 0, "{name}: failures");
    }
    assert_eq!(metrics.maximum_users, 10);

    // What was accepted was recorded once: one guest per user, one booking
    // per accepted booking webhook (never the forged one), one mint per new
    // idempotency key (never for a repeat).
    let successes = |names: &[&str]| -> i64 {
        names
            .iter()
            .map(|name| metrics.requests[*name].success_count as i64)
            .sum()
    };
    let bookings_accepted = successes(&EVERY_REQUEST[..3]);
    let mints_accepted = successes(&["POST /token/mint"]);
    let db = pipeline.db();
    let like = format!("{run_id}\\_%");
    assert_eq!(
        scalar(
            db,
            &format!("SELECT count(*) FROM users WHERE external_id LIKE '{like}'")
        )
        .await,
        10,
        "one guest per user"
    );
    let bookings = format!("SELECT count(*) FROM bookings WHERE guest_id LIKE '{like}'");
    let mints = format!(
        "SELECT count(*) FROM token_transactions t JOIN users u ON u.id = t.user_id \
         WHERE u.external_id LIKE '{like}' AND t.reason = 'load_test'"
    );
    // The reward-calculator records bookings behind the webhooks' answers.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut recorded = (scalar(db, &bookings).await, scalar(db, &mints).await);
    while recorded != (bookings_accepted, mints_accepted) && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        recorded = (scalar(db, &bookings).await, scalar(db, &mints).await);
    }
    assert_eq!(
        recorded,
        (bookings_accepted, mints_accepted),
        "(bookings, mints) recorded vs accepted"
    );
    assert_eq!(
        scalar(
            db,
            "SELECT count(*) FROM bookings WHERE booking_id LIKE '%forged%'"
        )
        .await,
        0,
        "a forged booking is never recorded"
    );

    reads.stop().await;
    pipeline.stop().await;
}

async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    use sea_orm::{ConnectionTrait, Statement};
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index(0).unwrap()
}
