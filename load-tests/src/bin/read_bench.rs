//! `GET /token/balance/{user_id}` over `--users` users (100,000 by default)
//! at `--connections` concurrent connections against read-api running
//! in-process on PostgreSQL, and in the same run the same client load
//! against a bare axum handler that answers a balance of the same shape
//! without touching anything. Prints ok/s, p50/p99/max latency, the ratio
//! and whether the targets hold.
//!
//! Fairness: both scenarios share one client code path (same URLs, one
//! keep-alive connection per worker, the same check of the answer: 200 and
//! the body read whole and naming a balance); only the server differs. The
//! bare scenario runs first, so whatever the database leaves behind can
//! only slow read-api, never flatter it. Client, server and PostgreSQL all
//! share this machine's cores.
//!
//! The users are seeded with one statement per table (`generate_series`):
//! each has a balance row and two confirmed mints, every tenth a pending
//! mint as well, so the balance's pending sum has rows to look at. Users are
//! requested in a scattered order over the whole set (a multiplicative hash
//! of the request's sequence number), so the reads are not served by a few
//! hot pages.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use axum::Json;
use axum::extract::Path;
use axum::routing::get;
use clap::{Parser, ValueEnum};
use haven_common::config::parse_duration;
use haven_common::testing::db::TestDb;
use load_tests::load::{
    LoadPlan, Measured, RoundSummary, Summary, Target, closed_loop, http_client, load_average,
    markdown_table, snippet,
};
use sea_orm::{ConnectionTrait as _, Database, DbBackend, Statement};
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Targets from the issue.
const TARGET_OK_PER_S: f64 = 20_000.0;
const TARGET_P99_MS: f64 = 10.0;
const TARGET_RATIO: f64 = 0.5;
/// Prefix of every seeded user id.
const USER_PREFIX: &str = "bench-user-";
/// First derivation index of the seeded users (far above real ones).
const FIRST_INDEX: i64 = 1_500_000_000;

/// `GET /token/balance/{id}` on read-api (PostgreSQL) vs a bare axum handler,
/// measured in the same run.
#[derive(Parser, Debug)]
#[command(name = "read-bench")]
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
    /// Users seeded and requested.
    #[arg(long, env = "BENCH_USERS", default_value_t = 100_000,
          value_parser = clap::value_parser!(u32).range(1..=2_000_000))]
    users: u32,
    /// read-api's database pool (DATABASE_MAX_CONNECTIONS; read-api's default).
    #[arg(long, env = "BENCH_DATABASE_MAX_CONNECTIONS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    database_max_connections: u32,
    /// PostgreSQL database to run against, already migrated; the seeded users
    /// stay in it (and are reused by the next run). Default: a fresh migrated
    /// database, dropped afterwards.
    #[arg(long, env = "BENCH_DATABASE_URL")]
    database_url: Option<String>,
    /// Also write the figures as JSON to this file (parent folders are created).
    #[arg(long, env = "BENCH_JSON")]
    json: Option<PathBuf>,
    /// Scenarios to run (always in the order bare, read-api).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "bare,read-api"
    )]
    scenarios: Vec<Scenario>,
    /// Rounds (every scenario once per round); the best round of each
    /// scenario (by ok/s) goes into the table and the ratio.
    #[arg(long, env = "BENCH_ROUNDS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=100))]
    rounds: u32,
    /// A request slower than this counts as an error.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    request_timeout: Duration,
    /// How often a progress line goes to stderr (0 for none).
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    progress: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Scenario {
    /// The same client load against an axum handler answering a fixed balance.
    Bare,
    /// read-api, in-process, on PostgreSQL.
    ReadApi,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = Args::parse();
    args.scenarios.sort_unstable();
    args.scenarios.dedup();
    ensure!(!args.duration.is_zero(), "--duration must be positive");
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();

    let needs_db = args.scenarios.contains(&Scenario::ReadApi);
    let test_db = match (&args.database_url, needs_db) {
        (None, true) => Some(TestDb::new().await),
        _ => None,
    };
    let database_url = test_db
        .as_ref()
        .map(|db| db.url().to_owned())
        .or_else(|| args.database_url.clone())
        .unwrap_or_default();

    let result = tokio::select! {
        result = run(&args, &database_url) => result,
        _ = tokio::signal::ctrl_c() => Err(anyhow::anyhow!("interrupted")),
    };
    if let Some(db) = test_db {
        db.cleanup().await;
    }
    result
}

