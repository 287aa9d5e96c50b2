//! The supervised broker connection.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use futures::{StreamExt, future::BoxFuture};
use haven_messages::names::{self, QueueSpec};
use lapin::{Connection, ConnectionProperties, Event, uri::AMQPUri};
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::error::AmqpError;
use super::link::{Link, LinkRx, wait_link};
use super::metrics::AmqpMetrics;
use super::publisher::Publisher;
use super::topology::{Namespace, Topology};
use crate::config::AmqpConfig;
use crate::health::Probe;

/// Heartbeat proposed when the URL has no `?heartbeat=`: lapin declares the
/// connection dead after two silent intervals, so a silently dropped network
/// is noticed within about 4 s (a closed socket is noticed at once). RabbitMQ
/// proposes 60 s and the lower value wins.
pub const DEFAULT_HEARTBEAT_SECS: u16 = 2;
/// TCP connect + handshake timeout when the URL has no `?connection_timeout=`
/// (milliseconds): without one a black-holed address would hang the supervisor.
pub const DEFAULT_CONNECTION_TIMEOUT_MS: u64 = 5_000;
/// How long a publish waits for a connection before failing when not configured.
pub const DEFAULT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest pause between two reconnect attempts (backon jitter may double it):
/// short, so a returning broker is used again within seconds.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(1);
/// Longest wait for the broker's close-ok at shutdown.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the supervisor checks the connection state besides lapin's events.
const STATUS_POLL: Duration = Duration::from_millis(250);

/// A handle on the broker, cheap to clone.
///
/// Starting it never waits for the broker: a supervisor task connects in the
/// background, declares the [`Topology`] on every (re)connect, and reconnects
/// with a capped backoff for as long as the client lives. Publishers and
/// consumers wait for the next connection by themselves.
#[derive(Clone)]
pub struct AmqpClient {
    inner: Arc<Inner>,
}

struct Inner {
    topology: Topology,
    prefetch: u16,
    link: LinkRx,
    metrics: AmqpMetrics,
    publisher: Publisher,
    stop: CancellationToken,
    supervisor: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // The last handle is gone: nobody can use the connection any more.
        self.stop.cancel();
    }
}

impl fmt::Debug for AmqpClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpClient")
            .field("namespace", self.inner.topology.namespace())
            .field("connected", &self.is_connected())
            .finish_non_exhaustive()
    }
}

/// Settings of an [`AmqpClient`] beyond the [`AmqpConfig`] fragment.
#[derive(Debug)]
pub struct AmqpClientBuilder {
    url: String,
    namespace: String,
    prefetch: u16,
    queues: Vec<QueueSpec>,
    delivery_limit: Option<u32>,
    connection_name: String,
    registry: Option<Registry>,
    publish_timeout: Duration,
}

impl AmqpClient {
    /// A builder from the shared config fragment. By default the client
    /// declares every work queue of the system ([`names::ALL_QUEUES`]).
    pub fn builder(config: &AmqpConfig) -> AmqpClientBuilder {
        AmqpClientBuilder {
            url: config.amqp_url.expose().clone(),
            namespace: config.amqp_namespace.clone(),
            prefetch: config.amqp_prefetch,
            queues: names::ALL_QUEUES.to_vec(),
            delivery_limit: None,
            connection_name: "haven".to_owned(),
            registry: None,
            publish_timeout: DEFAULT_PUBLISH_TIMEOUT,
        }
    }

    /// True while the broker connection is open.
    pub fn is_connected(&self) -> bool {
        self.inner
            .link
            .borrow()
            .as_ref()
            .is_some_and(|link| link.is_open())
    }

    /// Waits until the connection is open (the topology is declared by then).
    pub async fn wait_connected(&self, timeout: Duration) -> Result<(), AmqpError> {
        match tokio::time::timeout(timeout, self.link()).await {
            Ok(link) => link.map(|_| ()),
            Err(_) => Err(AmqpError::NotConnected(timeout)),
        }
    }

