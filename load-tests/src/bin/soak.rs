//! Soak: signed Aurora `booking-created` webhooks, each for a new guest, at a
//! fixed rate (`--rate`, 200/s by default, open loop: a request is started
//! every 1/rate s whatever the earlier ones are doing) for `--duration`
//! (10 min by default) into the whole pipeline (webhook-ingress,
//! reward-calculator and chain-minter as processes started from the release
//! binaries next to this one, on PostgreSQL, RabbitMQ and anvil with
//! `--block-time` blocks).
//!
//! Reported: accept latency p50/p99/max, errors by kind, the achieved rate,
//! accepted -> confirmed latency p50/p99 per event (the client saw the 200
//! -> the mint's `confirmed_at`), in seconds and blocks; the resident memory
//! over time of each service, of this process (the load generator), of anvil
//! and of the PostgreSQL and RabbitMQ servers of the machine (PSS summed
//! over their processes); what the run cost per 1,000 mints
//! ([`load_tests::cost`]); then, once every mint is
//! confirmed, that every accepted event ended in exactly one confirmed mint:
//! as many mint rows as accepted events, all confirmed, one per guest, no
//! chain reference used twice, and the contract's `totalMinted` grown by
//! exactly the ledger's sum of those mints (a mint sent twice would be
//! counted twice on chain).

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::U256;
use anyhow::{Context as _, ensure};
use clap::Parser;
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_common::config::parse_duration;
use haven_entity::token_transactions::{self, TxStatus, TxType};
use haven_entity::users;
use hdrhistogram::Histogram;
use load_tests::cost::{Cost, STATS_SETTLE};
use load_tests::processes::ServicePipeline;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use serde::Serialize;
use tokio::sync::{Mutex, Semaphore};
use tokio::time::{Instant, MissedTickBehavior};

/// The webhook every request posts.
const WEBHOOK_PATH: &str = "/webhooks/aurora/booking-created";
/// Header carrying the hex HMAC-SHA256 of the raw body.
const SIGNATURE_HEADER: &str = "X-Aurora-Signature";
/// Target from the issue: p99 accept latency under load.
const TARGET_P99_MS: f64 = 50.0;
/// Target from the issue: p99 accepted -> confirmed within this many blocks.
const TARGET_CONFIRM_P99_BLOCKS: f64 = 3.0;

/// Webhooks at a fixed rate into the whole pipeline for a long time.
#[derive(Parser, Debug)]
#[command(name = "soak", version)]
struct Args {
    /// Webhooks started per second.
    #[arg(long, env = "SOAK_RATE", default_value_t = 200,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    rate: u32,
    /// How long to send (10m, 60s).
    #[arg(long, env = "SOAK_DURATION", default_value = "10m", value_parser = parse_duration)]
    duration: Duration,
    /// anvil's block time.
    #[arg(long, env = "SOAK_BLOCK_TIME", default_value = "1s", value_parser = parse_duration)]
    block_time: Duration,
    /// Requests in flight at most; a request that would exceed it is not
    /// sent and counts as an error (`client saturated`).
    #[arg(long, env = "SOAK_MAX_IN_FLIGHT", default_value_t = 2048)]
    max_in_flight: usize,
    /// A request slower than this counts as an error.
    #[arg(long, env = "SOAK_REQUEST_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// How often memory is sampled (and a progress line printed).
    #[arg(long, env = "SOAK_SAMPLE_EVERY", default_value = "10s", value_parser = parse_duration)]
    sample_every: Duration,
    /// Longest wait, after the load, for every mint to be confirmed.
    #[arg(long, env = "SOAK_DRAIN_TIMEOUT", default_value = "900s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Folder of the service binaries (default: this program's).
    #[arg(long, env = "SOAK_BIN_DIR")]
    bin_dir: Option<PathBuf>,
    /// Where the services' logs go.
    #[arg(long, env = "SOAK_LOG_DIR", default_value = "target/bench/logs/soak")]
    log_dir: PathBuf,
    /// Also write the figures as JSON to this file (parent folders are created).
    #[arg(long, env = "SOAK_JSON")]
    json: Option<PathBuf>,
}

