//! `/health`, `/metrics` and the JSON 404.

use crate::helpers::{Spawned, spawn_app};

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let Spawned { app, deps, .. } = spawn_app().await;
    app.assert_healthy_with(&["database", "amqp"]).await;
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let Spawned { app, deps, .. } = spawn_app().await;
    app.assert_metrics_report_database_up("reward-calculator")
        .await;
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let Spawned { app, deps, .. } = spawn_app().await;
    app.assert_unknown_path_is_json_404().await;
    app.stop().await;
    deps.cleanup().await;
}

/// With RPC_URL and CONTRACT_ADDRESS set (the emission budget read from the
/// contract), `/health` names the chain, and turns red when it goes away.
#[tokio::test]
async fn health_names_the_chain_it_reads_the_budget_from() {
    use haven_chain::testing::{AnvilInstance, deploy_for_tests};
    use haven_entity::chain_store::DbDeployments;

    let deps = haven_common::testing::app::TestDeps::new().await;
    let anvil = AnvilInstance::spawn();
    let contract =
        deploy_for_tests(&anvil, &[1], &DbDeployments::new(deps.db.conn().clone())).await;
    let app = crate::helpers::spawn_on(
        &deps,
        &[
            "--rpc-url",
            &anvil.endpoint(),
            "--contract-address",
            &contract.to_string(),
        ],
    )
    .await;
    app.assert_healthy_with(&["database", "amqp", "blockchain"])
        .await;

    drop(anvil);
    let body = app
        .wait_for_health(503, std::time::Duration::from_secs(30))
        .await;
    assert_eq!(
        body,
        serde_json::json!({"status": "unhealthy", "database": "connected",
                           "amqp": "connected", "blockchain": "disconnected"})
    );
    app.stop().await;
    deps.cleanup().await;
}
