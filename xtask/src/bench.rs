//! `cargo xtask bench`: builds `load-tests` in release, runs every benchmark
//! binary (each starts the services it measures in-process against the
//! local PostgreSQL, RabbitMQ and anvil, and measures its baseline in the
//! same run), reads the JSON each writes and writes one table of figure,
//! baseline, ratio, target and verdict to `target/bench/latest.md` and
//! `target/bench/latest.json`, with the machine that produced it.
//!
//! A missed target does not fail the command (a benchmark is not a timed
//! test); a benchmark that fails to run does.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use clap::ValueEnum;
use serde::Serialize;
use serde_json::Value;

use crate::console::Console;
use crate::npm;
use crate::workspace::{Workspace, cargo};

/// One benchmark binary of `load-tests`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Bench {
    /// Shared AMQP publisher + consumer loop vs raw lapin (`amqp-loop`).
    Amqp,
    /// webhook-ingress vs bare axum and plain inserts (`webhook-bench`).
    Webhook,
    /// read-api balance reads vs bare axum (`read-bench`).
    Read,
    /// The whole minting pipeline vs the chain's bound (`pipeline-bench`).
    Pipeline,
    /// 200 webhooks/s into the whole pipeline, exactly one mint each (`soak`);
    /// not in the default set: it runs for 10 minutes (30 s with `--quick`).
    Soak,
}

/// The services `pipeline-bench` and `soak` start as processes.
const SERVICES: &[&str] = &["webhook-ingress", "reward-calculator", "chain-minter"];

impl Bench {
    /// Whether it starts the services as processes (and counts their cost).
    fn runs_services(self) -> bool {
        matches!(self, Bench::Pipeline | Bench::Soak)
    }

    /// The binary's name.
    fn bin(self) -> &'static str {
        match self {
            Bench::Amqp => "amqp-loop",
            Bench::Webhook => "webhook-bench",
            Bench::Read => "read-bench",
            Bench::Pipeline => "pipeline-bench",
            Bench::Soak => "soak",
        }
    }

    /// Short name (the value of `--only`, the JSON file's name).
    fn name(self) -> &'static str {
        match self {
            Bench::Amqp => "amqp",
            Bench::Webhook => "webhook",
            Bench::Read => "read",
            Bench::Pipeline => "pipeline",
            Bench::Soak => "soak",
        }
    }

    /// The binary's arguments (besides `--json`): the settings of the
    /// figures in `docs/benchmarks.md`, or shortened ones with `quick`.
    fn args(self, quick: bool, soak_duration: Option<&str>) -> Vec<String> {
        let args: &[&str] = match (self, quick) {
            (Bench::Amqp, false) => &["--rounds", "3"],
            (Bench::Amqp, true) => &["--messages", "5000"],
            (Bench::Webhook | Bench::Read, false) => &[],
            (Bench::Webhook, true) => &["--duration", "5s", "--warmup", "1s", "--progress", "0"],
            (Bench::Read, true) => &["--duration", "5s", "--warmup", "1s", "--users", "10000"],
            (Bench::Pipeline, false) => &[],
            (Bench::Pipeline, true) => &["--events", "500"],
            (Bench::Soak, false) => &[],
            (Bench::Soak, true) => &["--duration", "30s"],
        };
        let mut args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        if let (Bench::Soak, Some(duration)) = (self, soak_duration) {
            args.retain(|a| a != "--duration" && a != "30s");
            args.extend(["--duration".to_owned(), duration.to_owned()]);
        }
        args
    }
}

/// Options of `cargo xtask bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Benchmarks to run, comma-separated (soak only when named).
    #[arg(
        long,
        env = "HAVEN_BENCH_ONLY",
        value_enum,
        value_delimiter = ',',
        default_value = "amqp,webhook,read,pipeline"
    )]
    pub only: Vec<Bench>,

    /// Shortened runs (seconds instead of minutes; fewer messages, users and
    /// events): a smoke test of the benchmarks, not figures to publish.
    #[arg(long, env = "HAVEN_BENCH_QUICK", value_parser = clap::builder::FalseyValueParser::new())]
    pub quick: bool,

    /// Duration of the soak (default 10m, 30s with `--quick`).
    #[arg(long, env = "HAVEN_BENCH_SOAK_DURATION")]
    pub soak_duration: Option<String>,

    #[command(flatten)]
    pub servers: crate::infra::Servers,
}

