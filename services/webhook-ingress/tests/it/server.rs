//! The server's guards on the real service: a body trickled past its
//! deadline is refused and its connection closed, and beyond the
//! concurrency cap requests are shed at once while probes answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;

use crate::helpers::*;

/// Opens a webhook request announcing a 100 KB body and trickles it a byte
/// every 100 ms (which never trips a per-read idle timeout).
async fn trickled_webhook(
    address: &str,
) -> (
    tokio::net::tcp::OwnedReadHalf,
    tokio::task::JoinHandle<OwnedWriteHalf>,
) {
    let host = address.trim_start_matches("http://");
    let stream = TcpStream::connect(host).await.unwrap();
    let (reader, mut writer) = stream.into_split();
    let head = format!(
        "POST /webhooks/tribe/event-attendance HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nX-Tribe-Signature: {}\r\n\
         Content-Length: 100000\r\n\r\n",
        "0".repeat(64)
    );
    writer.write_all(head.as_bytes()).await.unwrap();
    let trickle = tokio::spawn(async move {
        for _ in 0..1_000 {
            if writer.write_all(b" ").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        writer
    });
    (reader, trickle)
}

#[tokio::test]
async fn a_body_trickled_past_its_deadline_is_refused_and_the_connection_closed() {
    let s = spawn_app_with(&["--http-body-read-timeout", "1s"]).await;
    let (mut reader, trickle) = trickled_webhook(&s.app.address).await;
    let started = Instant::now();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), reader.read_to_end(&mut answer))
        .await
        .expect("the server answers and closes well before the body is done")
        .ok();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
    assert!(answer.contains(r#""detail""#), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    trickle.abort();
    s.finish().await;
}

#[tokio::test]
async fn beyond_the_concurrency_cap_requests_are_shed_at_once_and_probes_answer() {
    let s = spawn_app_with(&[
        "--http-max-concurrent-requests",
        "1",
        "--http-body-read-timeout",
        "20s",
    ])
    .await;
    // One slow request holds the only slot.
    let (_reader, trickle) = trickled_webhook(&s.app.address).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    let started = Instant::now();
    let res = s
        .app
        .client
        .post(format!("{}/webhooks/tribe/event-attendance", s.app.address))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert_eq!(res.headers()["retry-after"], "1");
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(body["detail"].is_string(), "{body}");
    assert!(started.elapsed() < Duration::from_secs(1), "shed at once");
    // The probe is not behind the cap.
    s.app.wait_for_health(200, Duration::from_secs(2)).await;
    trickle.abort();
    s.finish().await;
}
