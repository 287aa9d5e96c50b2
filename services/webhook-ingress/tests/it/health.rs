//! `/health`, `/metrics` and the JSON 404, and recovery from outages.

use std::time::Duration;

use crate::helpers::{Spawned, spawn_app};

/// How long a fresh service may take to connect to everything.
const READY: Duration = Duration::from_secs(30);

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let Spawned { app, deps } = spawn_app().await;
    app.assert_healthy_with(&["database", "amqp"]).await;
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let Spawned { app, deps } = spawn_app().await;
    app.assert_metrics_report_database_up("webhook-ingress")
        .await;
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let Spawned { app, deps } = spawn_app().await;
    app.assert_unknown_path_is_json_404().await;
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn a_database_outage_turns_health_red_and_it_recovers() {
    let Spawned { app, deps } = spawn_app().await;
    app.wait_for_health(200, READY).await;

    deps.db_proxy().cut();
    let body = app.wait_for_health(503, Duration::from_secs(5)).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["database"], "disconnected");
    assert_eq!(body["amqp"], "connected");
    // Liveness checks no dependency: the pod is not restarted for the outage.
    let livez = app.get("/livez").await;
    assert_eq!(livez.status(), 200);
    assert_eq!(
        livez.json::<serde_json::Value>().await.unwrap(),
        serde_json::json!({"status": "alive"})
    );

    deps.db_proxy().restore();
    let body = app.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(body["database"], "connected");
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn a_broker_outage_turns_health_red_and_it_recovers() {
    let Spawned { app, deps } = spawn_app().await;
    app.wait_for_health(200, READY).await;

    deps.amqp_proxy.cut();
    let body = app.wait_for_health(503, Duration::from_secs(5)).await;
    assert_eq!(body["status"], "unhealthy");
    assert_eq!(body["amqp"], "disconnected");
    assert_eq!(body["database"], "connected");

    deps.amqp_proxy.restore();
    let body = app.wait_for_health(200, Duration::from_secs(10)).await;
    assert_eq!(body["amqp"], "connected");
    app.stop().await;
    deps.cleanup().await;
}
