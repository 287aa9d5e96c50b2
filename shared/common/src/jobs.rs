//! Periodic jobs that run once per system, whatever the number of replicas
//! (the reconciliation, the sweeps), with their last result shared.
//!
//! Time is cut into periods of the job's interval, counted from the Unix
//! epoch, so every replica agrees on which period it is. Each replica ticks
//! every interval; at each tick it asks the [`JobStore`] to *claim* the
//! current period, one conditional write that only one replica can win:
//! the winner runs the job, the others do nothing this period. A run holds a
//! short lease, renewed while it lasts, so a run longer than the interval is
//! never joined by a second one, and a replica that dies mid-run frees the
//! job after [`RUN_LEASE`].
//!
//! The run's outcome (and its JSON report, verbatim) is stored with the job,
//! not kept in the replica that ran it; after every tick, each replica reads
//! the stored one and sets [`JOB_LAST_FINISHED`] / [`JOB_LAST_OK`] from it,
//! so every replica reports the same last result and an alert on it does not
//! depend on which replica is scraped. Storage is behind [`JobStore`] (the
//! database one is `haven_entity::job_runs::DbJobStore`), so this crate knows
//! no table.
//!
//! On SQLite, where one process is the norm, the same statements work and
//! the claim always goes to that process.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use prometheus::{IntCounterVec, IntGaugeVec};

use crate::metrics::{MetricsError, MetricsRegistry};
use crate::shutdown::CancellationToken;
use crate::telemetry::ErrorChain;

/// Gauge: Unix time the job's last run finished, by `job` (read from the
/// shared record, the same on every replica).
pub const JOB_LAST_FINISHED: &str = "haven_job_last_finished_timestamp_seconds";
/// Gauge: 1 when the job's last run succeeded, 0 when it failed, by `job`
/// (the shared record).
pub const JOB_LAST_OK: &str = "haven_job_last_ok";
/// Counter: runs of the job this replica made, by `job` and `outcome`
/// (`ok`, `failed`); summed over replicas, every run of the system.
pub const JOB_RUNS_TOTAL: &str = "haven_job_runs_total";
/// Label: the job's name (a constant of the service, never a request value).
pub const LABEL_JOB: &str = "job";
/// Label: `ok` or `failed`.
pub const LABEL_OUTCOME: &str = "outcome";

/// How long a run holds the job without renewing; renewed every third of it.
pub const RUN_LEASE: Duration = Duration::from_secs(60);

/// A storage failure: the tick is skipped and tried again next period.
#[derive(Debug, thiserror::Error)]
#[error("the job store failed")]
pub struct JobStoreError(#[source] pub Box<dyn std::error::Error + Send + Sync>);

/// The stored outcome of a job's last finished run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRun {
    /// The replica that ran it.
    pub holder: String,
    /// When it finished.
    pub finished_at: DateTime<Utc>,
    /// Whether it succeeded.
    pub ok: bool,
    /// The JSON report of the last run that made one, verbatim (a money
    /// figure stays exact): a failed run keeps the one before it.
    pub result: Option<String>,
    /// Runs of the job so far, every replica counted.
    pub runs: u64,
}

/// What one run reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    /// Whether it succeeded.
    pub ok: bool,
    /// Its JSON report, stored verbatim; `None` keeps the stored one.
    pub result: Option<String>,
}

impl Outcome {
    /// A successful run reporting `result` (serialized here).
    pub fn ok(result: &impl serde::Serialize) -> Self {
        Self {
            ok: true,
            result: serde_json::to_string(result).ok(),
        }
    }

    /// A failed run (why is the job's to log): the last report stays.
    pub fn failed() -> Self {
        Self {
            ok: false,
            result: None,
        }
    }
}

/// Where jobs are claimed and their outcomes kept. Each method is one
/// statement, so two replicas racing see one winner.
pub trait JobStore: Send + Sync + fmt::Debug + 'static {
    /// Claims the period ending at `next_due` for `holder`: succeeds only
    /// when the job's stored next due time has passed (`now` is at or after
    /// it) and no unexpired run holds it. Sets the next due time, the run's
    /// lease (`now + lease`) and the start time.
    fn claim<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        next_due: DateTime<Utc>,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, JobStoreError>>;

    /// Extends `holder`'s lease of a run in progress; `false` when it no
    /// longer holds it.
    fn renew<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, JobStoreError>>;

    /// Records the outcome of `holder`'s run and frees the job.
    fn finish<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), JobStoreError>>;

    /// The last finished run of `job`, if any.
    fn last<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<JobRun>, JobStoreError>>;
}