    /// The shared confirmed publisher (one channel, pipelined confirms).
    pub fn publisher(&self) -> Publisher {
        self.inner.publisher.clone()
    }

    /// The `/health` probe of this connection.
    pub fn probe(&self) -> AmqpProbe {
        AmqpProbe {
            link: self.inner.link.clone(),
        }
    }

    /// The topology this client declares.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Default prefetch of consumers (from `AMQP_PREFETCH`).
    pub fn prefetch(&self) -> u16 {
        self.inner.prefetch
    }

    /// This client's metrics.
    pub fn metrics(&self) -> &AmqpMetrics {
        &self.inner.metrics
    }

    /// Stops reconnecting and closes the connection cleanly. Call it after
    /// every consumer loop has returned (they close their own channels).
    pub async fn close(&self) {
        self.inner.stop.cancel();
        let handle = self
            .inner
            .supervisor
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some(handle) = handle
            && let Err(e) = handle.await
        {
            tracing::error!(error = %e, "the AMQP supervisor task failed");
        }
    }

    /// Waits for an open connection; fails only when the client is closed.
    pub(crate) async fn link(&self) -> Result<Arc<Link>, AmqpError> {
        wait_link(self.inner.link.clone(), &self.inner.stop).await
    }

    /// Resolves once connection `generation` is gone (or the client closes).
    pub(crate) async fn lost(&self, generation: u64) {
        let mut rx = self.inner.link.clone();
        let _ = rx
            .wait_for(|l| l.as_ref().is_none_or(|l| l.generation != generation))
            .await;
    }
}

impl AmqpClientBuilder {
    /// The work queues to declare (default: every queue of the system).
    pub fn queues(mut self, queues: &[QueueSpec]) -> Self {
        self.queues = queues.to_vec();
        self
    }

    /// Overrides the broker-side delivery limit of the work queues.
    pub fn delivery_limit(mut self, limit: u32) -> Self {
        self.delivery_limit = Some(limit);
        self
    }

    /// Connection name shown by `rabbitmqctl list_connections` (the service's name).
    pub fn connection_name(mut self, name: impl Into<String>) -> Self {
        self.connection_name = name.into();
        self
    }

    /// Registers the AMQP metrics in `registry`.
    pub fn registry(mut self, registry: &Registry) -> Self {
        self.registry = Some(registry.clone());
        self
    }

    /// How long a publish waits for a (re)connection before it fails.
    pub fn publish_timeout(mut self, timeout: Duration) -> Self {
        self.publish_timeout = timeout;
        self
    }

    /// Validates the URL and starts the supervisor; never waits for the
    /// broker. Must be called inside a Tokio runtime.
    pub fn start(self) -> Result<AmqpClient, AmqpError> {
        let uri = parse_url(&self.url)?;
        let metrics = AmqpMetrics::new(self.registry.as_ref())?;
        let mut topology = Topology::new(Namespace::new(self.namespace), &self.queues);
        if let Some(limit) = self.delivery_limit {
            topology = topology.with_delivery_limit(limit);
        }
        let properties = ConnectionProperties::default()
            // Shown by the broker; tells operators which service holds a connection.
            .with_connection_name(self.connection_name.into());
        // No enable_auto_recover(): the supervisor below reconnects and every
        // user reopens its channels (see the module docs for why).

        let (tx, rx) = watch::channel(None);
        let stop = CancellationToken::new();
        let publisher = Publisher::new(
            rx.clone(),
            stop.clone(),
            topology.clone(),
            metrics.clone(),
            self.publish_timeout,
        );
        let supervisor = tokio::spawn(supervise(
            uri,
            properties,
            topology.clone(),
            tx,
            stop.clone(),
            metrics.clone(),
        ));
        Ok(AmqpClient {
            inner: Arc::new(Inner {
                topology,
                prefetch: self.prefetch,
                link: rx,
                metrics,
                publisher,
                stop,
                supervisor: Mutex::new(Some(supervisor)),
            }),
        })
    }
}