/// One line of the result table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    /// Benchmark name (`--only` value).
    pub benchmark: String,
    /// What was measured, with its figures.
    pub figure: String,
    /// The same-run baseline it is compared with.
    pub baseline: String,
    /// figure / baseline.
    pub ratio: Option<f64>,
    /// The targets of the issue.
    pub target: String,
    /// Whether every target held (`None` when it could not be told).
    pub met: Option<bool>,
}

/// The machine that produced the figures.
#[derive(Debug, Clone, Serialize)]
pub struct Machine {
    /// CPU model (`/proc/cpuinfo`).
    pub cpu: String,
    /// Logical CPUs.
    pub cores: usize,
    /// Memory (`/proc/meminfo` MemTotal), GiB.
    pub memory_gib: f64,
    /// Kernel release.
    pub kernel: String,
    /// 1/5/15-minute load average when the run started.
    pub load_average: String,
}

#[derive(Debug, Serialize)]
struct Results {
    /// UTC time the run started.
    started: String,
    quick: bool,
    machine: Machine,
    rows: Vec<Row>,
    /// Each benchmark's own JSON, as written.
    raw: serde_json::Map<String, Value>,
}

/// Runs the benchmarks and writes the tables.
pub fn run(args: &BenchArgs, ws: &Workspace, console: Console) -> anyhow::Result<ExitCode> {
    let mut only = args.only.clone();
    only.sort_unstable();
    only.dedup();
    let started = utc_now();
    let machine = machine();

    // What the benchmarks need: the database, the broker, anvil.
    args.servers.ensure(&ws.dev_dir(), console)?;
    let tools = npm::ensure(&ws.root, console)?;

    let out_dir = ws.target_dir.join("bench");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("create {}", out_dir.display()))?;
    let mut rows = Vec::new();
    let mut raw = serde_json::Map::new();
    let mut failed = Vec::new();
    if only.iter().any(|b| b.runs_services()) {
        // The pipeline runs as processes: their cost is counted apart.
        args.servers.preload_pg_stat_statements(console);
        console.info(&format!(
            "building the services (release): {}",
            SERVICES.join(", ")
        ));
        let mut build = Command::new(cargo());
        build.args(["build", "--release"]).current_dir(&ws.root);
        for package in SERVICES {
            build.args(["--package", package]);
        }
        let built = build
            .stdin(Stdio::null())
            .status()
            .context("running cargo build")?;
        anyhow::ensure!(built.success(), "building the services failed ({built})");
    }
    for bench in &only {
        // One build per binary: one that does not compile fails its row,
        // not the whole run.
        console.info(&format!("building {} (release)", bench.bin()));
        let built = Command::new(cargo())
            .args(["build", "--release", "--package", "load-tests", "--bin"])
            .arg(bench.bin())
            .current_dir(&ws.root)
            .stdin(Stdio::null())
            .status()
            .context("running cargo build")?;
        if !built.success() {
            failed.push(bench.name());
            rows.push(failed_row(*bench, &format!("build failed ({built})")));
            continue;
        }
        let json_path = out_dir.join(format!("{}.json", bench.name()));
        // A stale file from an earlier run must not pass for this run's.
        let _ = std::fs::remove_file(&json_path);
        let bench_args = bench.args(args.quick, args.soak_duration.as_deref());
        console.info(&format!("running {} {}", bench.bin(), bench_args.join(" ")));
        let began = Instant::now();
        let mut run = Command::new(ws.target_dir.join("release").join(bench.bin()));
        args.servers.env_of(&mut run, &tools.anvil());
        let status = run
            .args(&bench_args)
            .arg("--json")
            .arg(&json_path)
            .current_dir(&ws.root)
            .stdin(Stdio::null())
            .status()
            .with_context(|| format!("running {}", bench.bin()))?;
        let seconds = began.elapsed().as_secs_f64();
        let parsed = read_json(&json_path);
        match (&parsed, status.success()) {
            (Ok(json), _) => {
                rows.extend(rows_of(*bench, json));
                raw.insert(bench.name().to_owned(), json.clone());
            }
            (Err(err), true) => {
                failed.push(bench.name());
                rows.push(failed_row(*bench, &format!("no figures: {err:#}")));
            }
            (Err(_), false) => {
                failed.push(bench.name());
                rows.push(failed_row(*bench, &format!("failed ({status})")));
            }
        }
        if !status.success() && parsed.is_ok() {
            // e.g. the soak's integrity check: the figures stand, the run failed.
            failed.push(bench.name());
        }
        console.info(&format!("{} finished in {seconds:.0} s", bench.bin()));
    }

    let results = Results {
        started,
        quick: args.quick,
        machine,
        rows,
        raw,
    };
    let markdown = markdown(&results);
    let md_path = out_dir.join("latest.md");
    let json_path = out_dir.join("latest.json");
    std::fs::write(&md_path, &markdown).with_context(|| format!("write {}", md_path.display()))?;
    std::fs::write(&json_path, serde_json::to_string_pretty(&results)? + "\n")
        .with_context(|| format!("write {}", json_path.display()))?;
    println!("\n{markdown}");
    console.info(&format!(
        "written {} and {}",
        md_path.display(),
        json_path.display()
    ));
    if failed.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        console.error(&format!("failed: {}", failed.join(", ")));
        Ok(ExitCode::FAILURE)
    }
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parse {}", path.display()))
}

