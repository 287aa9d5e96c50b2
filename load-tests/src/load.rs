//! A closed-loop load driver: N workers each send one request, wait for its
//! answer, and send the next, for a warm-up and then a measured period;
//! latencies go into an HDR histogram.
//!
//! Only requests *started* in the measured period count. Workers stop
//! starting requests when it ends and the rate is taken over the time until
//! the last of them finished, so the requests in flight at the end are
//! neither lost nor counted twice.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;
use tokio::time::Instant;

/// Longest latency the histogram holds (longer ones are recorded as this), in µs.
const HISTOGRAM_MAX_US: u64 = 60_000_000;
/// Distinct error descriptions kept per scenario; the rest are lumped together.
const MAX_ERROR_KINDS: usize = 20;
/// Error description of the lumped rest.
const OTHER_ERRORS: &str = "(other errors)";

/// How hard and how long to push.
#[derive(Debug, Clone, Copy)]
pub struct LoadPlan {
    /// Concurrent workers (one request in flight each).
    pub concurrency: usize,
    /// Unmeasured period before the measured one.
    pub warmup: Duration,
    /// Measured period.
    pub duration: Duration,
    /// A request taking longer than this counts as an error (`timeout`).
    pub request_timeout: Duration,
    /// How often a progress line goes to stderr.
    pub progress_every: Duration,
}

/// What one scenario measured.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Successful operations started in the measured period.
    pub ok: u64,
    /// Failed operations started in the measured period, by description.
    pub errors: BTreeMap<String, u64>,
    /// Successful operations in the whole run, warm-up included.
    pub total_ok: u64,
    /// From the start of the measured period until the last worker stopped.
    pub elapsed: Duration,
    /// Latencies of the measured successful operations, in microseconds.
    pub latency_us: Histogram<u64>,
}

impl Measured {
    /// Successful operations per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok as f64 / secs
        } else {
            0.0
        }
    }

    /// Failed operations in the measured period.
    pub fn error_count(&self) -> u64 {
        self.errors.values().sum()
    }

    /// The figures worth printing, under `name`.
    pub fn summary(&self, name: &str) -> Summary {
        let ms = |us: u64| us as f64 / 1000.0;
        let empty = self.latency_us.is_empty();
        let quantile = |q: f64| {
            if empty {
                None
            } else {
                Some(ms(self.latency_us.value_at_quantile(q)))
            }
        };
        Summary {
            scenario: name.to_owned(),
            ok_per_s: self.rate(),
            p50_ms: quantile(0.50),
            p99_ms: quantile(0.99),
            max_ms: (!empty).then(|| ms(self.latency_us.max())),
            ok: self.ok,
            errors: self.error_count(),
            seconds: self.elapsed.as_secs_f64(),
        }
    }
}

/// One row of the result table (and of the JSON file).
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenario name.
    pub scenario: String,
    /// Successful operations per second.
    pub ok_per_s: f64,
    /// Median latency of successful operations (none if there were none).
    pub p50_ms: Option<f64>,
    /// 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Slowest successful operation.
    pub max_ms: Option<f64>,
    /// Successful operations measured.
    pub ok: u64,
    /// Failed operations measured.
    pub errors: u64,
    /// Length of the measured period.
    pub seconds: f64,
}

/// The rows as a Markdown table: scenario, ok/s, p50, p99, max, errors.
pub fn markdown_table(rows: &[Summary]) -> String {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    let mut out = String::from(
        "| scenario | ok/s | p50 ms | p99 ms | max ms | ok | errors |\n|---|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        out.push_str(&format!(
            "| {} | {:.0} | {} | {} | {} | {} | {} |\n",
            row.scenario,
            row.ok_per_s,
            ms(row.p50_ms),
            ms(row.p99_ms),
            ms(row.max_ms),
            row.ok,
            row.errors
        ));
    }
    out
}

