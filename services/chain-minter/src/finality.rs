//! The finality watcher: a transaction recorded `confirmed` is watched until
//! it is buried under `CHAIN_FINALITY_DEPTH` blocks, then marked final
//! (`final_at`). A redemption's payout follows only a final burn, so the
//! watcher announces a burn's confirmation again once it is final.
//!
//! A confirmed transaction a reorganisation removed (no receipt any more,
//! and its reference used by no other transaction) goes back to `pending`
//! and its request is queued again: the same reference, so the contract
//! keeps it once however the chains settle. The ledger keeps what its first
//! confirmation posted (the resend's confirmation posts nothing twice).
//! One that landed elsewhere (a replacement, a resend) is final where it
//! landed.

use std::collections::HashMap;

use alloy::primitives::{Address, B256, TxHash};
use haven_chain::rpc::Rpc;
use haven_common::amqp::Failure;
use haven_common::shutdown::{CancellationToken, every};
use haven_common::telemetry::ErrorChain;
use haven_entity::token_transactions;
use haven_messages::{ChainEvent, ChainRequest, Envelope, TxConfirmed, TxType};
use haven_outbox::OutboxNotifier;
use sea_orm::DatabaseConnection;

use crate::config::FinalityConfig;
use crate::metrics::Metrics;
use crate::minter::{reconcile, record};
use crate::sweep::request_of;

/// Rows looked at per check at most.
const BATCH: u64 = 500;
/// How far below a vanished transaction's block its reference is searched
/// for (a reorganisation deeper than this is not looked through).
const SEARCH_BELOW: u64 = 256;

/// What the watcher needs.
#[derive(Debug, Clone)]
pub struct Finality {
    /// The database pool.
    pub db: DatabaseConnection,
    /// The chain.
    pub rpc: Rpc,
    /// The HAVEN contract.
    pub contract: Address,
    /// Wakes the outbox relay.
    pub outbox: OutboxNotifier,
    /// This service's instruments.
    pub metrics: Metrics,
    /// The settings.
    pub config: FinalityConfig,
    /// The minter, whose signer must re-read its nonce after a reorganisation.
    pub minter: std::sync::Arc<crate::minter::Minter>,
}

/// What one check did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    /// Marked final.
    pub finalized: u64,
    /// Found removed and queued again.
    pub reorged: u64,
}

impl Finality {
    /// Checks every interval until `stop` is cancelled; nothing to do with
    /// a depth of 0 (the minter records confirmations final).
    pub async fn run(self, stop: CancellationToken) {
        if self.config.finality_depth == 0 {
            return;
        }
        every(self.config.finality_check_interval, &stop, || async {
            if let Err(failure) = self.once().await {
                tracing::warn!(%failure, "finality check failed; trying again next interval");
            }
        })
        .await;
    }

    /// One check of the confirmed, not yet final rows deep enough to judge.
    pub async fn once(&self) -> Result<Checked, Failure> {
        let head = self.rpc.block_number().await.map_err(chain)?;
        let depth = self.config.finality_depth;
        let Some(safe) = head.checked_sub(depth) else {
            return Ok(Checked::default());
        };
        let up_to = i64::try_from(safe).unwrap_or(i64::MAX);
        let rows = token_transactions::confirmed_not_final(&self.db, up_to, BATCH).await?;
        let mut checked = Checked::default();
        // Mints of one batch share a transaction: one receipt each.
        let mut receipts: HashMap<TxHash, Option<(bool, u64)>> = HashMap::new();
        for row in rows {
            let mined = match row
                .tx_hash
                .as_deref()
                .and_then(|h| h.parse::<TxHash>().ok())
            {
                Some(hash) => match receipts.get(&hash) {
                    Some(known) => *known,
                    None => {
                        let receipt = self.rpc.receipt(hash).await.map_err(chain)?;
                        let known = receipt.and_then(|r| Some((r.status(), r.block_number?)));
                        receipts.insert(hash, known);
                        known
                    }
                },
                None => None,
            };
            match mined {
                Some((true, block)) if block <= safe => {
                    checked.finalized += u64::from(self.finalize(&row, block, None).await?);
                }
                // Mined again higher up after a reorganisation: not yet.
                Some((true, _)) => {}
                _ => {
                    let reference =
                        B256::try_from(row.chain_reference.as_slice()).map_err(|_| {
                            Failure::permanent(format!(
                                "token transaction {} has no 32-byte reference",
                                row.id
                            ))
                        })?;
                    let from = u64::try_from(row.block_number.unwrap_or_default())
                        .unwrap_or_default()
                        .saturating_sub(SEARCH_BELOW);
                    match reconcile::landing_of(&self.rpc, self.contract, from, reference)
                        .await
                        .map_err(chain)?
                    {
                        Some(landed) if landed.block_number <= safe => {
                            checked.finalized += u64::from(
                                self.finalize(&row, landed.block_number, Some(landed.tx_hash))
                                    .await?,
                            );
                        }
                        Some(_) => {}
                        None => checked.reorged += u64::from(self.reorged(&row).await?),
                    }
                }
            }
        }
        if checked.finalized > 0 {
            self.metrics.finalized(checked.finalized);
        }
        Ok(checked)
    }

    /// Marks `row` final in `block`; a redemption's burn is announced again.
    async fn finalize(
        &self,
        row: &token_transactions::Model,
        block: u64,
        landed_as: Option<String>,
    ) -> Result<bool, Failure> {
        // Only a redemption's burn is announced again: a mint needs no look-up.
        let request = match row.tx_type {
            token_transactions::TxType::Burn => Some(request_of(&self.db, row).await?),
            token_transactions::TxType::Mint => None,
        };
        let event = match &request {
            Some(ChainRequest::Burn(burn)) if burn.redemption_id.is_some() => {
                Some(Envelope::new(ChainEvent::Confirmed(TxConfirmed {
                    tx_id: row.id,
                    tx_type: TxType::Burn,
                    user_id: burn.user_id.clone(),
                    amount_wei: burn.amount_wei,
                    tx_hash: landed_as
                        .clone()
                        .or_else(|| row.tx_hash.clone())
                        .unwrap_or_default(),
                    block_number: block,
                    redemption_id: burn.redemption_id,
                })))
            }
            _ => None,
        };
        let announced = event.is_some();
        let done = record::finalized(&self.db, row, block, landed_as, event).await?;
        if done && announced {
            self.outbox.notify();
        }
        Ok(done)
    }

    /// Sends `row` again: a reorganisation removed it.
    async fn reorged(&self, row: &token_transactions::Model) -> Result<bool, Failure> {
        let request = request_of(&self.db, row).await?;
        // Before the resend can go out: the nonce it used is free again.
        self.minter.forget_nonce().await;
        let done = record::reorged(&self.db, row, Envelope::new(request)).await?;
        if done {
            self.outbox.notify();
            self.metrics.reorged();
            tracing::warn!(
                tx_id = %row.tx_id,
                block = row.block_number.unwrap_or_default(),
                "a confirmed transaction was removed by a reorganisation; sending it again (same reference)"
            );
        }
        Ok(done)
    }
}

fn chain(err: haven_chain::error::ChainError) -> Failure {
    Failure::transient(format!("chain: {}", ErrorChain(&err)))
}
