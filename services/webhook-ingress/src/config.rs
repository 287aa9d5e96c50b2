//! Settings of webhook-ingress: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, TelemetryConfig, parse_duration,
};

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8080;

/// Accepts partner webhooks and token commands and queues them durably.
///
/// Verifies the HMAC signatures of Aurora and Tribe webhooks, deduplicates
/// events, and publishes them to RabbitMQ through a transactional outbox; also
/// takes the API-key token commands (mint, redeem). Serves /health and /metrics
/// on the same port.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "webhook-ingress", version)]
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
    /// The address to listen on: `--http-host` and `--port`, or port 8080.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }
}