/// Resident memory of every watched process at one moment, in MiB.
#[derive(Debug, Clone, Serialize)]
struct RssSample {
    at_s: f64,
    phase: &'static str,
    accepted: u64,
    /// Process (or process group) name -> MiB.
    rss_mib: BTreeMap<String, f64>,
}

/// The end-of-run check: every accepted event, exactly one confirmed mint.
#[derive(Debug, Clone, Serialize)]
struct Integrity {
    accepted: u64,
    mint_rows: u64,
    confirmed_mints: u64,
    distinct_guests_minted: u64,
    duplicate_chain_references: u64,
    ledger_minted_wei: String,
    chain_total_minted_delta_wei: String,
    exactly_one_confirmed_mint_each: bool,
}

#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    rate_per_s: u32,
    duration_s: f64,
    block_time_s: f64,
    sent: u64,
    accepted: u64,
    achieved_accepted_per_s: f64,
    accept_p50_ms: Option<f64>,
    accept_p99_ms: Option<f64>,
    accept_max_ms: Option<f64>,
    errors: BTreeMap<String, u64>,
    /// From the end of the load until the last mint was confirmed.
    drain_s: f64,
    /// Accepted (the client saw the 200) -> the mint confirmed, per event.
    confirm_p50_s: Option<f64>,
    confirm_p99_s: Option<f64>,
    confirm_p99_blocks: Option<f64>,
    target_confirm_p99_blocks: f64,
    confirm_p99_met: bool,
    rss: Vec<RssSample>,
    /// The most the services' resident memory summed to in one sample.
    services_peak_rss_mib: f64,
    cost: Cost,
    integrity: Integrity,
    target_p99_ms: f64,
    p99_met: bool,
}

/// What the sender tasks share.
#[derive(Debug)]
struct Tally {
    accepted: u64,
    errors: BTreeMap<String, u64>,
    latency_us: Histogram<u64>,
    /// (guest number, when the client saw the 200).
    accepted_at: Vec<(u64, chrono::DateTime<chrono::Utc>)>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lapin=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    let block_time = format!("{}", args.block_time.as_secs_f64());
    eprintln!(
        "soak: starting anvil (block time {block_time} s), a fresh database, a broker namespace and the services"
    );
    let bin_dir = match &args.bin_dir {
        Some(dir) => dir.clone(),
        None => ServicePipeline::default_bin_dir()?,
    };
    let pipeline = ServicePipeline::start(args.block_time, &bin_dir, &args.log_dir, &[]).await?;
    let result = tokio::select! {
        result = run(&args, &pipeline) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    pipeline.stop().await;
    let report = result?;
    print(&report);
    if let Some(path) = &args.json {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        println!("\nJSON written to {}", path.display());
    }
    ensure!(
        report.integrity.exactly_one_confirmed_mint_each,
        "the integrity check failed"
    );
    Ok(())
}

async fn run(args: &Args, pipeline: &ServicePipeline) -> anyhow::Result<Report> {
    let rpc = Rpc::new(&pipeline.anvil.rpc_config())?;
    let mut watched = pipeline.pids();
    watched.push(("anvil".to_owned(), pipeline.anvil.pid()));
    let meter = pipeline.meter().await?;
    let before = meter.snapshot().await?;
    let minted_before = total_minted(&rpc, pipeline).await?;
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let tally = Arc::new(Mutex::new(Tally {
        accepted: 0,
        errors: BTreeMap::new(),
        latency_us: Histogram::new_with_bounds(1, 60_000_000, 3)?,
        accepted_at: Vec::new(),
    }));
    let in_flight = Arc::new(Semaphore::new(args.max_in_flight.max(1)));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.max_in_flight.max(1))
        .timeout(args.request_timeout)
        .build()?;
    let url = format!("{}{WEBHOOK_PATH}", pipeline.ingress_url());

