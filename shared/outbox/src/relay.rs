//! The relay: outbox rows -> confirmed publishes -> rows marked published.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use haven_common::amqp::{self, AmqpError, FieldTable, Publisher};
use haven_common::db::begin_write;
use haven_common::retry::RetryPolicy;
use haven_common::telemetry::TraceHeaders;
use haven_entity::outbox::{self, Model};
use sea_orm::{ConnectionTrait, DatabaseBackend, DatabaseConnection};
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::{OutboxError, RelayMetrics, store};

/// How a [`Relay`] polls, publishes, backs off and cleans up.
///
/// Build it with struct update syntax:
/// `RelaySettings { batch_size: 500, ..RelaySettings::default() }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelaySettings {
    /// Rows taken (and, on PostgreSQL, locked) per batch. Default 200; 0 is read as 1.
    pub batch_size: u64,
    /// Fallback poll period when no [`OutboxNotifier::notify`] arrives
    /// (rows written by another process, a lost wake-up). Default 1 s.
    pub poll_interval: Duration,
    /// Publishes of one batch awaiting their confirm at once. Default 64; 0 is read as 1.
    pub concurrency: usize,
    /// After shutdown is requested, how long the batch in flight may still
    /// take; rows not confirmed by then stay pending for the next start.
    /// Default 10 s.
    pub drain_timeout: Duration,
    /// First pause after the broker (or the database) failed a batch.
    /// Doubles, with jitter, per consecutive failed batch. Default 250 ms.
    pub backoff_base: Duration,
    /// Longest pause between two batches while the broker is away. Default 30 s.
    pub backoff_cap: Duration,
    /// Published rows older than this are deleted; `None` keeps them forever.
    /// Default 7 days.
    pub retention: Option<Duration>,
    /// How often the relay purges rows past [`Self::retention`] (and once at start).
    /// Default 1 hour.
    pub purge_interval: Duration,
}

impl Default for RelaySettings {
    fn default() -> Self {
        Self {
            batch_size: 200,
            poll_interval: Duration::from_secs(1),
            concurrency: 64,
            drain_timeout: Duration::from_secs(10),
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(30),
            retention: Some(Duration::from_secs(7 * 24 * 3600)),
            purge_interval: Duration::from_secs(3600),
        }
    }
}

impl RelaySettings {
    /// The backoff profile between failed batches. The relay never gives
    /// up on a row, so `max_attempts` is unused.
    fn backoff(&self) -> RetryPolicy {
        RetryPolicy {
            name: "outbox-relay",
            base: self.backoff_base,
            cap: self.backoff_cap,
            factor: 2.0,
            max_attempts: u32::MAX,
        }
    }
}

/// Wakes a [`Relay`] at once; cheap to clone. Call [`Self::notify`] after
/// committing a transaction that enqueued messages.
#[derive(Debug, Clone)]
pub struct OutboxNotifier {
    wake: Arc<Notify>,
}

impl OutboxNotifier {
    /// Makes the relay poll now. Wake-ups that arrive while it is busy are
    /// merged into one more poll right after the current batch; during a
    /// broker backoff they are ignored (the backoff ends with a poll anyway).
    pub fn notify(&self) {
        self.wake.notify_one();
    }
}

/// Publishes outbox rows with publisher confirms and marks them published.
///
/// See the crate documentation for the guarantees. One relay per process is
/// enough (publishes of a batch run concurrently); several processes on one
/// PostgreSQL database share the work without publishing a row twice.
#[derive(Debug)]
pub struct Relay {
    db: DatabaseConnection,
    publisher: Publisher,
    metrics: RelayMetrics,
    settings: RelaySettings,
    wake: Arc<Notify>,
}

/// What one batch did, to decide how long to wait before the next.
#[derive(Debug, Default)]
struct BatchReport {
    taken: usize,
    /// When the oldest row taken and not published was written.
    oldest_left: Option<chrono::DateTime<Utc>>,
    published: usize,
    /// The broker failed: back off before the next batch.
    broker_failed: bool,
}

/// The result of one row's publish.
enum Attempt {
    Confirmed,
    Failed(AmqpError),
    /// Not tried: an earlier publish of the batch found the broker away.
    Skipped,
}

/// What to do between two batches.
enum Pause {
    /// More rows are probably waiting: take the next batch at once.
    None,
    /// Wait for a wake-up or the poll interval.
    Idle,
    /// The broker or the database failed: wait this long, ignoring wake-ups.
    Backoff(Duration),
}

