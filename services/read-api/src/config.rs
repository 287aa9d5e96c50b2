//! Settings of read-api: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_common::config::{DatabaseConfig, HttpConfig, TelemetryConfig, parse_duration};

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8081;

/// Serves balances, statistics and transaction histories from the database.
///
/// The read side of HAVEN: balances, per-user analytics, token statistics and
/// transaction histories, read from the database (never the broker). Serves
/// /health and /metrics on the same port.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "read-api", version)]
pub struct Config {
    /// Where to listen for HTTP.
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpConfig,

    /// The database holding users, events, rewards and the ledger.
    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseConfig,

    /// Log format and filter.
    #[command(flatten, next_help_heading = "Logging")]
    pub telemetry: TelemetryConfig,

    /// How long shutdown waits for in-flight requests and work before it stops anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,
}

impl Config {
    /// The address to listen on: `--http-host` and `--port`, or port 8081.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }
}