    let started = Instant::now();
    let stop_at = started + args.duration;
    let mut rss = vec![sample_rss(0.0, "load", 0, &watched)];
    let mut next_sample = started + args.sample_every;
    // Ticks counted from `started`: a slow first sample cannot cost requests
    // (missed ticks are sent at once), so rate x duration requests go out.
    let mut ticks =
        tokio::time::interval_at(started, Duration::from_secs_f64(1.0 / f64::from(args.rate)));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Burst);
    let mut sent = 0u64;
    let mut tasks = tokio::task::JoinSet::new();
    loop {
        let now = ticks.tick().await;
        if now >= stop_at {
            break;
        }
        if now >= next_sample {
            let accepted = tally.lock().await.accepted;
            let sample = sample_rss(started.elapsed().as_secs_f64(), "load", accepted, &watched);
            eprintln!(
                "  {:>5.0} s: {sent} sent, {accepted} accepted, rss {}",
                sample.at_s,
                fmt_rss(&sample.rss_mib)
            );
            rss.push(sample);
            next_sample += args.sample_every;
        }
        let seq = sent;
        sent += 1;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            *tally
                .lock()
                .await
                .errors
                .entry("client saturated".to_owned())
                .or_default() += 1;
            continue;
        };
        let (client, url, tally, run_id) =
            (client.clone(), url.clone(), tally.clone(), run_id.clone());
        tasks.spawn(async move {
            let Ok((body, signature)) = signed(&run_id, seq) else {
                drop(permit);
                *tally
                    .lock()
                    .await
                    .errors
                    .entry("signing".to_owned())
                    .or_default() += 1;
                return;
            };
            let sent_at = Instant::now();
            let result = client
                .post(&url)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(SIGNATURE_HEADER, signature)
                .body(body)
                .send()
                .await;
            let outcome = match result {
                Ok(response) if response.status() == reqwest::StatusCode::OK => {
                    // The body must be read for the connection to be reused.
                    match response.bytes().await {
                        Ok(_) => Ok(()),
                        Err(err) => Err(format!("reading the answer: {}", error_kind(&err))),
                    }
                }
                Ok(response) => Err(format!("HTTP {}", response.status().as_u16())),
                Err(err) => Err(error_kind(&err)),
            };
            let latency = sent_at.elapsed();
            drop(permit);
            let mut tally = tally.lock().await;
            match outcome {
                Ok(()) => {
                    tally.accepted += 1;
                    tally.accepted_at.push((seq, chrono::Utc::now()));
                    let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
                    tally.latency_us.saturating_record(us.max(1));
                }
                Err(kind) => *tally.errors.entry(kind).or_default() += 1,
            }
        });
        // Reap finished senders so the set stays small.
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let load_ended = Instant::now();
    let load_s = load_ended.duration_since(started).as_secs_f64();
    let (accepted, errors, latency_us, accepted_at) = {
        let mut tally = tally.lock().await;
        (
            tally.accepted,
            tally.errors.clone(),
            tally.latency_us.clone(),
            std::mem::take(&mut tally.accepted_at),
        )
    };
    eprintln!(
        "load done: {sent} sent, {accepted} accepted in {load_s:.1} s; waiting for the mints"
    );

    // Drain: every accepted event's mint confirmed.
    let deadline = load_ended + args.drain_timeout;
    loop {
        let confirmed = pipeline.confirmed_mints().await?;
        if confirmed >= accepted {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "only {confirmed} of {accepted} mints confirmed {:?} after the load",
            args.drain_timeout
        );
        if Instant::now() >= next_sample {
            let sample = sample_rss(started.elapsed().as_secs_f64(), "drain", accepted, &watched);
            eprintln!(
                "  {:>5.0} s: {confirmed} of {accepted} mints confirmed, rss {}",
                sample.at_s,
                fmt_rss(&sample.rss_mib)
            );
            rss.push(sample);
            next_sample += args.sample_every;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain_s = load_ended.elapsed().as_secs_f64();
    // A little longer: a duplicate mint would show up now, not be missed.
    tokio::time::sleep((args.block_time * 3).max(STATS_SETTLE)).await;
    let after = meter.snapshot().await?;
    let cost = meter.between(&before, &after, accepted);
    rss.push(sample_rss(
        started.elapsed().as_secs_f64(),
        "end",
        accepted,
        &watched,
    ));

    let integrity = check_integrity(pipeline, &rpc, accepted, minted_before).await?;
    let confirm_ms = confirm_latency_ms(pipeline, &run_id, &accepted_at).await?;
    let confirm_q =
        |q: f64| (!confirm_ms.is_empty()).then(|| confirm_ms.value_at_quantile(q) as f64 / 1000.0);
    let block_s = args.block_time.as_secs_f64();
    let confirm_p99_s = confirm_q(0.99);
    let confirm_p99_blocks = confirm_p99_s.map(|s| s / block_s);
    let services: Vec<&String> = watched
        .iter()
        .filter(|(name, _)| name != "anvil")
        .map(|(name, _)| name)
        .collect();
    let services_peak_rss_mib = rss
        .iter()
        .map(|sample| {
            services
                .iter()
                .filter_map(|name| sample.rss_mib.get(*name))
                .sum::<f64>()
        })
        .fold(0.0, f64::max);
    let ms = |us: u64| us as f64 / 1000.0;
    let empty = latency_us.is_empty();
    let p99 = (!empty).then(|| ms(latency_us.value_at_quantile(0.99)));
    Ok(Report {
        bench: "soak",
        rate_per_s: args.rate,
        duration_s: args.duration.as_secs_f64(),
        block_time_s: args.block_time.as_secs_f64(),
        sent,
        accepted,
        achieved_accepted_per_s: accepted as f64 / load_s,
        accept_p50_ms: (!empty).then(|| ms(latency_us.value_at_quantile(0.5))),
        accept_p99_ms: p99,
        accept_max_ms: (!empty).then(|| ms(latency_us.max())),
        errors,
        drain_s,
        confirm_p50_s: confirm_q(0.5),
        confirm_p99_s,
        confirm_p99_blocks,
        target_confirm_p99_blocks: TARGET_CONFIRM_P99_BLOCKS,
        confirm_p99_met: confirm_p99_blocks.is_some_and(|b| b <= TARGET_CONFIRM_P99_BLOCKS),
        rss,
        services_peak_rss_mib,
        cost,
        integrity,
        target_p99_ms: TARGET_P99_MS,
        p99_met: p99.is_some_and(|p| p < TARGET_P99_MS),
    })
}

/// Guest `seq`'s external id.
fn guest(run_id: &str, seq: u64) -> String {
    format!("soak_{run_id}_guest_{seq}")
}

/// Accepted -> confirmed in milliseconds, one sample per accepted event
/// whose mint is confirmed.
async fn confirm_latency_ms(
    pipeline: &ServicePipeline,
    run_id: &str,
    accepted_at: &[(u64, chrono::DateTime<chrono::Utc>)],
) -> anyhow::Result<Histogram<u64>> {
    let user_ids: std::collections::HashMap<uuid::Uuid, String> = users::Entity::find()
        .all(pipeline.db())
        .await?
        .into_iter()
        .map(|u| (u.id, u.external_id))
        .collect();
    let accepted: std::collections::HashMap<String, chrono::DateTime<chrono::Utc>> = accepted_at
        .iter()
        .map(|(seq, at)| (guest(run_id, *seq), *at))
        .collect();
    let mut latency = Histogram::<u64>::new(3)?;
    for mint in token_transactions::Entity::find()
        .filter(token_transactions::Column::TxType.eq(TxType::Mint))
        .filter(token_transactions::Column::Status.eq(TxStatus::Confirmed))
        .all(pipeline.db())
        .await?
    {
        let at = user_ids.get(&mint.user_id).and_then(|g| accepted.get(g));
        if let (Some(at), Some(confirmed_at)) = (at, mint.confirmed_at) {
            let ms = (confirmed_at - *at).num_milliseconds().max(0);
            latency.record(u64::try_from(ms).unwrap_or(0))?;
        }
    }
    Ok(latency)
}

/// Body and hex HMAC-SHA256 signature of booking `seq` for guest `seq`.
fn signed(run_id: &str, seq: u64) -> anyhow::Result<(String, String)> {
    let body = serde_json::json!({
        "id": format!("soak_{run_id}_booking_{seq}"),
        "guest_id": guest(run_id, seq),
        "total_price": 120.5,
        "nights": 2
    })
    .to_string();
    let signature = ServicePipeline::sign_aurora(body.as_bytes())?;
    Ok((body, signature))
}

fn error_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".to_owned()
    } else if err.is_connect() {
        "connect".to_owned()
    } else {
        "transport".to_owned()
    }
}