impl Relay {
    /// A relay publishing the rows of `db` through `publisher`. `settings`
    /// values of 0 for the batch size or the concurrency are read as 1.
    pub fn new(
        db: DatabaseConnection,
        publisher: Publisher,
        metrics: RelayMetrics,
        mut settings: RelaySettings,
    ) -> Self {
        settings.batch_size = settings.batch_size.max(1);
        settings.concurrency = settings.concurrency.max(1);
        Self {
            db,
            publisher,
            metrics,
            settings,
            wake: Arc::new(Notify::new()),
        }
    }

    /// A service's relay: its metrics registered on `registry`, its settings
    /// from the service's [`crate::OutboxConfig`].
    pub fn from_config(
        db: DatabaseConnection,
        publisher: Publisher,
        registry: &prometheus::Registry,
        config: &crate::OutboxConfig,
    ) -> Result<Self, OutboxError> {
        Ok(Self::new(
            db,
            publisher,
            RelayMetrics::new(registry)?,
            config.settings(),
        ))
    }

    /// A handle that wakes this relay; take it before [`Self::run`].
    pub fn notifier(&self) -> OutboxNotifier {
        OutboxNotifier {
            wake: self.wake.clone(),
        }
    }

    /// Relays until `shutdown` is cancelled, then finishes the batch in
    /// flight and publishes what is still pending (each within
    /// [`RelaySettings::drain_timeout`]) and returns.
    ///
    /// Starts with a batch at once, so rows left unpublished by a previous
    /// run (a crash between commit and publish) go out first. Database and
    /// broker failures are logged, recorded and retried with a capped
    /// exponential backoff; they never end the loop.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            batch_size = self.settings.batch_size,
            concurrency = self.settings.concurrency,
            "outbox relay started"
        );
        let backoff = self.settings.backoff();
        let mut failed_batches: u32 = 0;
        // `None` when the interval is too long to add to a clock reading: never again.
        let mut next_purge = Some(Instant::now());
        // The first batch goes straight for rows (a crash may have left
        // some); so does every batch after a wake-up or a full batch.
        let mut look_first = false;
        while !shutdown.is_cancelled() {
            let pause = match self.relay_batch(&shutdown, look_first).await {
                Ok(report) if report.broker_failed => {
                    failed_batches = failed_batches.saturating_add(1);
                    Pause::Backoff(backoff.delay_for_attempt(failed_batches - 1))
                }
                Ok(report) => {
                    failed_batches = 0;
                    let full = report.taken as u64 >= self.settings.batch_size;
                    // Without a publish, a full batch is all rows the broker
                    // refuses: polling again at once would only spin.
                    if full && report.published > 0 {
                        Pause::None
                    } else {
                        Pause::Idle
                    }
                }
                Err(err) => {
                    tracing::error!(error = ?err, "outbox batch failed; backing off");
                    failed_batches = failed_batches.saturating_add(1);
                    Pause::Backoff(backoff.delay_for_attempt(failed_batches - 1))
                }
            };

            // After the batch, so rows left by a crash go out before a
            // possibly long first purge.
            if let Some(retention) = self.settings.retention
                && next_purge.is_some_and(|at| Instant::now() >= at)
            {
                self.purge(retention).await;
                next_purge = Instant::now().checked_add(self.settings.purge_interval);
            }

            match pause {
                Pause::None => look_first = false,
                Pause::Idle => {
                    look_first = tokio::select! {
                        () = shutdown.cancelled() => false,
                        () = self.wake.notified() => false,
                        // Nobody said rows are waiting: look before
                        // opening a transaction for them.
                        () = tokio::time::sleep(self.settings.poll_interval) => true,
                    };
                }
                Pause::Backoff(delay) => {
                    look_first = false;
                    tracing::debug!(?delay, failed_batches, "outbox relay backing off");
                    tokio::select! {
                        () = shutdown.cancelled() => {}
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
        self.flush(&shutdown).await;
        tracing::info!("outbox relay stopped");
    }

    /// After shutdown: publishes the rows still pending, which the last
    /// requests and handlers committed while they drained (the relay is
    /// stopped after them), batch by batch for at most
    /// [`RelaySettings::drain_timeout`]. What is left stays pending for the
    /// next start or another replica.
    async fn flush(&self, shutdown: &CancellationToken) {
        let flushing = async {
            loop {
                match self.relay_batch(shutdown, false).await {
                    Ok(report)
                        if !report.broker_failed
                            && report.published > 0
                            && report.taken as u64 >= self.settings.batch_size => {}
                    Ok(report) => {
                        if report.broker_failed {
                            tracing::warn!(
                                "broker away at shutdown: unpublished rows stay pending"
                            );
                        }
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = ?err, "outbox flush at shutdown failed: rows stay pending");
                        return;
                    }
                }
            }
        };
        if tokio::time::timeout(self.settings.drain_timeout, flushing)
            .await
            .is_err()
        {
            tracing::warn!("outbox flush at shutdown timed out: rows stay pending");
        }
    }

    /// Takes one batch, publishes it and records the outcome of every row.
    ///
    /// With `look_first` (a poll nobody asked for) one cheap statement checks
    /// that anything is pending before a transaction is opened. Otherwise the
    /// batch is taken at once and the gauges (rows left unpublished, the
    /// oldest one's age) come from it, unless it came back full, when the
    /// table is asked. A poll of a busy relay then costs the batch's own
    /// statements and no scan of the unpublished-rows index besides.
    #[tracing::instrument(skip_all, fields(pending, taken, published))]
    async fn relay_batch(
        &self,
        shutdown: &CancellationToken,
        look_first: bool,
    ) -> Result<BatchReport, OutboxError> {
        if look_first && store::oldest_pending(&self.db).await?.is_none() {
            self.record_pending(0, None);
            return Ok(BatchReport::default());
        }
        let report = match self.db.get_database_backend() {
            // The row locks live as long as the transaction: it is held
            // while publishing so another relay skips these rows, and the
            // marks become visible together with the release of the locks.
            DatabaseBackend::Postgres => {
                let txn = begin_write(&self.db).await?;
                let report = self.relay_rows(&txn, shutdown).await?;
                txn.commit().await?;
                report
            }
            // SQLite has one writer and the pool one connection: a
            // transaction held while publishing would block every other
            // write of the service, so read, publish, then mark.
            _ => self.relay_rows(&self.db, shutdown).await?,
        };
        // What the poll left unpublished: when the batch was not full, the
        // rows of it that failed; else the table is asked (a backlog).
        if report.taken as u64 >= self.settings.batch_size {
            let left = store::pending_count(&self.db).await?;
            let oldest = match left {
                0 => None,
                _ => store::oldest_pending(&self.db).await?,
            };
            self.record_pending(left, oldest);
        } else {
            let left = (report.taken - report.published) as u64;
            self.record_pending(left, report.oldest_left);
        }
        let span = tracing::Span::current();
        span.record("taken", report.taken);
        span.record("published", report.published);
        Ok(report)
    }

    /// Sets the pending gauges from what the last poll saw.
    fn record_pending(&self, pending: u64, oldest: Option<chrono::DateTime<Utc>>) {
        self.metrics
            .pending
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        tracing::Span::current().record("pending", pending);
        let age = oldest.map_or(0, |at| (Utc::now() - at).num_seconds().max(0));
        self.metrics.oldest_age.set(age);
    }

    async fn relay_rows<C: ConnectionTrait>(
        &self,
        db: &C,
        shutdown: &CancellationToken,
    ) -> Result<BatchReport, OutboxError> {
        let rows = store::take_batch(db, self.settings.batch_size).await?;
        let taken = rows.len();
        let mut report = BatchReport {
            taken,
            ..BatchReport::default()
        };
        // Ids grow with time: the first row still unconfirmed at the end
        // is the oldest left.
        let written: Vec<(i64, chrono::DateTime<Utc>)> =
            rows.iter().map(|row| (row.id, row.created_at)).collect();
        let mut confirmed = Vec::with_capacity(taken);
        let mut failed = Vec::new();

        // Each publish owns its row and a publisher handle: futures that
        // borrow from this frame make `run` not provably `Send`.
        let broker_away = Arc::new(AtomicBool::new(false));
        let mut publishes = futures::stream::iter(rows)
            .map(|row| publish(self.publisher.clone(), row, broker_away.clone()))
            .buffer_unordered(self.settings.concurrency);
        let drain_deadline = drain_deadline(shutdown.clone(), self.settings.drain_timeout);
        tokio::pin!(drain_deadline);
        loop {
            let (row, attempt) = tokio::select! {
                next = publishes.next() => match next {
                    Some(done) => done,
                    None => break,
                },
                () = &mut drain_deadline => {
                    tracing::warn!(
                        unconfirmed = taken - confirmed.len() - failed.len(),
                        "outbox drain timeout: unconfirmed rows stay pending"
                    );
                    break;
                }
            };
            match attempt {
                Attempt::Confirmed => {
                    self.metrics.published.inc();
                    let lag = (Utc::now() - row.created_at).to_std().unwrap_or_default();
                    self.metrics.lag.observe(lag.as_secs_f64());
                    confirmed.push(row.id);
                }
                Attempt::Failed(err) => {
                    self.metrics.failures.inc();
                    if row_specific(&err) {
                        // Retrying cannot help until someone fixes the
                        // topology; the row stays pending and visible.
                        tracing::error!(
                            error = ?err, message_id = %row.message_id, outbox_id = row.id,
                            "the broker refuses this outbox row; it stays pending"
                        );
                    } else {
                        tracing::warn!(
                            error = ?err, message_id = %row.message_id, outbox_id = row.id,
                            "outbox publish failed; will retry"
                        );
                        broker_away.store(true, Ordering::Relaxed);
                        report.broker_failed = true;
                    }
                    failed.push((row.id, error_chain(&err)));
                }
                Attempt::Skipped => {}
            }
        }
        drop(publishes);

        report.published = confirmed.len();
        // Usually every row was confirmed: nothing to look up then.
        report.oldest_left = if confirmed.len() == written.len() {
            None
        } else {
            let done: HashSet<i64> = confirmed.iter().copied().collect();
            written
                .iter()
                .find(|(id, _)| !done.contains(id))
                .map(|(_, at)| *at)
        };
        store::mark_published(db, &confirmed).await?;
        for (id, error) in &failed {
            outbox::mark_failed(db, *id, error).await?;
        }
        Ok(report)
    }

    async fn purge(&self, retention: Duration) {
        let Ok(retention) = chrono::Duration::from_std(retention) else {
            return;
        };
        let Some(older_than) = Utc::now().checked_sub_signed(retention) else {
            return;
        };
        match store::purge_published(&self.db, older_than).await {
            Ok(0) => {}
            Ok(deleted) => tracing::info!(deleted, "purged published outbox rows"),
            Err(err) => tracing::warn!(error = ?err, "purging published outbox rows failed"),
        }
    }
}

/// Publishes one row, unless an earlier publish of the batch found the
/// broker away.
async fn publish(
    publisher: Publisher,
    row: Model,
    broker_away: Arc<AtomicBool>,
) -> (Model, Attempt) {
    if broker_away.load(Ordering::Relaxed) {
        return (row, Attempt::Skipped);
    }
    // The trace context of the span that wrote the row, so the consumer
    // continues that trace.
    let mut headers = FieldTable::default();
    if let Some(trace) = &row.headers {
        amqp::headers::insert_trace(&mut headers, &TraceHeaders::from_json(trace));
    }
    let result = publisher
        .publish_raw(
            &row.exchange,
            &row.routing_key,
            row.message_id,
            &row.payload,
            headers,
        )
        .await;
    match result {
        Ok(()) => (row, Attempt::Confirmed),
        Err(err) => (row, Attempt::Failed(err)),
    }
}

/// Resolves `drain_timeout` after `shutdown` is cancelled.
async fn drain_deadline(shutdown: CancellationToken, drain_timeout: Duration) {
    shutdown.cancelled().await;
    tokio::time::sleep(drain_timeout).await;
}

/// Failures that belong to the row, not to the broker connection: trying
/// the next rows is still worth it, backing off is not.
fn row_specific(err: &AmqpError) -> bool {
    matches!(
        err,
        AmqpError::Unroutable { .. } | AmqpError::NameTooLong(_)
    )
}

/// `err` and its sources, for the row's `last_error`.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_documentation() {
        let s = RelaySettings::default();
        assert_eq!(s.batch_size, 200);
        assert_eq!(s.poll_interval, Duration::from_secs(1));
        assert_eq!(s.retention, Some(Duration::from_secs(604_800)));
    }

    #[test]
    fn backoff_is_capped_and_grows() {
        let policy = RelaySettings::default().backoff();
        let first = policy.delay_for_attempt(0);
        assert!(first >= Duration::from_millis(250) && first < Duration::from_millis(500));
        for attempt in [5, 50, u32::MAX] {
            assert!(policy.delay_for_attempt(attempt) <= Duration::from_secs(30));
        }
        assert!(policy.delay_for_attempt(20) >= Duration::from_secs(15));
    }

    #[test]
    fn error_chain_names_every_cause() {
        let err = AmqpError::Serialize(serde_json::from_str::<u8>("x").unwrap_err());
        let text = error_chain(&err);
        assert!(text.starts_with("could not serialize message: "), "{text}");
        assert!(text.len() > "could not serialize message: ".len());
    }

    #[test]
    fn unroutable_is_the_rows_fault_not_the_brokers() {
        let unroutable = AmqpError::Unroutable {
            message_id: "m".into(),
            exchange: "x".into(),
            routing_key: "r".into(),
            reply: "NO_ROUTE".into(),
        };
        assert!(row_specific(&unroutable));
        assert!(!row_specific(&AmqpError::NotConnected(
            Duration::from_secs(1)
        )));
        assert!(!row_specific(&AmqpError::Closed));
    }
}
