//! The relay against the real PostgreSQL (and SQLite) and RabbitMQ: rows of
//! committed transactions are published once and marked, rolled-back ones
//! never; broker outages, crashed relays, two replicas and shutdown.
#![allow(clippy::unwrap_used)] // test helpers outside #[test] fns unwrap freely

use haven_common::testing::eventually;
use std::collections::HashMap;
use std::time::Duration;

use haven_common::amqp::AmqpClient;
use haven_common::config::{DatabaseConfig, Redacted};
use haven_common::telemetry::TraceHeaders;
use haven_common::testing::amqp::{TestAmqp, get_one};
use haven_common::testing::db::TestDb;
use haven_common::testing::proxy::TcpProxy;
use haven_entity::outbox as table;
use haven_messages::names::QueueSpec;
use haven_messages::{Envelope, QueueMessage};
use haven_outbox::{
    OutboxError, OutboxNotifier, Relay, RelayMetrics, RelaySettings, enqueue, metrics,
    purge_published,
};
use prometheus::Registry;
use sea_orm::{ActiveModelTrait, ActiveValue::Set, DatabaseConnection, TransactionTrait};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;
use uuid::Uuid;

const NOTES: QueueSpec = QueueSpec {
    name: "it.outbox",
    bindings: &["it.#"],
};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "payload")]
enum Note {
    #[serde(rename = "it.note")]
    Note(Body),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Body {
    n: u32,
}

impl QueueMessage for Note {
    const QUEUE: QueueSpec = NOTES;
    const SCHEMA_VERSION: u16 = 1;
    const KINDS: &'static [&'static str] = &["it.note"];
    fn kind(&self) -> &'static str {
        "it.note"
    }
    fn routing_key(&self) -> String {
        "it.note".to_owned()
    }
}

fn note(n: u32) -> Envelope<Note> {
    Envelope::new(Note::Note(Body { n }))
}

const WAIT: Duration = Duration::from_secs(30);

/// Logs of the code under test, shown for failing tests (`RUST_LOG` filters).
fn init_tracing() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,lapin=warn,sqlx=warn".into()),
        )
        .with_test_writer()
        .try_init();
}

/// Settings for tests: short backoff, and a poll so slow that anything
/// published quickly was published by a wake-up or the start-up batch.
fn settings() -> RelaySettings {
    RelaySettings {
        poll_interval: Duration::from_secs(60),
        backoff_base: Duration::from_millis(50),
        backoff_cap: Duration::from_millis(500),
        drain_timeout: Duration::from_secs(5),
        ..RelaySettings::default()
    }
}

async fn connected(ns: &TestAmqp) -> AmqpClient {
    let client = ns.client(&ns.config());
    client.wait_connected(WAIT).await.expect("broker reachable");
    client
}

/// A client that reaches the broker through a proxy the test can cut,
/// its publishes giving up after `publish_timeout`.
async fn behind_a_proxy(ns: &TestAmqp, publish_timeout: Duration) -> (TcpProxy, AmqpClient) {
    let proxy = TcpProxy::start(ns.broker_addr()).await.unwrap();
    let client = AmqpClient::builder(&ns.config_via(proxy.addr()))
        .queues(ns.topology().queues())
        .publish_timeout(publish_timeout)
        .start()
        .unwrap();
    client.wait_connected(WAIT).await.unwrap();
    (proxy, client)
}

/// A running relay and what a test needs to watch and stop it.
struct Running {
    registry: Registry,
    notifier: OutboxNotifier,
    shutdown: CancellationToken,
    task: JoinHandle<()>,
}

impl Running {
    fn start(db: &DatabaseConnection, client: &AmqpClient, settings: RelaySettings) -> Self {
        let registry = Registry::new();
        let metrics = RelayMetrics::new(&registry).unwrap();
        let relay = Relay::new(db.clone(), client.publisher(), metrics, settings);
        let notifier = relay.notifier();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(relay.run(shutdown.clone()));
        Self {
            registry,
            notifier,
            shutdown,
            task,
        }
    }

    /// Stops the relay; panics if it takes longer than `within`.
    async fn stop_within(self, within: Duration) {
        self.shutdown.cancel();
        tokio::time::timeout(within, self.task)
            .await
            .expect("the relay stops in time")
            .expect("the relay task did not panic");
    }

