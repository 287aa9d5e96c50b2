//! For tests of chain-minter and of the services that run it beside them
//! (feature `test-util`): the chain settings every such test passes, written
//! once.

use std::fmt::Display;

use haven_chain::testing::dev_key;

/// The chain settings of a chain-minter that test code starts: the node at
/// `rpc_url` (anvil's chain id), the contract at `contract`, the pool of
/// anvil's dev accounts `signers`, and receipts polled every 100 ms so tests
/// do not wait on the production default.
pub fn chain_args(rpc_url: &str, contract: impl Display, signers: &[u32]) -> Vec<String> {
    let keys = signers
        .iter()
        .map(|i| format!("0x{}", hex::encode(dev_key(*i).to_bytes())))
        .collect::<Vec<_>>()
        .join(",");
    [
        "--rpc-url",
        rpc_url,
        "--chain-id",
        "31337",
        "--contract-address",
        &contract.to_string(),
        "--signer-private-keys",
        &keys,
        "--poll-interval",
        "100ms",
        // Test chains mine only when sent something: nothing would ever be
        // buried. A test of finality passes its own depth after these
        // (a later flag overrides an earlier one).
        "--finality-depth",
        "0",
    ]
    .map(str::to_owned)
    .to_vec()
}
