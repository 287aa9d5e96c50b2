//! Signed Aurora `booking-created` webhooks (each a distinct booking) at
//! `--connections` concurrent connections against webhook-ingress running
//! in-process on PostgreSQL and RabbitMQ, and in the same run two baselines:
//! the same client load against a bare axum handler that answers 200, and
//! plain single-row PostgreSQL inserts. Prints ok/s, p50/p99/max latency,
//! the ratios and whether the targets hold.
//!
//! Fairness: the HTTP scenarios share one client code path (same body,
//! same HMAC signing, same response check, one keep-alive connection per
//! worker); only the server differs. The insert baseline runs
//! `--connections` workers on a pool built exactly like webhook-ingress's
//! (`haven_common::db::connect` with the same `DatabaseConfig`), each
//! inserting one row in autocommit with the webhook's body as `jsonb`.
//! Scenarios run in the order bare, insert, ingress, so whatever the
//! earlier ones leave behind (WAL to checkpoint, dead tuples) can only slow
//! the ingress, never flatter it. Client, servers, PostgreSQL and RabbitMQ
//! all share this machine's cores.
//!
//! The outbox relay inside webhook-ingress publishes every accepted event to
//! the broker; the run reports how much of that was done when the load
//! stopped and how long the rest took.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use axum::Json;
use axum::body::Bytes;
use axum::routing::post;
use clap::{CommandFactory as _, Parser, ValueEnum};
use haven_common::config::{DatabaseConfig, parse_duration};
use haven_common::testing::amqp::DEFAULT_TEST_AMQP_URL;
use haven_common::testing::db::TestDb;
use haven_messages::names::{self, PARTNER_EVENTS};
use hmac::{Hmac, Mac as _};
use load_tests::broker::BenchNamespace;
use load_tests::load::{
    LoadPlan, Measured, RoundSummary, Summary, Target, closed_loop, http_client, load_average,
    markdown_table, snippet,
};
use sea_orm::{ConnectionTrait as _, DbBackend, Statement};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// The webhook every HTTP scenario posts.
const WEBHOOK_PATH: &str = "/webhooks/aurora/booking-created";
/// Header carrying the hex HMAC-SHA256 of the raw body.
const SIGNATURE_HEADER: &str = "X-Aurora-Signature";
/// API key webhook-ingress is started with (the bench sends no token command).
const API_KEY: &str = "bench-key";
/// Targets from the issue.
const TARGET_OK_PER_S: f64 = 2000.0;
const TARGET_P99_MS: f64 = 50.0;
const TARGET_INSERT_RATIO: f64 = 0.6;

