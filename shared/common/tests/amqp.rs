//! The broker plumbing against the real RabbitMQ: topology, confirmed
//! publishing, the consumer loop's ack / retry / dead-letter rules, shutdown,
//! and outages simulated with a TCP proxy the test cuts.
//!
//! Needs the `test-util` feature:
//! `cargo nextest run -p haven-common --features test-util --test amqp`.
#![cfg(feature = "test-util")]

use haven_common::testing::eventually;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use haven_common::amqp::{
    AMQPValue, AmqpClient, AmqpError, ConsumerOptions, DeliveryContext, FieldTable, Handler,
    Outcome, consume, handler_fn, headers,
};
use haven_common::health::Probe;
use haven_common::retry::RetryPolicy;
use haven_common::telemetry::TraceHeaders;
use haven_common::testing::amqp::{TestAmqp, get_one, ready_count};
use haven_common::testing::proxy::TcpProxy;
use haven_messages::names::{self, HEADER_DEAD_REASON, QueueSpec};
use haven_messages::{Envelope, QueueMessage};
use lapin::options::{BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

const WORK: QueueSpec = QueueSpec {
    name: "it.work",
    bindings: &["it.#"],
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
enum Work {
    #[serde(rename = "it.job")]
    Job(Job),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Job {
    n: u32,
}

impl QueueMessage for Work {
    const QUEUE: QueueSpec = WORK;
    const SCHEMA_VERSION: u16 = 1;
    const KINDS: &'static [&'static str] = &["it.job"];
    fn kind(&self) -> &'static str {
        "it.job"
    }
    fn routing_key(&self) -> String {
        "it.job".to_owned()
    }
}

fn job(n: u32) -> Envelope<Work> {
    Envelope::new(Work::Job(Job { n }))
}

const WAIT: Duration = Duration::from_secs(20);

async fn recv<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("timed out waiting for a delivery")
        .expect("handler channel closed")
}

fn spawn_consumer<H: Handler<Work>>(
    client: &AmqpClient,
    handler: H,
    options: ConsumerOptions,
) -> (CancellationToken, JoinHandle<Result<(), AmqpError>>) {
    let shutdown = CancellationToken::new();
    let client = client.clone();
    let token = shutdown.clone();
    let task = tokio::spawn(async move { consume(&client, handler, options, token).await });
    (shutdown, task)
}

/// A handler that forwards every delivery and acks.
fn forwarding() -> (
    impl Handler<Work>,
    mpsc::UnboundedReceiver<(Envelope<Work>, DeliveryContext)>,
) {
    let (tx, rx) = mpsc::unbounded_channel();
    let handler = handler_fn(move |env: Envelope<Work>, ctx: DeliveryContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((env, ctx));
            Outcome::Ack
        }
    });
    (handler, rx)
}

async fn stop(shutdown: CancellationToken, task: JoinHandle<Result<(), AmqpError>>) {
    shutdown.cancel();
    tokio::time::timeout(WAIT, task)
        .await
        .expect("consumer did not stop")
        .expect("consumer task panicked")
        .expect("consumer failed");
}

/// Logs of the code under test, shown for failing tests (`RUST_LOG` filters).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lapin=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

