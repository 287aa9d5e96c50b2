//! Graceful shutdown: what a request commits while the server drains is
//! still published by this process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use haven_entity::outbox;
use haven_messages::{PartnerEvent, names};
use sea_orm::{ColumnTrait, EntityTrait, PaginatorTrait, QueryFilter};
use serde_json::json;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::helpers::*;

#[tokio::test]
async fn a_request_accepted_during_the_shutdown_drain_is_published_before_the_process_exits() {
    let s = spawn_app().await;
    let body = serde_json::to_vec(&json!({
        "event_id": "drain-1", "user_id": "g1", "event_name": "Circle", "event_type": "wisdom_circle"
    }))
    .unwrap();
    let signature = hmac_hex(TRIBE_SECRET.as_bytes(), &body);
    let host = s.app.address.trim_start_matches("http://").to_owned();

    // The request is in its handler (headers read, body half sent) when
    // shutdown starts.
    let mut stream = TcpStream::connect(&host).await.unwrap();
    let head = format!(
        "POST /webhooks/tribe/event-attendance HTTP/1.1\r\nHost: {host}\r\n\
         Content-Type: application/json\r\nX-Tribe-Signature: {signature}\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(first).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;

    let Spawned { app, deps } = s;
    let stopping = tokio::spawn(app.stop());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !stopping.is_finished(),
        "the server waits for the request in flight"
    );

    stream.write_all(rest).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains(r#"{"status":"accepted"}"#), "{answer}");
    stopping.await.unwrap();

    // The process is gone: what it committed is on the queue, not left in
    // the outbox for another replica or the next start.
    let unpublished = outbox::Entity::find()
        .filter(outbox::Column::PublishedAt.is_null())
        .count(deps.db.conn())
        .await
        .unwrap();
    assert_eq!(unpublished, 0, "every outbox row was published at shutdown");
    let events = deps
        .amqp
        .drain::<PartnerEvent>(names::PARTNER_EVENTS, Duration::from_secs(2))
        .await;
    assert_eq!(events.len(), 1, "{events:?}");
    deps.cleanup().await;
}