/// Signed webhooks into webhook-ingress on PostgreSQL vs a bare axum handler
/// and plain single-row inserts, measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "webhook-bench")]
struct Args {
    /// Measured period of each scenario (30s, 500ms, 2m).
    #[arg(long, env = "BENCH_DURATION", default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each scenario's measured period.
    #[arg(long, env = "BENCH_WARMUP", default_value = "3s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent connections (closed-loop workers) in every scenario.
    #[arg(long, env = "BENCH_CONNECTIONS", default_value_t = 64,
          value_parser = clap::value_parser!(u16).range(1..=4096))]
    connections: u16,
    /// PostgreSQL database to run against, already migrated; the run's events
    /// stay in it. Default: a fresh migrated database, dropped afterwards.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// RabbitMQ; the run uses its own namespace there and deletes it afterwards.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_TEST_AMQP_URL)]
    amqp_url: String,
    /// Also write the figures as JSON to this file (parent folders are created).
    #[arg(long, env = "BENCH_JSON")]
    json: Option<PathBuf>,
    /// Scenarios to run (always in the order bare, insert, ingress).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bare,insert,ingress"
    )]
    scenarios: Vec<Scenario>,
    /// Rounds (every scenario once per round); the best round of each
    /// scenario (by ok/s) goes into the table and the ratios.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// A request or insert slower than this counts as an error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// How long to wait after the load for the outbox relay to publish the rest.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    relay_timeout: Duration,
    /// How often a progress line goes to stderr (0 for none).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    progress: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Scenario {
    /// The same client load against an axum handler that only answers 200.
    Bare,
    /// Plain single-row INSERTs in autocommit.
    Insert,
    /// webhook-ingress, in-process, on PostgreSQL and RabbitMQ.
    Ingress,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.scenarios.sort_unstable();
    args.scenarios.dedup();
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    // webhook-ingress logs through tracing: its warnings and errors go to stderr.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,lapin=error"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    let needs_db = args.scenarios.iter().any(|s| *s != Scenario::Bare);
    let test_db = match (&args.database_url, needs_db) {
        (None, true) => Some(TestDb::new().await),
        _ => None,
    };
    let database_url = test_db
        .as_ref()
        .map(|db| db.url().to_owned())
        .or_else(|| args.database_url.clone())
        .unwrap_or_default();
    let namespace = BenchNamespace::new(args.amqp_url.clone(), names::ALL_QUEUES);

    let result = tokio::select! {
        result = run(&args, &database_url, &namespace) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };

    namespace.cleanup().await;
    if let Some(db) = test_db {
        db.cleanup().await;
    }
    result
}

async fn run(args: &Args, database_url: &str, namespace: &BenchNamespace) -> anyhow::Result<()> {
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
    let secret = format!("bench-secret-{}", uuid::Uuid::new_v4().simple());
    let ingress = IngressSettings::build(database_url, namespace, &secret)?;
    let plan = LoadPlan {
        concurrency: usize::from(args.connections),
        warmup: args.warmup,
        duration: args.duration,
        request_timeout: args.request_timeout,
        progress_every: args.progress,
    };
    println!(
        "webhook-bench: {} connections, {:?} warm-up + {:?} measured per scenario, {} round(s), database pool {} (webhook-ingress's), load average {}",
        args.connections,
        args.warmup,
        args.duration,
        args.rounds,
        ingress.config.database.database_max_connections,
        load_average()
    );
    for flag in &ingress.unknown_flags {
        eprintln!("warning: webhook-ingress has no --{flag} yet; started without it");
    }

    let mut report = Report::new(args, ingress.config.database.database_max_connections);
    for round in 1..=args.rounds {
        // Booking ids and row ids are unique per round, or a later round
        // would only get duplicates.
        let round_id = format!("{run_id}r{round}");
        let signer = Signer::new(&secret, round_id.clone())?;
        for scenario in args.scenarios.clone() {
            eprintln!(
                "round {round}, {scenario:?}: starting (load average {})",
                load_average()
            );
            match scenario {
                Scenario::Bare => {
                    let measured = bare(&plan, &signer).await?;
                    report.add(round, "bare axum 200", measured, None);
                }
                Scenario::Insert => {
                    let measured = plain_insert(&plan, &ingress.config.database, &round_id).await?;
                    report.add(round, "plain insert", measured, None);
                }
                Scenario::Ingress => {
                    let (measured, relay) =
                        webhook_ingress_scenario(args, &plan, &ingress, &signer, namespace).await?;
                    report.add(round, "webhook-ingress", measured, Some(relay));
                }
            }
        }
    }

    report.print();
    if let Some(path) = &args.json {
        report.write_json(path)?;
        println!("\nJSON written to {}", path.display());
    }
    Ok(())
}

/// webhook-ingress's settings, and the flags it does not know (yet).
struct IngressSettings {
    config: webhook_ingress::Config,
    unknown_flags: Vec<&'static str>,
}