async fn connected(ns: &TestAmqp) -> AmqpClient {
    let client = ns.client(&ns.config());
    client.wait_connected(WAIT).await.expect("broker reachable");
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topology_can_be_declared_again_and_again() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let first = connected(&ns).await;
    let second = connected(&ns).await;
    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    ns.topology().declare(&channel).await.unwrap();
    ns.topology().declare(&channel).await.unwrap();
    assert_eq!(
        ready_count(&channel, &ns.topology().work_queue(WORK.name)).await,
        0
    );
    assert_eq!(
        ready_count(&channel, &ns.topology().dead_queue(WORK.name)).await,
        0
    );
    // The work queue really is a quorum queue: redeclaring it as classic is refused.
    let mut classic = FieldTable::default();
    classic.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("classic".into()),
    );
    let refused = channel
        .queue_declare(
            ns.topology().work_queue(WORK.name).as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            classic,
        )
        .await;
    assert!(refused.is_err(), "redeclared as classic: {refused:?}");
    first.close().await;
    second.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_messages_are_persistent_json_with_their_id() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let envelope = job(7);
    client.publisher().publish(&envelope).await.unwrap();

    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let got = get_one(&channel, &ns.topology().work_queue(WORK.name), WAIT)
        .await
        .expect("the message is in the work queue");
    let props = &got.delivery.properties;
    assert_eq!(*props.delivery_mode(), Some(2));
    assert_eq!(
        props.content_type().as_ref().map(|c| c.as_str()),
        Some("application/json")
    );
    assert_eq!(
        props.message_id().as_ref().map(|m| m.to_string()),
        Some(envelope.message_id.to_string())
    );
    assert_eq!(
        Envelope::<Work>::decode(&got.delivery.data).unwrap(),
        envelope
    );

    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_and_oversized_publishes_are_errors() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let publisher = client.publisher();
    let err = publisher
        .publish_raw(
            names::EVENTS_EXCHANGE,
            "nobody.listens",
            Uuid::now_v7(),
            b"{}",
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::Unroutable { .. }), "{err:?}");
    assert!(!err.is_transient());

    let long_key = "k".repeat(300);
    let err = publisher
        .publish_raw(
            names::EVENTS_EXCHANGE,
            &long_key,
            Uuid::now_v7(),
            b"{}",
            FieldTable::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, AmqpError::NameTooLong(_)), "{err:?}");

    // The publisher still works after both.
    publisher.publish(&job(1)).await.unwrap();
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_published_message_is_consumed_and_acked() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let (handler, mut rx) = forwarding();
    let (shutdown, task) = spawn_consumer(&client, handler, ConsumerOptions::default());

    let sent = job(42);
    client.publisher().publish(&sent).await.unwrap();
    let (got, ctx) = recv(&mut rx).await;
    assert_eq!(got, sent);
    assert_eq!(ctx.attempt, 0);
    assert!(!ctx.redelivered);
    assert_eq!(ctx.routing_key, "it.job");
    assert_eq!(ctx.queue, WORK.name);

    stop(shutdown, task).await;
    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    assert_eq!(
        ready_count(&channel, &ns.topology().work_queue(WORK.name)).await,
        0
    );
    client.close().await;
    ns.cleanup().await;
}