/// The end of the period `now` falls in: periods are `period` long,
/// counted from the Unix epoch, so every replica cuts time the same way.
pub fn period_end(now: DateTime<Utc>, period: Duration) -> DateTime<Utc> {
    let length = i64::try_from(period.as_millis()).unwrap_or(i64::MAX).max(1);
    let index = now.timestamp_millis().div_euclid(length);
    DateTime::from_timestamp_millis(index.saturating_add(1).saturating_mul(length))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The job instruments of one service: registered once, shared by its jobs.
#[derive(Debug, Clone)]
pub struct JobMetrics {
    last_finished: IntGaugeVec,
    last_ok: IntGaugeVec,
    runs: IntCounterVec,
}

impl JobMetrics {
    /// Registers the job metrics on `registry`.
    pub fn new(registry: &MetricsRegistry) -> Result<Self, MetricsError> {
        Ok(Self {
            last_finished: registry.int_gauge_vec(
                JOB_LAST_FINISHED,
                "Unix time the job's last run finished (shared by every replica).",
                &[LABEL_JOB],
            )?,
            last_ok: registry.int_gauge_vec(
                JOB_LAST_OK,
                "1 when the job's last run succeeded, 0 when it failed (shared by every replica).",
                &[LABEL_JOB],
            )?,
            runs: registry.int_counter_vec(
                JOB_RUNS_TOTAL,
                "Runs of the job this replica made, by outcome.",
                &[LABEL_JOB, LABEL_OUTCOME],
            )?,
        })
    }

    fn shared(&self, job: &str, last: &JobRun) {
        self.last_finished
            .with_label_values(&[job])
            .set(last.finished_at.timestamp());
        self.last_ok
            .with_label_values(&[job])
            .set(i64::from(last.ok));
    }
}

/// One periodic job that runs once per system; see the module docs.
#[derive(Clone)]
pub struct OncePerSystem {
    store: Arc<dyn JobStore>,
    metrics: JobMetrics,
    job: &'static str,
    holder: String,
    period: Duration,
}

impl fmt::Debug for OncePerSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OncePerSystem")
            .field("job", &self.job)
            .field("holder", &self.holder)
            .field("period", &self.period)
            .finish_non_exhaustive()
    }
}

impl OncePerSystem {
    /// `job` (a constant name) run every `period` by one replica of
    /// `service` at a time, claimed in `store`.
    pub fn new(
        store: Arc<dyn JobStore>,
        metrics: JobMetrics,
        service: &str,
        job: &'static str,
        period: Duration,
    ) -> Self {
        let holder = format!(
            "{service}-{}-{}",
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        Self {
            store,
            metrics,
            job,
            holder,
            period,
        }
    }

    /// The job's name.
    pub fn job(&self) -> &'static str {
        self.job
    }

    /// The name this replica claims runs under.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// The last finished run (of any replica).
    pub async fn last(&self) -> Result<Option<JobRun>, JobStoreError> {
        self.store.last(self.job).await
    }

    /// One tick: runs `job` if this replica wins the current period, then
    /// reads the shared last run and sets the gauges from it. Returns the
    /// outcome when this replica ran it, `None` when another did (or does).
    pub async fn tick<F, Fut>(&self, job: F) -> Result<Option<Outcome>, JobStoreError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let now = Utc::now();
        let claimed = self
            .store
            .claim(
                self.job,
                &self.holder,
                now,
                period_end(now, self.period),
                RUN_LEASE,
            )
            .await?;
        let ran = if claimed {
            let outcome = self.hold_while(job()).await;
            let label = if outcome.ok { "ok" } else { "failed" };
            self.metrics
                .runs
                .with_label_values(&[self.job, label])
                .inc();
            self.store.finish(self.job, &self.holder, &outcome).await?;
            Some(outcome)
        } else {
            None
        };
        if let Some(last) = self.store.last(self.job).await? {
            self.metrics.shared(self.job, &last);
        }
        Ok(ran)
    }

    /// Awaits `run`, renewing the lease every third of [`RUN_LEASE`].
    async fn hold_while<Fut: Future<Output = Outcome>>(&self, run: Fut) -> Outcome {
        let mut run = std::pin::pin!(run);
        let mut renew = tokio::time::interval(RUN_LEASE / 3);
        renew.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        renew.tick().await;
        loop {
            tokio::select! {
                outcome = &mut run => return outcome,
                _ = renew.tick() => {
                    match self.store.renew(self.job, &self.holder, RUN_LEASE).await {
                        Ok(true) => {}
                        Ok(false) => tracing::warn!(job = self.job, "lost the job's lease mid-run; another replica may start it"),
                        Err(err) => tracing::warn!(job = self.job, error = %ErrorChain(&err), "could not renew the job's lease"),
                    }
                }
            }
        }
    }

    /// Ticks every period until `stop` is cancelled (a run in progress is
    /// not cut short). A store failure is logged and the next tick tries again.
    pub async fn run<F, Fut>(self, stop: CancellationToken, mut job: F)
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Outcome>,
    {
        let mut ticks = tokio::time::interval(self.period.max(Duration::from_millis(1)));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = stop.cancelled() => return,
                _ = ticks.tick() => {}
            }
            if let Err(err) = self.tick(&mut job).await {
                tracing::warn!(job = self.job, error = %ErrorChain(&err), "could not claim or record the job; trying again next period");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_cut_from_the_epoch_so_replicas_agree() {
        let at = |ms: i64| DateTime::from_timestamp_millis(ms).unwrap();
        let minute = Duration::from_secs(60);
        assert_eq!(period_end(at(0), minute), at(60_000));
        assert_eq!(period_end(at(59_999), minute), at(60_000));
        assert_eq!(period_end(at(60_000), minute), at(120_000));
        assert_eq!(period_end(at(61_234), minute), at(120_000));
        // A zero period is treated as a millisecond, never a division by zero.
        assert_eq!(period_end(at(5), Duration::ZERO), at(6));
    }
}