impl IngressSettings {
    /// Parses the settings the way its `main` does, so this compiles and runs
    /// whatever fields the struct has; flags it lacks are left out and named.
    fn build(database_url: &str, namespace: &BenchNamespace, secret: &str) -> anyhow::Result<Self> {
        let command = webhook_ingress::Config::command();
        let knows = |long: &str| command.get_arguments().any(|a| a.get_long() == Some(long));
        let mut argv: Vec<String> = [
            "webhook-ingress",
            "--database-url",
            database_url,
            "--amqp-url",
            namespace.url(),
            "--amqp-namespace",
            namespace.namespace(),
            "--shutdown-grace-period",
            "5s",
        ]
        .map(str::to_owned)
        .to_vec();
        let mut unknown_flags = Vec::new();
        for (flag, value) in [
            ("aurora-webhook-secret", secret),
            ("tribe-webhook-secret", secret),
            ("api-keys", API_KEY),
        ] {
            if knows(flag) {
                argv.push(format!("--{flag}"));
                argv.push(value.to_owned());
            } else {
                unknown_flags.push(flag);
            }
        }
        let config = webhook_ingress::Config::try_parse_from(argv)
            .context("webhook-ingress settings do not parse")?;
        Ok(Self {
            config,
            unknown_flags,
        })
    }
}

/// Builds distinct signed booking webhooks.
#[derive(Clone)]
struct Signer {
    mac: Hmac<Sha256>,
    run_id: Arc<str>,
}

impl Signer {
    fn new(secret: &str, run_id: String) -> anyhow::Result<Self> {
        Ok(Self {
            mac: Hmac::new_from_slice(secret.as_bytes()).context("HMAC key")?,
            run_id: run_id.into(),
        })
    }

    /// The body of booking `seq` (booking ids are unique per run) and its signature.
    fn signed(&self, seq: u64) -> (String, String) {
        let body = booking_body(&self.run_id, seq);
        let mut mac = self.mac.clone();
        mac.update(body.as_bytes());
        (body, hex::encode(mac.finalize().into_bytes()))
    }
}

fn booking_body(run_id: &str, seq: u64) -> String {
    format!(
        r#"{{"id":"bk-{run_id}-{seq}","guest_id":"g-{}","guest_email":"g{seq}@example.com","total_price":120.5,"nights":2}}"#,
        seq % 1000
    )
}

/// `{"status": ...}` of a webhook answer.
#[derive(Debug, Serialize, Deserialize)]
struct StatusBody<'a> {
    status: &'a str,
}

/// One signed POST; `Ok` only for 200 `{"status":"accepted"}`.
async fn post_webhook(
    client: &reqwest::Client,
    url: &str,
    signer: &Signer,
    seq: u64,
) -> Result<(), String> {
    let (body, signature) = signer.signed(seq);
    let response = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|err| format!("request failed: {}", error_kind(&err)))?;
    let status = response.status();
    let bytes = response
        .bytes()
        .await
        .map_err(|err| format!("{status}, body unreadable: {}", error_kind(&err)))?;
    let accepted = serde_json::from_slice::<StatusBody<'_>>(&bytes)
        .is_ok_and(|body| body.status == "accepted");
    if status == reqwest::StatusCode::OK && accepted {
        Ok(())
    } else {
        Err(format!(
            "{status} {}",
            snippet(&String::from_utf8_lossy(&bytes))
        ))
    }
}

/// The same load through `closed_loop` against `base_url`.
async fn webhook_load(
    label: &str,
    plan: &LoadPlan,
    signer: &Signer,
    base_url: &str,
) -> anyhow::Result<Measured> {
    let client = http_client(plan.concurrency)?;
    let url: Arc<str> = format!("{base_url}{WEBHOOK_PATH}").into();
    let signer = signer.clone();
    closed_loop(label, plan, move |seq| {
        let (client, url, signer) = (client.clone(), url.clone(), signer.clone());
        async move { post_webhook(&client, &url, &signer, seq).await }
    })
    .await
}

