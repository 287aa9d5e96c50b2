//! The metrics table of `docs/metrics.md` against what the five services
//! really export: all of them run in-process on a fresh database, broker namespace
//! and anvil chain, some traffic goes through (a webhook minted on chain, a
//! duplicate, a bad signature, token commands, reads), then every `/metrics`
//! is scraped. Each exported family must have its row with the same type and
//! labels; each metric name constant in the code must have a row; each row
//! must name a metric the code declares. A failure lists every row to add,
//! fix or remove.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use haven_e2e::Pipeline;
use haven_ops_checks::{
    Family, METRICS_DOC, compare, declared_metrics, merge, metrics_rows, parse_exposition,
};
use serde_json::json;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("deploy/checks is two levels below the workspace root")
        .to_path_buf()
}

async fn scrape(client: &reqwest::Client, address: &str) -> String {
    let response = client
        .get(format!("{address}/metrics"))
        .send()
        .await
        .expect("the service answers /metrics");
    assert_eq!(response.status(), 200, "{address}/metrics");
    response.text().await.expect("a text body")
}

/// Polls a service's metrics until `needle` appears (the webhook's mint
/// confirmed, the queue sampler ran, a reconciliation finished).
async fn wait_for_metric(client: &reqwest::Client, address: &str, needle: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        if scrape(client, address).await.contains(needle) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address}/metrics never showed {needle}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_metrics_table_matches_what_the_services_export() {
    let root = workspace_root();
    let page = std::fs::read_to_string(root.join(METRICS_DOC)).expect(METRICS_DOC);
    let rows = match metrics_rows(&page) {
        Ok(rows) => rows,
        Err(errors) => panic!(
            "the metrics table of {METRICS_DOC} is malformed:\n  - {}",
            errors.join("\n  - ")
        ),
    };
    let declared = declared_metrics(&root).expect("the sources are readable");

    // webhook-ingress, reward-calculator, chain-minter and redemption-payout
    // on anvil (automine), and read-api.
    let pipeline = Pipeline::start(&[], &[]).await;
    let reads = pipeline
        .start_read_api(&["--reconcile-interval", "1s"])
        .await;

    // Traffic that makes labelled metrics export samples.
    let booking = json!({
        "id": "metrics_table_booking",
        "guest_id": "metrics_table_guest",
        "guest_email": "metrics@example.com",
        "total_price": 100.0,
        "nights": 2
    });
    let path = "/webhooks/aurora/booking-created";
    assert_eq!(pipeline.webhook(path, &booking).await.0, 200);
    assert_eq!(pipeline.webhook(path, &booking).await.0, 200, "duplicate");
    let unsigned = pipeline
        .ingress
        .client
        .post(format!("{}{path}", pipeline.ingress.address))
        .header("content-type", "application/json")
        .header("X-Aurora-Signature", "00")
        .body(booking.to_string())
        .send()
        .await
        .expect("webhook-ingress answers");
    assert_eq!(unsigned.status(), 401, "a bad signature is refused");
    let command = json!({"user_id": "nobody", "amount": 1.0, "reason": "metrics"});
    let (status, _) = pipeline.command("/token/mint", &command).await;
    assert!(status < 500, "a mint command for an unknown user: {status}");
    let no_key = pipeline
        .ingress
        .client
        .post(format!("{}/token/mint", pipeline.ingress.address))
        .json(&command)
        .send()
        .await
        .expect("webhook-ingress answers");
    assert_eq!(no_key.status(), 403, "a command without an API key");
    reads.wait_for_health(200, Duration::from_secs(30)).await;
    assert_eq!(reads.get("/token/balance/nobody").await.status(), 404);
    let _ = reads.get("/analytics/token-stats").await;

    let client = reqwest::Client::new();
    let minter = pipeline.minter.address.clone();
    // Labelled families export a sample only once something counted.
    wait_for_metric(&client, &minter, "haven_chain_transactions_total{").await;
    wait_for_metric(&client, &minter, "haven_amqp_queue_messages{").await;
    wait_for_metric(&client, &reads.address, "haven_reconciliation_runs_total{").await;

    let services = [
        ("webhook-ingress", pipeline.ingress.address.clone()),
        ("reward-calculator", pipeline.calculator.address.clone()),
        ("chain-minter", minter),
        ("read-api", reads.address.clone()),
        ("redemption-payout", pipeline.payout.address.clone()),
    ];
    let mut exported: BTreeMap<String, Family> = BTreeMap::new();
    for (service, address) in &services {
        let text = scrape(&client, address).await;
        let families = parse_exposition(service, &text).unwrap_or_else(|e| panic!("{e}"));
        merge(&mut exported, families).unwrap_or_else(|e| panic!("{e}"));
    }

    reads.stop().await;
    pipeline.stop().await;

    let report = compare(&rows, &exported, &declared);
    println!(
        "metrics table: {} rows; type and labels checked against live samples: {}; \
         no sample in this run, name checked against the code: {}",
        rows.len(),
        report.verified.len(),
        report.name_only.join(", ")
    );
    assert!(
        report.problems.is_empty(),
        "the metrics table of {METRICS_DOC} does not match the services ({} problem(s)):\n  - {}",
        report.problems.len(),
        report.problems.join("\n  - ")
    );
    // The run exercised enough to check most rows for real.
    assert!(
        report.verified.len() * 2 > rows.len(),
        "only {} of {} rows had a live sample",
        report.verified.len(),
        rows.len()
    );
}