async fn run(args: &Args, database_url: &str) -> anyhow::Result<()> {
    if args.scenarios.contains(&Scenario::ReadApi) {
        let started = Instant::now();
        seed(database_url, args.users).await?;
        eprintln!(
            "seeded {} users in {:.1} s",
            args.users,
            started.elapsed().as_secs_f64()
        );
    }
    let plan = LoadPlan {
        concurrency: usize::from(args.connections),
        warmup: args.warmup,
        duration: args.duration,
        request_timeout: args.request_timeout,
        progress_every: args.progress,
    };
    println!(
        "read-bench: GET /token/balance/{{id}} over {} users, {} connections, {:?} warm-up + {:?} measured per scenario, {} round(s), read-api pool {}, load average {}",
        args.users,
        args.connections,
        args.warmup,
        args.duration,
        args.rounds,
        args.database_max_connections,
        load_average()
    );
    let mut report = Report::new(args);
    for round in 1..=args.rounds {
        for scenario in args.scenarios.clone() {
            eprintln!(
                "round {round}, {scenario:?}: starting (load average {})",
                load_average()
            );
            match scenario {
                Scenario::Bare => {
                    let measured = bare(&plan, args.users).await?;
                    report.add(round, "bare axum", measured);
                }
                Scenario::ReadApi => {
                    let measured = read_api_scenario(args, &plan, database_url).await?;
                    report.add(round, "read-api", measured);
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

/// Seeds `users` users (idempotent: a rerun on the same database adds only
/// the missing ones), then refreshes the planner's statistics.
async fn seed(database_url: &str, users: u32) -> anyhow::Result<()> {
    let db = Database::connect(database_url)
        .await
        .context("connect to the benchmark database")?;
    ensure!(
        db.get_database_backend() == DbBackend::Postgres,
        "read-bench runs on PostgreSQL"
    );
    let n = i64::from(users);
    let statements = [
        // Users with checksum-free (lower-case) wallets: read-api never checks them.
        format!(
            "INSERT INTO users (id, partner, external_id, email, wallet_address, derivation_index, kyc_verified, created_at, updated_at) \
             SELECT gen_random_uuid(), 'aurora', '{USER_PREFIX}' || i, 'bench' || i || '@example.com', \
                    '0x' || lpad(to_hex({FIRST_INDEX} + i), 40, '0'), {FIRST_INDEX} + i, false, now(), now() \
               FROM generate_series(0, {n} - 1) AS i \
             ON CONFLICT DO NOTHING"
        ),
        // Balances: 242.4 HNV plus up to 999 whole HNV.
        format!(
            "INSERT INTO user_balances (user_id, available, reserved, version, updated_at) \
             SELECT u.id, CAST(242400000000000000000 + CAST(u.derivation_index % 1000 AS numeric) * 1000000000000000000 AS wei_text), \
                    CAST(0 AS wei_text), 0, now() \
               FROM users u WHERE u.external_id LIKE '{USER_PREFIX}%' \
             ON CONFLICT DO NOTHING"
        ),
        // Two confirmed mints each, and a pending one for every tenth user.
        format!(
            "INSERT INTO token_transactions (id, tx_id, chain_reference, user_id, tx_type, amount, reason, status, created_at, updated_at, confirmed_at) \
             SELECT gen_random_uuid(), 'bench-tx-' || u.derivation_index || '-' || k, \
                    decode(md5(u.external_id || '-' || k) || md5('ref-' || u.external_id || '-' || k), 'hex'), \
                    u.id, 'mint', CAST(121200000000000000000 AS wei_text), 'booking', \
                    CASE WHEN k = 2 THEN 'pending' ELSE 'confirmed' END, now(), now(), \
                    CASE WHEN k = 2 THEN NULL ELSE now() END \
               FROM users u CROSS JOIN generate_series(0, 2) AS k \
              WHERE u.external_id LIKE '{USER_PREFIX}%' AND (k < 2 OR u.derivation_index % 10 = 0) \
             ON CONFLICT DO NOTHING"
        ),
        "ANALYZE users, user_balances, token_transactions".to_owned(),
    ];
    for sql in statements {
        db.execute_raw(Statement::from_string(DbBackend::Postgres, sql.clone()))
            .await
            .with_context(|| format!("seed: {}", snippet(&sql)))?;
    }
    let _ = db.close().await;
    Ok(())
}

/// The user of request `seq`: scattered over all users.
fn user_of(seq: u64, users: u32) -> u64 {
    // Knuth's multiplicative hash; a bijection modulo 2^64, spread mod `users`.
    seq.wrapping_mul(0x9E37_79B9_7F4A_7C15) % u64::from(users)
}

/// One GET; `Ok` only for a 200 whose body names a balance.
async fn get_balance(
    client: &reqwest::Client,
    base: &str,
    seq: u64,
    users: u32,
) -> Result<(), String> {
    let url = format!("{base}/token/balance/{USER_PREFIX}{}", user_of(seq, users));
    let response = client
        .get(url)
        .send()
        .await
        .map_err(|err| format!("request failed: {}", error_kind(&err)))?;
    let status = response.status();
    let body = response
        .bytes()
        .await
        .map_err(|err| format!("{status}, body unreadable: {}", error_kind(&err)))?;
    let names_balance = body.windows(10).any(|w| w == b"\"balance\":");
    if status == reqwest::StatusCode::OK && names_balance {
        Ok(())
    } else {
        Err(format!(
            "{status} {}",
            snippet(&String::from_utf8_lossy(&body))
        ))
    }
}

/// The same load through `closed_loop` against `base_url`.
async fn balance_load(
    label: &str,
    plan: &LoadPlan,
    base_url: &str,
    users: u32,
) -> anyhow::Result<Measured> {
    let client = http_client(plan.concurrency)?;
    let base: Arc<str> = base_url.into();
    closed_loop(label, plan, move |seq| {
        let (client, base) = (client.clone(), base.clone());
        async move { get_balance(&client, &base, seq, users).await }
    })
    .await
}

/// The balance shape the bare handler answers (read-api's field names).
#[derive(Serialize)]
struct BareBalance {
    user_id: String,
    wallet_address: &'static str,
    balance: f64,
    available: f64,
    reserved: f64,
    pending: f64,
}

/// Baseline: an axum handler that answers a fixed balance for the path's user.
async fn bare(plan: &LoadPlan, users: u32) -> anyhow::Result<Measured> {
    async fn balance(Path(user_id): Path<String>) -> Json<BareBalance> {
        Json(BareBalance {
            user_id,
            wallet_address: "0x0000000000000000000000000000000059682f00",
            balance: 242.4,
            available: 242.4,
            reserved: 0.0,
            pending: 0.0,
        })
    }
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let router = axum::Router::new().route("/token/balance/{user_id}", get(balance));
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(
        axum::serve(listener, router)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let measured = balance_load("bare", plan, &base_url, users).await;
    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(30), server)
        .await
        .context("the bare server did not stop within 30 s")?
        .context("the bare server panicked")?
        .context("the bare server failed")?;
    measured
}

/// read-api in-process, on port 0.
async fn read_api_scenario(
    args: &Args,
    plan: &LoadPlan,
    database_url: &str,
) -> anyhow::Result<Measured> {
    let pool = args.database_max_connections.to_string();
    let config = read_api::Config::try_parse_from([
        "read-api",
        "--database-url",
        database_url,
        "--database-max-connections",
        &pool,
        "--shutdown-grace-period",
        "5s",
    ])
    .context("read-api settings do not parse")?;
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let shutdown = CancellationToken::new();
    let _stop_on_exit = shutdown.clone().drop_guard();
    let mut server = tokio::spawn(read_api::run(config, listener, shutdown.clone()));
    wait_healthy(&base_url, &mut server).await?;
    // The first seeded user must be there: a wrong database would measure 404s.
    get_balance(&http_client(1)?, &base_url, 0, 1)
        .await
        .map_err(|err| anyhow::anyhow!("read-api does not find the seeded users: {err}"))?;

    let measured = balance_load("read-api", plan, &base_url, args.users).await?;

    shutdown.cancel();
    match tokio::time::timeout(Duration::from_secs(30), server).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => eprintln!("read-api stopped with an error: {err}"),
        Ok(Err(err)) => eprintln!("read-api panicked: {err}"),
        Err(_) => eprintln!("read-api did not stop within 30 s"),
    }
    Ok(measured)
}

/// Polls `/health` until 200, failing if the service exits first.
async fn wait_healthy(
    base_url: &str,
    server: &mut tokio::task::JoinHandle<Result<(), read_api::Error>>,
) -> anyhow::Result<()> {
    let client = http_client(1)?;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if server.is_finished() {
            match server.await {
                Ok(Ok(())) => bail!("read-api stopped before it was healthy"),
                Ok(Err(err)) => bail!("read-api failed to start: {err}"),
                Err(err) => bail!("read-api panicked: {err}"),
            }
        }
        let last = match client.get(format!("{base_url}/health")).send().await {
            Ok(response) if response.status() == reqwest::StatusCode::OK => return Ok(()),
            Ok(response) => response.status().to_string(),
            Err(err) => error_kind(&err),
        };
        ensure!(
            Instant::now() < deadline,
            "read-api not healthy within 60 s; last /health answer: {last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A transport error without the URL (equal errors must compare equal).
fn error_kind(err: &reqwest::Error) -> String {
    if err.is_timeout() {
        "timeout".to_owned()
    } else if err.is_connect() {
        "connect".to_owned()
    } else if err.is_body() || err.is_decode() {
        "body".to_owned()
    } else {
        "other".to_owned()
    }
}

/// Everything measured, printed at the end and optionally written as JSON.
#[derive(Debug, Serialize)]
struct Report {
    bench: &'static str,
    users: u32,
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
    ratio_read_api_over_bare: Option<f64>,
    targets: Vec<Target>,
}

impl Report {
    fn new(args: &Args) -> Self {
        Self {
            bench: "read-bench",
            users: args.users,
            connections: args.connections,
            warmup_s: args.warmup.as_secs_f64(),
            duration_s: args.duration.as_secs_f64(),
            database_pool: args.database_max_connections,
            scenarios: Vec::new(),
            rounds: Vec::new(),
            errors: BTreeMap::new(),
            ratio_read_api_over_bare: None,
            targets: Vec::new(),
        }
    }

    /// Records one round of a scenario and keeps it if it is the best yet.
    fn add(&mut self, round: u32, name: &str, measured: Measured) {
        for (description, count) in &measured.errors {
            *self
                .errors
                .entry(name.to_owned())
                .or_default()
                .entry(description.clone())
                .or_default() += count;
        }
        let summary = measured.summary(name);
        let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.2}"));
        println!(
            "round {round}: {name:<10} {:>8.0} ok/s, p50 {} ms, p99 {} ms, {} errors",
            summary.ok_per_s,
            ms(summary.p50_ms),
            ms(summary.p99_ms),
            summary.errors
        );
        self.rounds.push(RoundSummary {
            round,
            summary: summary.clone(),
        });
        match self.scenarios.iter_mut().find(|s| s.scenario == name) {
            Some(best) if best.ok_per_s >= summary.ok_per_s => {}
            Some(best) => *best = summary,
            None => self.scenarios.push(summary),
        }
        self.evaluate();
    }

    fn evaluate(&mut self) {
        let find = |name: &str| self.scenarios.iter().find(|s| s.scenario == name).cloned();
        let Some(read_api) = find("read-api") else {
            return;
        };
        self.ratio_read_api_over_bare = find("bare axum")
            .filter(|bare| bare.ok_per_s > 0.0)
            .map(|bare| read_api.ok_per_s / bare.ok_per_s);
        self.targets = vec![
            Target {
                what: "read-api ok/s >= 20000",
                target: TARGET_OK_PER_S,
                value: Some(read_api.ok_per_s),
                met: read_api.ok_per_s >= TARGET_OK_PER_S,
            },
            Target {
                what: "read-api p99 < 10 ms",
                target: TARGET_P99_MS,
                value: read_api.p99_ms,
                met: read_api.p99_ms.is_some_and(|p| p < TARGET_P99_MS),
            },
            Target {
                what: "read-api / bare axum >= 0.5",
                target: TARGET_RATIO,
                value: self.ratio_read_api_over_bare,
                met: self
                    .ratio_read_api_over_bare
                    .is_some_and(|r| r >= TARGET_RATIO),
            },
            Target {
                what: "no errors",
                target: 0.0,
                value: Some(read_api.errors as f64),
                met: read_api.errors == 0,
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
        if let Some(ratio) = self.ratio_read_api_over_bare {
            println!("\nratio read-api / bare axum: {ratio:.2}");
        }
        if !self.targets.is_empty() {
            println!("\ntargets (read-api):");
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
