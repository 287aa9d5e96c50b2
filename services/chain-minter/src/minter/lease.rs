//! Holding a signer of the pool: lease it, build the [`TxSender`] over its
//! nonce manager, publish it to the minter, and lease again if it is lost.

use std::sync::Arc;
use std::time::Duration;

use haven_chain::config::TxConfig;
use haven_chain::nonce::SignerLeases;
use haven_chain::rpc::Rpc;
use haven_chain::sender::{NonceSource, TxSender};
use haven_common::telemetry::ErrorChain;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often a replica tries again while every signer is leased.
const RETRY_EVERY: Duration = Duration::from_secs(1);
/// How often the held signer's nonce gap is sampled.
const GAP_SAMPLE_EVERY: Duration = Duration::from_secs(5);

/// Keeps a leased signer in `slot` until `shutdown`, then releases the lease.
pub async fn hold(
    leases: SignerLeases,
    rpc: Rpc,
    chain_id: u64,
    tx_config: TxConfig,
    slot: watch::Sender<Option<Arc<TxSender>>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    loop {
        let manager = match leases.acquire_wait(RETRY_EVERY, &shutdown).await {
            Ok(Some(manager)) => manager,
            Ok(None) => return,
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "cannot lease a signer; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(RETRY_EVERY * 5) => continue,
                }
            }
        };
        let lost = manager.lost();
        let signer = manager.address();
        let sender = match TxSender::new(
            rpc.clone(),
            NonceSource::Leased(manager),
            chain_id,
            &tx_config,
        ) {
            Ok(sender) => Arc::new(sender),
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "cannot build a sender; retrying");
                tokio::time::sleep(RETRY_EVERY * 5).await;
                continue;
            }
        };
        tracing::info!(%signer, "signer leased; sending");
        slot.send_replace(Some(sender.clone()));
        tokio::select! {
            () = shutdown.cancelled() => {
                slot.send_replace(None);
                release(sender).await;
                return;
            }
            () = lost.cancelled() => {
                tracing::warn!(%signer, "signer lease lost; leasing again");
                slot.send_replace(None);
            }
            () = watch_nonce_gap(&sender, &metrics) => {}
        }
        metrics.nonce_gap(0);
    }
}

/// Samples the held signer's nonce gap for ever: the nonce the manager will
/// use next against the node's pending count. A gap that stays above 0
/// means a nonce was reserved and never reached the node; the manager
/// re-reads the pending count after any unknown send outcome, so a gap
/// that persists is worth an alert.
async fn watch_nonce_gap(sender: &TxSender, metrics: &Metrics) {
    let NonceSource::Leased(manager) = sender.nonces() else {
        return std::future::pending().await;
    };
    let mut ticks = tokio::time::interval(GAP_SAMPLE_EVERY);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let Some(next) = manager.next_nonce() else {
            continue;
        };
        match sender.rpc().pending_nonce(sender.address()).await {
            Ok(pending) => {
                let gap = next.saturating_sub(pending);
                if gap > 0 {
                    tracing::debug!(signer = %sender.address(), next, pending, "nonce gap");
                }
                metrics.nonce_gap(gap);
            }
            Err(err) => tracing::debug!(error = %ErrorChain(&err), "cannot sample the nonce gap"),
        }
    }
}

/// Gives the lease back once no batch uses the sender any more (waits a
/// little for in-flight work to drop its handle; the lease expires anyway).
async fn release(mut sender: Arc<TxSender>) {
    for _ in 0..50 {
        match Arc::try_unwrap(sender) {
            Ok(owned) => {
                if let NonceSource::Leased(manager) = owned.into_nonces()
                    && let Err(err) = manager.release().await
                {
                    tracing::warn!(error = %ErrorChain(&err), "could not release the signer lease; it will expire");
                }
                return;
            }
            Err(shared) => sender = shared,
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tracing::info!("signer still in use at shutdown; its lease will expire");
}
