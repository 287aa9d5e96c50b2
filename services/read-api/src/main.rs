//! The `read-api` binary: parse settings, set up logging, run until SIGINT/SIGTERM.

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
