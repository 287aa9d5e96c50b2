//! Moves N persistent messages through a quorum queue with publisher confirms
//! and manual acks, first with raw lapin, then with HAVEN's shared publisher
//! and consumer loop, on the same broker in the same run, and prints both
//! rates and their ratio.
//!
//! Fairness: both sides use one connection with a confirm channel and a
//! consumer channel with the same prefetch, both keep at most `--window`
//! publishes awaiting their confirm (raw: a window of `PublisherConfirm`
//! futures; shared: `--window` concurrent `Publisher::publish` calls on its
//! one pipelined channel), both ack every message individually and
//! concurrently (raw: a set of pending ack futures; shared: one task per
//! delivery). The raw side
//! publishes pre-built bytes and never parses them; the shared side pays for
//! JSON encoding, decoding and the handler task per message.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream::FuturesUnordered};
use haven_common::amqp::{ConsumerOptions, DeliveryContext, Outcome, consume, handler_fn};
use haven_common::testing::amqp::TestAmqp;
use haven_messages::Envelope;
use lapin::{
    BasicProperties, Confirmation, Connection, ConnectionProperties,
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions,
    },
    types::FieldTable,
};
use load_tests::{BENCH_QUEUE, BENCH_ROUTING_KEY, BenchMessage};
use tokio_util::sync::CancellationToken;

