//! Start-up reconciliation: token transactions a previous run claimed or
//! sent and never recorded as confirmed are looked up on chain by their
//! reference. Used references are recorded as confirmed now; the others are
//! left to their queue message, which was never acked and comes back (its
//! resend carries the same reference, so it cannot mint twice).

use std::sync::Arc;

use alloy::primitives::B256;
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_common::shutdown::CancellationToken;
use haven_common::telemetry::{ErrorChain, TraceHeaders};
use haven_entity::token_transactions::{self, TxType};
use haven_entity::users;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};

use super::Minter;
use super::Request;
use super::record::{self, Landed};

/// What reconciliation found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reconciled {
    /// Found on chain and recorded now.
    pub finished: usize,
    /// Not on chain: left to their redelivered messages.
    pub left: usize,
}

/// How long to wait before trying the start-up reconciliation again.
const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// [`run`] until it succeeds once (the database or the node may not be up
/// yet at start), or until `stop` is cancelled.
pub async fn until_done(minter: &Arc<Minter>, rpc: &Rpc, stop: CancellationToken) {
    loop {
        match run(minter, rpc).await {
            Ok(found) => {
                tracing::info!(
                    finished = found.finished,
                    left = found.left,
                    "start-up reconciliation done"
                );
                return;
            }
            Err(err) => tracing::warn!(error = %err, "start-up reconciliation failed; retrying"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(RETRY_EVERY) => {}
        }
    }
}

/// Runs once at start.
pub async fn run(minter: &Arc<Minter>, rpc: &Rpc) -> Result<Reconciled, String> {
    let rows = record::unfinished(&minter.db)
        .await
        .map_err(|err| ErrorChain(&err).to_string())?;
    let mut found = Reconciled::default();
    for row in rows {
        let reference = B256::from_slice(&row.chain_reference);
        let used = rpc
            .view(minter.contract, &HAVEN::refUsedCall { r#ref: reference })
            .await
            .map_err(|err| ErrorChain(&err).to_string())?;
        if !used {
            found.left += 1;
            continue;
        }
        let Some(request) = request_of(&minter.db, &row).await? else {
            found.left += 1;
            continue;
        };
        // The row's hash is the last one sent, which may be a resend that
        // skipped the reference: the chain's event says where it landed.
        let from = minter.first_block().await;
        let landed = match landing_of(rpc, minter.contract, from, reference).await {
            Ok(Some(landed)) => landed,
            _ => match &row.tx_hash {
                Some(hash) => landed_by_hash(rpc, hash).await.unwrap_or(Landed {
                    tx_hash: hash.clone(),
                    block_number: 0,
                }),
                None => Landed {
                    tx_hash: String::new(),
                    block_number: 0,
                },
            },
        };
        record::confirmed(
            &minter.db,
            // Found at start-up, outside any request's trace.
            &[(&request, landed, TraceHeaders::default())],
            minter.final_when_confirmed,
        )
        .await
        .map_err(|err| ErrorChain(&err).to_string())?;
        found.finished += 1;
    }
    if found.finished > 0 {
        minter.outbox.notify();
    }
    Ok(found)
}

/// The transaction whose `Minted` or `Burned` event carries `reference`
/// (the contract emits one per used reference), if any, searching from
/// block `from` (the contract's deployment) on.
pub(crate) async fn landing_of(
    rpc: &Rpc,
    contract: alloy::primitives::Address,
    from: u64,
    reference: B256,
) -> Result<Option<Landed>, haven_chain::error::ChainError> {
    use alloy::providers::Provider as _;
    use alloy::rpc::types::Filter;
    use alloy::sol_types::SolEvent as _;
    let filter = Filter::new()
        .address(contract)
        .event_signature(vec![
            HAVEN::Minted::SIGNATURE_HASH,
            HAVEN::Burned::SIGNATURE_HASH,
        ])
        .topic1(reference)
        .from_block(from);
    let logs = rpc
        .call("eth_getLogs", || rpc.provider().get_logs(&filter))
        .await?;
    Ok(logs.into_iter().find_map(|log| {
        Some(Landed {
            tx_hash: log.transaction_hash?.to_string(),
            block_number: log.block_number?,
        })
    }))
}

async fn landed_by_hash(rpc: &Rpc, hash: &str) -> Option<Landed> {
    let hash = hash.parse().ok()?;
    let receipt = rpc.receipt(hash).await.ok()??;
    Some(Landed {
        tx_hash: hash.to_string(),
        block_number: receipt.block_number?,
    })
}

/// Rebuilds the request of a row (the user's wallet from the users table).
async fn request_of(
    db: &sea_orm::DatabaseConnection,
    row: &token_transactions::Model,
) -> Result<Option<Request>, String> {
    let Some(user) = users::Entity::find_by_id(row.user_id)
        .one(db)
        .await
        .map_err(|err| ErrorChain(&err).to_string())?
    else {
        return Ok(None);
    };
    let Ok(wallet) = user.wallet_address.parse() else {
        return Ok(None);
    };
    let Ok(amount) = u128::try_from(row.amount.get()) else {
        return Ok(None);
    };
    let redemption_id = haven_entity::redemptions::Entity::find()
        .filter(haven_entity::redemptions::Column::BurnTxId.eq(row.tx_id.clone()))
        .one(db)
        .await
        .map_err(|err| ErrorChain(&err).to_string())?
        .map(|r| r.request_id);
    Ok(Some(match row.tx_type {
        TxType::Mint => Request::Mint {
            tx_id: row.id,
            user_id: user.external_id,
            to: wallet,
            amount,
            reason: row.reason.clone(),
        },
        TxType::Burn => Request::Burn {
            tx_id: row.id,
            user_id: user.external_id,
            from: wallet,
            amount,
            reason: row.reason.clone(),
            redemption_id,
        },
    }))
}