    /// The value of a counter or gauge, or the sample count of a histogram.
    fn metric(&self, name: &str) -> f64 {
        let family = self
            .registry
            .gather()
            .into_iter()
            .find(|f| f.name() == name)
            .unwrap_or_else(|| panic!("metric {name} is registered"));
        let m = &family.get_metric()[0];
        if name == metrics::RELAY_LAG_SECONDS {
            m.get_histogram().get_sample_count() as f64
        } else if name == metrics::PENDING || name == metrics::OLDEST_PENDING_AGE_SECONDS {
            m.get_gauge().get_value()
        } else {
            m.get_counter().get_value()
        }
    }
}

/// Enqueues `count` notes numbered from `first` in one committed transaction.
async fn enqueue_committed(db: &DatabaseConnection, first: u32, count: u32) -> Vec<Uuid> {
    let txn = db.begin().await.unwrap();
    let mut ids = Vec::new();
    for n in first..first + count {
        let envelope = note(n);
        enqueue(&txn, &envelope).await.unwrap();
        ids.push(envelope.message_id);
    }
    txn.commit().await.unwrap();
    ids
}

async fn pending(db: &DatabaseConnection) -> usize {
    table::unpublished(db, 100_000).await.unwrap().len()
}

async fn all_rows(db: &DatabaseConnection) -> Vec<table::Model> {
    use sea_orm::EntityTrait;
    table::Entity::find().all(db).await.unwrap()
}

/// Takes every message from the namespace's queue (until none comes for a
/// second) and counts them by message id, checking the AMQP property
/// matches the envelope.
async fn drain(ns: &TestAmqp) -> HashMap<Uuid, usize> {
    let connection = ns.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let queue = ns.topology().work_queue(NOTES.name);
    let mut seen = HashMap::new();
    while let Some(got) = get_one(&channel, &queue, Duration::from_secs(1)).await {
        let envelope = Envelope::<Note>::decode(&got.delivery.data).expect("a note");
        let property = got
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|id| id.to_string());
        assert_eq!(property, Some(envelope.message_id.to_string()));
        *seen.entry(envelope.message_id).or_insert(0) += 1;
    }
    let _ = connection.close(200, "done".into()).await;
    seen
}

/// Asserts the queue held each of `ids` exactly once, and nothing else.
fn assert_exactly_once(seen: &HashMap<Uuid, usize>, ids: &[Uuid]) {
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "published more than once: {twice:?}");
    assert_eq!(seen.len(), ids.len(), "number of distinct messages");
    for id in ids {
        assert!(seen.contains_key(id), "{id} was never published");
    }
}

