//! The fault matrix: the whole system as separate processes under steady
//! load while one fault at a time breaks it, each row on a fresh database,
//! broker namespace and chain; then, after the load and a drain, the count
//! of events lost and doubled, checked from outside ([`verify`]).
//!
//! - [`stack`]: the services as supervised processes ([`process`]) behind
//!   proxies a fault can cut;
//! - [`traffic`]: the load, sent and retried as partners send it;
//! - [`faults`]: how each fault is made;
//! - [`verify`]: the checks; [`report`]: the table.
//!
//! Run by `cargo xtask chaos` (binary `chaos`), which builds the services
//! and hands their directory over.

pub mod alerts;
pub mod cluster;
pub mod faults;
pub mod process;
pub mod report;
pub mod stack;
pub mod traffic;
pub mod verify;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::{Parser, ValueEnum};
use haven_common::config::parse_duration;
use hdrhistogram::Histogram;
use tokio::time::Instant;

use self::alerts::Prometheus;
use self::cluster::RabbitCluster;
use self::faults::Fault;
use self::report::Row;
use self::stack::Stack;
use self::traffic::{Outcome, Traffic};
use self::verify::Snapshot;

/// Which rows, how many events, how fast, by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// Every fault, 3,000 events at 100/s each.
    Full,
    /// Two faults (kill -9 of chain-minter, the broker cut), 500 events at
    /// 50/s each: small enough for every CI run.
    Short,
}

/// The fault matrix: break the running system on purpose, count what was lost.
#[derive(Debug, Parser)]
#[command(name = "chaos", version)]
pub struct Args {
    /// Rows to run, comma-separated (default: the profile's).
    #[arg(long, env = "CHAOS_ONLY", value_enum, value_delimiter = ',')]
    pub only: Vec<Fault>,
    /// Default rows, events and rate.
    #[arg(long, env = "CHAOS_PROFILE", value_enum, default_value_t = Profile::Full)]
    pub profile: Profile,
    /// Events sent per row (default 3,000; 500 in the short profile).
    #[arg(long, env = "CHAOS_EVENTS", value_parser = clap::value_parser!(u64).range(20..))]
    pub events: Option<u64>,
    /// Events started per second (default 100; 50 in the short profile).
    #[arg(long, env = "CHAOS_RATE", value_parser = clap::value_parser!(u32).range(1..=2000))]
    pub rate: Option<u32>,
    /// Directory holding the five service binaries.
    #[arg(long, env = "CHAOS_BIN_DIR")]
    pub bin_dir: PathBuf,
    /// Where `latest.md`, `latest.json` and each row's service logs go.
    #[arg(long, env = "CHAOS_OUT", default_value = "target/chaos")]
    pub out: PathBuf,
    /// A Prometheus server binary: when given, each row's services are
    /// scraped and `--alert-rules` evaluated, and the alerts raised are
    /// checked against what the fault should raise.
    #[arg(long, env = "CHAOS_PROMETHEUS")]
    pub prometheus: Option<PathBuf>,
    /// The alert rules the Prometheus evaluates.
    #[arg(long, env = "CHAOS_ALERT_RULES", default_value = alerts::DEFAULT_RULES)]
    pub alert_rules: PathBuf,
    /// How long after the load and the fault the backlog may take to drain
    /// before what is missing counts as lost. Longer than the longest retry
    /// tier (10 minutes): a cancellation that waited for a stuck mint may
    /// sit there.
    #[arg(long, env = "CHAOS_DRAIN_TIMEOUT", default_value = "12m", value_parser = parse_duration)]
    pub drain_timeout: Duration,
}

impl Args {
    fn faults(&self) -> Vec<Fault> {
        if !self.only.is_empty() {
            return self.only.clone();
        }
        match self.profile {
            Profile::Full => Fault::all(),
            Profile::Short => vec![Fault::KillChainMinter, Fault::BrokerCut],
        }
    }

    fn events(&self) -> u64 {
        self.events.unwrap_or(match self.profile {
            Profile::Full => 3000,
            Profile::Short => 500,
        })
    }

    fn rate(&self) -> u32 {
        self.rate.unwrap_or(match self.profile {
            Profile::Full => 100,
            Profile::Short => 50,
        })
    }
}

/// Runs the rows and writes the table; false when anything was lost or
/// doubled, or a row could not run.
pub async fn run(args: &Args) -> anyhow::Result<bool> {
    std::fs::create_dir_all(&args.out)?;
    let mut rows = Vec::new();
    for fault in args.faults() {
        tracing::info!(fault = %fault.name(), how = fault.how(), "row starts");
        let row = match run_row(args, fault).await {
            Ok(row) => row,
            Err(err) => Row::failed(fault, format!("{err:#}")),
        };
        tracing::info!(fault = %fault.name(), lost = row.lost, duplicated = row.duplicated, passed = row.passed, "row done");
        rows.push(row);
        // Each row's table as it comes: a long run shows what it has.
        report::write(&args.out, &rows, args.events(), args.rate())?;
    }
    println!("{}", report::markdown(&rows, args.events(), args.rate()));
    Ok(rows.iter().all(|r| r.passed))
}

