//! Settings of chain-minter: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, TelemetryConfig, parse_duration,
};

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8083;

/// Sends mint and burn transactions to the chain and confirms them.
///
/// Consumes chain requests, signs and sends mint and burn transactions with a
/// unique on-chain reference each (so a retry can never mint twice), and records
/// their confirmation. A worker: its HTTP port serves only /health and /metrics.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "chain-minter", version)]
pub struct Config {
    /// Where to listen for HTTP.
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpConfig,

    /// The database holding users, events, rewards and the ledger.
    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseConfig,

    /// The RabbitMQ broker and its namespace.
    #[command(flatten, next_help_heading = "Broker")]
    pub amqp: AmqpConfig,

    /// Log format and filter.
    #[command(flatten, next_help_heading = "Logging")]
    pub telemetry: TelemetryConfig,

    /// How long shutdown waits for in-flight requests and work before it stops anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,
}

impl Config {
    /// The address to listen on: `--http-host` and `--port`, or port 8083.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }
}
