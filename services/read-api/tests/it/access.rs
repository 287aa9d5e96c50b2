//! `READ_API_KEYS`: who may read emails, KYC status and balances, and the
//! throttle on guessing keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;

use serde_json::{Value, json};

use crate::helpers::*;

const KEY: &str = "read-key-0123456789";

async fn get_from(
    s: &Spawned,
    from: &str,
    path: &str,
    key: Option<&str>,
) -> (u16, Option<String>, Value) {
    let client = reqwest::Client::builder()
        .local_address(from.parse::<IpAddr>().unwrap())
        .build()
        .unwrap();
    let mut request = client.get(format!("{}{path}", s.app.address));
    if let Some(key) = key {
        request = request.header("X-API-Key", key);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    (
        status,
        retry_after,
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test]
async fn with_read_api_keys_set_personal_data_needs_a_key() {
    let s = spawn_app_with(&["--read-api-keys", KEY]).await;
    user(
        s.db(),
        "guest_pii",
        Some("guest@example.com"),
        &wallet(1),
        true,
    )
    .await;
    for path in [
        "/analytics/user/guest_pii",
        "/token/balance?email=guest@example.com",
        "/token/balance/guest_pii",
        "/analytics/transactions/guest_pii",
        "/analytics/token-stats",
    ] {
        let (status, _, body) = get_from(&s, "127.0.0.1", path, None).await;
        assert_eq!(
            (status, body),
            (403, json!({"detail": "Missing API key"})),
            "{path}"
        );
        let (status, _, body) = get_from(&s, "127.0.0.1", path, Some("not-the-key-000")).await;
        assert_eq!(
            (status, body),
            (401, json!({"detail": "Invalid API key"})),
            "{path}"
        );
    }
    let (status, _, body) = get_from(&s, "127.0.0.1", "/analytics/user/guest_pii", Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (&body["email"], &body["kyc_verified"]),
        (&json!("guest@example.com"), &json!(true))
    );
    // The probes and the documents stay open.
    for path in ["/health", "/metrics", "/openapi.json"] {
        assert_eq!(s.app.get(path).await.status().as_u16(), 200, "{path}");
    }
    let (_, doc) = s.get_json("/openapi.json").await;
    assert_eq!(
        doc["paths"]["/analytics/user/{user_id}"]["get"]["security"],
        json!([{"api_key": []}])
    );
    assert!(doc["paths"]["/token/balance"]["get"]["responses"]["401"].is_object());
    s.finish().await;
}

#[tokio::test]
async fn without_read_api_keys_the_reads_stay_open() {
    let s = spawn_app().await;
    user(s.db(), "guest_open", None, &wallet(2), false).await;
    let (status, body) = s.get_json("/token/balance/guest_open").await;
    assert_eq!(status, 200, "{body}");
    let (_, doc) = s.get_json("/openapi.json").await;
    assert!(doc["paths"]["/token/balance/{user_id}"]["get"]["security"].is_null());
    s.finish().await;
}

#[tokio::test]
async fn an_address_guessing_keys_is_throttled_and_another_is_not() {
    let s = spawn_app_with(&["--read-api-keys", KEY, "--api-key-failures-per-minute", "3"]).await;
    user(s.db(), "guest_t", None, &wallet(3), false).await;
    let path = "/token/balance/guest_t";
    for i in 0..3 {
        let guess = format!("guess-number-{i}");
        assert_eq!(get_from(&s, "127.0.0.1", path, Some(&guess)).await.0, 401);
    }
    let (status, retry_after, body) = get_from(&s, "127.0.0.1", path, Some("guess-number-4")).await;
    assert_eq!(status, 429, "{body}");
    let retry_after: u64 = retry_after.expect("Retry-After").parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    // Even the right key waits: the answer must not tell a guesser it hit.
    assert_eq!(get_from(&s, "127.0.0.1", path, Some(KEY)).await.0, 429);
    // Another address is served.
    let (status, _, body) = get_from(&s, "127.0.0.2", path, Some(KEY)).await;
    assert_eq!(status, 200, "{body}");
    let metrics = s.get_text("/metrics", 200).await;
    assert!(
        metrics.contains(r#"haven_auth_failures_total{reason="throttled",service="read-api"} 2"#),
        "{metrics}"
    );
    s.finish().await;
}