fn failed_row(bench: Bench, what: &str) -> Row {
    Row {
        benchmark: bench.name().to_owned(),
        figure: what.to_owned(),
        baseline: "-".to_owned(),
        ratio: None,
        target: "-".to_owned(),
        met: None,
    }
}

fn num(json: &Value, pointer: &str) -> Option<f64> {
    json.pointer(pointer).and_then(Value::as_f64)
}

fn fmt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.decimals$}"))
}

/// A scenario of a `webhook-bench` / `read-bench` JSON by name.
fn scenario<'a>(json: &'a Value, name: &str) -> Option<&'a Value> {
    json.get("scenarios")?
        .as_array()?
        .iter()
        .find(|s| s.get("scenario").and_then(Value::as_str) == Some(name))
}

/// `targets: [{what, value, met}]` as one cell, and whether all held.
fn targets_cell(json: &Value) -> (String, Option<bool>) {
    let Some(targets) = json.get("targets").and_then(Value::as_array) else {
        return ("-".to_owned(), None);
    };
    let mut all = true;
    let cells: Vec<String> = targets
        .iter()
        .map(|t| {
            let met = t.get("met").and_then(Value::as_bool).unwrap_or(false);
            all &= met;
            format!(
                "{} ({})",
                t.get("what").and_then(Value::as_str).unwrap_or("?"),
                if met { "met" } else { "missed" }
            )
        })
        .collect();
    (cells.join("; "), (!targets.is_empty()).then_some(all))
}

