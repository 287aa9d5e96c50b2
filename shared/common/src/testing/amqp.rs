//! A broker namespace per test on the shared RabbitMQ.
//!
//! Every exchange and queue a test's client declares is prefixed with a
//! unique namespace, so tests run in parallel on one broker; cleanup deletes
//! exactly those names over plain AMQP (no management plugin needed).

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use haven_messages::names::QueueSpec;
use lapin::{
    Channel, Connection, ConnectionProperties,
    options::{BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions},
    types::FieldTable,
    uri::AMQPUri,
};
use uuid::Uuid;

use crate::amqp::{AmqpClient, Namespace, Topology};
use crate::config::{AmqpConfig, Redacted};

/// Longest a namespace cleanup may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The broker tests use unless `AMQP_URL` says otherwise.
pub const DEFAULT_TEST_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// The broker URL for tests: `AMQP_URL` or the local default.
pub fn test_amqp_url() -> String {
    std::env::var("AMQP_URL").unwrap_or_else(|_| DEFAULT_TEST_AMQP_URL.to_owned())
}

/// `host:port` of the broker at AMQP URL `url`.
///
/// # Panics
/// When `url` is not an AMQP URL.
pub fn broker_addr(url: &str) -> String {
    let uri: AMQPUri = url.parse().expect("test AMQP URL parses");
    format!("{}:{}", uri.authority.host, uri.authority.port)
}

/// One test's namespace on the shared broker. Call [`TestAmqp::cleanup`] at
/// the end; if the test panics first, dropping it cleans up (blocking).
#[derive(Debug)]
pub struct TestAmqp {
    url: String,
    topology: Topology,
    extra_queues: Mutex<Vec<String>>,
    cleaned: bool,
}

impl TestAmqp {
    /// A fresh namespace `test-<random>` declaring `queues`.
    pub fn new(queues: &[QueueSpec]) -> Self {
        Self::on(test_amqp_url(), queues)
    }

    /// Like [`TestAmqp::new`] on the broker at `url`.
    pub fn on(url: String, queues: &[QueueSpec]) -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let namespace = Namespace::new(format!("test-{}", &id[..12]));
        Self {
            url,
            topology: Topology::new(namespace, queues),
            extra_queues: Mutex::new(Vec::new()),
            cleaned: false,
        }
    }

    /// The namespace prefix.
    pub fn namespace(&self) -> &str {
        self.topology.namespace().prefix()
    }

    /// The topology clients of this namespace declare (for broker-side names).
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Config for a client talking to the broker directly.
    pub fn config(&self) -> AmqpConfig {
        AmqpConfig {
            amqp_url: Redacted::new(self.url.clone()),
            amqp_prefetch: 16,
            amqp_namespace: self.namespace().to_owned(),
        }
    }

    /// Config for a client that goes through a proxy listening on `addr`.
    pub fn config_via(&self, addr: SocketAddr) -> AmqpConfig {
        let mut config = self.config();
        let mut uri = self.uri();
        uri.authority.host = addr.ip().to_string();
        uri.authority.port = addr.port();
        config.amqp_url = Redacted::new(uri.to_string());
        config
    }

    /// `host:port` of the broker, the target of a [`super::proxy::TcpProxy`].
    pub fn broker_addr(&self) -> String {
        broker_addr(&self.url)
    }

    /// A started client of this namespace declaring its queues.
    pub fn client(&self, config: &AmqpConfig) -> AmqpClient {
        AmqpClient::builder(config)
            .queues(self.topology.queues())
            .connection_name(format!("test:{}", self.namespace()))
            .start()
            .expect("test AMQP config is valid")
    }

    /// A plain lapin connection to the broker, for test assertions.
    pub async fn raw_connection(&self) -> Connection {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .expect("connect to the test broker")
    }

    /// Deletes `queue` (a broker-side name) at cleanup too.
    pub fn track_queue(&self, queue: impl Into<String>) {
        self.extra_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(queue.into());
    }

    /// Deletes every queue and exchange of the namespace.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        delete_all(&self.url, &self.topology, self.extra()).await;
    }

    fn extra(&self) -> Vec<String> {
        self.extra_queues
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn uri(&self) -> AMQPUri {
        self.url.parse().expect("test AMQP URL parses")
    }
}

impl Drop for TestAmqp {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // Drop cannot await: clean up on a thread with its own runtime and wait for it.
        let url = self.url.clone();
        let topology = self.topology.clone();
        let extra = self.extra();
        let cleanup = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(delete_all(&url, &topology, extra));
            }
        });
        let _ = cleanup.join();
    }
}

async fn delete_all(url: &str, topology: &Topology, extra: Vec<String>) {
    let namespace = topology.namespace().prefix().to_owned();
    let work = async {
        let connection = Connection::connect(url, ConnectionProperties::default()).await?;
        let mut queues = topology.queue_names();
        queues.extend(extra);
        for queue in queues {
            // A failed delete closes its channel, so each gets its own.
            let channel = connection.create_channel().await?;
            if channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await
                .is_ok()
            {
                let _ = channel.close(200, "done".into()).await;
            }
        }
        for exchange in topology.exchange_names() {
            let channel = connection.create_channel().await?;
            if channel
                .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                .await
                .is_ok()
            {
                let _ = channel.close(200, "done".into()).await;
            }
        }
        connection.close(200, "test cleanup".into()).await
    };
    // Bounded: a cleanup must never hang a test run.
    match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("test cleanup of namespace {namespace} failed: {e}"),
        Err(_) => eprintln!("test cleanup of namespace {namespace} timed out"),
    }
}

impl TestAmqp {
    /// Takes every message of work queue `queue` (un-prefixed) that arrives
    /// within `wait` of the previous one, decoded as `P`.
    pub async fn drain<P: haven_messages::QueueMessage>(
        &self,
        queue: haven_messages::names::QueueSpec,
        wait: Duration,
    ) -> Vec<haven_messages::Envelope<P>> {
        let connection = self.raw_connection().await;
        let channel = connection
            .create_channel()
            .await
            .expect("open a channel to drain a test queue");
        let name = self.topology().work_queue(queue.name);
        let mut got = Vec::new();
        while let Some(message) = get_one(&channel, &name, wait).await {
            got.push(
                haven_messages::Envelope::<P>::decode(&message.delivery.data)
                    .expect("a test queue holds decodable envelopes"),
            );
        }
        let _ = connection.close(200, "drained".into()).await;
        got
    }
}

/// Number of ready (not unacked) messages in `queue` (a broker-side name).
pub async fn ready_count(channel: &Channel, queue: &str) -> u32 {
    channel
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("passive declare of a test queue")
        .message_count()
}

/// Takes one message from `queue` (a broker-side name) and acks it, waiting up to `timeout`.
pub async fn get_one(
    channel: &Channel,
    queue: &str,
    timeout: Duration,
) -> Option<lapin::message::BasicGetMessage> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let got = channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .expect("basic.get on a test queue");
        if got.is_some() || tokio::time::Instant::now() >= deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
