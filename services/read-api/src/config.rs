//! Settings of read-api: one flag per setting, each with an environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use alloy::primitives::Address;
use haven_chain::config::RpcConfig;
use haven_common::auth::{ApiKeys, ThrottleConfig};
use haven_common::config::{
    DatabaseConfig, HttpConfig, Redacted, TelemetryConfig, parse_duration, secret,
};

/// Port when neither `--port` nor `PORT` is set.
pub const DEFAULT_PORT: u16 = 8081;

/// Serves balances, statistics and transaction histories from the database.
///
/// The read side of HAVEN: balances, per-user analytics, token statistics and
/// transaction histories, read from the database (never the broker). With
/// RPC_URL and CONTRACT_ADDRESS it also reports the contract's figures next
/// to the database's and reconciles the two. Serves /health, /metrics,
/// /openapi.json and /docs on the same port.
///
/// `read-api reconcile` runs one reconciliation, prints its JSON report and
/// exits: 0 when chain and ledger agree, 2 when they do not, 1 on an error.
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

    /// API keys of the read routes, comma-separated (several for rotation).
    /// When set, every data route needs `X-API-Key`; unset, reads are open
    /// (the development default). Set it in production: answers carry
    /// emails and KYC status.
    #[arg(long, env = "READ_API_KEYS", value_parser = secret(ApiKeys::parse),
          hide_env_values = true, help_heading = "Access")]
    pub read_api_keys: Option<ApiKeys>,

    /// Wrong API keys per client address before it is throttled.
    #[command(flatten, next_help_heading = "Access")]
    pub throttle: ThrottleConfig,

    /// JSON-RPC endpoint of the chain. With CONTRACT_ADDRESS, token-stats
    /// reports the contract's figures and reconciliation runs; without, the
    /// service serves the database alone. Never logged.
    #[arg(long, env = "RPC_URL", hide_env_values = true, help_heading = "Chain")]
    pub rpc_url: Option<Redacted<String>>,

    /// Address of the deployed HAVEN contract (read only when RPC_URL is set too).
    #[arg(long, env = "CONTRACT_ADDRESS", help_heading = "Chain")]
    pub contract_address: Option<Address>,

    /// Longest time one chain call may take. Reads are not retried within a
    /// request: token-stats answers with the database figures instead.
    #[arg(long, env = "RPC_TIMEOUT", default_value = "2s", value_parser = parse_duration,
          help_heading = "Chain")]
    pub rpc_timeout: Duration,

    /// How long a token-stats answer (database totals and chain figures,
    /// or the chain's failure) is served from memory before it is read again.
    /// `0s` reads on every request.
    #[arg(long, env = "STATS_CACHE_TTL", default_value = "5s", value_parser = parse_duration,
          help_heading = "Chain")]
    pub stats_cache_ttl: Duration,

    /// How often the ledger is reconciled with the chain in the background
    /// (each user's balance against `balanceOf`, the totals against the
    /// contract's). `0s` turns the periodic run off; `read-api reconcile`
    /// still runs one on demand. Needs RPC_URL and CONTRACT_ADDRESS.
    #[arg(long, env = "RECONCILE_INTERVAL", default_value = "15m", value_parser = parse_duration,
          help_heading = "Reconciliation")]
    pub reconcile_interval: Duration,

    /// `balanceOf` calls a reconciliation keeps in flight at once.
    #[arg(long, env = "RECONCILE_CONCURRENCY", default_value_t = 16,
          value_parser = clap::value_parser!(u16).range(1..=1024), help_heading = "Reconciliation")]
    pub reconcile_concurrency: u16,

    /// How long shutdown waits for in-flight requests and work before it stops anyway.
    #[arg(long, env = "SHUTDOWN_GRACE_PERIOD", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_grace_period: Duration,

    /// What to do: serve HTTP (no subcommand) or run one reconciliation.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-off commands instead of serving HTTP.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Compares every user's ledger balance with `balanceOf` on chain and the
    /// ledger's totals with the contract's, prints the JSON report and exits
    /// (0: all agree, 2: mismatches, 1: could not run). Fixes nothing.
    Reconcile {
        /// Write the JSON report to this file instead of standard output.
        #[arg(long, env = "RECONCILE_OUTPUT")]
        output: Option<PathBuf>,
    },
}

impl Config {
    /// The address to listen on: `--http-host` and `--port`, or port 8081.
    pub fn listen_addr(&self) -> SocketAddr {
        self.http.addr(DEFAULT_PORT)
    }

    /// The RPC settings and the contract, when both RPC_URL and
    /// CONTRACT_ADDRESS are set.
    pub fn chain(&self) -> Option<(RpcConfig, Address)> {
        let rpc = RpcConfig {
            rpc_url: self.rpc_url.clone()?,
            // Views only: nothing is signed, so the chain id is not checked.
            chain_id: 0,
            rpc_timeout: self.rpc_timeout,
            // A read that fails is answered without the chain (token-stats)
            // or reported (reconciliation), never retried in a loop here.
            rpc_retries: 0,
            poll_interval: Duration::from_secs(1),
        };
        Some((rpc, self.contract_address?))
    }
}

haven_common::service_config!(Config);