/// The table rows of one benchmark's JSON.
pub fn rows_of(bench: Bench, json: &Value) -> Vec<Row> {
    let name = bench.name().to_owned();
    match bench {
        Bench::Amqp => {
            let ratio = num(json, "/ratio");
            let target = num(json, "/target_ratio").unwrap_or(0.9);
            vec![Row {
                benchmark: name,
                figure: format!(
                    "shared loop {} msg/s ({} x {} B persistent messages, best of {})",
                    fmt(num(json, "/shared_msg_per_s"), 0),
                    fmt(num(json, "/messages"), 0),
                    fmt(num(json, "/body_bytes"), 0),
                    fmt(num(json, "/rounds"), 0),
                ),
                baseline: format!("raw lapin {} msg/s", fmt(num(json, "/raw_msg_per_s"), 0)),
                ratio,
                target: format!("shared / raw >= {target}"),
                met: ratio.map(|r| r >= target),
            }]
        }
        Bench::Webhook | Bench::Read => {
            let (system, bases, ratio) = if bench == Bench::Webhook {
                (
                    "webhook-ingress",
                    &["plain insert", "bare axum 200"][..],
                    num(json, "/ratios/ingress_over_plain_insert"),
                )
            } else {
                (
                    "read-api",
                    &["bare axum"][..],
                    num(json, "/ratio_read_api_over_bare"),
                )
            };
            let Some(measured) = scenario(json, system) else {
                return vec![failed_row(
                    bench,
                    &format!("no {system} scenario in the JSON"),
                )];
            };
            let figure = format!(
                "{system} {} ok/s, p50 {} ms, p99 {} ms, {} errors",
                fmt(num(measured, "/ok_per_s"), 0),
                fmt(num(measured, "/p50_ms"), 2),
                fmt(num(measured, "/p99_ms"), 2),
                fmt(num(measured, "/errors"), 0),
            );
            let baseline = bases
                .iter()
                .filter_map(|b| {
                    scenario(json, b).map(|s| format!("{b} {} /s", fmt(num(s, "/ok_per_s"), 0)))
                })
                .collect::<Vec<_>>()
                .join("; ");
            let (target, met) = targets_cell(json);
            vec![Row {
                benchmark: name,
                figure,
                baseline,
                ratio,
                target,
                met,
            }]
        }
        Bench::Pipeline => {
            let (target, met) = targets_cell(json);
            vec![Row {
                benchmark: name,
                figure: format!(
                    "{} confirmed mints/s ({} events); accepted -> confirmed p50 {} s, p99 {} s ({} blocks); per 1,000 mints the services used {} CPU s (everything watched {}); {} SQL statements, {} rows written, {} AMQP messages published per mint",
                    fmt(num(json, "/confirmed_per_s"), 1),
                    fmt(num(json, "/events"), 0),
                    fmt(num(json, "/p50_s"), 1),
                    fmt(num(json, "/p99_s"), 1),
                    fmt(num(json, "/p99_blocks"), 1),
                    fmt(num(json, "/cost/services_cpu_s_per_1000_mints"), 2),
                    fmt(num(json, "/cost/total_cpu_s_per_1000_mints"), 2),
                    fmt(num(json, "/cost/statements_per_mint"), 2),
                    fmt(num(json, "/cost/rows_written_per_mint"), 2),
                    fmt(num(json, "/cost/amqp_published_per_mint"), 2),
                ),
                baseline: format!(
                    "chain bound {} mints/s (block gas limit / {} gas per recipient / block time)",
                    fmt(num(json, "/chain_bound_per_s"), 0),
                    fmt(num(json, "/gas_per_recipient"), 0),
                ),
                ratio: num(json, "/ratio"),
                target,
                met,
            }]
        }
        Bench::Soak => {
            let rate = num(json, "/rate_per_s");
            let achieved = num(json, "/achieved_accepted_per_s");
            let errors: u64 = json
                .get("errors")
                .and_then(Value::as_object)
                .map(|e| e.values().filter_map(Value::as_u64).sum())
                .unwrap_or(0);
            let exactly_once = json
                .pointer("/integrity/exactly_one_confirmed_mint_each")
                .and_then(Value::as_bool);
            let p99_met = json.get("p99_met").and_then(Value::as_bool);
            let confirm_met = json.get("confirm_p99_met").and_then(Value::as_bool);
            let max_rss = num(json, "/services_peak_rss_mib");
            vec![Row {
                benchmark: name,
                figure: format!(
                    "{} accepted/s for {} s, accept p99 {} ms, accepted -> confirmed p50 {} s, p99 {} s ({} blocks), {errors} errors, {} accepted, exactly one confirmed mint each: {}, services' peak RSS {} MiB, services' CPU s per 1,000 mints {}, SQL statements per mint {}",
                    fmt(achieved, 1),
                    fmt(num(json, "/duration_s"), 0),
                    fmt(num(json, "/accept_p99_ms"), 2),
                    fmt(num(json, "/confirm_p50_s"), 2),
                    fmt(num(json, "/confirm_p99_s"), 2),
                    fmt(num(json, "/confirm_p99_blocks"), 1),
                    fmt(num(json, "/accepted"), 0),
                    match exactly_once {
                        Some(true) => "yes",
                        Some(false) => "NO",
                        None => "?",
                    },
                    fmt(max_rss, 0),
                    fmt(num(json, "/cost/services_cpu_s_per_1000_mints"), 2),
                    fmt(num(json, "/cost/statements_per_mint"), 2),
                ),
                baseline: format!("offered rate {} /s", fmt(rate, 0)),
                ratio: achieved.zip(rate).map(|(a, r)| a / r),
                target: format!(
                    "accept p99 < 50 ms ({}); accepted -> confirmed p99 <= 3 blocks ({}); no errors; exactly one mint each",
                    verdict(p99_met),
                    verdict(confirm_met)
                ),
                met: p99_met
                    .zip(exactly_once)
                    .zip(confirm_met)
                    .map(|((p, e), c)| p && e && c && errors == 0),
            }]
        }
    }
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "missed",
        None => "?",
    }
}

