//! The `read-api` binary: settings, logging, then [`read_api::run`] until
//! SIGINT/SIGTERM, or one reconciliation with `read-api reconcile`.

use std::process::ExitCode;

use haven_common::service;
use haven_common::telemetry::{self, ErrorChain};
use read_api::{Command, Config};

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = telemetry::parse_config_or_exit();
    let Some(Command::Reconcile { output }) = &config.command else {
        return service::launch_with(config, read_api::run).await;
    };
    let guard = match service::init_telemetry("read-api", &config.telemetry) {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let code = match read_api::reconcile_once(&config, output.as_deref()).await {
        Ok(report) if report.matched => ExitCode::SUCCESS,
        // Mismatches: a distinct status so cron jobs and scripts can alert.
        Ok(_) => ExitCode::from(2),
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "reconciliation failed");
            ExitCode::FAILURE
        }
    };
    service::flush_telemetry(guard).await;
    code
}
