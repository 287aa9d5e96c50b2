//! `/health`, `/metrics` and the JSON 404.

use crate::helpers::{spawn_app, spawn_app_with};

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let s = spawn_app().await;
    s.app
        .assert_healthy_with(&["database", "amqp", "blockchain"])
        .await;
    s.finish().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let s = spawn_app().await;
    s.app
        .assert_metrics_report_database_up("chain-minter")
        .await;
    s.finish().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let s = spawn_app().await;
    s.app.assert_unknown_path_is_json_404().await;
    s.finish().await;
}

/// Every pool signer's gas money is on `/metrics`, read from the chain,
/// next to the threshold the low-balance alert compares it with.
#[tokio::test]
async fn signer_balances_and_their_threshold_are_exported() {
    let s = spawn_app_with(&[], &["--signer-min-balance-eth", "20000.5"]).await;
    let text = haven_common::testing::eventually(
        "the signers' balances are read",
        std::time::Duration::from_secs(30),
        || async {
            let text = s.app.get("/metrics").await.text().await.unwrap();
            text.contains("haven_chain_signer_balance_eth{")
                .then_some(text)
        },
    )
    .await;
    assert!(
        text.contains(r#"haven_chain_signer_balance_min_eth{service="chain-minter"} 20000.5"#),
        "{text}"
    );
    let balances: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("haven_chain_signer_balance_eth{"))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(!balances.is_empty(), "{text}");
    // anvil's dev accounts start with 10,000 ETH; a few transactions spent gas.
    for balance in balances {
        assert!(balance > 9_000.0 && balance <= 10_000.0, "{text}");
    }
    s.finish().await;
}