/// Shared AMQP loop vs raw lapin.
#[derive(Parser, Debug)]
struct Args {
    /// Messages per run.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// Size of each message body in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Publishes awaiting their confirm at once, on both sides.
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Consumer prefetch (and the shared loop's handler concurrency).
    #[arg(long, default_value_t = 256)]
    prefetch: u16,
    /// Rounds (raw then shared each round); the best round of each is compared.
    #[arg(long, default_value_t = 1)]
    rounds: u32,
    /// Give up on a run after this many seconds.
    #[arg(long, default_value_t = 600)]
    run_timeout: u64,
    /// Also write the figures as JSON to this file (parent folders are created).
    #[arg(long, env = "BENCH_JSON")]
    json: Option<std::path::PathBuf>,
}

/// Target from the issue: the shared loop at least this fraction of raw lapin.
const TARGET_RATIO: f64 = 0.9;

/// The figures, as written by `--json`.
#[derive(Debug, serde::Serialize)]
struct Report {
    bench: &'static str,
    messages: u64,
    body_bytes: usize,
    window: usize,
    prefetch: u16,
    rounds: u32,
    /// msg/s of every round, in order.
    raw_rounds_msg_per_s: Vec<f64>,
    shared_rounds_msg_per_s: Vec<f64>,
    /// Best round of each.
    raw_msg_per_s: f64,
    shared_msg_per_s: f64,
    ratio: f64,
    target_ratio: f64,
    met: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(
        args.messages > 0 && args.window > 0 && args.prefetch > 0,
        "all counts must be positive"
    );
    // The broker URL comes from AMQP_URL (or the local default), like the tests.
    let ns = TestAmqp::new(&[BENCH_QUEUE]);
    let result = run(&args, &ns).await;
    ns.cleanup().await;
    result
}

async fn run(args: &Args, ns: &TestAmqp) -> anyhow::Result<()> {
    let envelopes = build(args)?;
    let body_len = envelopes[0].to_json()?.len();
    let raw_body = vec![b'x'; body_len];
    println!(
        "amqp-loop: {} persistent messages of {} bytes through a quorum queue, confirms window {}, prefetch {}",
        args.messages, body_len, args.window, args.prefetch
    );

    let mut best_raw = Duration::MAX;
    let mut best_shared = Duration::MAX;
    let mut raw_rounds = Vec::new();
    let mut shared_rounds = Vec::new();
    for round in 1..=args.rounds {
        let raw = timed(args, raw_lapin(args, ns, &raw_body)).await?;
        println!(
            "round {round}: raw lapin   {:>9.0} msg/s ({:.2} s)",
            rate(args, raw),
            raw.as_secs_f64()
        );
        let shared = timed(args, shared_loop(args, ns, &envelopes)).await?;
        println!(
            "round {round}: shared loop {:>9.0} msg/s ({:.2} s)",
            rate(args, shared),
            shared.as_secs_f64()
        );
        best_raw = best_raw.min(raw);
        best_shared = best_shared.min(shared);
        raw_rounds.push(rate(args, raw));
        shared_rounds.push(rate(args, shared));
    }
    let ratio = rate(args, best_shared) / rate(args, best_raw);
    println!(
        "raw lapin: {:.0} msg/s, shared loop: {:.0} msg/s, ratio shared/raw: {ratio:.2} (target >= 0.90)",
        rate(args, best_raw),
        rate(args, best_shared)
    );
    if let Some(path) = &args.json {
        let report = Report {
            bench: "amqp-loop",
            messages: args.messages,
            body_bytes: body_len,
            window: args.window,
            prefetch: args.prefetch,
            rounds: args.rounds,
            raw_rounds_msg_per_s: raw_rounds,
            shared_rounds_msg_per_s: shared_rounds,
            raw_msg_per_s: rate(args, best_raw),
            shared_msg_per_s: rate(args, best_shared),
            ratio,
            target_ratio: TARGET_RATIO,
            met: ratio >= TARGET_RATIO,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

fn rate(args: &Args, elapsed: Duration) -> f64 {
    args.messages as f64 / elapsed.as_secs_f64()
}

async fn timed(
    args: &Args,
    run: impl Future<Output = anyhow::Result<Duration>>,
) -> anyhow::Result<Duration> {
    tokio::time::timeout(Duration::from_secs(args.run_timeout), run)
        .await
        .context("the run did not finish in time")?
}

/// Envelopes whose JSON is `--size` bytes (give or take the timestamp's digits).
fn build(args: &Args) -> anyhow::Result<Vec<Envelope<BenchMessage>>> {
    let probe = Envelope::new(BenchMessage::Blob {
        seq: 0,
        data: String::new(),
    });
    let overhead = probe.to_json()?.len();
    ensure!(
        args.size > overhead + 8,
        "--size must exceed the envelope overhead ({overhead} bytes)"
    );
    let data = "x".repeat(args.size - overhead - 8);
    Ok((0..args.messages)
        // Eight digits of sequence number keep every body the same size.
        .map(|seq| {
            Envelope::new(BenchMessage::Blob {
                seq: 10_000_000 + seq % 10_000_000,
                data: data.clone(),
            })
        })
        .collect())
}

async fn shared_loop(
    args: &Args,
    ns: &TestAmqp,
    envelopes: &[Envelope<BenchMessage>],
) -> anyhow::Result<Duration> {
    let mut config = ns.config();
    config.amqp_prefetch = args.prefetch;
    let client = ns.client(&config);
    client.wait_connected(Duration::from_secs(30)).await?;

    let target = args.messages;
    let consumed = Arc::new(AtomicU64::new(0));
    let all_in = CancellationToken::new();
    let handler = {
        let (consumed, all_in) = (consumed.clone(), all_in.clone());
        handler_fn(move |_env: Envelope<BenchMessage>, _ctx: DeliveryContext| {
            let (consumed, all_in) = (consumed.clone(), all_in.clone());
            async move {
                if consumed.fetch_add(1, Ordering::Relaxed) + 1 == target {
                    all_in.cancel();
                }
                Outcome::Ack
            }
        })
    };
    let shutdown = CancellationToken::new();
    let consumer = {
        let (client, shutdown) = (client.clone(), shutdown.clone());
        let options = ConsumerOptions {
            prefetch: Some(args.prefetch),
            concurrency: Some(usize::from(args.prefetch)),
            ..ConsumerOptions::default()
        };
        tokio::spawn(async move { consume(&client, handler, options, shutdown).await })
    };

    let publisher = client.publisher();
    let started = Instant::now();
    futures::stream::iter(envelopes)
        .map(|envelope| publisher.publish(envelope))
        .buffer_unordered(args.window)
        .try_collect::<()>()
        .await?;
    all_in.cancelled().await;
    let elapsed = started.elapsed();

    shutdown.cancel();
    consumer.await??;
    client.close().await;
    Ok(elapsed)
}

async fn raw_lapin(args: &Args, ns: &TestAmqp, body: &[u8]) -> anyhow::Result<Duration> {
    // Declares the same topology (and waits for it) before the clock starts.
    let declarer = ns.client(&ns.config());
    declarer.wait_connected(Duration::from_secs(30)).await?;
    declarer.close().await;

    let connection = Connection::connect(
        ns.config().amqp_url.expose(),
        ConnectionProperties::default().with_connection_name("bench:raw".into()),
    )
    .await?;
    let publish_channel = connection.create_channel().await?;
    publish_channel
        .confirm_select(ConfirmSelectOptions { nowait: false })
        .await?;
    let consume_channel = connection.create_channel().await?;
    consume_channel
        .basic_qos(args.prefetch, BasicQosOptions { global: false })
        .await?;
    let queue = ns.topology().work_queue(BENCH_QUEUE.name);
    let mut consumer = consume_channel
        .basic_consume(
            queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;

    let target = args.messages;
    let consuming = tokio::spawn(async move {
        // Acks are awaited concurrently (as the shared loop's tasks do), so
        // the baseline is not held back by one ack round trip per message.
        let mut acks = FuturesUnordered::new();
        let mut received = 0u64;
        let mut acked = 0u64;
        while acked < target {
            tokio::select! {
                delivery = consumer.next(), if received < target => {
                    let Some(delivery) = delivery else {
                        bail!("consumer ended after {received} messages");
                    };
                    let acker = delivery?.acker;
                    received += 1;
                    acks.push(async move { acker.ack(BasicAckOptions { multiple: false }).await });
                }
                Some(ack) = acks.next(), if !acks.is_empty() => {
                    ack?;
                    acked += 1;
                }
            }
        }
        Ok(())
    });

    let exchange = ns.topology().events_exchange();
    let properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into());
    let started = Instant::now();
    let mut window = FuturesUnordered::new();
    for _ in 0..args.messages {
        if window.len() >= args.window
            && let Some(confirm) = window.next().await
        {
            check(confirm)?;
        }
        let confirm = publish_channel
            .basic_publish(
                exchange.as_str().into(),
                BENCH_ROUTING_KEY.into(),
                BasicPublishOptions {
                    mandatory: true,
                    immediate: false,
                },
                body,
                properties
                    .clone()
                    .with_message_id(uuid::Uuid::now_v7().to_string().into()),
            )
            .await?;
        window.push(confirm);
    }
    while let Some(confirm) = window.next().await {
        check(confirm)?;
    }
    consuming.await??;
    let elapsed = started.elapsed();
    let _ = connection.close(200, "bench done".into()).await;
    Ok(elapsed)
}

fn check(confirm: lapin::Result<Confirmation>) -> anyhow::Result<()> {
    match confirm? {
        Confirmation::Ack(None) => Ok(()),
        other => bail!("publish not confirmed: {other:?}"),
    }
}
