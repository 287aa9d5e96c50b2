//! Settings of reward-calculator: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy_primitives::Address;
use haven_chain::signer::CustodyAddresses;
use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, Redacted, TelemetryConfig, parse_duration, secret,
};
use haven_common::money::Wei;

use crate::emission::EmissionPeriod;

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8082;

/// Turns partner events into rewards and mint requests.
///
/// Consumes partner events, applies the reward rules, creates HAVEN users and
/// their custodial wallets on first sight, and publishes mint requests. A worker:
/// its HTTP port serves only /health and /metrics.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "reward-calculator", version)]
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

    /// Extended public key (`xpub...`) of `m/44'/60'/0'/0` of the custody
    /// mnemonic: user wallet `i` is its public child `i`
    /// (`users.derivation_index`). No key: the mnemonic stays offline, where
    /// a recovery needs it (`haven-custody-xpub` prints this value from it).
    /// Kept like a secret: it links every user wallet to HAVEN.
    #[arg(
        long,
        env = "CUSTODY_XPUB",
        hide_env_values = true,
        value_parser = secret(CustodyAddresses::parse),
        help_heading = "Wallets"
    )]
    pub custody_xpub: CustodyAddresses,

    /// TOML rules file (see `services/reward-calculator/rules/default.toml`);
    /// without it, the shipped defaults of SPEC.md apply. Checked at start.
    #[arg(long, env = "REWARD_RULES_FILE", help_heading = "Rewards")]
    pub reward_rules_file: Option<PathBuf>,

    /// Length of a staking interest period: every completed one since a stake
    /// started pays amount x yearly_rate / periods_per_year.
    #[arg(long, env = "STAKING_ACCRUAL_PERIOD", default_value = "168h",
          value_parser = parse_positive_duration, help_heading = "Rewards")]
    pub staking_accrual_period: Duration,

    /// How often the periodic job pays due staking interest, releases held
    /// rewards into the current period's budget and refreshes the held gauges.
    #[arg(long, env = "REWARD_JOBS_INTERVAL", default_value = "30s",
          value_parser = parse_positive_duration, help_heading = "Rewards")]
    pub reward_jobs_interval: Duration,

    /// Most HNV granted per emission period when the contract sets no monthly
    /// target (or is not configured); unset means no limit. Rewards beyond
    /// the budget are held until a later period has room.
    #[arg(long, env = "MONTHLY_EMISSION_TARGET_HNV", value_parser = parse_hnv,
          help_heading = "Emission")]
    pub monthly_emission_target_hnv: Option<Wei>,

    /// Length of an emission budget period: `month` (calendar months, UTC),
    /// or a duration such as `10s` (periods aligned on the Unix epoch; for tests).
    #[arg(long, env = "EMISSION_PERIOD", default_value = "month",
          value_parser = EmissionPeriod::parse, help_heading = "Emission")]
    pub emission_period: EmissionPeriod,

    /// JSON-RPC endpoint of the chain. With CONTRACT_ADDRESS, the budget is the
    /// contract's `monthlyMintTarget()` when it is non-zero. Never logged.
    #[arg(
        long,
        env = "RPC_URL",
        hide_env_values = true,
        help_heading = "Emission"
    )]
    pub rpc_url: Option<Redacted<String>>,

    /// Address of the HAVEN contract whose `monthlyMintTarget()` is the
    /// emission budget (read only when RPC_URL is set too).
    #[arg(long, env = "CONTRACT_ADDRESS", help_heading = "Emission")]
    pub contract_address: Option<Address>,

    /// How often the contract's monthly target is read again.
    #[arg(long, env = "EMISSION_TARGET_REFRESH", default_value = "5m",
          value_parser = parse_positive_duration, help_heading = "Emission")]
    pub emission_target_refresh: Duration,

    /// The outbox relay.
    #[command(flatten, next_help_heading = "Outbox")]
    pub outbox: haven_outbox::OutboxConfig,

    /// How long shutdown waits for in-flight requests and work before it stops anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,
}

impl Config {
    /// The address to listen on: `--http-host` and `--port`, or port 8082.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }

    /// The RPC URL and contract to read the monthly target from, when both are set.
    pub fn emission_contract(&self) -> Option<(&Redacted<String>, Address)> {
        Some((self.rpc_url.as_ref()?, self.contract_address?))
    }
}

/// A duration above zero: a zero period would pay or poll without end.
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let duration = parse_duration(s)?;
    if duration.is_zero() {
        return Err(format!("`{s}` must be longer than zero"));
    }
    Ok(duration)
}

/// A whole or decimal number of HNV.
fn parse_hnv(s: &str) -> Result<Wei, String> {
    Wei::parse(s.trim()).map_err(|err| format!("`{s}` is not an amount of HNV: {err}"))
}

haven_common::service_config!(Config);
