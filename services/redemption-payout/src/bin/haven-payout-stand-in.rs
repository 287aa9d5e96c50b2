//! `haven-payout-stand-in`: a local payout provider for the development
//! stack (`cargo xtask up` starts it). It speaks the provider contract of
//! `docs/payout-provider.md` and keeps payouts in memory; never use it for real money.

use std::net::SocketAddr;
use std::process::ExitCode;

use haven_common::config::{Redacted, TelemetryConfig};
use haven_common::telemetry::{self, ErrorChain};
use redemption_payout::provider::stand_in::{Options, Settle, StandIn};

/// A local stand-in for the payout provider (development and tests only).
///
/// Accepts `POST /payouts` (once per `Idempotency-Key`) and answers
/// `GET /payouts/{id}`; payouts are paid after the configured number of polls.
#[derive(clap::Parser, Debug)]
#[command(name = "haven-payout-stand-in", version)]
struct Config {
    /// Address to listen on.
    #[arg(long, env = "PAYOUT_STAND_IN_LISTEN", default_value = "127.0.0.1:8090")]
    listen: SocketAddr,

    /// Bearer token every request must carry; none is checked when unset.
    #[arg(long, env = "PAYOUT_PROVIDER_TOKEN")]
    payout_provider_token: Option<Redacted<String>>,

    /// Status polls a payout answers `pending` before it is `paid` (0: paid at once).
    #[arg(long, env = "PAYOUT_STAND_IN_SETTLE_AFTER_POLLS", default_value_t = 0)]
    settle_after_polls: u32,

    /// Log format and filter.
    #[command(flatten, next_help_heading = "Logging")]
    telemetry: TelemetryConfig,
}

#[tokio::main]
async fn main() -> ExitCode {
    let config: Config = telemetry::parse_config_or_exit();
    // A test double: its spans, if any, are not worth a flush at exit.
    let _guard = match telemetry::init("haven-payout-stand-in", &config.telemetry) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("haven-payout-stand-in: {}", ErrorChain(&err));
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(config.listen).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(addr = %config.listen, error = %ErrorChain(&err), "could not listen");
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
    let stand_in = StandIn::on(
        listener,
        Options {
            api_token: config
                .payout_provider_token
                .map(|token| token.expose().clone()),
            settle: Settle::PaidAfterPolls(config.settle_after_polls),
        },
    );
    tracing::info!(url = %stand_in.url(), "payout stand-in listening (development only: pays nothing)");
    shutdown.cancelled().await;
    let paid = stand_in.payouts().len();
    stand_in.stop().await;
    tracing::info!(payouts = paid, "payout stand-in stopped");
    ExitCode::SUCCESS
}
