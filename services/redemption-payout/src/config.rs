//! Settings of redemption-payout: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, Redacted, TelemetryConfig, parse_duration, secret,
};
use haven_common::money::Wei;
use haven_outbox::OutboxConfig;

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8084;

/// Reserves, burns and pays out redemptions.
///
/// Consumes redemption requests and chain events: has the reserved tokens
/// burned on chain, then pays out 98% in fiat through the payout provider,
/// refunding the user with a mint when the provider refuses for good.
/// A worker: its HTTP port serves only /health and /metrics.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "redemption-payout", version)]
pub struct Config {
    /// Where to listen for HTTP.
    #[command(flatten, next_help_heading = "HTTP")]
    pub http: HttpConfig,

    /// The database holding users, redemptions, token transactions and the ledger.
    #[command(flatten, next_help_heading = "Database")]
    pub database: DatabaseConfig,

    /// The RabbitMQ broker and its namespace.
    #[command(flatten, next_help_heading = "Broker")]
    pub amqp: AmqpConfig,

    /// Log format and filter.
    #[command(flatten, next_help_heading = "Logging")]
    pub telemetry: TelemetryConfig,

    /// The outbox relay that publishes the burn and refund requests.
    #[command(flatten, next_help_heading = "Outbox")]
    pub outbox: OutboxConfig,

    /// The payout provider and its client.
    #[command(flatten, next_help_heading = "Payout provider")]
    pub provider: ProviderConfig,

    /// A user who is not KYC-verified may redeem at most this many HNV
    /// within KYC_WINDOW (checked again here before the burn: KYC may have
    /// been revoked since webhook-ingress accepted the redemption).
    #[arg(long, env = "KYC_THRESHOLD_HNV", default_value = "10000", value_parser = parse_hnv,
          help_heading = "Redemptions")]
    pub kyc_threshold: Wei,

    /// The rolling window of the KYC threshold, as webhook-ingress's.
    #[arg(long, env = "KYC_WINDOW", default_value = "30d", value_parser = parse_positive_duration,
          help_heading = "Redemptions")]
    pub kyc_window: Duration,

    /// How often the recovery sweep resumes redemptions whose last change is
    /// older than `--redemption-stale-after` (and polls pending payouts).
    #[arg(long, env = "REDEMPTION_SWEEP_INTERVAL", default_value = "10s",
          value_parser = parse_positive_duration, help_heading = "Redemptions")]
    pub redemption_sweep_interval: Duration,

    /// How long a redemption may sit in a state before the sweep resumes it
    /// (its message is normally handled well before).
    #[arg(long, env = "REDEMPTION_STALE_AFTER", default_value = "30s",
          value_parser = parse_duration, help_heading = "Redemptions")]
    pub redemption_stale_after: Duration,

    /// How long shutdown waits for in-flight requests and work before it stops anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,
}

impl Config {
    /// The address to listen on: `--http-host` and `--port`, or port 8084.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }
}

/// Where the payout provider is, how to authenticate, and how patiently to
/// talk to it (see `docs/payout-provider.md` for the contract).
#[derive(clap::Args, Debug, Clone)]
pub struct ProviderConfig {
    /// Base URL of the payout provider (`POST {base}/payouts`,
    /// `GET {base}/payouts/{id}`). Never logged: it may carry credentials.
    #[arg(long, env = "PAYOUT_PROVIDER_URL", value_parser = secret(parse_base_url), hide_env_values = true)]
    pub payout_provider_url: Redacted<reqwest::Url>,

    /// API token sent as `Authorization: Bearer <token>`; none when unset.
    #[arg(long, env = "PAYOUT_PROVIDER_TOKEN", hide_env_values = true)]
    pub payout_provider_token: Option<Redacted<String>>,

