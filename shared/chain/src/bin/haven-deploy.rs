//! `haven-deploy`: deploys the HAVEN contract from the bytecode compiled into
//! this binary (no Node.js needed), grants MINTER_ROLE and BURNER_ROLE to
//! the signer pool, and records the deployment. Idempotent: a second run
//! reuses the recorded deployment when its code is still on the chain.
//!
//! ```text
//! haven-deploy --rpc-url http://127.0.0.1:8545 --chain-id 31337 \
//!   --deployer-private-key 0x... --signer-private-keys 0x...,0x... \
//!   --database-url postgres://... [--json]
//! ```
//! Prints the contract address (or, with `--json`, one JSON object with
//! `chain_id`, `address`, `tx_hash`, `block_number`, `deployer`, `reused`,
//! `granted`). Logs go to stderr so stdout stays machine-readable.

use std::process::ExitCode;

use haven_chain::deploy::{DeployConfig, deploy};
use haven_common::telemetry::{ErrorChain, parse_config_or_exit};
use tracing_subscriber::EnvFilter;

/// Deploy the HAVEN token contract and grant the signer pool its roles.
#[derive(clap::Parser, Debug)]
#[command(name = "haven-deploy", version)]
struct Cli {
    #[command(flatten)]
    deploy: DeployConfig,

    /// Print the result as one JSON object instead of the bare address.
    #[arg(long, env = "DEPLOY_JSON")]
    json: bool,

    /// Log filter in `tracing` EnvFilter syntax (logs go to stderr).
    #[arg(long, env = "RUST_LOG", default_value = "info,sqlx=warn")]
    log_filter: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli: Cli = parse_config_or_exit();
    let filter = EnvFilter::try_new(&cli.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colors only on a terminal: under xtask or a log shipper they are noise.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();

    match deploy(&cli.deploy).await {
        Ok(deployment) => {
            if cli.json {
                match serde_json::to_string(&deployment) {
                    Ok(json) => println!("{json}"),
                    Err(err) => {
                        eprintln!("haven-deploy: cannot encode the result: {err}");
                        return ExitCode::FAILURE;
                    }
                }
            } else {
                println!("{}", deployment.record.address);
            }
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("haven-deploy: {}", ErrorChain(&err));
            ExitCode::FAILURE
        }
    }
}