fn markdown(results: &Results) -> String {
    let m = &results.machine;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Benchmarks run {} ({}) on {}, {} logical CPUs, {:.1} GiB memory, Linux {}, load average at start {}.\n",
        results.started,
        if results.quick {
            "`--quick`: shortened runs, not comparable with full ones"
        } else {
            "full runs"
        },
        m.cpu,
        m.cores,
        m.memory_gib,
        m.kernel,
        m.load_average
    );
    out.push_str(
        "| benchmark | figure | baseline (same run) | ratio | target | met |\n|---|---|---|---:|---|---|\n",
    );
    for row in &results.rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            row.benchmark,
            row.figure,
            row.baseline,
            fmt(row.ratio, 2),
            row.target,
            match row.met {
                Some(true) => "yes",
                Some(false) => "no",
                None => "-",
            }
        );
    }
    out
}

/// CPU, cores and memory of this machine, from /proc.
pub fn machine() -> Machine {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "?".to_owned())
    };
    let (cpu, cores) = parse_cpuinfo(&cpuinfo);
    Machine {
        cpu,
        cores: if cores > 0 {
            cores
        } else {
            std::thread::available_parallelism().map_or(0, usize::from)
        },
        memory_gib: parse_mem_total_kib(&meminfo).map_or(0.0, |kib| kib as f64 / 1024.0 / 1024.0),
        kernel: read("/proc/sys/kernel/osrelease"),
        load_average: read("/proc/loadavg")
            .split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    }
}

/// CPU model and number of logical CPUs from `/proc/cpuinfo`.
fn parse_cpuinfo(text: &str) -> (String, usize) {
    let field = |line: &str, key: &str| {
        line.split_once(':')
            .filter(|(k, _)| k.trim() == key)
            .map(|(_, v)| v.trim().to_owned())
    };
    let model = text
        .lines()
        .find_map(|l| field(l, "model name"))
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = text
        .lines()
        .filter(|l| field(l, "processor").is_some())
        .count();
    (model, cores)
}

/// `MemTotal` of `/proc/meminfo`, in KiB.
fn parse_mem_total_kib(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|kib| kib.parse().ok())
}

/// Now as `YYYY-MM-DD HH:MM UTC`.
pub(crate) fn utc_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    format_utc(secs)
}

