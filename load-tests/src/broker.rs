//! A throw-away broker namespace on any broker URL (the test helper
//! `TestAmqp` always uses `AMQP_URL`, a benchmark also takes `--amqp-url`).

use std::time::Duration;

use anyhow::Context as _;
use haven_common::amqp::{Namespace, Topology};
use haven_messages::names::QueueSpec;
use lapin::options::{ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};

/// Longest the cleanup may take.
const CLEANUP_TIMEOUT: Duration = Duration::from_secs(30);

/// The namespace `bench-<random>` on one broker. Nothing is declared here:
/// the system under test declares its topology itself. Call
/// [`BenchNamespace::cleanup`] at the end.
#[derive(Debug)]
pub struct BenchNamespace {
    url: String,
    topology: Topology,
}

impl BenchNamespace {
    /// A fresh namespace on the broker at `url` whose topology has `queues`.
    pub fn new(url: impl Into<String>, queues: &[QueueSpec]) -> Self {
        let id = uuid::Uuid::new_v4().simple().to_string();
        Self {
            url: url.into(),
            topology: Topology::new(Namespace::new(format!("bench-{}", &id[..12])), queues),
        }
    }

    /// The broker URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The namespace prefix (for `--amqp-namespace`).
    pub fn namespace(&self) -> &str {
        self.topology.namespace().prefix()
    }

    /// Broker-side names of the namespace.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// A plain connection to the broker.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        Connection::connect(&self.url, ConnectionProperties::default())
            .await
            .context("connect to the broker")
    }

    /// Messages in the work queue `queue` (un-prefixed name), or `None`
    /// while the queue does not exist yet.
    pub async fn message_count(&self, connection: &Connection, queue: &str) -> Option<u32> {
        // A passive declare of a missing queue closes its channel: one channel per call.
        let channel = connection.create_channel().await.ok()?;
        let declared = channel
            .queue_declare(
                self.topology.work_queue(queue).as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .ok()?;
        let _ = channel.close(200, "counted".into()).await;
        Some(declared.message_count())
    }

    /// Deletes every queue and exchange of the namespace; reports failures
    /// on stderr (a benchmark's cleanup must not hide its result).
    pub async fn cleanup(self) {
        let namespace = self.namespace().to_owned();
        let work = async {
            let connection = self.connect().await?;
            for queue in self.topology.queue_names() {
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
            for exchange in self.topology.exchange_names() {
                let channel = connection.create_channel().await?;
                if channel
                    .exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default())
                    .await
                    .is_ok()
                {
                    let _ = channel.close(200, "done".into()).await;
                }
            }
            connection.close(200, "bench cleanup".into()).await?;
            anyhow::Ok(())
        };
        match tokio::time::timeout(CLEANUP_TIMEOUT, work).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => eprintln!("cleanup of broker namespace {namespace} failed: {err:#}"),
            Err(_) => eprintln!("cleanup of broker namespace {namespace} timed out"),
        }
    }
}