/// Baseline (a): an axum handler that reads the body and answers 200.
async fn bare(plan: &LoadPlan, signer: &Signer) -> anyhow::Result<Measured> {
    async fn accept(_body: Bytes) -> Json<StatusBody<'static>> {
        Json(StatusBody { status: "accepted" })
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().route(WEBHOOK_PATH, post(accept));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let measured = webhook_load("bare", plan, signer, &base_url).await;
    shutdown.cancel();
    stop(server, "the bare server").await?;
    measured
}

/// Baseline (b): single-row INSERTs in autocommit on a pool like webhook-ingress's.
async fn plain_insert(
    plan: &LoadPlan,
    database: &DatabaseConfig,
    run_id: &str,
) -> anyhow::Result<Measured> {
    let pool = haven_common::db::connect(database).await?;
    // The bench's own table: replaced on every run.
    pool.execute_unprepared(
        "DROP TABLE IF EXISTS bench_rows; CREATE TABLE bench_rows (id text PRIMARY KEY, body jsonb NOT NULL)",
    )
    .await
    .context("create bench_rows")?;
    let run_id: Arc<str> = run_id.into();
    let measured = {
        let pool = pool.clone();
        closed_loop("insert", plan, move |seq| {
            let (pool, run_id) = (pool.clone(), run_id.clone());
            async move {
                let body: serde_json::Value = serde_json::from_str(&booking_body(&run_id, seq))
                    .map_err(|err| err.to_string())?;
                let insert = Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "INSERT INTO bench_rows (id, body) VALUES ($1, $2)",
                    [format!("row-{run_id}-{seq}").into(), body.into()],
                );
                pool.execute_raw(insert)
                    .await
                    .map(drop)
                    .map_err(|err| snippet(&err.to_string()))
            }
        })
        .await
    };
    let _ = pool
        .execute_unprepared("DROP TABLE IF EXISTS bench_rows")
        .await;
    let _ = pool.close().await;
    measured
}

/// The relay's progress: accepted events that had reached the broker.
#[derive(Debug, Clone, Serialize)]
struct Relay {
    /// Events accepted in the whole scenario (warm-up included).
    accepted: u64,
    /// Of those, in the partner-events queue when the load stopped.
    published_when_load_stopped: u64,
    /// In the queue at the end of the wait.
    published: u64,
    /// From the end of the load until all were published (none if they were not).
    drained_after_s: Option<f64>,
}

/// webhook-ingress in-process, on port 0.
async fn webhook_ingress_scenario(
    args: &Args,
    plan: &LoadPlan,
    ingress: &IngressSettings,
    signer: &Signer,
    namespace: &BenchNamespace,
) -> anyhow::Result<(Measured, Relay)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    // Stops the service if this scenario fails half-way (or is interrupted).
    let _stop_on_exit = shutdown.clone().drop_guard();
    let mut server = tokio::spawn(webhook_ingress::run(
        ingress.config.clone(),
        listener,
        shutdown.clone(),
    ));
    wait_healthy(&base_url, &mut server).await?;
    let broker = namespace.connect().await?;
    let queue = PARTNER_EVENTS.name;
    // Earlier rounds' events are still in the queue (nothing consumes it).
    let before = u64::from(namespace.message_count(&broker, queue).await.unwrap_or(0));
    let count = |c: Option<u32>| u64::from(c.unwrap_or(0)).saturating_sub(before);

    let measured = webhook_load("ingress", plan, signer, &base_url).await?;

    let load_stopped = Instant::now();
    let published_when_load_stopped = count(namespace.message_count(&broker, queue).await);
    let mut relay = Relay {
        accepted: measured.total_ok,
        published_when_load_stopped,
        published: published_when_load_stopped,
        drained_after_s: None,
    };
    while relay.published < relay.accepted && load_stopped.elapsed() < args.relay_timeout {
        tokio::time::sleep(Duration::from_millis(200)).await;
        relay.published = count(namespace.message_count(&broker, queue).await);
    }
    if relay.published >= relay.accepted {
        relay.drained_after_s = Some(load_stopped.elapsed().as_secs_f64());
    }
    let _ = broker.close(200, "bench done".into()).await;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => eprintln!("webhook-ingress stopped with an error: {err}"),
        Ok(Err(err)) => eprintln!("webhook-ingress panicked: {err}"),
        Err(_) => eprintln!("webhook-ingress did not stop within 30 s"),
    }
    Ok((measured, relay))
}

