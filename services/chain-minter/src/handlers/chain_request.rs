//! `chain-minter.requests`: mint and burn requests. The handler hands each
//! to the minter (mints through the batcher) and returns its outcome once
//! the transaction is confirmed and recorded, or failed for good, so the
//! consumer loop acks only then.

use std::sync::Arc;

use haven_common::amqp::{DeliveryContext, Outcome};
use haven_messages::{ChainRequest, Envelope};
use tokio::sync::oneshot;

use crate::minter::batcher::BatchQueue;
use crate::minter::{Job, Minter, Request};

/// Handles one chain request.
#[tracing::instrument(skip_all, fields(message_id = %envelope.message_id, attempt = ctx.attempt, kind = envelope.kind()))]
pub async fn handle(
    minter: Arc<Minter>,
    batches: BatchQueue,
    envelope: Envelope<ChainRequest>,
    ctx: DeliveryContext,
) -> Outcome {
    let request = match to_request(envelope.payload) {
        Ok(request) => request,
        Err(reason) => return Outcome::DeadLetter(reason),
    };
    // Until the outcome is known, the sweep leaves this row alone.
    let _handling = minter.handling().enter(request.tx_id());
    let (reply, outcome) = oneshot::channel();
    let job = Job::new(request, reply);
    match &job.request {
        Request::Mint { .. } => {
            if batches.push(job).await.is_err() {
                return Outcome::Retry("chain-minter is shutting down".into());
            }
        }
        Request::Burn { .. } => {
            tokio::spawn(minter.burn(job));
        }
    }
    outcome
        .await
        .unwrap_or_else(|_| Outcome::Retry("chain-minter stopped before the outcome".into()))
}

fn to_request(payload: ChainRequest) -> Result<Request, String> {
    Ok(match payload {
        ChainRequest::Mint(m) => Request::Mint {
            tx_id: m.tx_id,
            to: m
                .to_address
                .parse()
                .map_err(|_| format!("to_address `{}` is not an address", m.to_address))?,
            user_id: m.user_id,
            amount: m.amount_wei,
            reason: m.reason,
        },
        ChainRequest::Burn(b) => Request::Burn {
            tx_id: b.tx_id,
            from: b
                .from_address
                .parse()
                .map_err(|_| format!("from_address `{}` is not an address", b.from_address))?,
            user_id: b.user_id,
            amount: b.amount_wei,
            reason: b.reason,
            redemption_id: b.redemption_id,
        },
    })
}