/// Parses the URL and fills in our defaults; the error never echoes the URL
/// (it may hold a password).
pub(crate) fn parse_url(url: &str) -> Result<AMQPUri, AmqpError> {
    let mut uri: AMQPUri = url.parse().map_err(|e: String| {
        AmqpError::InvalidUrl(if e.contains(url) {
            "not a URL of the form amqp://user:pass@host:5672/vhost".to_owned()
        } else {
            e
        })
    })?;
    if uri.authority.host.is_empty() {
        return Err(AmqpError::InvalidUrl("the URL has no host".to_owned()));
    }
    uri.query.heartbeat.get_or_insert(DEFAULT_HEARTBEAT_SECS);
    uri.query
        .connection_timeout
        .get_or_insert(DEFAULT_CONNECTION_TIMEOUT_MS);
    Ok(uri)
}

fn reconnect_backoff() -> impl Iterator<Item = Duration> {
    ExponentialBuilder::new()
        .with_min_delay(Duration::from_millis(100))
        .with_max_delay(RECONNECT_MAX_DELAY)
        // Jitter: replicas restarted together must not reconnect in lockstep.
        .with_jitter()
        .without_max_times()
        .build()
}

/// Owns the connection: connect, declare, publish it, wait for its loss, repeat.
#[tracing::instrument(name = "amqp_supervisor", skip_all, fields(host = %uri.authority.host, port = uri.authority.port))]
async fn supervise(
    uri: AMQPUri,
    properties: ConnectionProperties,
    topology: Topology,
    tx: watch::Sender<Option<Arc<Link>>>,
    stop: CancellationToken,
    metrics: AmqpMetrics,
) {
    let mut generation = 0u64;
    let mut backoff = reconnect_backoff();
    let mut failures = 0u64;
    loop {
        let opened = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            opened = open(&uri, &properties, &topology) => opened,
        };
        match opened {
            Ok(connection) => {
                backoff = reconnect_backoff();
                failures = 0;
                generation += 1;
                if generation > 1 {
                    metrics.reconnects.inc();
                }
                let link = Arc::new(Link {
                    generation,
                    connection,
                });
                tx.send_replace(Some(link.clone()));
                metrics.connected.set(1);
                tracing::info!(generation, "connected to the broker");

                let lost = tokio::select! {
                    biased;
                    _ = stop.cancelled() => None,
                    reason = wait_until_lost(&link.connection) => Some(reason),
                };
                tx.send_replace(None);
                metrics.connected.set(0);
                match lost {
                    Some(reason) => {
                        tracing::warn!(generation, %reason, "lost the broker connection; reconnecting");
                    }
                    None => {
                        if link.is_open() {
                            // Bounded: shutdown must finish even if the broker stops answering.
                            let close = link.connection.close(200, "shutting down".into());
                            match tokio::time::timeout(CLOSE_TIMEOUT, close).await {
                                Ok(Ok(())) => {}
                                Ok(Err(e)) => {
                                    tracing::warn!(error = %e, "closing the broker connection failed")
                                }
                                Err(_) => tracing::warn!("closing the broker connection timed out"),
                            }
                        }
                        tracing::info!("broker connection closed");
                        break;
                    }
                }
            }
            Err(e) => {
                failures += 1;
                // Logged at warn each time: an outage is worth seeing, and the
                // backoff keeps this to about one line a second.
                tracing::warn!(failures, error = ?e, "cannot reach the broker; retrying");
            }
        }
        let delay = backoff.next().unwrap_or(RECONNECT_MAX_DELAY);
        tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            _ = tokio::time::sleep(delay) => {}
        }
    }
    tx.send_replace(None);
    metrics.connected.set(0);
}