/// Polls `/health` until 200, failing if the service exits first.
async fn wait_healthy(
    base_url: &str,
    server: &mut tokio::task::JoinHandle<Result<(), webhook_ingress::Error>>,
) -> anyhow::Result<()> {
    let client = http_client(1)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if server.is_finished() {
            match server.await {
                Ok(Ok(())) => bail!("webhook-ingress stopped before it was healthy"),
                Ok(Err(err)) => bail!("webhook-ingress failed to start: {err}"),
                Err(err) => bail!("webhook-ingress panicked: {err}"),
            }
        }
        let last = match client.get(format!("{base_url}/health")).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(response) => format!(
                "{} {}",
                response.status(),
                response.text().await.unwrap_or_default()
            ),
            Err(err) => error_kind(&err),
        };
        ensure!(
            Instant::now() < deadline,
            "webhook-ingress not healthy within 60 s; last /health answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    what: &str,
) -> anyhow::Result<()> {
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .with_context(|| format!("{what} did not stop within 30 s"))?
        .with_context(|| format!("{what} panicked"))?
        .with_context(|| format!("{what} failed"))
}

/// A transport error without the URL (equal errors must compare equal).
fn error_kind(err: &reqwest::Error) -> String {
    let kind = if err.is_timeout() {
        "timeout"
    } else if err.is_connect() {
        "connect"
    } else if err.is_body() || err.is_decode() {
        "body"
    } else if err.is_request() {
        "request"
    } else {
        "other"
    };
    let mut source = std::error::Error::source(err);
    let mut root = None;
    while let Some(cause) = source {
        root = Some(cause.to_string());
        source = cause.source();
    }
    match root {
        Some(root) => format!("{kind}: {}", snippet(&root)),
        None => kind.to_owned(),
    }
}

fn fmt_ms(ms: Option<f64>) -> String {
    ms.map_or_else(|| "-".to_owned(), |ms| format!("{ms:.2}"))
}

/// Everything measured, printed at the end and optionally written as JSON.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    connections: u16,
    warmup_s: f64,
    duration_s: f64,
    database_pool: u32,
    /// The best round of each scenario.
    scenarios: Vec<Summary>,
    /// Every round of every scenario.
    rounds: Vec<RoundSummary>,
    /// Errors of every round, by scenario.
    errors: BTreeMap<String, BTreeMap<String, u64>>,
    ratios: BTreeMap<&'static str, f64>,
    targets: Vec<Target>,
    relay: Option<Relay>,
}

impl Report {
    fn new(args: &Args, database_pool: u32) -> Self {
        Self {
            bench: "webhook-bench",
            connections: args.connections,
            warmup_s: args.warmup.as_secs_f64(),
            duration_s: args.duration.as_secs_f64(),
            database_pool,
            scenarios: Vec::new(),
            rounds: Vec::new(),
            errors: BTreeMap::new(),
            ratios: BTreeMap::new(),
            targets: Vec::new(),
            relay: None,
        }
    }

