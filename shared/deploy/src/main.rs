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

use haven_chain::deploy::{DeployConfig, DeploymentFile, DeploymentStore, deploy};
use haven_chain::error::ChainError;
use haven_chain::store::StorageError;
use haven_common::telemetry::{ErrorChain, parse_config_or_exit};
use haven_entity::chain_store::DbDeployments;
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

    let deployed = match open_store(&cli.deploy).await {
        Ok(store) => deploy(&cli.deploy, store.as_ref()).await,
        Err(err) => Err(err),
    };
    match deployed {
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

/// The store `DATABASE_URL` or `--deployment-file` names (clap lets
/// exactly one through).
async fn open_store(config: &DeployConfig) -> Result<Box<dyn DeploymentStore>, ChainError> {
    match (&config.database_url, &config.deployment_file) {
        (Some(url), None) => {
            let db = sea_orm::Database::connect(url.expose())
                .await
                .map_err(StorageError::transient)?;
            Ok(Box::new(DbDeployments::new(db)))
        }
        (None, Some(path)) => Ok(Box::new(DeploymentFile::new(path.clone()))),
        _ => Err(ChainError::Config(
            "set exactly one of DATABASE_URL and --deployment-file".into(),
        )),
    }
}