/// Unix seconds as `YYYY-MM-DD HH:MM UTC` (Howard Hinnant's civil-from-days).
fn format_utc(secs: u64) -> String {
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn formats_utc_dates() {
        assert_eq!(format_utc(0), "1970-01-01 00:00 UTC");
        // 2024-02-29 12:34:56 UTC, a leap day.
        assert_eq!(format_utc(1_709_210_096), "2024-02-29 12:34 UTC");
    }

    #[test]
    fn reads_cpu_and_memory() {
        let cpuinfo = "processor\t: 0\nmodel name\t: Example CPU @ 2.0GHz\n\nprocessor\t: 1\nmodel name\t: Example CPU @ 2.0GHz\n";
        assert_eq!(
            parse_cpuinfo(cpuinfo),
            ("Example CPU @ 2.0GHz".to_owned(), 2)
        );
        assert_eq!(
            parse_mem_total_kib("MemTotal:        8048576 kB\nMemFree: 1 kB\n"),
            Some(8_048_576)
        );
        let here = machine();
        assert!(here.cores >= 1);
    }

    #[test]
    fn quick_runs_are_shorter_and_the_soak_duration_can_be_set() {
        assert!(Bench::Webhook.args(true, None).contains(&"5s".to_owned()));
        assert!(Bench::Webhook.args(false, None).is_empty());
        assert_eq!(Bench::Soak.args(true, Some("45s")), ["--duration", "45s"]);
        assert_eq!(Bench::Soak.args(false, None), Vec::<String>::new());
    }

    #[test]
    fn webhook_rows_take_the_ingress_the_baselines_and_the_targets() {
        let json = json!({
            "scenarios": [
                {"scenario": "bare axum 200", "ok_per_s": 40000.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0},
                {"scenario": "plain insert", "ok_per_s": 6000.0, "p50_ms": 1.0, "p99_ms": 2.0, "errors": 0},
                {"scenario": "webhook-ingress", "ok_per_s": 2400.0, "p50_ms": 25.0, "p99_ms": 45.5, "errors": 0}
            ],
            "ratios": {"ingress_over_plain_insert": 0.4, "ingress_over_bare": 0.06},
            "targets": [
                {"what": "accepted/s >= 2000", "met": true},
                {"what": "ingress / plain insert >= 0.5", "met": false}
            ]
        });
        let rows = rows_of(Bench::Webhook, &json);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert!(
            row.figure.starts_with("webhook-ingress 2400 ok/s"),
            "{}",
            row.figure
        );
        assert!(row.figure.contains("p99 45.50 ms"), "{}", row.figure);
        assert_eq!(row.baseline, "plain insert 6000 /s; bare axum 200 40000 /s");
        assert_eq!(row.ratio, Some(0.4));
        assert_eq!(row.met, Some(false));
        assert!(
            row.target
                .contains("ingress / plain insert >= 0.5 (missed)")
        );
    }

    #[test]
    fn pipeline_rows_judge_every_target_and_show_the_cost() {
        let json = json!({
            "events": 500, "confirmed_per_s": 150.0, "p50_s": 2.0, "p99_s": 4.0,
            "p99_blocks": 4.0, "chain_bound_per_s": 200.0, "gas_per_recipient": 50000.0,
            "ratio": 0.75,
            "cost": {"services_cpu_s_per_1000_mints": 12.5, "statements_per_mint": 7.25},
            "targets": [
                {"what": "ratio >= 0.6", "met": true},
                {"what": "p99 <= 5 blocks", "met": true}
            ]
        });
        let row = &rows_of(Bench::Pipeline, &json)[0];
        assert_eq!(row.met, Some(true));
        assert_eq!(row.ratio, Some(0.75));
        assert!(
            row.figure.contains("services used 12.50 CPU s"),
            "{}",
            row.figure
        );
        assert!(row.figure.contains("7.25 SQL statements"), "{}", row.figure);
        assert!(
            row.target.contains("p99 <= 5 blocks (met)"),
            "{}",
            row.target
        );
        let mut slow = json.clone();
        slow["targets"][1]["met"] = json!(false);
        let row = &rows_of(Bench::Pipeline, &slow)[0];
        assert_eq!(row.met, Some(false));
        assert!(
            row.target.contains("p99 <= 5 blocks (missed)"),
            "{}",
            row.target
        );
    }

    #[test]
    fn a_json_without_the_measured_scenario_is_a_failed_row() {
        let row = &rows_of(Bench::Read, &json!({"scenarios": []}))[0];
        assert_eq!(row.met, None);
        assert!(row.figure.contains("no read-api scenario"));
    }

    #[test]
    fn soak_rows_need_no_errors_and_exactly_one_mint_each() {
        let json = json!({
            "rate_per_s": 200, "achieved_accepted_per_s": 199.0, "duration_s": 60.0,
            "accept_p99_ms": 12.0, "accepted": 11940, "errors": {},
            "p99_met": true, "confirm_p99_met": true, "confirm_p99_blocks": 2.5,
            "integrity": {"exactly_one_confirmed_mint_each": true},
            "services_peak_rss_mib": 95.5
        });
        let row = &rows_of(Bench::Soak, &json)[0];
        assert_eq!(row.met, Some(true));
        assert!(row.figure.contains("peak RSS 96 MiB"), "{}", row.figure);
        assert!(row.figure.contains("(2.5 blocks)"), "{}", row.figure);
        assert!(row.figure.contains(", 0 errors,"), "{}", row.figure);
        let mut broken = json.clone();
        broken["errors"] = json!({"HTTP 500": 3});
        assert_eq!(rows_of(Bench::Soak, &broken)[0].met, Some(false));
        let mut late = json.clone();
        late["confirm_p99_met"] = json!(false);
        let row = &rows_of(Bench::Soak, &late)[0];
        assert_eq!(row.met, Some(false));
        assert!(
            row.target.contains("<= 3 blocks (missed)"),
            "{}",
            row.target
        );
    }

    #[test]
    fn the_markdown_names_the_machine_and_quick_runs() {
        let results = Results {
            started: "2026-01-01 00:00 UTC".to_owned(),
            quick: true,
            machine: Machine {
                cpu: "Example CPU".to_owned(),
                cores: 2,
                memory_gib: 7.8,
                kernel: "6.1".to_owned(),
                load_average: "0.1 0.2 0.3".to_owned(),
            },
            rows: vec![failed_row(Bench::Amqp, "failed (exit status: 1)")],
            raw: serde_json::Map::new(),
        };
        let md = markdown(&results);
        assert!(md.contains("Example CPU, 2 logical CPUs, 7.8 GiB"), "{md}");
        assert!(md.contains("`--quick`"), "{md}");
        assert!(
            md.contains("| amqp | failed (exit status: 1) | - | - | - | - |"),
            "{md}"
        );
    }
}
