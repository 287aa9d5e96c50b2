//! `/health`, `/metrics` and the JSON 404.

use crate::helpers::spawn_app;

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
