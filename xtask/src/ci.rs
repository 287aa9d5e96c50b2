//! `cargo xtask test`: every check CI runs, in CI's order, stopping at the
//! first failure.

use std::cell::Cell;
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::builder::FalseyValueParser;
use serde::Deserialize;

use crate::console::Console;
use crate::step::{StepError, StepResult, run_command};
use crate::workspace::{Workspace, cargo};
use crate::{browser, chaos, coverage, fuzz, image, npm, ops};

/// Workspace package holding the contract tests, run as their own step.
const CONTRACTS_PACKAGE: &str = "haven-contracts";
/// npm script running the contract tests, when they are written in JS.
const CONTRACTS_NPM_SCRIPT: &str = "test:contracts";
/// Compile script of the contract; `--check` fails when the committed
/// artifacts differ from what the source compiles to.
const CONTRACTS_COMPILE_SCRIPT: &str = "contracts/compile.mjs";

/// Options of `cargo xtask test`.
#[derive(Debug, clap::Args)]
pub struct TestArgs {
    /// Running in CI: use the nextest `ci` profile (no fail-fast, no retries).
    #[arg(long, env = "CI", value_parser = FalseyValueParser::new())]
    pub ci: bool,

    /// nextest profile (default: `ci` in CI, else nextest's default).
    #[arg(long, env = "NEXTEST_PROFILE")]
    pub nextest_profile: Option<String>,

    #[command(flatten)]
    pub servers: crate::infra::Servers,

    /// Run the test suite without coverage instrumentation (and skip the
    /// coverage step): quicker feedback while working on one thing.
    #[arg(long, env = "HAVEN_NO_COVERAGE", value_parser = FalseyValueParser::new())]
    pub no_coverage: bool,

    /// Lowest line coverage (percent) of the shared crates and the services
    /// (`src/`, test helpers excluded) that passes the coverage step.
    #[arg(long, env = "HAVEN_COVERAGE_MIN", default_value = "80", value_parser = coverage::parse_min)]
    pub coverage_min: f64,

    /// Run only these steps (repeatable), in CI's order; e.g.
    /// `--step deploy --step deny`.
    #[arg(long = "step", value_enum)]
    pub steps: Vec<StepId>,

    /// Extra arguments for `cargo nextest run` (after `--`), e.g. a filter.
    #[arg(last = true)]
    pub nextest_args: Vec<String>,
}

/// The steps, in CI's order (names for `--step`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum StepId {
    /// Start PostgreSQL and RabbitMQ when installed but down.
    Services,
    /// `npm ci` of the Node tools (anvil, solc).
    Npm,
    /// `cargo fmt --all --check`.
    Fmt,
    /// `cargo clippy` of the whole workspace, warnings denied.
    Clippy,
    /// `cargo deny` licenses, bans and sources, offline.
    Deny,
    /// The deployment files: Dockerfile, compose, k8s, Prometheus, Grafana, proxy.
    Deploy,
    /// The test suite with cargo-nextest (under cargo-llvm-cov unless --no-coverage).
    Nextest,
    /// Line coverage report and gate of the last instrumented run.
    Coverage,
    /// Contract artifacts check and contract tests.
    Contracts,
    /// schemathesis against every service's OpenAPI, on the stack `cargo xtask up` starts.
    Fuzz,
    /// The fault matrix's short profile (`cargo xtask chaos --short`).
    Chaos,
    /// The Dockerfile built and its image run (base images made locally,
    /// each service's container checked). Slow: only when named.
    Image,
}

impl StepId {
    /// Steps a plain `cargo xtask test` leaves out: run only with `--step`.
    const OPT_IN: [StepId; 1] = [StepId::Image];
}

/// Test counts read from nextest's JUnit report, summed over the runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct TestCounts {
    passed: u64,
    failed: u64,
    skipped: u64,
}