    /// Timeout of one request to the provider, connection included.
    #[arg(long, env = "PAYOUT_PROVIDER_TIMEOUT", default_value = "10s",
          value_parser = parse_positive_duration)]
    pub payout_provider_timeout: Duration,

    /// Timeout of establishing a connection to the provider.
    #[arg(long, env = "PAYOUT_PROVIDER_CONNECT_TIMEOUT", default_value = "3s",
          value_parser = parse_positive_duration)]
    pub payout_provider_connect_timeout: Duration,

    /// Immediate retries of a request that timed out, could not connect or
    /// got a 5xx (or 408/409/425/429), with the same idempotency key; the
    /// redemption is retried later when they are used up.
    #[arg(long, env = "PAYOUT_PROVIDER_RETRIES", default_value_t = 3,
          value_parser = clap::value_parser!(u32).range(0..=20))]
    pub payout_provider_retries: u32,

    /// Delay before the first immediate retry; doubles (with jitter) up to 5 s.
    #[arg(long, env = "PAYOUT_PROVIDER_RETRY_DELAY", default_value = "250ms",
          value_parser = parse_duration)]
    pub payout_provider_retry_delay: Duration,

    /// ISO 4217 code of the currency payouts are made in (two decimals).
    #[arg(long, env = "PAYOUT_CURRENCY", default_value = "CAD", value_parser = parse_currency)]
    pub payout_currency: String,

    /// Value of one HNV in the payout currency (exact decimal): a payout of
    /// 196 HNV at 0.10 is 19.60, rounded down to the cent.
    #[arg(long, env = "HNV_REFERENCE_VALUE", default_value = "0.10", value_parser = parse_rate)]
    pub hnv_reference_value: Wei,
}

/// Parses a whole or decimal number of HNV.
fn parse_hnv(s: &str) -> Result<Wei, String> {
    Wei::parse(s.trim()).map_err(|err| format!("`{s}` is not an amount of HNV: {err}"))
}

/// A reference value: an exact positive decimal.
fn parse_rate(s: &str) -> Result<Wei, String> {
    let rate = Wei::parse(s.trim()).map_err(|err| format!("`{s}` is not a decimal: {err}"))?;
    if rate.is_zero() {
        return Err(format!("`{s}` must be above zero"));
    }
    Ok(rate)
}

fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(duration)
}

/// An `http(s)` URL without a query or fragment (paths are appended to it).
fn parse_base_url(s: &str) -> Result<Redacted<reqwest::Url>, String> {
    let url = reqwest::Url::parse(s.trim()).map_err(|err| format!("not a URL: {err}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err("must be an http:// or https:// URL with a host".to_owned());
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("must not have a query or a fragment".to_owned());
    }
    Ok(Redacted::new(url))
}

/// Three upper-case letters.
fn parse_currency(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.len() == 3 && s.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(s.to_owned())
    } else {
        Err(format!(
            "`{s}` is not an ISO 4217 currency code such as CAD"
        ))
    }
}

haven_common::service_config!(Config);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_urls_must_be_http_without_query() {
        assert!(parse_base_url("https://payouts.example.com/v1").is_ok());
        assert!(parse_base_url("http://127.0.0.1:8090").is_ok());
        assert!(parse_base_url("ftp://example.com").is_err());
        assert!(parse_base_url("https://example.com/?token=x").is_err());
        assert!(parse_base_url("not a url").is_err());
        // The message never repeats the URL (it may hold a token).
        let err = parse_base_url("https://user:secret@example.com/?q=1").unwrap_err();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn currencies_and_rates_are_checked() {
        assert_eq!(parse_currency("CAD"), Ok("CAD".to_owned()));
        assert!(parse_currency("cad").is_err());
        assert!(parse_currency("CADX").is_err());
        assert_eq!(
            parse_rate("0.10"),
            Ok(Wei::from_wei(100_000_000_000_000_000))
        );
        assert!(parse_rate("0").is_err());
        assert!(parse_rate("-1").is_err());
        assert!(parse_rate("abc").is_err());
    }
}