/// Runs `op(sequence_number)` in a closed loop on `plan.concurrency` workers
/// and measures it. `op` returns `Err(description)` for a failed operation;
/// equal descriptions are counted together, so keep them free of ids.
/// Sequence numbers are unique across workers and start at 0.
pub async fn closed_loop<F, Fut>(label: &str, plan: &LoadPlan, op: F) -> anyhow::Result<Measured>
where
    F: Fn(u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send + 'static,
{
    anyhow::ensure!(plan.concurrency > 0, "concurrency must be positive");
    let op = Arc::new(op);
    let next_seq = Arc::new(AtomicU64::new(0));
    let live = Arc::new(LiveCounts::default());
    let started = Instant::now();
    let measure_from = started + plan.warmup;
    let stop_at = measure_from + plan.duration;

    let progress = tokio::spawn(report_progress(
        label.to_owned(),
        live.clone(),
        started,
        measure_from,
        plan.progress_every,
    ));

    let mut workers = Vec::with_capacity(plan.concurrency);
    for _ in 0..plan.concurrency {
        let (op, next_seq, live) = (op.clone(), next_seq.clone(), live.clone());
        let timeout = plan.request_timeout;
        workers.push(tokio::spawn(async move {
            let mut tally = Tally::new()?;
            loop {
                let sent = Instant::now();
                if sent >= stop_at {
                    break;
                }
                let seq = next_seq.fetch_add(1, Ordering::Relaxed);
                let result = match tokio::time::timeout(timeout, op(seq)).await {
                    Ok(result) => result,
                    Err(_) => Err("timeout".to_owned()),
                };
                let latency = sent.elapsed();
                let measured = sent >= measure_from;
                match result {
                    Ok(()) => {
                        live.ok.fetch_add(1, Ordering::Relaxed);
                        tally.total_ok += 1;
                        if measured {
                            tally.ok += 1;
                            let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                            tally.latency_us.saturating_record(us.max(1));
                        }
                    }
                    Err(error) => {
                        live.errors.fetch_add(1, Ordering::Relaxed);
                        if measured {
                            tally.error(error);
                        }
                    }
                }
            }
            tally.finished = Instant::now();
            anyhow::Ok(tally)
        }));
    }

    let mut total = Tally::new()?;
    let mut last_finished = measure_from;
    for worker in workers {
        let tally = worker.await.context("a load worker panicked")??;
        last_finished = last_finished.max(tally.finished);
        total.merge(tally)?;
    }
    progress.abort();

    Ok(Measured {
        ok: total.ok,
        errors: total.errors,
        total_ok: total.total_ok,
        elapsed: last_finished.saturating_duration_since(measure_from),
        latency_us: total.latency_us,
    })
}

/// Counters the progress line reads while the workers run.
#[derive(Debug, Default)]
struct LiveCounts {
    ok: AtomicU64,
    errors: AtomicU64,
}

/// One worker's results.
#[derive(Debug)]
struct Tally {
    ok: u64,
    total_ok: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
    finished: Instant,
}

impl Tally {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            ok: 0,
            total_ok: 0,
            errors: BTreeMap::new(),
            latency_us: Histogram::new_with_bounds(1, HISTOGRAM_MAX_US, 3)
                .context("latency histogram bounds")?,
            finished: Instant::now(),
        })
    }

    fn error(&mut self, description: String) {
        let key = if self.errors.contains_key(&description) || self.errors.len() < MAX_ERROR_KINDS {
            description
        } else {
            OTHER_ERRORS.to_owned()
        };
        *self.errors.entry(key).or_default() += 1;
    }

    fn merge(&mut self, other: Self) -> anyhow::Result<()> {
        self.ok += other.ok;
        self.total_ok += other.total_ok;
        for (description, count) in other.errors {
            *self.errors.entry(description).or_default() += count;
        }
        self.latency_us
            .add(&other.latency_us)
            .context("merge latency histograms")?;
        Ok(())
    }
}

async fn report_progress(
    label: String,
    live: Arc<LiveCounts>,
    started: Instant,
    measure_from: Instant,
    every: Duration,
) {
    if every.is_zero() {
        return;
    }
    let mut ticks = tokio::time::interval_at(started + every, every);
    let mut last_ok = 0;
    let mut last_at = started;
    loop {
        let now = ticks.tick().await;
        let ok = live.ok.load(Ordering::Relaxed);
        let errors = live.errors.load(Ordering::Relaxed);
        let window = now.saturating_duration_since(last_at).as_secs_f64();
        let rate = if window > 0.0 {
            (ok - last_ok) as f64 / window
        } else {
            0.0
        };
        let phase = if now < measure_from {
            "warm-up"
        } else {
            "measuring"
        };
        eprintln!(
            "  {label}: {:>4.0} s {phase}, {rate:>8.0} ok/s, {ok} ok, {errors} errors",
            now.saturating_duration_since(started).as_secs_f64()
        );
        (last_ok, last_at) = (ok, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counts_only_the_measured_period_and_keeps_errors_by_kind() {
        let plan = LoadPlan {
            concurrency: 4,
            warmup: Duration::from_millis(100),
            duration: Duration::from_millis(300),
            request_timeout: Duration::from_secs(1),
            progress_every: Duration::ZERO,
        };
        let measured = closed_loop("test", &plan, |seq| async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            if seq % 10 == 0 {
                Err("tenth".to_owned())
            } else {
                Ok(())
            }
        })
        .await
        .unwrap();
        assert!(measured.ok > 0);
        assert!(
            measured.total_ok > measured.ok,
            "warm-up successes are not measured"
        );
        assert_eq!(measured.errors.keys().collect::<Vec<_>>(), ["tenth"]);
        assert_eq!(measured.latency_us.len(), measured.ok);
        let summary = measured.summary("x");
        assert!(summary.p50_ms.unwrap() >= 5.0);
        assert!(measured.elapsed >= Duration::from_millis(300));
        // 4 workers at ~5 ms each: at most ~800/s.
        assert!(measured.rate() < 900.0, "{}", measured.rate());
    }

    #[test]
    fn the_table_has_one_row_per_scenario() {
        let rows = [Summary {
            scenario: "a".into(),
            ok_per_s: 1234.4,
            p50_ms: Some(1.234),
            p99_ms: None,
            max_ms: Some(9.0),
            ok: 10,
            errors: 1,
            seconds: 1.0,
        }];
        let table = markdown_table(&rows);
        assert!(
            table.contains("| a | 1234 | 1.23 | - | 9.00 | 10 | 1 |"),
            "{table}"
        );
    }
}

/// An HTTP client for `connections` workers.
pub fn http_client(connections: usize) -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .tcp_nodelay(true)
        .build()
        .context("build the HTTP client")
}

/// At most 160 characters of `text`, on one line.
pub fn snippet(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    match one_line.char_indices().nth(160) {
        Some((cut, _)) => format!("{}...", &one_line[..cut]),
        None => one_line,
    }
}

/// `/proc/loadavg`'s first three fields, or `?` where there is none.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|| "?".to_owned())
}

/// Whether a target holds, for the table and the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Target {
    /// What is measured against the target.
    pub what: &'static str,
    /// The target value.
    pub target: f64,
    /// The measured value, if the scenario ran.
    pub value: Option<f64>,
    /// Whether the value meets the target.
    pub met: bool,
}

/// One round of one scenario.
#[derive(Debug, Serialize)]
pub struct RoundSummary {
    /// 1-based round.
    pub round: u32,
    /// The round's figures.
    #[serde(flatten)]
    pub summary: Summary,
}