async fn run_row(args: &Args, fault: Fault) -> anyhow::Result<Row> {
    let dir = args.out.join(fault.name());
    let _ = std::fs::remove_dir_all(&dir);
    let mut stack = if fault.needs_cluster() {
        if !RabbitCluster::available() {
            return Ok(Row::skipped(
                fault,
                "this machine cannot run a RabbitMQ cluster of its own (needs RabbitMQ's server script, a rabbitmq user and root)",
            ));
        }
        Stack::start_on_cluster(
            &args.bin_dir,
            &dir,
            &std::env::temp_dir().join("haven-chaos-rabbit"),
        )
        .await?
    } else {
        Stack::start(&args.bin_dir, &dir).await?
    };
    if fault.needs_replicas() {
        stack.add_replicas().await?;
    }
    let prometheus = match &args.prometheus {
        Some(bin) => Some(Prometheus::start(bin, &args.alert_rules, &dir, &stack.targets()).await?),
        None => None,
    };
    let traffic = Traffic::new(stack.ingress_url(), stack.read_api_url());
    let (events, rate) = (args.events(), args.rate());
    let load_secs = events as f64 / f64::from(rate);
    // A kill comes at a random moment; the others a third of the way in,
    // when mints are flowing and recorded.
    let at = if fault.name().starts_with("kill-") {
        rand::random_range(0.2..0.6)
    } else {
        0.3
    } * load_secs;

    let load = {
        let traffic = Arc::clone(&traffic);
        tokio::spawn(async move { traffic.run(events, rate).await })
    };
    tokio::time::sleep(Duration::from_secs_f64(at)).await;
    let fault_start = Utc::now();
    let injected = fault.inject(&stack).await;
    let fault_end = Utc::now();
    let fault_ended = Instant::now();
    injected?;
    tracing::info!(fault = %fault.name(), "fault over; waiting for recovery and the drain");

    // Recovery: healthy again and every event accepted before the fault's
    // end settled. Drain: every accepted event settled after the load.
    let client = reqwest::Client::new();
    let mut recovery = None;
    let mut drained_at = None;
    let mut load_done = None;
    let mut polls = 0u64;
    loop {
        if load_done.is_none() && load.is_finished() {
            load_done = Some(Instant::now());
        }
        let snapshot = Snapshot::load(stack.db()).await?;
        let sent = traffic.sent();
        let unsettled = |before: Option<chrono::DateTime<Utc>>| {
            sent.iter()
                .filter(|s| s.outcome == Outcome::Accepted)
                .filter(|s| before.is_none_or(|b| s.accepted_at.is_some_and(|a| a <= b)))
                .filter(|s| !snapshot.settled(s))
                .count()
        };
        let healthy = stack.healthy(&client).await;
        polls += 1;
        if polls.is_multiple_of(10) {
            let mut waiting: std::collections::BTreeMap<&str, usize> = Default::default();
            for s in sent
                .iter()
                .filter(|s| s.outcome == Outcome::Accepted && !snapshot.settled(s))
            {
                *waiting.entry(s.kind).or_default() += 1;
            }
            tracing::info!(fault = %fault.name(), healthy, ?waiting, "waiting for the backlog");
        }
        if recovery.is_none() && healthy && unsettled(Some(fault_end)) == 0 {
            recovery = Some(fault_ended.elapsed());
        }
        if let Some(done) = load_done {
            let left = unsettled(None);
            if left == 0 && healthy {
                drained_at = Some(done.elapsed());
                break;
            }
            if done.elapsed() > args.drain_timeout {
                tracing::warn!(fault = %fault.name(), unsettled = left, "drain timed out");
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    load.await?;

    let sent = traffic.sent();
    let snapshot = Snapshot::load(stack.db()).await?;
    let verdict = verify::check(&stack, &snapshot, &sent).await?;
    let mut during = Histogram::<u64>::new(3)?;
    let mut all = Histogram::<u64>::new(3)?;
    for s in &sent {
        let (Some(accepted), Some(confirmed)) = (s.accepted_at, snapshot.confirmed_at(s)) else {
            continue;
        };
        let ms = u64::try_from((confirmed - accepted).num_milliseconds().max(0)).unwrap_or(0);
        let _ = all.record(ms);
        if accepted >= fault_start && accepted <= fault_end {
            let _ = during.record(ms);
        }
    }
    let mut row = Row::new(
        fault,
        &sent,
        verdict,
        report::Timing {
            recovery,
            drained: drained_at,
            during: (!during.is_empty()).then_some(during),
            all: (!all.is_empty()).then_some(all),
        },
        stack.restarts(),
        traffic.reads(),
    );
    if let Some(prometheus) = prometheus {
        let seen = prometheus.seen().await?;
        prometheus.stop().await;
        row.check_alerts(fault, seen);
    }
    if let Some(url) = stack.stop(!row.passed).await {
        row.problems
            .push(format!("database kept for a look: {url}"));
    }
    Ok(row)
}
