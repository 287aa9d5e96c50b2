//! `cargo xtask`: the developer commands of the HAVEN workspace.
//!
//! - `cargo xtask up` runs the whole system on this machine (anvil, the
//!   migrations, the five services) and writes `target/haven-dev/stack.json`.
//! - `cargo xtask test` runs every check CI runs, in CI's order.
//!
//! xtask is plain blocking Rust on threads: it only spawns and watches
//! processes, so it needs no async runtime.

mod bench;
mod browser;
mod chaos;
mod ci;
mod console;
mod coverage;
mod fuzz;
mod image;
mod infra;
mod npm;
mod ops;
mod stack;
mod step;
mod supervisor;
mod up;
mod workspace;

use std::process::ExitCode;

use clap::builder::FalseyValueParser;
use clap::{Parser, Subcommand};

use crate::console::Console;

/// Developer commands of the HAVEN workspace.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    version,
    propagate_version = true
)]
struct Cli {
    /// Never color the output (colors are used only when stdout is a terminal).
    #[arg(long, global = true, env = "NO_COLOR", value_parser = FalseyValueParser::new())]
    no_color: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the whole system locally: anvil, migrations and the five services.
    ///
    /// Builds the service binaries, installs the npm tools (anvil, solc) into
    /// `node_modules/` from the committed lockfile, makes sure RabbitMQ answers
    /// (starting a local `rabbitmq-server` when it is installed but down),
    /// starts anvil, runs the migrations, starts every service with its log
    /// lines prefixed by its name, waits until every `/health` answers 200,
    /// prints one ready line and writes `target/haven-dev/stack.json` (every
    /// URL, the dev API key, the partner secrets, the RPC URL, the contract
    /// address, the database and AMQP URLs). Ctrl-C or SIGTERM stops
    /// everything gracefully and exits 0; a process that dies on its own
    /// brings the stack down and exits 1.
    Up(Box<up::UpArgs>),
    /// Run every check CI runs, in order, stopping at the first failure.
    ///
    /// Starts PostgreSQL and RabbitMQ when installed but down, installs the
    /// npm tools, then runs `cargo fmt --all --check`,
    /// `cargo clippy --workspace --all-targets --all-features -- -D warnings`,
    /// `cargo deny` (licenses, bans, sources; offline), the deployment files
    /// checks (Dockerfile, compose, k8s, Prometheus, Grafana, proxy; tools
    /// installed into `target/ops-tools/`), the whole test suite with
    /// cargo-nextest under cargo-llvm-cov (both installed when missing), the
    /// line coverage gate, then the contract checks: committed artifacts match the source
    /// (`node contracts/compile.mjs --check`) and the contract tests (the
    /// `haven-contracts` package or the `test:contracts` npm script, whichever
    /// exists). Arguments after `--` go to `cargo nextest run`.
    /// `--step image` (only when named: it builds the release image) builds
    /// the Dockerfile and runs each service's container; see docs/deploying.md.
    Test(ci::TestArgs),
    /// Run the benchmarks (load-tests, release) and write
    /// `target/bench/latest.md` and `latest.json`: each figure, its baseline
    /// from the same run, the ratio, the target and the machine.
    Bench(bench::BenchArgs),
    /// Run the fault matrix: the five services as processes under steady
    /// load (signed webhooks of every kind, token mints, redemptions), one
    /// fault at a time (broker and database restarts and cuts, kill -9 of
    /// each service, the chain RPC cut, a reorganisation, stuck
    /// transactions, two replicas of every worker, the payout provider
    /// failing, a node of a three-node broker cluster lost), each on a fresh
    /// database, broker namespace and chain; then the events lost and
    /// doubled, checked on chain, and the alerts a real Prometheus raised.
    /// Writes `target/chaos/latest.md` and `latest.json`; exits 1 when
    /// anything was lost or doubled or an alert did not fire where it should.
    Chaos(chaos::ChaosArgs),
    /// Recompile contracts/HAVEN.sol into contracts/artifacts/ (ABI and
    /// bytecode, committed), with the pinned solc from `node_modules/`.
    Contracts,
}

/// `cargo xtask contracts`: `node contracts/compile.mjs` after `npm ci`.
fn compile_contracts(ws: &workspace::Workspace, console: Console) -> anyhow::Result<ExitCode> {
    npm::ensure(&ws.root, console)?;
    let status = std::process::Command::new("node")
        .arg("contracts/compile.mjs")
        .current_dir(&ws.root)
        .status()
        .map_err(|err| anyhow::anyhow!("cannot run node: {err}"))?;
    Ok(if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let console = Console::detect(cli.no_color);
    let result = workspace::Workspace::discover().and_then(|ws| match cli.command {
        Command::Up(args) => up::run(*args, &ws, console),
        Command::Test(args) => ci::run(&args, &ws, console),
        Command::Bench(args) => bench::run(&args, &ws, console),
        Command::Chaos(args) => chaos::run(&args, &ws, console),
        Command::Contracts => compile_contracts(&ws, console),
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            console.error(&format!("{err:#}"));
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn trailing_arguments_go_to_nextest() {
        let cli = Cli::try_parse_from(["xtask", "test", "--", "-p", "haven-messages"])
            .expect("valid command line");
        let Command::Test(args) = cli.command else {
            panic!("expected the test command");
        };
        assert_eq!(args.nextest_args, ["-p", "haven-messages"]);
    }
}