    /// Records one round of a scenario and keeps it if it is the best yet.
    fn add(&mut self, round: u32, name: &str, measured: Measured, relay: Option<Relay>) {
        for (description, count) in &measured.errors {
            *self
                .errors
                .entry(name.to_owned())
                .or_default()
                .entry(description.clone())
                .or_default() += count;
        }
        let summary = measured.summary(name);
        println!(
            "round {round}: {name:<16} {:>8.0} ok/s, p50 {} ms, p99 {} ms, {} errors",
            summary.ok_per_s,
            fmt_ms(summary.p50_ms),
            fmt_ms(summary.p99_ms),
            summary.errors
        );
        self.rounds.push(RoundSummary {
            round,
            summary: summary.clone(),
        });
        match self.scenarios.iter_mut().find(|s| s.scenario == name) {
            Some(best) if best.ok_per_s >= summary.ok_per_s => {}
            Some(best) => {
                *best = summary;
                self.relay = relay.or(self.relay.take());
            }
            None => {
                self.scenarios.push(summary);
                self.relay = relay.or(self.relay.take());
            }
        }
        self.evaluate();
    }

    fn find(&self, name: &str) -> Option<&Summary> {
        self.scenarios.iter().find(|s| s.scenario == name)
    }

    fn evaluate(&mut self) {
        self.ratios.clear();
        self.targets.clear();
        let Some(ingress) = self.find("webhook-ingress").cloned() else {
            return;
        };
        let ratio = |base: Option<&Summary>| {
            base.filter(|b| b.ok_per_s > 0.0)
                .map(|b| ingress.ok_per_s / b.ok_per_s)
        };
        let over_bare = ratio(self.find("bare axum 200"));
        let over_insert = ratio(self.find("plain insert"));
        if let Some(r) = over_bare {
            self.ratios.insert("ingress_over_bare", r);
        }
        if let Some(r) = over_insert {
            self.ratios.insert("ingress_over_plain_insert", r);
        }
        self.targets = vec![
            Target {
                what: "accepted/s >= 2000",
                target: TARGET_OK_PER_S,
                value: Some(ingress.ok_per_s),
                met: ingress.ok_per_s >= TARGET_OK_PER_S,
            },
            Target {
                what: "p99 < 50 ms",
                target: TARGET_P99_MS,
                value: ingress.p99_ms,
                met: ingress.p99_ms.is_some_and(|p| p < TARGET_P99_MS),
            },
            Target {
                what: "ingress / plain insert >= 0.6",
                target: TARGET_INSERT_RATIO,
                value: over_insert,
                met: over_insert.is_some_and(|r| r >= TARGET_INSERT_RATIO),
            },
            Target {
                what: "no errors",
                target: 0.0,
                value: Some(ingress.errors as f64),
                met: ingress.errors == 0,
            },
        ];
    }

    fn print(&self) {
        println!();
        if self.rounds.len() > self.scenarios.len() {
            println!("best round of each scenario:\n");
        }
        print!("{}", markdown_table(&self.scenarios));
        for (scenario, errors) in &self.errors {
            println!("\n{scenario} errors (all rounds):");
            for (description, count) in errors {
                println!("- {count} x {description}");
            }
        }
        if !self.ratios.is_empty() {
            println!();
            for (name, ratio) in &self.ratios {
                println!("ratio {}: {ratio:.2}", name.replace('_', " "));
            }
        }
        if let Some(relay) = &self.relay {
            println!(
                "\noutbox relay: {} of {} accepted events published when the load stopped, {} by the end{}",
                relay.published_when_load_stopped,
                relay.accepted,
                relay.published,
                relay.drained_after_s.map_or_else(
                    || " (not all: timed out)".to_owned(),
                    |s| format!(", all {s:.1} s after the load stopped")
                )
            );
        }
        if !self.targets.is_empty() {
            println!("\ntargets (webhook-ingress):");
            for target in &self.targets {
                let value = target
                    .value
                    .map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
                let verdict = if target.met { "met" } else { "MISSED" };
                println!("- {}: {value} {verdict}", target.what);
            }
        }
    }

    fn write_json(&self, path: &std::path::Path) -> anyhow::Result<()> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("create {}", parent.display()))?;
        }
        let text = serde_json::to_string_pretty(self)?;
        std::fs::write(path, text + "\n").with_context(|| format!("write {}", path.display()))
    }
}
