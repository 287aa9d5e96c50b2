//! The command line of each service in the test pipeline, written once:
//! [`crate::Pipeline`] parses them into each service's `Config` and runs the
//! service in-process; the fault matrix (`load-tests`' `chaos`) runs the
//! same command lines as processes. Each starts with the program's name.
//!
//! `deps` is what [`haven_common::testing::app::TestDeps::args`] gives:
//! the database, the broker and the namespace.

use std::fmt::Display;

use chain_minter::testing::chain_args;

use crate::{API_KEY, AURORA_SECRET, PAYOUT_PROVIDER_TOKEN, SIGNER, TRIBE_SECRET};

fn program(name: &str, deps: &[String], settings: &[&str]) -> Vec<String> {
    std::iter::once(name.to_owned())
        .chain(deps.iter().cloned())
        .chain(settings.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// webhook-ingress: both partners' secrets, the operators' API key, no rate limit.
pub fn webhook_ingress(deps: &[String]) -> Vec<String> {
    program(
        "webhook-ingress",
        deps,
        &[
            "--aurora-webhook-secret",
            AURORA_SECRET,
            "--tribe-webhook-secret",
            TRIBE_SECRET,
            "--api-keys",
            API_KEY,
            "--rate-limit-per-minute",
            "0",
            "--outbox-poll-interval",
            "200ms",
        ],
    )
}

/// reward-calculator: the dev custody key's public half.
pub fn reward_calculator(deps: &[String]) -> Vec<String> {
    program(
        "reward-calculator",
        deps,
        &[
            "--custody-xpub",
            &haven_chain::testing::dev_custody_xpub(),
            "--outbox-poll-interval",
            "200ms",
        ],
    )
}

/// chain-minter on `rpc_url`, signing with dev account [`SIGNER`];
/// `extra` comes last and overrides (e.g. `["--finality-depth", "3"]`).
pub fn chain_minter(
    deps: &[String],
    rpc_url: &str,
    contract: impl Display,
    extra: &[&str],
) -> Vec<String> {
    let mut args = program("chain-minter", deps, &[]);
    args.extend(chain_args(rpc_url, contract, &[SIGNER]));
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}

/// redemption-payout paying through the stand-in at `provider_url`, its
/// sweep quick enough for a test.
pub fn redemption_payout(deps: &[String], provider_url: &str) -> Vec<String> {
    program(
        "redemption-payout",
        deps,
        &[
            "--payout-provider-url",
            provider_url,
            "--payout-provider-token",
            PAYOUT_PROVIDER_TOKEN,
            "--payout-provider-retry-delay",
            "50ms",
            "--outbox-poll-interval",
            "200ms",
            "--redemption-sweep-interval",
            "1s",
            "--redemption-stale-after",
            "5s",
        ],
    )
}

/// read-api on the database (`database_args`: no broker) and the chain;
/// `extra` e.g. `["--reconcile-interval", "1s"]`.
pub fn read_api(
    database_args: &[String],
    rpc_url: &str,
    contract: impl Display,
    extra: &[&str],
) -> Vec<String> {
    let contract = contract.to_string();
    let mut args = program(
        "read-api",
        database_args,
        &["--rpc-url", rpc_url, "--contract-address", &contract],
    );
    args.extend(extra.iter().map(|s| (*s).to_owned()));
    args
}
