//! `/health`, `/metrics` and the JSON 404.

use crate::helpers::{Spawned, spawn_app};

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let Spawned {
        app,
        deps,
        provider,
    } = spawn_app().await;
    app.assert_healthy_with(&["database", "amqp"]).await;
    app.stop().await;
    provider.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let Spawned {
        app,
        deps,
        provider,
    } = spawn_app().await;
    app.assert_metrics_report_database_up("redemption-payout")
        .await;
    app.stop().await;
    provider.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let Spawned {
        app,
        deps,
        provider,
    } = spawn_app().await;
    app.assert_unknown_path_is_json_404().await;
    app.stop().await;
    provider.stop().await;
    deps.cleanup().await;
}