async fn total_minted(rpc: &Rpc, pipeline: &ServicePipeline) -> anyhow::Result<U256> {
    rpc.view(pipeline.contract, &HAVEN::totalMintedCall {})
        .await
        .context("totalMinted")
}

async fn check_integrity(
    pipeline: &ServicePipeline,
    rpc: &Rpc,
    accepted: u64,
    minted_before: U256,
) -> anyhow::Result<Integrity> {
    let mints = token_transactions::Entity::find()
        .filter(token_transactions::Column::TxType.eq(TxType::Mint))
        .all(pipeline.db())
        .await?;
    let confirmed: Vec<_> = mints
        .iter()
        .filter(|m| m.status == TxStatus::Confirmed)
        .collect();
    let guests: HashSet<_> = confirmed.iter().map(|m| m.user_id).collect();
    let mut references = HashSet::new();
    let duplicate_chain_references = mints
        .iter()
        .filter(|m| !references.insert(m.chain_reference.clone()))
        .count() as u64;
    let mut ledger: i128 = 0;
    for mint in &confirmed {
        ledger = ledger
            .checked_add(mint.amount.get())
            .context("ledger sum overflows")?;
    }
    let delta = total_minted(rpc, pipeline).await? - minted_before;
    let ledger_u256 = U256::from(u128::try_from(ledger).context("negative ledger sum")?);
    let integrity = Integrity {
        accepted,
        mint_rows: mints.len() as u64,
        confirmed_mints: confirmed.len() as u64,
        distinct_guests_minted: guests.len() as u64,
        duplicate_chain_references,
        ledger_minted_wei: ledger.to_string(),
        chain_total_minted_delta_wei: delta.to_string(),
        exactly_one_confirmed_mint_each: mints.len() as u64 == accepted
            && confirmed.len() as u64 == accepted
            && guests.len() as u64 == accepted
            && duplicate_chain_references == 0
            && delta == ledger_u256,
    };
    Ok(integrity)
}

