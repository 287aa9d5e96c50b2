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

/// How often a replica tries again while every signer is leased.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// Keeps a leased signer in `slot` until `shutdown`, then releases the lease.
pub async fn hold(
    leases: SignerLeases,
    rpc: Rpc,
    chain_id: u64,
    tx_config: TxConfig,
    slot: watch::Sender<Option<Arc<TxSender>>>,
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
