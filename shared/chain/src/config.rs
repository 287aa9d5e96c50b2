//! The chain config fragment every service that talks to the chain flattens
//! into its own clap struct.
//!
//! Keys, mnemonics and the RPC URL (which often carries a provider API key)
//! are [`Redacted`]: `Debug` never prints them and clap never shows their
//! environment value in `--help` (`hide_env_values`).

use std::time::Duration;

use alloy::primitives::Address;
use haven_common::config::{Redacted, parse_duration};

/// Where the chain is and how to reach it.
#[derive(clap::Args, Debug, Clone)]
pub struct RpcConfig {
    /// JSON-RPC endpoint of the chain node (http or https). Never logged: it
    /// often carries a provider API key.
    #[arg(
        long,
        env = "RPC_URL",
        default_value = "http://127.0.0.1:8545",
        hide_env_values = true
    )]
    pub rpc_url: Redacted<String>,

    /// EIP-155 chain id the RPC endpoint must serve (31337 for a local anvil).
    /// A mismatch is a startup error: signing for the wrong chain must never happen.
    #[arg(long, env = "CHAIN_ID", default_value_t = 31337)]
    pub chain_id: u64,

    /// Longest time one RPC call may take before it counts as a transport
    /// failure (and is retried).
    #[arg(long, env = "RPC_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub rpc_timeout: Duration,

    /// How many times a failed RPC call is retried on transport errors
    /// (never on reverts) before the error is returned.
    #[arg(long, env = "RPC_RETRIES", default_value_t = 3)]
    pub rpc_retries: usize,

    /// How often to poll for new blocks and receipts.
    #[arg(long, env = "CHAIN_POLL_INTERVAL", default_value = "1s", value_parser = parse_duration)]
    pub poll_interval: Duration,
}

/// The transaction signers: a pool of keys, given directly or derived from a mnemonic.
#[derive(clap::Args, Debug, Clone)]
pub struct SignerConfig {
    /// Comma-separated hex private keys of the signer pool (MINTER and BURNER
    /// on the contract). Each chain-minter replica leases one of them.
    #[arg(
        long,
        env = "SIGNER_PRIVATE_KEYS",
        hide_env_values = true,
        conflicts_with = "signer_mnemonic"
    )]
    pub signer_private_keys: Option<Redacted<String>>,

    /// BIP-39 mnemonic the signer pool is derived from (`m/44'/60'/0'/0/{i}`
    /// for i in 0..SIGNER_COUNT), instead of SIGNER_PRIVATE_KEYS.
    #[arg(long, env = "SIGNER_MNEMONIC", hide_env_values = true)]
    pub signer_mnemonic: Option<Redacted<String>>,

    /// Number of pool signers derived from SIGNER_MNEMONIC.
    #[arg(long, env = "SIGNER_COUNT", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub signer_count: u32,
}

/// Fees, replacement and confirmation settings of sent transactions.
#[derive(clap::Args, Debug, Clone)]
pub struct TxConfig {
    /// Blocks a transaction must be buried under (1 = included) before it
    /// counts as confirmed.
    #[arg(long, env = "CHAIN_CONFIRMATIONS", default_value_t = 1,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub confirmations: u64,

    /// Highest `maxFeePerGas` ever offered, in wei (default 200 gwei). Above
    /// it nothing is sent and no stuck transaction is bumped further.
    #[arg(long, env = "MAX_FEE_PER_GAS", default_value_t = 200_000_000_000)]
    pub max_fee_per_gas: u128,

    /// Highest priority fee (tip) ever offered, in wei (default 20 gwei).
    #[arg(
        long,
        env = "MAX_PRIORITY_FEE_PER_GAS",
        default_value_t = 20_000_000_000
    )]
    pub max_priority_fee_per_gas: u128,

    /// Lowest priority fee offered, in wei (default 1 gwei), for when recent
    /// blocks paid no tips at all.
    #[arg(
        long,
        env = "MIN_PRIORITY_FEE_PER_GAS",
        default_value_t = 1_000_000_000
    )]
    pub min_priority_fee_per_gas: u128,

    /// A transaction not mined this many blocks after it was sent is
    /// replaced with fees raised by at least 12.5%.
    #[arg(long, env = "STUCK_AFTER_BLOCKS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stuck_after_blocks: u64,

    /// How long a signer lease lasts without renewal. A replica that stops
    /// renewing stops sending well before this, and another replica takes the
    /// signer over after it.
    #[arg(long, env = "SIGNER_LEASE_TTL", default_value = "30s", value_parser = parse_duration)]
    pub lease_ttl: Duration,
}

/// Everything a service needs to talk to the HAVEN contract.
#[derive(clap::Args, Debug, Clone)]
pub struct ChainConfig {
    /// RPC endpoint and chain.
    #[command(flatten)]
    pub rpc: RpcConfig,

    /// Address of the deployed HAVEN contract (printed by `haven-deploy`).
    #[arg(long, env = "CONTRACT_ADDRESS")]
    pub contract_address: Address,

    /// The signer pool.
    #[command(flatten)]
    pub signers: SignerConfig,

    /// Fees, replacement and confirmations.
    #[command(flatten)]
    pub tx: TxConfig,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        chain: ChainConfig,
    }

    #[test]
    fn secrets_never_appear_in_debug_output() {
        let cli = Cli::try_parse_from([
            "x",
            "--contract-address",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "--rpc-url",
            "https://mainnet.example/v3/apikey123",
            "--signer-private-keys",
            "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
        ])
        .unwrap();
        let debug = format!("{cli:?}");
        assert!(!debug.contains("apikey123"), "{debug}");
        assert!(!debug.contains("ac0974"), "{debug}");
        assert_eq!(cli.chain.rpc.chain_id, 31337);
        assert_eq!(cli.chain.tx.confirmations, 1);
    }

    #[test]
    fn keys_and_mnemonic_are_mutually_exclusive() {
        let err = Cli::try_parse_from([
            "x",
            "--contract-address",
            "0x5FbDB2315678afecb367f032d93F642f64180aa3",
            "--signer-private-keys",
            "0x01",
            "--signer-mnemonic",
            "a b c",
        ])
        .unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn a_malformed_contract_address_is_refused_by_the_parser() {
        let err = Cli::try_parse_from(["x", "--contract-address", "0x1234"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
    }
}
