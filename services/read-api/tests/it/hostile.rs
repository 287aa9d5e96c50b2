//! Hostile clients cost little: made-up methods add no metric series, slow
//! clients are cut off, and thousands of them leave the probes and normal
//! requests answering.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use futures::StreamExt as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

/// Lines of `/metrics` right now.
async fn metrics_lines(s: &Spawned) -> usize {
    s.get_text("/metrics", 200).await.lines().count()
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let s = spawn_app().await;
    let client = reqwest::Client::new();
    let url = format!("{}/analytics/token-stats", s.app.address);
    let ask = |method: String| {
        let request = client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            &url,
        );
        async move { request.send().await.unwrap().status().as_u16() }
    };
    // The first made-up method adds the `other` series once, and the first
    // scrape its own.
    assert_eq!(ask("ZZQ".to_owned()).await, 405);
    metrics_lines(&s).await;
    let before = metrics_lines(&s).await;
    for i in 0..200 {
        assert_eq!(ask(format!("ZZQ{i}")).await, 405);
    }
    let after = metrics_lines(&s).await;
    assert_eq!(
        after, before,
        "200 made-up methods must not add metric lines"
    );
    let text = s.get_text("/metrics", 200).await;
    assert!(
        !text.contains("ZZQ"),
        "no label takes the method a client made up"
    );
    assert!(
        text.contains(r#"method="other""#),
        "they are counted as `other`"
    );
    s.finish().await;
}

#[tokio::test]
async fn a_method_a_route_does_not_serve_is_a_json_405() {
    let s = spawn_app().await;
    for (method, path) in [
        (reqwest::Method::DELETE, "/analytics/token-stats"),
        (reqwest::Method::POST, "/health"),
    ] {
        let res = s
            .app
            .client
            .request(method.clone(), format!("{}{path}", s.app.address))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 405, "{method} {path}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body, serde_json::json!({"detail": "Method not allowed"}));
    }
    s.finish().await;
}

#[tokio::test]
async fn five_thousand_slow_clients_are_cut_off_while_probes_and_requests_answer() {
    const SLOW: usize = 5_000;
    let s = spawn_app_with(&["--http-header-read-timeout", "3s"]).await;
    let host = s.app.address.trim_start_matches("http://").to_owned();

    // Each sends half a request's headers and then nothing.
    let mut slow: Vec<TcpStream> = futures::stream::iter(0..SLOW)
        .map(|_| {
            let host = host.clone();
            async move {
                let mut stream = TcpStream::connect(&host).await.unwrap();
                stream
                    .write_all(b"GET /analytics/token-stats HTTP/1.1\r\nHost: slow\r\n")
                    .await
                    .unwrap();
                stream
            }
        })
        .buffer_unordered(256)
        .collect()
        .await;
    assert_eq!(slow.len(), SLOW);

    // They hold no request slot: the probe and a normal request answer.
    let started = Instant::now();
    s.app.wait_for_health(200, Duration::from_secs(10)).await;
    let (status, _) = s.get_json("/analytics/token-stats").await;
    assert_eq!(status, 200);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "answered in {:?} beside {SLOW} slow clients",
        started.elapsed()
    );

    // And the server closes every one of them after the header timeout.
    let closed = tokio::time::timeout(Duration::from_secs(20), async {
        for stream in &mut slow {
            let mut buf = [0_u8; 512];
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(_) => {}
                }
            }
        }
    })
    .await;
    assert!(
        closed.is_ok(),
        "every slow client was cut off by the server"
    );
    drop(slow);
    s.finish().await;
}
