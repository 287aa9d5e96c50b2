//! `haven-goose`: the Goose load test of the HAVEN API (webhooks signed all
//! three ways, token commands, reads; see `load_tests::goose_scenarios`).
//!
//! Against a running stack (`cargo xtask up` writes the stack file):
//!
//! ```sh
//! cargo run --release -p load-tests --bin haven-goose -- -- --users 50 --hatch-rate 10 --run-time 60s
//! ```
//!
//! or against the services started in this process (`--in-process`: a fresh
//! database and broker namespace, anvil with 1-s blocks). Everything after
//! `--` goes to Goose (`-- --help` lists its options: `--users`,
//! `--hatch-rate`, `--run-time`, `--scenarios`, `--report-file`, ...). The
//! exit status is 1 when any request failed its check.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::Parser;
use goose::config::GooseConfiguration;
use goose::prelude::*;
use gumdrop::Options as _;
use haven_common::config::parse_duration;
use load_tests::goose_scenarios::{self, Pacing, Targets};
use serde::Serialize;

/// The Goose load test of the HAVEN API: signed webhooks, token commands, reads.
#[derive(Parser, Debug)]
#[command(
    name = "haven-goose",
    version,
    after_help = "Goose's own options go after `--`; `-- --help` lists them."
)]
struct Args {
    /// The stack to load: `stack.json` as `cargo xtask up` writes it.
    #[arg(
        long,
        env = "HAVEN_STACK_FILE",
        default_value = "target/haven-dev/stack.json"
    )]
    stack: PathBuf,
    /// Start the services in this process instead (a fresh database and
    /// broker namespace on the local PostgreSQL and RabbitMQ, anvil with
    /// `--block-time` blocks, read-api), and load those.
    #[arg(long, env = "HAVEN_GOOSE_IN_PROCESS")]
    in_process: bool,
    /// anvil's block time with --in-process.
    #[arg(long, env = "HAVEN_GOOSE_BLOCK_TIME", default_value = "1s", value_parser = parse_duration)]
    block_time: Duration,
    /// Shortest pause of a user between two transactions.
    #[arg(long, env = "HAVEN_GOOSE_THINK_MIN", default_value = "500ms", value_parser = parse_duration)]
    think_min: Duration,
    /// Longest pause of a user between two transactions.
    #[arg(long, env = "HAVEN_GOOSE_THINK_MAX", default_value = "2s", value_parser = parse_duration)]
    think_max: Duration,
    /// Also write a summary (per request: successes, failures, latency) as
    /// JSON to this file (parent folders are created).
    #[arg(long, env = "HAVEN_GOOSE_JSON")]
    json: Option<PathBuf>,
    /// Goose's options (`--users`, `--hatch-rate`, `--run-time`, ...);
    /// defaults here: 20 users, 5 started per second, 60 s.
    #[arg(last = true)]
    goose: Vec<String>,
}

/// One request name's figures.
#[derive(Debug, Serialize)]
struct RequestSummary {
    successes: usize,
    failures: usize,
    mean_ms: f64,
    p99_ms: usize,
    max_ms: usize,
}

#[derive(Debug, Serialize)]
struct Summary {
    bench: &'static str,
    duration_s: usize,
    users: usize,
    requests: BTreeMap<String, RequestSummary>,
    errors: BTreeMap<String, usize>,
    total_failures: usize,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.think_min > args.think_max {
        bail!("--think-min must not be above --think-max");
    }
    let goose_config = match GooseConfiguration::parse_args_default(&args.goose) {
        Ok(config) if config.help => {
            println!(
                "Goose options (after `--`):\n\n{}",
                GooseConfiguration::usage()
            );
            return Ok(());
        }
        Ok(config) => config,
        Err(err) => bail!("Goose's options after `--`: {err}"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")?;
    let summary = runtime.block_on(run(&args, goose_config))?;
    if let Some(path) = &args.json {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
        }
        std::fs::write(path, serde_json::to_vec_pretty(&summary)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    print_summary(&summary);
    if summary.total_failures > 0 {
        bail!("{} requests failed their check", summary.total_failures);
    }
    Ok(())
}

async fn run(args: &Args, goose_config: GooseConfiguration) -> anyhow::Result<Summary> {
    let pacing = Pacing {
        min: args.think_min,
        max: args.think_max,
    };
    if !args.in_process {
        let targets = Targets::from_stack_file(&args.stack)?;
        eprintln!(
            "haven-goose: loading the stack of {} (guests {}_*)",
            args.stack.display(),
            targets.run_id()
        );
        return attack(targets, pacing, goose_config).await;
    }

    let block_time = format!("{}", args.block_time.as_secs_f64());
    eprintln!("haven-goose: starting the services in this process (anvil {block_time}-s blocks)");
    let pipeline = haven_e2e::Pipeline::start(&["--block-time", &block_time], &[]).await;
    let reads = pipeline.start_read_api(&[]).await;
    let targets = Targets::new(
        &pipeline.ingress.address,
        &reads.address,
        haven_e2e::API_KEY,
        haven_e2e::AURORA_SECRET,
        haven_e2e::TRIBE_SECRET,
    )?;
    let outcome = attack(targets, pacing, goose_config).await;
    reads.stop().await;
    pipeline.stop().await;
    outcome
}

async fn attack(
    targets: Targets,
    pacing: Pacing,
    goose_config: GooseConfiguration,
) -> anyhow::Result<Summary> {
    let metrics = goose_scenarios::attack(targets, pacing, goose_config).await?;
    Ok(summarize(&metrics))
}

fn summarize(metrics: &GooseMetrics) -> Summary {
    let requests: BTreeMap<String, RequestSummary> = metrics
        .requests
        .iter()
        .map(|(name, aggregate)| {
            let data = &aggregate.raw_data;
            let mean_ms = if data.counter == 0 {
                0.0
            } else {
                data.total_time as f64 / data.counter as f64
            };
            (
                name.clone(),
                RequestSummary {
                    successes: aggregate.success_count,
                    failures: aggregate.fail_count,
                    mean_ms,
                    p99_ms: percentile(&data.times, 0.99),
                    max_ms: data.maximum_time,
                },
            )
        })
        .collect();
    let errors = metrics
        .errors
        .values()
        .map(|e| {
            (
                format!("{} {}: {}", e.method, e.name, e.error),
                e.occurrences,
            )
        })
        .collect();
    Summary {
        bench: "haven-goose",
        duration_s: metrics.duration,
        users: metrics.maximum_users,
        total_failures: requests.values().map(|r| r.failures).sum(),
        requests,
        errors,
    }
}

/// The `q` quantile of response times kept as milliseconds -> count.
fn percentile(times: &BTreeMap<usize, usize>, q: f64) -> usize {
    let total: usize = times.values().sum();
    let rank = (total as f64 * q).ceil() as usize;
    let mut seen = 0;
    for (ms, count) in times {
        seen += count;
        if seen >= rank.max(1) {
            return *ms;
        }
    }
    0
}

fn print_summary(summary: &Summary) {
    println!(
        "\nhaven-goose: {} users for {} s\n\n| request | ok | failed | mean ms | p99 ms | max ms |\n|---|---:|---:|---:|---:|---:|",
        summary.users, summary.duration_s
    );
    for (name, r) in &summary.requests {
        println!(
            "| {name} | {} | {} | {:.1} | {} | {} |",
            r.successes, r.failures, r.mean_ms, r.p99_ms, r.max_ms
        );
    }
    for (error, count) in &summary.errors {
        println!("error x{count}: {error}");
    }
}