/// Connects and declares the topology on a throw-away channel.
async fn open(
    uri: &AMQPUri,
    properties: &ConnectionProperties,
    topology: &Topology,
) -> Result<Connection, AmqpError> {
    let connection = Connection::connect_uri(uri.clone(), properties.clone())
        .await
        .map_err(AmqpError::broker("connect"))?;
    let declared = async {
        let channel = connection
            .create_channel()
            .await
            .map_err(AmqpError::broker("channel.open"))?;
        topology.declare(&channel).await?;
        channel
            .close(200, "topology declared".into())
            .await
            .map_err(AmqpError::broker("channel.close"))
    }
    .await;
    if let Err(e) = declared {
        // A connection without its topology would make every publish
        // unroutable: drop it and try again later (the error is logged by
        // the caller; a PRECONDITION_FAILED needs an operator).
        let _ = connection
            .close(320, "topology declaration failed".into())
            .await;
        return Err(e);
    }
    Ok(connection)
}

/// Resolves with a reason once the connection is no longer open. lapin's
/// events wake us at once on an I/O error or a missed heartbeat; the poll
/// catches a close initiated by the broker.
async fn wait_until_lost(connection: &Connection) -> String {
    let mut events = std::pin::pin!(connection.events_listener());
    let mut poll = tokio::time::interval(STATUS_POLL);
    let mut last_error = None;
    loop {
        if !connection.status().connected() {
            return last_error.unwrap_or_else(|| "the connection is no longer open".to_owned());
        }
        tokio::select! {
            event = events.next() => match event {
                // Channel errors are reported here too: only a state change counts.
                Some(Event::Error(e)) => last_error = Some(e.to_string()),
                Some(_) => {}
                None => return "the connection's event stream ended".to_owned(),
            },
            _ = poll.tick() => {}
        }
    }
}

/// `/health` probe: healthy iff the broker connection is open now.
#[derive(Clone)]
pub struct AmqpProbe {
    link: LinkRx,
}

impl fmt::Debug for AmqpProbe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AmqpProbe").finish_non_exhaustive()
    }
}

impl Probe for AmqpProbe {
    fn name(&self) -> &'static str {
        "amqp"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        let open = self.link.borrow().as_ref().is_some_and(|l| l.is_open());
        Box::pin(async move {
            if open {
                Ok(())
            } else {
                Err("no open connection to the broker".to_owned())
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_urls_fail_at_once_without_echoing_secrets() {
        for bad in [
            "not a url",
            "http://guest:hunter2@localhost",
            "amqp://guest:hunter2@localhost:notaport/%2f",
            "amqp://guest:hunter2@localhost/%2f?heartbeat=soon",
        ] {
            let err = parse_url(bad).expect_err(bad);
            assert!(matches!(err, AmqpError::InvalidUrl(_)), "{bad}: {err:?}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn defaults_are_filled_in_but_the_url_wins() {
        let uri = parse_url("amqp://guest:guest@localhost:5672/%2f").unwrap();
        assert_eq!(uri.query.heartbeat, Some(DEFAULT_HEARTBEAT_SECS));
        assert_eq!(
            uri.query.connection_timeout,
            Some(DEFAULT_CONNECTION_TIMEOUT_MS)
        );
        assert_eq!(uri.vhost, "/");
        let uri = parse_url("amqp://localhost/%2f?heartbeat=10&connection_timeout=100").unwrap();
        assert_eq!(uri.query.heartbeat, Some(10));
        assert_eq!(uri.query.connection_timeout, Some(100));
    }

    #[tokio::test]
    async fn start_does_not_wait_for_a_broker_and_the_probe_reports_it() {
        // Nothing listens on port 1.
        let config = AmqpConfig {
            amqp_url: "amqp://guest:guest@127.0.0.1:1/%2f".parse().unwrap(),
            amqp_prefetch: 8,
            amqp_namespace: "unit".to_owned(),
        };
        let client = AmqpClient::builder(&config).start().unwrap();
        assert!(!client.is_connected());
        assert!(client.probe().check().await.is_err());
        assert_eq!(client.probe().name(), "amqp");
        let err = client
            .wait_connected(Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, AmqpError::NotConnected(_)));
        client.close().await;
        assert!(matches!(
            client.wait_connected(Duration::from_secs(1)).await,
            Err(AmqpError::Closed)
        ));
    }
}
