//! `/health`, `/metrics` and the JSON 404.

use std::time::Duration;

use serde_json::json;

use crate::helpers::{Spawned, spawn_app};

/// How long a fresh service may take to connect to everything.
const READY: Duration = Duration::from_secs(30);

#[tokio::test]
async fn health_reports_every_dependency_connected() {
    let Spawned { app, deps } = spawn_app().await;
    let body = app.wait_for_health(200, READY).await;
    assert_eq!(
        body,
        json!({"status": "healthy", "database": "connected", "amqp": "connected"})
    );
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn metrics_are_exposed_as_prometheus_text() {
    let Spawned { app, deps } = spawn_app().await;
    app.wait_for_health(200, READY).await;
    let res = app.get("/metrics").await;
    assert_eq!(res.status(), 200);
    let content_type = res.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = res.text().await.unwrap();
    assert!(
        text.contains(
            r#"haven_dependency_up{dependency="database",service="reward-calculator"} 1"#
        ),
        "{text}"
    );
    app.stop().await;
    deps.cleanup().await;
}

#[tokio::test]
async fn unknown_paths_are_a_json_404() {
    let Spawned { app, deps } = spawn_app().await;
    let res = app.get("/no/such/path").await;
    assert_eq!(res.status(), 404);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, json!({"detail": "Not found"}));
    app.stop().await;
    deps.cleanup().await;
}