impl TestCounts {
    /// Reads the `<testsuites>` totals of a nextest JUnit report.
    fn from_junit(xml: &str) -> Option<Self> {
        let start = xml.find("<testsuites")?;
        let tag = &xml[start..start + xml[start..].find('>')?];
        let attr = |name: &str| -> Option<u64> {
            let key = format!(" {name}=\"");
            let from = tag.find(&key)? + key.len();
            let len = tag[from..].find('"')?;
            tag[from..from + len].parse().ok()
        };
        let tests = attr("tests")?;
        let failed = attr("failures")? + attr("errors")?;
        let skipped = attr("skipped").unwrap_or(0);
        Some(Self {
            passed: tests.saturating_sub(failed + skipped),
            failed,
            skipped,
        })
    }

    fn add(self, other: Self) -> Self {
        Self {
            passed: self.passed + other.passed,
            failed: self.failed + other.failed,
            skipped: self.skipped + other.skipped,
        }
    }
}

/// Adds the counts of the nextest run that just ended to `total`.
fn record_counts(ws: &Workspace, profile: Option<&str>, total: &Cell<Option<TestCounts>>) {
    let report = ws
        .root
        .join("target")
        .join("nextest")
        .join(profile.unwrap_or("default"))
        .join("junit.xml");
    if let Some(counts) = std::fs::read_to_string(report)
        .ok()
        .and_then(|xml| TestCounts::from_junit(&xml))
    {
        total.set(Some(total.get().unwrap_or_default().add(counts)));
    }
}

