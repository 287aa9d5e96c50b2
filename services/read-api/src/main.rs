//! The `read-api` binary: parse settings, set up logging, run until SIGINT/SIGTERM
//! (or run one reconciliation with `read-api reconcile`).

use std::process::ExitCode;

use haven_common::telemetry::{self, ErrorChain};
use read_api::Config;

#[tokio::main]
async fn main() -> ExitCode {
    // A missing or malformed setting exits here with one line naming it.
    let config: Config = telemetry::parse_config_or_exit();
    if let Err(err) = telemetry::init(&config.telemetry) {
        eprintln!("read-api: {}", ErrorChain(&err));
        return ExitCode::FAILURE;
    }
    if let Some(read_api::Command::Reconcile { output }) = &config.command {
        return match read_api::reconcile_once(&config, output.as_deref()).await {
            Ok(report) if report.matched => ExitCode::SUCCESS,
            // Mismatches: a distinct status so cron jobs and scripts can alert.
            Ok(_) => ExitCode::from(2),
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "reconciliation failed");
                ExitCode::FAILURE
            }
        };
    }
    let addr = config.listen_addr();
    let listener = match tokio::net::TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%addr, error = %ErrorChain(&err), "could not listen");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match haven_common::shutdown::signal_token() {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "could not install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    match read_api::run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "read-api stopped");
            ExitCode::FAILURE
        }
    }
}