async fn committed_rows_are_published_once_and_marked(db: TestDb) {
    init_tracing();
    let ns = TestAmqp::new(&[NOTES]);
    let client = connected(&ns).await;
    let relay = Running::start(db.conn(), &client, settings());
    // Let the start-up batch find nothing: what follows is published on a wake-up.
    tokio::time::sleep(Duration::from_millis(300)).await;

    let ids = enqueue_committed(db.conn(), 0, 5).await;
    relay.notifier.notify();
    eventually("rows marked published", Duration::from_secs(10), || async {
        pending(db.conn()).await == 0
    })
    .await;

    for row in all_rows(db.conn()).await {
        assert!(row.published_at.is_some());
        assert_eq!(row.attempts, 0);
        assert_eq!(row.exchange, haven_messages::names::EVENTS_EXCHANGE);
        assert_eq!(row.routing_key, "it.note");
    }
    assert_eq!(relay.metric(metrics::PUBLISHED_TOTAL), 5.0);
    assert_eq!(relay.metric(metrics::PUBLISH_FAILURES_TOTAL), 0.0);
    assert_eq!(relay.metric(metrics::RELAY_LAG_SECONDS), 5.0);
    relay.notifier.notify();
    eventually("pending gauge back to 0", WAIT, || async {
        relay.metric(metrics::PENDING) == 0.0
    })
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_committed_rows_are_published_once_and_marked() {
    committed_rows_are_published_once_and_marked(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_committed_rows_are_published_once_and_marked() {
    committed_rows_are_published_once_and_marked(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn a_rolled_back_transaction_publishes_nothing() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    let client = connected(&ns).await;
    let relay = Running::start(db.conn(), &client, settings());

    let txn = db.conn().begin().await.unwrap();
    enqueue(&txn, &note(1)).await.unwrap();
    enqueue(&txn, &note(2)).await.unwrap();
    txn.rollback().await.unwrap();
    relay.notifier.notify();
    // A committed message after it: once it is out, the relay has polled
    // past the rolled-back rows.
    let ids = enqueue_committed(db.conn(), 3, 1).await;
    relay.notifier.notify();
    eventually(
        "committed row published",
        Duration::from_secs(10),
        || async { pending(db.conn()).await == 0 },
    )
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_eq!(all_rows(db.conn()).await.len(), 1);
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn rows_written_while_the_broker_is_cut_are_published_after_restore() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    // Fail publishes fast, so the outage shows up as recorded failures.
    let (proxy, client) = behind_a_proxy(&ns, Duration::from_millis(500)).await;
    let relay = Running::start(db.conn(), &client, settings());

    proxy.cut();
    let mut ids = enqueue_committed(db.conn(), 0, 10).await;
    relay.notifier.notify();
    ids.extend(enqueue_committed(db.conn(), 10, 10).await);
    relay.notifier.notify();
    eventually("failed publishes recorded", WAIT, || async {
        all_rows(db.conn()).await.iter().any(|row| row.attempts > 0)
    })
    .await;
    // Several backoff rounds pass with the broker away; nothing is lost.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(pending(db.conn()).await, 20);
    let failed = all_rows(db.conn()).await;
    let failed = failed.iter().find(|row| row.attempts > 0).unwrap();
    assert!(failed.last_error.is_some());
    assert!(relay.metric(metrics::PUBLISH_FAILURES_TOTAL) >= 1.0);
    assert_eq!(relay.metric(metrics::PUBLISHED_TOTAL), 0.0);
    // The oldest unpublished row ages while the broker is away.
    eventually("the oldest pending row's age is reported", WAIT, || async {
        relay.metric(metrics::OLDEST_PENDING_AGE_SECONDS) >= 2.0
    })
    .await;

    proxy.restore();
    eventually("every row published after restore", WAIT, || async {
        pending(db.conn()).await == 0
    })
    .await;
    assert_eq!(relay.metric(metrics::PUBLISHED_TOTAL), 20.0);
    eventually("the age is back to zero", WAIT, || async {
        relay.metric(metrics::OLDEST_PENDING_AGE_SECONDS) == 0.0
    })
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_gauges_report_the_rows_a_poll_left_unpublished() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    let (proxy, client) = behind_a_proxy(&ns, Duration::from_millis(500)).await;
    let relay = Running::start(
        db.conn(),
        &client,
        RelaySettings {
            batch_size: 5,
            ..settings()
        },
    );
    // Let the start-up batch find nothing.
    tokio::time::sleep(Duration::from_millis(300)).await;

    // The broker is away: a batch of 5 comes back full and nothing is
    // published, so the gauge counts the 12 rows still there.
    proxy.cut();
    let mut ids = enqueue_committed(db.conn(), 0, 12).await;
    relay.notifier.notify();
    eventually("the rows left are counted", WAIT, || async {
        relay.metric(metrics::PENDING) == 12.0
    })
    .await;

    eventually("the oldest row left ages", WAIT, || async {
        relay.metric(metrics::OLDEST_PENDING_AGE_SECONDS) >= 1.0
    })
    .await;

    // Back: everything goes out; a short batch that published all it took
    // leaves nothing.
    proxy.restore();
    eventually("every row published", WAIT, || async {
        pending(db.conn()).await == 0
    })
    .await;
    ids.extend(enqueue_committed(db.conn(), 12, 3).await);
    relay.notifier.notify();
    eventually("nothing left, nothing aging", WAIT, || async {
        pending(db.conn()).await == 0
            && relay.metric(metrics::PENDING) == 0.0
            && relay.metric(metrics::OLDEST_PENDING_AGE_SECONDS) == 0.0
    })
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn rows_nobody_announced_are_found_by_the_poll() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    let client = connected(&ns).await;
    let relay = Running::start(
        db.conn(),
        &client,
        RelaySettings {
            poll_interval: Duration::from_millis(200),
            ..settings()
        },
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Written by "another process": no wake-up.
    let ids = enqueue_committed(db.conn(), 0, 4).await;
    eventually("the poll publishes them", WAIT, || async {
        pending(db.conn()).await == 0
    })
    .await;
    assert_eq!(relay.metric(metrics::PUBLISHED_TOTAL), 4.0);
    eventually("an empty poll reports nothing pending", WAIT, || async {
        relay.metric(metrics::PENDING) == 0.0
            && relay.metric(metrics::OLDEST_PENDING_AGE_SECONDS) == 0.0
    })
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

async fn rows_left_by_a_crashed_relay_are_published_on_start(db: TestDb) {
    init_tracing();
    let ns = TestAmqp::new(&[NOTES]);
    let client = connected(&ns).await;
    // Committed, and no relay ran: the process died before publishing.
    let ids = enqueue_committed(db.conn(), 0, 30).await;

    // No notify and a 60 s poll: only the start-up batch can publish them.
    let relay = Running::start(db.conn(), &client, settings());
    eventually(
        "leftover rows published on start",
        Duration::from_secs(10),
        || async { pending(db.conn()).await == 0 },
    )
    .await;

    relay.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_rows_left_by_a_crashed_relay_are_published_on_start() {
    rows_left_by_a_crashed_relay_are_published_on_start(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_rows_left_by_a_crashed_relay_are_published_on_start() {
    rows_left_by_a_crashed_relay_are_published_on_start(TestDb::sqlite().await).await;
}

#[tokio::test]
async fn two_relays_on_one_postgres_database_publish_each_row_exactly_once() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    // Two replicas: their own pools, broker connections and registries.
    let other_db = haven_common::db::connect(&DatabaseConfig {
        database_url: Redacted::new(db.url().to_owned()),
        database_max_connections: 5,
        database_acquire_timeout: Duration::from_secs(30),
    })
    .await
    .unwrap();
    let (client_a, client_b) = (connected(&ns).await, connected(&ns).await);
    // Small batches so the two relays take turns many times.
    let small = RelaySettings {
        batch_size: 25,
        concurrency: 8,
        ..settings()
    };

    let mut ids = enqueue_committed(db.conn(), 0, 250).await;
    let a = Running::start(db.conn(), &client_a, small.clone());
    let b = Running::start(&other_db, &client_b, small);
    for chunk in 0..25 {
        ids.extend(enqueue_committed(db.conn(), 250 + chunk * 10, 10).await);
        a.notifier.notify();
        b.notifier.notify();
    }
    assert_eq!(ids.len(), 500);
    eventually(
        "all 500 rows published",
        Duration::from_secs(60),
        || async { pending(db.conn()).await == 0 },
    )
    .await;

    let confirmed = a.metric(metrics::PUBLISHED_TOTAL) + b.metric(metrics::PUBLISHED_TOTAL);
    assert_eq!(confirmed, 500.0, "no row was published by both relays");
    a.stop_within(Duration::from_secs(5)).await;
    b.stop_within(Duration::from_secs(5)).await;
    assert_exactly_once(&drain(&ns).await, &ids);
    let _ = other_db.close().await;
    client_a.close().await;
    client_b.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn shutdown_returns_promptly_when_idle_and_when_the_broker_is_away() {
    init_tracing();
    let db = TestDb::new().await;
    let ns = TestAmqp::new(&[NOTES]);
    // A publish would wait far longer than the drain timeout.
    let (proxy, client) = behind_a_proxy(&ns, Duration::from_secs(60)).await;

    // Idle: returns at once, not after the 60 s poll.
    let idle = Running::start(db.conn(), &client, settings());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    idle.stop_within(Duration::from_secs(2)).await;
    assert!(started.elapsed() < Duration::from_secs(2));

    // A batch stuck on an absent broker: bounded by the drain timeout.
    proxy.cut();
    let busy = Running::start(
        db.conn(),
        &client,
        RelaySettings {
            drain_timeout: Duration::from_millis(500),
            ..settings()
        },
    );
    enqueue_committed(db.conn(), 0, 3).await;
    busy.notifier.notify();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let started = Instant::now();
    busy.stop_within(Duration::from_secs(5)).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    // Nothing was confirmed, so nothing is marked: the next start publishes them.
    assert_eq!(pending(db.conn()).await, 3);

    client.close().await;
    drop(proxy);
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn purge_deletes_only_published_rows_older_than_the_cutoff() {
    let db = TestDb::sqlite().await;
    let now = chrono::Utc::now();
    let old = now - chrono::Duration::days(8);
    let row = |published_at| table::ActiveModel {
        message_id: Set(Uuid::now_v7()),
        exchange: Set("haven.events".into()),
        routing_key: Set("it.note".into()),
        payload: Set(b"{}".to_vec()),
        created_at: Set(old),
        published_at: Set(published_at),
        attempts: Set(0),
        last_error: Set(None),
        ..Default::default()
    };
    let old_published = row(Some(old)).insert(db.conn()).await.unwrap();
    let recent_published = row(Some(now)).insert(db.conn()).await.unwrap();
    let old_pending = row(None).insert(db.conn()).await.unwrap();

    let deleted = purge_published(db.conn(), now - chrono::Duration::days(7))
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let left: Vec<i64> = all_rows(db.conn()).await.iter().map(|r| r.id).collect();
    assert!(!left.contains(&old_published.id));
    assert!(left.contains(&recent_published.id));
    assert!(left.contains(&old_pending.id));
    db.cleanup().await;
}

#[tokio::test]
async fn a_message_id_is_enqueued_once() {
    let db = TestDb::sqlite().await;
    let envelope = note(7);
    enqueue(db.conn(), &envelope).await.unwrap();
    let err = enqueue(db.conn(), &envelope).await.unwrap_err();
    assert!(
        matches!(&err, OutboxError::Database(e) if e.is_unique_violation()),
        "{err:?}"
    );
    db.cleanup().await;
}

#[test]
fn metrics_register_once_per_registry() {
    let registry = Registry::new();
    RelayMetrics::new(&registry).unwrap();
    assert!(matches!(
        RelayMetrics::new(&registry),
        Err(OutboxError::Metrics(_))
    ));
    let names: Vec<String> = registry
        .gather()
        .iter()
        .map(|f| f.name().to_owned())
        .collect();
    for name in [
        metrics::PUBLISHED_TOTAL,
        metrics::PUBLISH_FAILURES_TOTAL,
        metrics::PENDING,
        metrics::OLDEST_PENDING_AGE_SECONDS,
        metrics::RELAY_LAG_SECONDS,
    ] {
        assert!(name.starts_with("haven_outbox_"));
        assert!(names.iter().any(|n| n == name), "{name} missing");
    }
}

/// The trace context of the span that writes a row survives the row and
/// the relay: the published message carries it as its AMQP headers.
async fn the_trace_context_travels_in_the_row_to_the_message_headers(db: TestDb) {
    let recorded = haven_common::testing::traces::record_spans();
    let ns = TestAmqp::new(&[NOTES]);
    let client = connected(&ns).await;

    let request = tracing::info_span!("request");
    let written = async {
        let ids = enqueue_committed(db.conn(), 1, 1).await;
        (ids, TraceHeaders::current())
    }
    .instrument(request)
    .await;
    let (ids, in_request) = written;
    let trace_id = in_request.trace_id().expect("a traced request").to_owned();

    // The row: the context of the span that wrote it (`enqueue`, a child
    // of the request).
    let rows = all_rows(db.conn()).await;
    let stored = TraceHeaders::from_json(rows[0].headers.as_ref().expect("the row has headers"));
    assert_eq!(stored.trace_id(), Some(trace_id.as_str()));
    let enqueue_span = recorded
        .spans()
        .into_iter()
        .find(|s| s.name == "enqueue")
        .expect("the enqueue span");
    assert!(
        stored
            .get("traceparent")
            .is_some_and(|tp| tp.contains(&enqueue_span.span_id)),
        "{stored:?} names the enqueue span"
    );

    let relay = Running::start(db.conn(), &client, settings());
    eventually("the row is published", WAIT, || async {
        pending(db.conn()).await == 0
    })
    .await;
    relay.stop_within(Duration::from_secs(5)).await;

    let connection = ns.raw_connection().await;
    let channel = connection.create_channel().await.unwrap();
    let got = get_one(&channel, &ns.topology().work_queue(NOTES.name), WAIT)
        .await
        .expect("the message");
    let carried = haven_common::amqp::headers::trace(got.delivery.properties.headers().as_ref());
    assert_eq!(carried, stored, "the message carries the row's context");
    assert_eq!(
        Envelope::<Note>::decode(&got.delivery.data)
            .unwrap()
            .message_id,
        ids[0]
    );

    // With tracing off, a row has no headers.
    drop(recorded);
    let untraced = note(2);
    enqueue(db.conn(), &untraced).await.unwrap();
    let rows = all_rows(db.conn()).await;
    let row = rows
        .iter()
        .find(|r| r.message_id == untraced.message_id)
        .unwrap();
    assert_eq!(row.headers, None);

    let _ = connection.close(200, "done".into()).await;
    client.close().await;
    ns.cleanup().await;
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_the_trace_context_travels_in_the_row_to_the_message_headers() {
    the_trace_context_travels_in_the_row_to_the_message_headers(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_the_trace_context_travels_in_the_row_to_the_message_headers() {
    the_trace_context_travels_in_the_row_to_the_message_headers(TestDb::sqlite().await).await;
}