/// A policy whose first delay maps to the 1 s tier.
fn quick(max_attempts: u32) -> ConsumerOptions {
    ConsumerOptions {
        retry: RetryPolicy {
            name: "test",
            base: Duration::from_millis(500),
            cap: Duration::from_secs(1),
            factor: 2.0,
            max_attempts,
        },
        ..ConsumerOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_goes_through_a_tier_queue_and_returns_with_the_next_attempt() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = handler_fn(move |env: Envelope<Work>, ctx: DeliveryContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((env.message_id, ctx.attempt));
            if ctx.attempt == 0 {
                Outcome::Retry("not yet".to_owned())
            } else {
                Outcome::Ack
            }
        }
    });
    let (shutdown, task) = spawn_consumer(&client, handler, quick(5));

    let sent = job(1);
    client.publisher().publish(&sent).await.unwrap();
    assert_eq!(recv(&mut rx).await, (sent.message_id, 0));
    assert_eq!(recv(&mut rx).await, (sent.message_id, 1));

    stop(shutdown, task).await;
    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let topo = ns.topology();
    assert_eq!(ready_count(&channel, &topo.work_queue(WORK.name)).await, 0);
    assert_eq!(ready_count(&channel, &topo.dead_queue(WORK.name)).await, 0);
    assert!(rx.try_recv().is_err(), "handled exactly twice");
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_run_out_into_the_dead_queue_with_the_reason() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = handler_fn(move |_env: Envelope<Work>, ctx: DeliveryContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(ctx.attempt);
            Outcome::Retry("still broken".to_owned())
        }
    });
    let (shutdown, task) = spawn_consumer(&client, handler, quick(2));

    let sent = job(9);
    client.publisher().publish(&sent).await.unwrap();
    assert_eq!(recv(&mut rx).await, 0);
    assert_eq!(recv(&mut rx).await, 1);

    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let dead = get_one(&channel, &ns.topology().dead_queue(WORK.name), WAIT)
        .await
        .expect("the message reaches the dead queue");
    let h = dead.delivery.properties.headers().as_ref();
    assert_eq!(
        headers::text(h, HEADER_DEAD_REASON).as_deref(),
        Some("gave up after 2 attempts: still broken")
    );
    assert_eq!(headers::attempt(h), 2);
    assert_eq!(Envelope::<Work>::decode(&dead.delivery.data).unwrap(), sent);

    stop(shutdown, task).await;
    assert!(rx.try_recv().is_err(), "no third attempt");
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_can_dead_letter_directly() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let handler = handler_fn(|_env: Envelope<Work>, _ctx: DeliveryContext| async {
        Outcome::DeadLetter("partner unknown".to_owned())
    });
    let (shutdown, task) = spawn_consumer(&client, handler, ConsumerOptions::default());
    client.publisher().publish(&job(3)).await.unwrap();

    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let dead = get_one(&channel, &ns.topology().dead_queue(WORK.name), WAIT)
        .await
        .expect("dead-lettered");
    let h = dead.delivery.properties.headers().as_ref();
    assert_eq!(
        headers::text(h, HEADER_DEAD_REASON).as_deref(),
        Some("partner unknown")
    );
    assert_eq!(headers::attempt(h), 1);
    stop(shutdown, task).await;
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_messages_are_dead_lettered_and_the_loop_goes_on() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let (handler, mut rx) = forwarding();
    let (shutdown, task) = spawn_consumer(&client, handler, ConsumerOptions::default());
    let publisher = client.publisher();

    let good = job(1);
    let unknown_kind = serde_json::to_vec(&serde_json::json!({
        "message_id": Uuid::now_v7(), "schema_version": 1, "occurred_at": "2025-01-01T00:00:00Z",
        "correlation_id": Uuid::now_v7(), "causation_id": null, "kind": "it.mystery", "payload": {}
    }))
    .unwrap();
    let mut newer: serde_json::Value = serde_json::from_slice(&good.to_json().unwrap()).unwrap();
    newer["schema_version"] = 99.into();
    let newer = serde_json::to_vec(&newer).unwrap();
    let bad: [&[u8]; 3] = [b"\x00not json at all", &unknown_kind, &newer];
    for body in bad {
        publisher
            .publish_raw(
                names::EVENTS_EXCHANGE,
                "it.job",
                Uuid::now_v7(),
                body,
                FieldTable::default(),
            )
            .await
            .unwrap();
    }
    publisher.publish(&good).await.unwrap();

    let (got, _) = recv(&mut rx).await;
    assert_eq!(got, good, "the good message after the bad ones is consumed");

    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let dead_queue = ns.topology().dead_queue(WORK.name);
    let mut reasons = Vec::new();
    for _ in 0..3 {
        let dead = get_one(&channel, &dead_queue, WAIT)
            .await
            .expect("dead-lettered");
        reasons.push(
            headers::text(
                dead.delivery.properties.headers().as_ref(),
                HEADER_DEAD_REASON,
            )
            .expect("a reason header"),
        );
    }
    assert!(
        reasons.iter().all(|r| r.starts_with("undecodable: ")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("malformed")),
        "{reasons:?}"
    );
    assert!(
        reasons.iter().any(|r| r.contains("it.mystery")),
        "{reasons:?}"
    );
    assert!(reasons.iter().any(|r| r.contains("99")), "{reasons:?}");

    stop(shutdown, task).await;
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_acked_before_the_handler_finishes() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    // The doomed consumer talks through a proxy so the test can kill its
    // connection the way a crash would (no clean close).
    let proxy = TcpProxy::start(ns.broker_addr()).await.unwrap();
    let doomed = ns.client(&ns.config_via(proxy.addr()));
    doomed.wait_connected(WAIT).await.unwrap();
    let started = Arc::new(Notify::new());
    let handler = {
        let started = started.clone();
        handler_fn(move |_env: Envelope<Work>, _ctx: DeliveryContext| {
            let started = started.clone();
            async move {
                started.notify_one();
                // Never finishes: the "process" dies mid-handler.
                std::future::pending::<()>().await;
                Outcome::Ack
            }
        })
    };
    let (_doomed_shutdown, doomed_task) =
        spawn_consumer(&doomed, handler, ConsumerOptions::default());

    let publisher_client = connected(&ns).await;
    let sent = job(5);
    publisher_client.publisher().publish(&sent).await.unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("handler started");

    // Kill: the task and its connection vanish without acking.
    doomed_task.abort();
    proxy.cut();
    drop(doomed);

    let (handler, mut rx) = forwarding();
    let (shutdown, task) = spawn_consumer(&publisher_client, handler, ConsumerOptions::default());
    let (got, ctx) = recv(&mut rx).await;
    assert_eq!(got, sent);
    assert!(
        ctx.redelivered,
        "the broker redelivered the unacked message"
    );
    assert_eq!(ctx.attempt, 0);

    stop(shutdown, task).await;
    publisher_client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_handlers_and_returns_the_rest() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let started = Arc::new(Notify::new());
    let release = Arc::new(Notify::new());
    let finished = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let (started, release, finished) = (started.clone(), release.clone(), finished.clone());
        handler_fn(move |env: Envelope<Work>, _ctx: DeliveryContext| {
            let (started, release, finished) = (started.clone(), release.clone(), finished.clone());
            async move {
                started.notify_one();
                release.notified().await;
                finished.lock().unwrap().push(env.message_id);
                Outcome::Ack
            }
        })
    };
    // One handler at a time, and room for the others to sit prefetched.
    let options = ConsumerOptions {
        prefetch: Some(10),
        concurrency: Some(1),
        ..ConsumerOptions::default()
    };
    let (shutdown, task) = spawn_consumer(&client, handler, options);

    let publisher = client.publisher();
    let first = job(1);
    publisher.publish(&first).await.unwrap();
    publisher.publish(&job(2)).await.unwrap();
    publisher.publish(&job(3)).await.unwrap();
    tokio::time::timeout(WAIT, started.notified())
        .await
        .expect("handler started");

    shutdown.cancel();
    // Still draining: the handler has not been released.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !task.is_finished(),
        "consume returned before its handler finished"
    );
    release.notify_one();
    tokio::time::timeout(WAIT, task)
        .await
        .unwrap()
        .unwrap()
        .unwrap();

    assert_eq!(*finished.lock().unwrap(), vec![first.message_id]);
    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    // The drained message was acked; the two never started are back in the queue.
    eventually("unstarted messages are returned", WAIT, || async {
        ready_count(&channel, &ns.topology().work_queue(WORK.name)).await == 2
    })
    .await;
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starting_while_the_broker_is_unreachable_waits_and_publishes_later() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let proxy = TcpProxy::start(ns.broker_addr()).await.unwrap();
    proxy.cut();
    let client = ns.client(&ns.config_via(proxy.addr()));
    let probe = client.probe();
    assert!(probe.check().await.is_err());

    let publisher = client.publisher();
    let sent = job(11);
    let publish = {
        let sent = sent.clone();
        tokio::spawn(async move { publisher.publish(&sent).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!publish.is_finished(), "the publish waits for the broker");
    proxy.restore();
    tokio::time::timeout(WAIT, publish)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(probe.check().await.is_ok());

    let (handler, mut rx) = forwarding();
    let (shutdown, task) = spawn_consumer(&client, handler, ConsumerOptions::default());
    assert_eq!(recv(&mut rx).await.0, sent);
    stop(shutdown, task).await;
    client.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_reported_and_consumption_resumes_exactly_once() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let proxy = TcpProxy::start(ns.broker_addr()).await.unwrap();
    let consumer_client = ns.client(&ns.config_via(proxy.addr()));
    consumer_client.wait_connected(WAIT).await.unwrap();
    let probe = consumer_client.probe();
    let direct = connected(&ns).await;
    let publisher = direct.publisher();

    let seen: Arc<Mutex<HashMap<Uuid, u32>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        handler_fn(move |env: Envelope<Work>, _ctx: DeliveryContext| {
            let seen = seen.clone();
            async move {
                *seen.lock().unwrap().entry(env.message_id).or_default() += 1;
                Outcome::Ack
            }
        })
    };
    let (shutdown, task) = spawn_consumer(&consumer_client, handler, ConsumerOptions::default());
    let count = |seen: &Arc<Mutex<HashMap<Uuid, u32>>>| seen.lock().unwrap().values().sum::<u32>();

    for n in 0..5 {
        publisher.publish(&job(n)).await.unwrap();
    }
    eventually("messages before the cut are consumed", WAIT, || async {
        count(&seen) >= 5
    })
    .await;

    proxy.cut();
    eventually(
        "the probe reports the cut",
        Duration::from_secs(5),
        || async { probe.check().await.is_err() },
    )
    .await;
    // A message handled just before the cut may not have been acked yet: it
    // is redelivered (at least once), so only what follows is counted exactly.
    let before = seen.lock().unwrap().clone();

    let mut during = Vec::new();
    for n in 5..25 {
        let e = job(n);
        publisher.publish(&e).await.unwrap();
        during.push(e.message_id);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        during
            .iter()
            .all(|id| !seen.lock().unwrap().contains_key(id)),
        "nothing is consumed while cut"
    );

    proxy.restore();
    eventually("the probe recovers", Duration::from_secs(10), || async {
        probe.check().await.is_ok()
    })
    .await;
    eventually(
        "messages published during the outage are consumed",
        WAIT,
        || async {
            let seen = seen.lock().unwrap();
            during.iter().all(|id| seen.contains_key(id))
        },
    )
    .await;
    // Give a duplicate every chance to show up.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let seen = seen.lock().unwrap().clone();
    for id in &during {
        assert_eq!(
            seen[id], 1,
            "outage message {id} consumed exactly once: {seen:?}"
        );
    }
    assert_eq!(seen.len(), 25, "{seen:?}");
    assert!(before.len() == 5 && before.keys().all(|id| seen[id] >= 1));

    stop(shutdown, task).await;
    consumer_client.close().await;
    direct.close().await;
    ns.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_dead_letters_a_message_redelivered_past_the_delivery_limit() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let client = AmqpClient::builder(&ns.config())
        .queues(&[WORK])
        .delivery_limit(1)
        .start()
        .unwrap();
    client.wait_connected(WAIT).await.unwrap();
    let sent = job(13);
    client.publisher().publish(&sent).await.unwrap();

    // A consumer that dies on this message every time, simulated with nacks.
    let conn = ns.raw_connection().await;
    let channel = conn.create_channel().await.unwrap();
    let queue = ns.topology().work_queue(WORK.name);
    for _ in 0..2 {
        let deadline = Instant::now() + WAIT;
        let got = loop {
            let got = channel
                .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: false })
                .await
                .unwrap();
            if let Some(got) = got {
                break got;
            }
            assert!(Instant::now() < deadline, "the message is redelivered");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        got.delivery
            .acker
            .nack(BasicNackOptions {
                multiple: false,
                requeue: true,
            })
            .await
            .unwrap();
    }
    let dead = get_one(&channel, &ns.topology().dead_queue(WORK.name), WAIT)
        .await
        .expect("the broker dead-letters it after the limit");
    assert_eq!(Envelope::<Work>::decode(&dead.delivery.data).unwrap(), sent);
    assert_eq!(ready_count(&channel, &queue).await, 0);
    client.close().await;
    ns.cleanup().await;
}

