//! `cargo xtask chaos`: the fault matrix. Builds the five services and the
//! matrix (`load-tests`' `chaos` binary), makes sure PostgreSQL, RabbitMQ
//! and the npm tools are there, and runs it: the services as processes
//! under steady load, one fault at a time, each row on a fresh database,
//! broker namespace and chain, lost and doubled events counted on chain.
//! Each row's alerts are evaluated by a real Prometheus (Debian's package,
//! unpacked into `target/ops-tools/bin/` like promtool) scraping the row's
//! services with `deploy/prometheus/alerts.yml`. It writes
//! `target/chaos/latest.md` and `latest.json` and exits non-zero when
//! anything was lost or doubled, or an alert did not fire where it should.
//!
//! `cargo xtask test` runs the short profile (two faults, 500 events each)
//! as its `chaos` step.

use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, bail};
use clap::builder::FalseyValueParser;

use crate::console::Console;
use crate::infra::Servers;
use crate::step::{StepError, StepResult};
use crate::workspace::{Workspace, cargo};
use crate::{npm, up};

/// Package and binary of the matrix.
const PACKAGE: &str = "load-tests";
const BIN: &str = "chaos";

/// Options of `cargo xtask chaos`.
#[derive(Debug, clap::Args)]
pub struct ChaosArgs {
    /// Rows to run, comma-separated (default: every one): none,
    /// broker-restart, broker-cut, database-restart, database-cut,
    /// kill-webhook-ingress, kill-reward-calculator, kill-chain-minter,
    /// kill-redemption-payout, kill-read-api, rpc-cut, reorg,
    /// stuck-transactions, replicas, payout-failing, broker-node-lost.
    #[arg(long, env = "CHAOS_ONLY")]
    pub only: Option<String>,

    /// The short profile: kill -9 of chain-minter and the broker cut, 500
    /// events at 50/s each (what `cargo xtask test` runs).
    #[arg(long, env = "CHAOS_SHORT", value_parser = FalseyValueParser::new())]
    pub short: bool,

    /// Events sent per row (default 3,000; 500 with `--short`).
    #[arg(long, env = "CHAOS_EVENTS")]
    pub events: Option<u64>,

    /// Events started per second (default 100; 50 with `--short`).
    #[arg(long, env = "CHAOS_RATE")]
    pub rate: Option<u32>,

    /// Build and run the release profile (default: debug, the binaries
    /// `cargo xtask up` and the fuzz step already built).
    #[arg(long, env = "HAVEN_RELEASE", value_parser = FalseyValueParser::new())]
    pub release: bool,

    #[command(flatten)]
    pub servers: crate::infra::Servers,
}

impl ChaosArgs {
    /// The short profile on `servers`, every other setting at its default.
    fn short_profile(servers: &Servers) -> Self {
        Self {
            only: None,
            short: true,
            events: None,
            rate: None,
            release: false,
            servers: servers.clone(),
        }
    }

    /// The matrix binary's arguments.
    fn matrix_args(&self) -> Vec<String> {
        let mut args = Vec::new();
        if self.short {
            args.extend(["--profile".to_owned(), "short".to_owned()]);
        }
        if let Some(only) = &self.only {
            args.extend(["--only".to_owned(), only.clone()]);
        }
        if let Some(events) = self.events {
            args.extend(["--events".to_owned(), events.to_string()]);
        }
        if let Some(rate) = self.rate {
            args.extend(["--rate".to_owned(), rate.to_string()]);
        }
        args
    }
}

/// `cargo xtask chaos`.
pub fn run(args: &ChaosArgs, ws: &Workspace, console: Console) -> anyhow::Result<ExitCode> {
    Ok(if matrix(args, ws, console)? {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The `chaos` step of `cargo xtask test`: the short profile.
pub(crate) fn step(ws: &Workspace, servers: &Servers, console: Console) -> StepResult {
    if matrix(&ChaosArgs::short_profile(servers), ws, console)? {
        Ok(())
    } else {
        Err(StepError::Failed(
            "events lost or doubled, or a row could not run: see target/chaos/latest.md".to_owned(),
        ))
    }
}

fn matrix(args: &ChaosArgs, ws: &Workspace, console: Console) -> anyhow::Result<bool> {
    args.servers.ensure(&ws.dev_dir(), console)?;
    let tools = npm::ensure(&ws.root, console)?;
    let prometheus = crate::ops::ensure_prometheus(ws, console)?;

    let profile = if args.release { "release" } else { "debug" };
    let deploy_package = ws.package_of_bin(up::DEPLOY_BIN).map(str::to_owned);
    let services = up::stack_build(
        ws,
        &up::stack_packages(deploy_package.as_deref()),
        args.release,
    );
    let mut matrix = Command::new(cargo());
    matrix
        .args(["build", "--package", PACKAGE, "--bin", BIN])
        .current_dir(&ws.root);
    if args.release {
        matrix.arg("--release");
    }
    console.info(&format!("building the services and the matrix ({profile})"));
    for mut build in [services, matrix] {
        let status = build
            .stdin(Stdio::null())
            .status()
            .context("running cargo build")?;
        if !status.success() {
            bail!("cargo build failed ({status})");
        }
    }

    let bin_dir = ws.target_dir.join(profile);
    let out = ws.target_dir.join("chaos");
    let matrix_args = args.matrix_args();
    console.info(&format!(
        "running the fault matrix {}",
        matrix_args.join(" ")
    ));
    let mut run = Command::new(bin_dir.join(BIN));
    args.servers.env_of(&mut run, &tools.anvil());
    let status = run
        .args(&matrix_args)
        .arg("--bin-dir")
        .arg(&bin_dir)
        .arg("--out")
        .arg(&out)
        .arg("--prometheus")
        .arg(&prometheus)
        .current_dir(&ws.root)
        .stdin(Stdio::null())
        .status()
        .context("running the fault matrix")?;
    console.info(&format!(
        "fault matrix: {} (table in {})",
        if status.success() { "passed" } else { "FAILED" },
        out.join("latest.md").display()
    ));
    Ok(status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_short_profile_and_the_flags_reach_the_matrix() {
        let servers = Servers {
            postgres_url: "postgres://postgres@127.0.0.1:5432/postgres".to_owned(),
            amqp_url: crate::stack::DEFAULT_AMQP_URL.to_owned(),
            service_start_timeout_secs: 120,
        };
        let mut args = ChaosArgs::short_profile(&servers);
        assert_eq!(args.matrix_args(), ["--profile", "short"]);
        args.short = false;
        args.only = Some("rpc-cut,reorg".to_owned());
        args.events = Some(1000);
        args.rate = Some(150);
        assert_eq!(
            args.matrix_args(),
            [
                "--only",
                "rpc-cut,reorg",
                "--events",
                "1000",
                "--rate",
                "150"
            ]
        );
    }
}