/// RSS of each `watched` process (name, pid: the services, anvil), of
/// this process (the load generator) and of the machine's PostgreSQL and
/// RabbitMQ servers (all their processes summed), in MiB.
fn sample_rss(
    at_s: f64,
    phase: &'static str,
    accepted: u64,
    watched: &[(String, u32)],
) -> RssSample {
    let mut rss_mib = BTreeMap::new();
    if let Some(kib) = rss_kib(std::process::id()) {
        rss_mib.insert(
            "load generator (this process)".to_owned(),
            kib as f64 / 1024.0,
        );
    }
    for (name, pid) in watched {
        if let Some(kib) = rss_kib(*pid) {
            rss_mib.insert(name.clone(), kib as f64 / 1024.0);
        }
    }
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            // Summed RSS would count PostgreSQL's shared buffers once per
            // backend: a group is summed by PSS (shared pages split among
            // the processes sharing them).
            let group = match comm(pid).as_deref() {
                Some("postgres") => "postgresql (PSS, all processes)",
                Some("beam.smp") => "rabbitmq (PSS)",
                _ => continue,
            };
            if let Some(kib) = pss_kib(pid).or_else(|| rss_kib(pid)) {
                *rss_mib.entry(group.to_owned()).or_insert(0.0) += kib as f64 / 1024.0;
            }
        }
    }
    RssSample {
        at_s,
        phase,
        accepted,
        rss_mib,
    }
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn pss_kib(pid: u32) -> Option<u64> {
    let rollup = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    rollup
        .lines()
        .find_map(|line| line.strip_prefix("Pss:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_owned())
}

fn fmt_rss(rss: &BTreeMap<String, f64>) -> String {
    rss.iter()
        .map(|(name, mib)| format!("{name} {mib:.0} MiB"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn print(report: &Report) {
    let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "\nsoak: {} webhooks/s for {:.0} s, anvil block time {:.1} s\n",
        report.rate_per_s, report.duration_s, report.block_time_s
    );
    println!("| figure | value |\n|---|---:|");
    println!("| webhooks sent | {} |", report.sent);
    println!("| accepted | {} |", report.accepted);
    println!("| accepted/s | {:.1} |", report.achieved_accepted_per_s);
    println!("| accept latency p50 | {} ms |", ms(report.accept_p50_ms));
    println!(
        "| accept latency p99 | {} ms (target < {TARGET_P99_MS} ms: {}) |",
        ms(report.accept_p99_ms),
        if report.p99_met { "met" } else { "MISSED" }
    );
    println!("| accept latency max | {} ms |", ms(report.accept_max_ms));
    println!("| errors | {} |", report.errors.values().sum::<u64>());
    println!(
        "| load end -> last mint confirmed | {:.1} s |",
        report.drain_s
    );
    let secs = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
    println!(
        "| accepted -> confirmed p50 | {} s |",
        secs(report.confirm_p50_s)
    );
    println!(
        "| accepted -> confirmed p99 | {} s ({} blocks; target <= {TARGET_CONFIRM_P99_BLOCKS}: {}) |",
        secs(report.confirm_p99_s),
        secs(report.confirm_p99_blocks),
        if report.confirm_p99_met {
            "met"
        } else {
            "MISSED"
        }
    );
    let i = &report.integrity;
    println!(
        "| mint rows / confirmed / distinct guests | {} / {} / {} |",
        i.mint_rows, i.confirmed_mints, i.distinct_guests_minted
    );
    println!(
        "| duplicate chain references | {} |",
        i.duplicate_chain_references
    );
    println!(
        "| ledger sum of confirmed mints (wei) | {} |",
        i.ledger_minted_wei
    );
    println!(
        "| contract totalMinted growth (wei) | {} |",
        i.chain_total_minted_delta_wei
    );
    println!(
        "| every accepted event -> exactly one confirmed mint | {} |",
        if i.exactly_one_confirmed_mint_each {
            "yes"
        } else {
            "NO"
        }
    );
    println!("\n{}", report.cost.markdown());
    for (kind, count) in &report.errors {
        println!("\n- {count} x {kind}");
    }
    let names: Vec<&String> = report
        .rss
        .iter()
        .flat_map(|s| s.rss_mib.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect();
    println!("\nresident memory (MiB) over time:\n");
    print!("| s | phase | accepted |");
    for name in &names {
        print!(" {name} |");
    }
    print!("\n|---:|---|---:|");
    for _ in &names {
        print!("---:|");
    }
    println!();
    for sample in &report.rss {
        print!(
            "| {:.0} | {} | {} |",
            sample.at_s, sample.phase, sample.accepted
        );
        for name in &names {
            print!(
                " {} |",
                sample
                    .rss_mib
                    .get(*name)
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.0}"))
            );
        }
        println!();
    }
}
