//! Settings of chain-minter: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::time::Duration;

use haven_chain::config::ChainConfig;
use haven_common::config::{
    AmqpConfig, DatabaseConfig, HttpConfig, TelemetryConfig, parse_duration,
};
use haven_common::money::Wei;

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8083;

/// Sends mint and burn transactions to the chain and confirms them.
///
/// Consumes chain requests, signs and sends mint and burn transactions with a
/// unique on-chain reference each (so a retry can never mint twice), and records
/// their confirmation. A worker: its HTTP port serves only /health and /metrics.
#[derive(clap::Parser, Debug, Clone)]
#[command(name = "chain-minter", version, args_override_self = true)]
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

    /// The chain, the contract and the signer pool.
    #[command(flatten, next_help_heading = "Chain")]
    pub chain: ChainConfig,

    /// Batching and concurrency of the mints.
    #[command(flatten, next_help_heading = "Minting")]
    pub minting: MintingConfig,

    /// When a confirmed transaction is final.
    #[command(flatten, next_help_heading = "Finality")]
    pub finality: FinalityConfig,

    /// The sweep of token transactions left unfinished.
    #[command(flatten, next_help_heading = "Stuck transactions")]
    pub sweep: SweepConfig,

    /// The signers' gas money.
    #[command(flatten, next_help_heading = "Signer balances")]
    pub gas: GasConfig,

    /// The outbox relay (confirmed and failed events).
    #[command(flatten, next_help_heading = "Outbox")]
    pub outbox: haven_outbox::OutboxConfig,

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

/// How mints are coalesced and how many transactions are in flight.
#[derive(clap::Args, Debug, Clone)]
pub struct MintingConfig {
    /// Most recipients in one `batchMintWithRefs` (the contract allows 100).
    #[arg(long, env = "MINT_BATCH_SIZE", default_value_t = 100,
          value_parser = clap::value_parser!(u16).range(1..=100))]
    pub batch_size: u16,

    /// Longest a mint waits for others to share its batch.
    #[arg(long, env = "MINT_BATCH_MAX_WAIT", default_value = "200ms", value_parser = parse_duration)]
    pub batch_max_wait: Duration,

    /// Most transactions sent and not yet confirmed at once.
    #[arg(long, env = "MAX_IN_FLIGHT_TXS", default_value_t = 64,
          value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_in_flight: u32,

    /// Chain requests taken from the queue at once (unacked until confirmed):
    /// enough to fill the in-flight batches.
    #[arg(long, env = "CHAIN_REQUEST_PREFETCH", default_value_t = 2000,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub request_prefetch: u16,

    /// Times a chain request is handled (first delivery included) before it
    /// is dead-lettered; the stuck-transaction sweep drives its row again
    /// later (see `TX_STALE_AFTER`).
    #[arg(long, env = "CHAIN_REQUEST_MAX_ATTEMPTS", default_value_t = 40,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub request_max_attempts: u32,
}

/// Finality: a confirmed transaction is watched until it is buried deep
/// enough that a reorganisation cannot remove it; one that vanished is sent
/// again (same reference).
#[derive(clap::Args, Debug, Clone)]
pub struct FinalityConfig {
    /// Blocks above a confirmed transaction's block before it is final (a
    /// payout waits for its burn to be final). 0: final when confirmed.
    /// Production on Ethereum mainnet: about 64 (the `finalized` block).
    #[arg(long, env = "CHAIN_FINALITY_DEPTH", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub finality_depth: u64,

    /// How often confirmed, not yet final transactions are checked against
    /// the chain.
    #[arg(long, env = "FINALITY_CHECK_INTERVAL", default_value = "2s", value_parser = parse_duration)]
    pub finality_check_interval: Duration,
}

/// The stuck-transaction sweep: token transactions left `pending` or
/// `submitted` with no message to drive them (dead-lettered, lost).
#[derive(clap::Args, Debug, Clone)]
pub struct SweepConfig {
    /// How often the sweep looks for stuck token transactions.
    #[arg(long, env = "TX_SWEEP_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub tx_sweep_interval: Duration,

    /// How long a token transaction may stay unfinished and unchanged
    /// before the sweep queues its request again (same reference: the
    /// contract keeps it once). Longer than a request's slowest retry.
    #[arg(long, env = "TX_STALE_AFTER", default_value = "30m", value_parser = parse_duration)]
    pub tx_stale_after: Duration,

    /// How long after it was recorded the sweep stops driving a token
    /// transaction; it is then counted in `haven_chain_transactions_stuck`
    /// for an operator.
    #[arg(long, env = "TX_GIVE_UP_AFTER", default_value = "24h", value_parser = parse_duration)]
    pub tx_give_up_after: Duration,
}

/// The signers' ETH: every signer pays gas for what it sends, and minting
/// stops when the leased signer's runs out.
#[derive(clap::Args, Debug, Clone)]
pub struct GasConfig {
    /// Balance, in ETH (an exact decimal), under which a signer counts as
    /// low on gas: the service logs a warning and the
    /// `HavenSignerBalanceLow` alert fires. Set it to a few hours of
    /// sending at the chain's usual fees.
    #[arg(long, env = "SIGNER_MIN_BALANCE_ETH", default_value = "0.05", value_parser = parse_eth)]
    pub signer_min_balance_eth: Wei,

    /// How often every pool signer's ETH balance is read.
    #[arg(long, env = "SIGNER_BALANCE_CHECK_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub signer_balance_check_interval: Duration,
}

/// A whole or decimal number of ETH, exact to the wei.
fn parse_eth(s: &str) -> Result<Wei, String> {
    Wei::parse(s.trim()).map_err(|err| format!("`{s}` is not an amount of ETH: {err}"))
}

haven_common::service_config!(Config);