/// Runs the steps in order; the first failure ends the run.
pub fn run(args: &TestArgs, ws: &Workspace, console: Console) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let contracts = contract_tests(ws)?;
    let profile = args
        .nextest_profile
        .clone()
        .or_else(|| args.ci.then(|| "ci".to_owned()));

    let counts: Cell<Option<TestCounts>> = Cell::new(None);

    type Run<'a> = Box<dyn FnOnce() -> StepResult + 'a>;
    type Step<'a> = (StepId, &'static str, Run<'a>);
    let all_steps: Vec<Step<'_>> = vec![
        (
            StepId::Services,
            "PostgreSQL and RabbitMQ",
            Box::new(|| services(args, ws, console)),
        ),
        (
            StepId::Npm,
            "npm packages",
            Box::new(|| npm::ensure(&ws.root, console).map(drop).map_err(Into::into)),
        ),
        (
            StepId::Fmt,
            "cargo fmt --all --check",
            Box::new(|| cargo_step(ws, ["fmt", "--all", "--check"])),
        ),
        (
            StepId::Clippy,
            "cargo clippy --workspace --all-targets --all-features -- -D warnings",
            Box::new(|| {
                cargo_step(
                    ws,
                    [
                        "clippy",
                        "--workspace",
                        "--all-targets",
                        "--all-features",
                        "--",
                        "-D",
                        "warnings",
                    ],
                )
            }),
        ),
        (
            StepId::Deny,
            "cargo deny --offline check licenses bans sources",
            Box::new(|| deny(ws, console)),
        ),
        (
            StepId::Deploy,
            "deployment files: Dockerfile, compose, k8s, Prometheus, Grafana, proxy",
            Box::new(|| ops::step(ws, console)),
        ),
        (
            StepId::Nextest,
            if args.no_coverage {
                "cargo nextest run (whole workspace)"
            } else {
                "cargo llvm-cov nextest (whole workspace, with coverage)"
            },
            Box::new(|| {
                test_suite(args, ws, &contracts, profile.as_deref(), console)?;
                record_counts(ws, profile.as_deref(), &counts);
                Ok(())
            }),
        ),
        (
            StepId::Coverage,
            "line coverage (shared crates and services)",
            Box::new(|| {
                if args.no_coverage {
                    console.info("--no-coverage: skipped");
                    return Ok(());
                }
                coverage::report_step(ws, args.coverage_min, console)
            }),
        ),
        (
            StepId::Contracts,
            "contracts: artifacts check and tests",
            Box::new(|| {
                contract_step(ws, &contracts, profile.as_deref(), console)?;
                if contracts == ContractTests::Package {
                    record_counts(ws, profile.as_deref(), &counts);
                }
                Ok(())
            }),
        ),
        (
            StepId::Fuzz,
            "schemathesis against every service's OpenAPI (the stack of cargo xtask up)",
            Box::new(|| fuzz::step(ws, console)),
        ),
        (
            StepId::Chaos,
            "fault matrix, short profile (kill -9 of chain-minter, broker cut)",
            Box::new(|| chaos::step(ws, &args.servers, console)),
        ),
        (
            StepId::Image,
            "container image: Dockerfile built, each service's container run and checked",
            Box::new(|| image::step(ws, &args.servers, console)),
        ),
    ];
    let steps: Vec<(&str, Run<'_>)> = all_steps
        .into_iter()
        .filter(|(id, _, _)| selected(&args.steps, *id))
        .map(|(_, name, step)| (name, step))
        .collect();

    let total = steps.len();
    let mut timings: Vec<(&str, Duration)> = Vec::new();
    for (index, (name, step)) in steps.into_iter().enumerate() {
        console.info(&format!("==> [{}/{total}] {name}", index + 1));
        let step_started = Instant::now();
        let result = step();
        let took = step_started.elapsed();
        timings.push((name, took));
        match result {
            Ok(()) => console.info(&format!("<== {name}: ok in {}", seconds(took))),
            Err(err) => {
                let why = match err {
                    StepError::Failed(why) => why,
                    StepError::Error(err) => format!("{err:#}"),
                };
                console.error(&format!(
                    "FAILED at step {}/{total} `{name}` after {}: {why}",
                    index + 1,
                    seconds(took)
                ));
                print_timings(&timings, console);
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    print_timings(&timings, console);
    console.info(&format!(
        "all {total} steps passed in {}",
        seconds(started.elapsed())
    ));
    if let Some(counts) = counts.get() {
        // A plain closing line any log reader understands, without the prefix.
        println!(
            "tests: {} passed, {} failed, {} skipped",
            counts.passed, counts.failed, counts.skipped
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Whether a step runs: the named ones, or every step but the opt-in ones.
fn selected(named: &[StepId], step: StepId) -> bool {
    if named.is_empty() {
        !StepId::OPT_IN.contains(&step)
    } else {
        named.contains(&step)
    }
}

fn print_timings(timings: &[(&str, Duration)], console: Console) {
    for (name, took) in timings {
        console.info(&format!("  {:>8}  {name}", seconds(*took)));
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1}s", duration.as_secs_f64())
}

fn services(args: &TestArgs, ws: &Workspace, console: Console) -> StepResult {
    Ok(args.servers.ensure(&ws.dev_dir(), console)?)
}

fn cargo_step<const N: usize>(ws: &Workspace, args: [&str; N]) -> StepResult {
    let mut command = Command::new(cargo());
    command.args(args).current_dir(&ws.root);
    run_command(command)
}

/// Where the contract tests live, if anywhere yet.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ContractTests {
    /// The `haven-contracts` workspace package: run on its own, after the suite.
    Package,
    /// The root package.json's `test:contracts` script.
    NpmScript,
    /// Not written yet.
    None,
}

fn contract_tests(ws: &Workspace) -> anyhow::Result<ContractTests> {
    if ws.has_package(CONTRACTS_PACKAGE) {
        return Ok(ContractTests::Package);
    }
    let package_json = ws.root.join("package.json");
    if package_json.is_file() && has_npm_script(&package_json, CONTRACTS_NPM_SCRIPT)? {
        return Ok(ContractTests::NpmScript);
    }
    Ok(ContractTests::None)
}

fn has_npm_script(package_json: &Path, script: &str) -> anyhow::Result<bool> {
    #[derive(Deserialize)]
    struct PackageJson {
        #[serde(default)]
        scripts: std::collections::BTreeMap<String, String>,
    }
    let text = std::fs::read_to_string(package_json)
        .with_context(|| format!("reading {}", package_json.display()))?;
    let parsed: PackageJson = serde_json::from_str(&text)
        .with_context(|| format!("reading {}", package_json.display()))?;
    Ok(parsed.scripts.contains_key(script))
}

fn ensure_nextest(ws: &Workspace, console: Console) -> StepResult {
    let present = Command::new(cargo())
        .args(["nextest", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if present {
        return Ok(());
    }
    console.info("cargo-nextest is missing: cargo install cargo-nextest --locked");
    let mut command = Command::new(cargo());
    command
        .args(["install", "cargo-nextest", "--locked"])
        .current_dir(&ws.root);
    run_command(command)
}

/// The nextest command line of the main suite (without `cargo`).
fn nextest_args(profile: Option<&str>, contracts: &ContractTests, extra: &[String]) -> Vec<String> {
    let mut args: Vec<String> = ["nextest", "run", "--workspace"]
        .map(str::to_owned)
        .to_vec();
    if *contracts == ContractTests::Package {
        // They run in their own step, after the suite.
        args.extend(["--exclude".to_owned(), CONTRACTS_PACKAGE.to_owned()]);
    }
    if let Some(profile) = profile {
        args.extend(["--profile".to_owned(), profile.to_owned()]);
    }
    // A green run that ran nothing is a broken suite, not a pass.
    args.push("--no-tests=fail".to_owned());
    args.extend(extra.iter().cloned());
    args
}

fn test_suite(
    args: &TestArgs,
    ws: &Workspace,
    contracts: &ContractTests,
    profile: Option<&str>,
    console: Console,
) -> StepResult {
    ensure_nextest(ws, console)?;
    // The /docs test renders the page in it: given, it runs instead of skipping.
    let chromium = browser::ensure(console)?;
    let nextest = nextest_args(profile, contracts, &args.nextest_args);
    let mut command = Command::new(cargo());
    command.env("CHROMIUM_BIN", chromium);
    if args.no_coverage {
        command.args(nextest);
    } else {
        // One run gives both the test results and the coverage profiles;
        // the coverage step reports them.
        // cargo-llvm-cov removes the previous run's profiles and workspace
        // artifacts itself, so the report covers this run only.
        coverage::ensure_tools(ws, console)?;
        command.args(coverage::wrap_nextest(&nextest));
    }
    command.current_dir(&ws.root);
    run_command(command)
}

/// Version installed when cargo-deny is missing.
const DENY_VERSION: &str = "0.20.2";

/// `cargo deny` over Cargo.lock and the local registry cache only (see
/// deny.toml); advisories need the RustSec database from GitHub and are
/// left to machines that reach it.
fn deny(ws: &Workspace, console: Console) -> StepResult {
    let present = Command::new(cargo())
        .args(["deny", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        console.info(&format!(
            "cargo-deny is missing: cargo install cargo-deny --locked --version {DENY_VERSION}"
        ));
        let mut command = Command::new(cargo());
        command
            .args([
                "install",
                "cargo-deny",
                "--locked",
                "--version",
                DENY_VERSION,
            ])
            .current_dir(&ws.root);
        run_command(command)?;
    }
    // The crates of this platform must be in the local cache for
    // `cargo metadata --offline`; already there after a build, else fetched
    // from crates.io like any build would.
    cargo_step(
        ws,
        ["fetch", "--locked", "--target", "x86_64-unknown-linux-gnu"],
    )?;
    cargo_step(
        ws,
        [
            "deny",
            "--offline",
            "--log-level",
            "error",
            "check",
            "--hide-inclusion-graph",
            "licenses",
            "bans",
            "sources",
        ],
    )
}

fn contract_step(
    ws: &Workspace,
    contracts: &ContractTests,
    profile: Option<&str>,
    console: Console,
) -> StepResult {
    if ws.root.join(CONTRACTS_COMPILE_SCRIPT).is_file() {
        console.info(&format!(
            "contract artifacts: node {CONTRACTS_COMPILE_SCRIPT} --check"
        ));
        let mut command = Command::new("node");
        command
            .args([CONTRACTS_COMPILE_SCRIPT, "--check"])
            .current_dir(&ws.root);
        run_command(command)?;
    }
    match contracts {
        ContractTests::Package => {
            let mut command = Command::new(cargo());
            command
                .args([
                    "nextest",
                    "run",
                    "--package",
                    CONTRACTS_PACKAGE,
                    "--no-tests=fail",
                ])
                .current_dir(&ws.root);
            if let Some(profile) = profile {
                command.args(["--profile", profile]);
            }
            run_command(command)
        }
        ContractTests::NpmScript => {
            let mut command = Command::new("npm");
            command
                .args(["run", "--silent", CONTRACTS_NPM_SCRIPT])
                .current_dir(&ws.root);
            run_command(command)
        }
        ContractTests::None => {
            console.info(&format!(
                "no contract tests yet (neither a `{CONTRACTS_PACKAGE}` package nor a \
                 `{CONTRACTS_NPM_SCRIPT}` npm script): skipped"
            ));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_suite_runs_the_whole_workspace_and_refuses_an_empty_run() {
        let args = nextest_args(None, &ContractTests::None, &[]);
        assert_eq!(args, ["nextest", "run", "--workspace", "--no-tests=fail"]);
    }

    #[test]
    fn ci_profile_contract_exclusion_and_extra_arguments_are_passed() {
        let args = nextest_args(
            Some("ci"),
            &ContractTests::Package,
            &["-E".to_owned(), "test(money)".to_owned()],
        );
        assert_eq!(
            args,
            [
                "nextest",
                "run",
                "--workspace",
                "--exclude",
                "haven-contracts",
                "--profile",
                "ci",
                "--no-tests=fail",
                "-E",
                "test(money)"
            ]
        );
    }

    #[test]
    fn test_counts_come_from_the_junit_totals() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="nextest-run" tests="40" skipped="2" failures="1" errors="1" uuid="u" time="0.9">
    <testsuite name="xtask::bin/xtask" tests="40" skipped="2" errors="1" failures="1">"#;
        let counts = TestCounts::from_junit(xml).expect("totals");
        assert_eq!(
            counts,
            TestCounts {
                passed: 36,
                failed: 2,
                skipped: 2
            }
        );
        assert_eq!(
            counts.add(counts),
            TestCounts {
                passed: 72,
                failed: 4,
                skipped: 4
            }
        );
        assert_eq!(TestCounts::from_junit("<testsuites/>"), None);
        assert_eq!(TestCounts::from_junit("not xml"), None);
    }

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(flatten)]
        args: TestArgs,
    }

    #[test]
    fn steps_can_be_picked_and_coverage_tuned() {
        use clap::Parser as _;
        let cli =
            Cli::try_parse_from(["test", "--step", "deploy", "--step", "deny"]).expect("valid");
        assert_eq!(cli.args.steps, [StepId::Deploy, StepId::Deny]);
        let cli = Cli::try_parse_from(["test", "--coverage-min", "72.5", "--no-coverage"])
            .expect("valid");
        assert_eq!(cli.args.coverage_min, 72.5);
        assert!(cli.args.no_coverage);
        assert!(Cli::try_parse_from(["test", "--coverage-min", "120"]).is_err());
        assert!(Cli::try_parse_from(["test", "--step", "everything"]).is_err());
    }

    #[test]
    fn the_image_step_runs_only_when_named() {
        assert!(!selected(&[], StepId::Image));
        assert!(selected(&[], StepId::Chaos));
        assert!(selected(&[StepId::Image], StepId::Image));
        assert!(!selected(&[StepId::Image], StepId::Nextest));
        use clap::Parser as _;
        let cli = Cli::try_parse_from(["test", "--step", "image"]).expect("valid");
        assert_eq!(cli.args.steps, [StepId::Image]);
    }

    #[test]
    fn npm_scripts_are_read_from_package_json() {
        let dir = std::env::temp_dir().join(format!("xtask-pkg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("package.json");
        std::fs::write(&path, r#"{"scripts":{"test:contracts":"node --test"}}"#).expect("write");
        assert!(has_npm_script(&path, "test:contracts").expect("parsed"));
        std::fs::write(&path, r#"{"name":"x"}"#).expect("write");
        assert!(!has_npm_script(&path, "test:contracts").expect("parsed"));
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