/// The gauge `haven_amqp_queue_messages` for `queue`, if exported.
fn queue_messages(registry: &prometheus::Registry, queue: &str) -> Option<f64> {
    registry
        .gather()
        .into_iter()
        .find(|family| family.name() == haven_common::amqp::metrics::QUEUE_MESSAGES)?
        .get_metric()
        .iter()
        .find(|m| m.get_label().iter().any(|l| l.value() == queue))
        .map(|m| m.get_gauge().get_value())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_exports_the_depth_of_its_queue_and_dead_letter_queue() {
    init_tracing();
    let ns = TestAmqp::new(&[WORK]);
    let registry = prometheus::Registry::new();
    let client = AmqpClient::builder(&ns.config())
        .queues(&[WORK])
        .registry(&registry)
        .start()
        .expect("valid settings");
    client.wait_connected(WAIT).await.expect("broker reachable");
    // Two parked in the dead-letter queue, then one handler that never
    // finishes holding the next, and the rest waiting behind it.
    let handler = handler_fn(|env: Envelope<Work>, _ctx: DeliveryContext| async move {
        let Work::Job(Job { n }) = env.payload;
        if n < 2 {
            return Outcome::DeadLetter("parked".to_owned());
        }
        std::future::pending::<()>().await;
        Outcome::Ack
    });
    let options = ConsumerOptions {
        prefetch: Some(1),
        concurrency: Some(1),
        drain_timeout: Duration::from_millis(100),
        ..ConsumerOptions::default()
    };
    for n in 0..2 {
        client.publisher().publish(&job(n)).await.unwrap();
    }
    let (shutdown, task) = spawn_consumer(&client, handler, options);
    for n in 2..7 {
        client.publisher().publish(&job(n)).await.unwrap();
    }

    let dead = names::dead_queue(WORK.name);
    eventually("the depths are sampled", Duration::from_secs(15), || {
        let got = (
            queue_messages(&registry, &dead),
            queue_messages(&registry, WORK.name),
        );
        async move { got == (Some(2.0), Some(4.0)) }
    })
    .await;
    stop(shutdown, task).await;
    client.close().await;
    ns.cleanup().await;
}

/// The trace continues across the broker: a message published inside a
/// span carries its `traceparent`, and the shared consume loop's span is a
/// child of that remote context, with the message's correlation id; the
/// handler runs inside it. (Current-thread runtime: the recording
/// subscriber is the test thread's.)
#[tokio::test]
async fn a_consumers_span_continues_the_publishers_trace_with_the_correlation_id() {
    let recorded = haven_common::testing::traces::record_spans();
    let ns = TestAmqp::new(&[WORK]);
    let client = connected(&ns).await;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let handler = handler_fn(move |env: Envelope<Work>, _ctx: DeliveryContext| {
        let tx = tx.clone();
        async move {
            let _ = tx.send((env, TraceHeaders::current()));
            Outcome::Ack
        }
    });
    let (shutdown, task) = spawn_consumer(&client, handler, ConsumerOptions::default());

    let caller = tracing::info_span!("caller");
    let sent = job(7);
    let published = async {
        client.publisher().publish(&sent).await.unwrap();
        TraceHeaders::current()
    }
    .instrument(caller)
    .await;
    let trace_id = published.trace_id().expect("a traced publisher").to_owned();

    let (got, in_handler) = recv(&mut rx).await;
    assert_eq!(got, sent);
    assert_eq!(
        in_handler.trace_id(),
        Some(trace_id.as_str()),
        "the handler is in the publisher's trace"
    );
    stop(shutdown, task).await;

    let spans = recorded.spans();
    let publish = spans
        .iter()
        .find(|s| s.name == "publish")
        .expect("the publish span");
    let consume = spans
        .iter()
        .find(|s| s.attribute("queue") == Some(WORK.name))
        .expect("the consumer span");
    assert_eq!(consume.name, format!("consume {}", WORK.name));
    assert_eq!(consume.kind, "Consumer");
    assert_eq!(consume.trace_id, trace_id);
    assert_eq!(
        consume.parent_span_id, publish.span_id,
        "a child of the message's context"
    );
    assert!(
        consume.parent_is_remote,
        "the parent came in the message headers"
    );
    let correlation = sent.correlation_id.to_string();
    assert_eq!(
        consume.attribute("correlation_id"),
        Some(correlation.as_str())
    );

    client.close().await;
    ns.cleanup().await;
}
