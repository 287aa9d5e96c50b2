//! Settings of webhook-ingress: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, TelemetryConfig, parse_duration,
    parse_positive_duration, secret,
};
use haven_common::money::Wei;

use haven_outbox::OutboxConfig;

use crate::signature::PartnerSecrets;
use haven_common::auth::{ApiKeys, ThrottleConfig};

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

    /// Aurora's webhook secrets, comma-separated (several are active during a
    /// rotation); `whsec_<base64>` entries are Standard Webhooks keys.
    #[arg(long, env = "AURORA_WEBHOOK_SECRET", value_parser = secret(PartnerSecrets::parse), hide_env_values = true,
          help_heading = "Partners")]
    pub aurora_webhook_secret: PartnerSecrets,

    /// Tribe's webhook secrets, comma-separated, as for Aurora.
    #[arg(long, env = "TRIBE_WEBHOOK_SECRET", value_parser = secret(PartnerSecrets::parse), hide_env_values = true,
          help_heading = "Partners")]
    pub tribe_webhook_secret: PartnerSecrets,

    /// Largest webhook or command body accepted, in bytes (`262144`) or with a
    /// unit (`256KiB`, `1MiB`); larger requests get 413 without being read.
    #[arg(long, env = "MAX_BODY_SIZE", default_value = "256KiB", value_parser = parse_size,
          help_heading = "Partners")]
    pub max_body_size: usize,

    /// API keys of the token commands, comma-separated (several for rotation).
    #[arg(long, env = "API_KEYS", value_parser = secret(ApiKeys::parse), hide_env_values = true,
          help_heading = "Token commands")]
    pub api_keys: ApiKeys,

    /// Wrong API keys per client address before it is throttled.
    #[command(flatten, next_help_heading = "Token commands")]
    pub throttle: ThrottleConfig,

    /// Token commands allowed per API key per minute; 0 turns the limit off.
    #[arg(
        long,
        env = "RATE_LIMIT_PER_MINUTE",
        default_value_t = 100,
        help_heading = "Token commands"
    )]
    pub rate_limit_per_minute: u32,

    /// A user whose redemptions over the last KYC_WINDOW (the new one
    /// included) exceed this many HNV must be KYC-verified.
    #[arg(long, env = "KYC_THRESHOLD_HNV", default_value = "10000", value_parser = parse_hnv,
          help_heading = "Token commands")]
    pub kyc_threshold: Wei,

    /// The rolling window the KYC threshold applies to (`30d`, `720h`, ...):
    /// redemptions split into smaller ones still add up.
    #[arg(long, env = "KYC_WINDOW", default_value = "30d", value_parser = parse_positive_duration,
          help_heading = "Token commands")]
    pub kyc_window: Duration,

    /// The outbox relay.
    #[command(flatten, next_help_heading = "Outbox")]
    pub outbox: OutboxConfig,

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

/// Parses a byte size: `262144`, `256KiB`, `1MiB` (also `KB`/`MB` as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: usize = digits
        .parse()
        .map_err(|_| format!("`{s}` is not a size such as 262144, 256KiB or 1MiB"))?;
    let factor = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1024,
        "m" | "mb" | "mib" => 1024 * 1024,
        _ => return Err(format!("`{s}` has an unknown unit; use KiB or MiB")),
    };
    match n.checked_mul(factor) {
        Some(0) | None => Err(format!("`{s}` must be between 1 byte and a few MiB")),
        Some(size) => Ok(size),
    }
}

/// Parses a whole or decimal number of HNV.
fn parse_hnv(s: &str) -> Result<Wei, String> {
    Wei::parse(s.trim()).map_err(|err| format!("`{s}` is not an amount of HNV: {err}"))
}

haven_common::service_config!(Config);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_and_without_units() {
        assert_eq!(parse_size("262144"), Ok(262_144));
        assert_eq!(parse_size("256KiB"), Ok(262_144));
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert!(parse_size("0").is_err());
        assert!(parse_size("12 parsecs").is_err());
        assert!(parse_size("").is_err());
    }
}
