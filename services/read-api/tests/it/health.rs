//! `/health`, `/metrics` and the JSON 404.

use crate::helpers::spawn_app;

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let app = spawn_app().await;
    app.app.assert_healthy_with(&["database"]).await;
    app.finish().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let app = spawn_app().await;
    app.app.assert_metrics_report_database_up("read-api").await;
    app.finish().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let app = spawn_app().await;
    app.app.assert_unknown_path_is_json_404().await;
    app.finish().await;
}

#[tokio::test]
async fn the_database_going_away_is_a_503_and_coming_back_heals() {
    let app = spawn_app().await;
    app.app
        .wait_for_health(200, std::time::Duration::from_secs(30))
        .await;
    app.deps.db_proxy().cut();
    let (status, body) = app.get_json("/token/balance/anyone").await;
    assert_eq!(status, 503, "{body}");
    assert!(body["detail"].is_string());
    app.app
        .wait_for_health(503, std::time::Duration::from_secs(30))
        .await;
    app.deps.db_proxy().restore();
    app.app
        .wait_for_health(200, std::time::Duration::from_secs(30))
        .await;
    let (status, _) = app.get_json("/token/balance/anyone").await;
    assert_eq!(status, 404);
    app.finish().await;
}
