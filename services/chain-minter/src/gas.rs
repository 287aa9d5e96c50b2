//! The signers' gas money: every pool signer's ETH balance, read every
//! `SIGNER_BALANCE_CHECK_INTERVAL` and exported as
//! `haven_chain_signer_balance_eth{signer}` next to the threshold
//! `SIGNER_MIN_BALANCE_ETH` (`haven_chain_signer_balance_min_eth`). Minting
//! stops when the leased signer cannot pay for gas, so the alert
//! `HavenSignerBalanceLow` fires before that, while a top-up is still a
//! routine task.
//!
//! Every signer of the pool is read, not only the one this replica leases:
//! another replica may lease any of them next. The comparison with the
//! threshold is exact (wei); the gauge's ETH figure is for people and
//! dashboards only.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use haven_chain::rpc::Rpc;
use haven_common::money::Wei;
use haven_common::shutdown::{CancellationToken, every};
use haven_common::telemetry::ErrorChain;

use crate::metrics::Metrics;

/// What the balance watcher needs.
#[derive(Debug, Clone)]
pub struct GasWatch {
    /// The chain.
    pub rpc: Rpc,
    /// Every signer of the pool.
    pub signers: Vec<Address>,
    /// The threshold, in wei (ETH has HNV's 18 decimals, so [`Wei`]'s
    /// exact decimal parsing serves).
    pub min_balance: Wei,
    /// How often the balances are read.
    pub interval: Duration,
    /// This service's instruments.
    pub metrics: Metrics,
}

impl GasWatch {
    /// Reads the balances every interval until `stop` is cancelled.
    pub async fn run(self, stop: CancellationToken) {
        self.metrics.signer_min_balance(self.min_balance.as_wei());
        // Whether each signer was low at the last read: a change is logged once.
        let low: Vec<AtomicBool> = self
            .signers
            .iter()
            .map(|_| AtomicBool::new(false))
            .collect();
        let (low, watch) = (&low, &self);
        every(self.interval, &stop, || async move {
            for (signer, was_low) in watch.signers.iter().zip(low) {
                match watch.once(*signer).await {
                    Ok(is_low) => {
                        let was = was_low.swap(is_low, Ordering::Relaxed);
                        if is_low && !was {
                            tracing::warn!(%signer, min_eth = %watch.min_balance, "signer is low on gas money: top it up before minting stops");
                        } else if !is_low && was {
                            tracing::info!(%signer, "signer's gas money is above the threshold again");
                        }
                    }
                    Err(err) => {
                        tracing::debug!(%signer, error = %ErrorChain(&err), "could not read the signer's balance; next interval")
                    }
                }
            }
        })
        .await;
    }

    /// Reads one signer's balance, sets its gauge; `true` when below the threshold.
    pub async fn once(&self, signer: Address) -> Result<bool, haven_chain::error::ChainError> {
        let balance = self.rpc.balance(signer).await?;
        self.metrics.signer_balance(signer, balance);
        Ok(balance < U256::from(self.min_balance.as_wei()))
    }
}
