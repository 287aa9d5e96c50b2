//! `redemption-payout.chain-events`: outcomes of chain transactions.
//!
//! Every chain event arrives here (reward mints too); only those of a
//! redemption's burn (`redemption_id`) or refund mint (`tx_id`
//! `refund_<redemption id>`) concern a redemption, the rest are acked
//! without effect. chain-minter records the outcome (token transaction
//! status and ledger movement) before it announces it, so the saga reads it
//! from the database.

use std::sync::Arc;

use haven_common::amqp::{DeliveryContext, Outcome};
use haven_entity::EntityError;
use haven_entity::token_transactions;
use haven_messages::{ChainEvent, Envelope, TxType};
use sea_orm::EntityTrait;
use uuid::Uuid;

use crate::saga::Saga;
use crate::store::{self, Cause};
use haven_common::amqp::Failure;

/// Handles one chain event.
#[tracing::instrument(skip_all, fields(message_id = %envelope.message_id, attempt = ctx.attempt, kind = envelope.kind()))]
pub async fn handle(
    saga: Arc<Saga>,
    envelope: Envelope<ChainEvent>,
    ctx: DeliveryContext,
) -> Outcome {
    let result = async {
        let Some(id) = redemption_of(&saga, &envelope.payload).await? else {
            return Ok(None);
        };
        saga.advance(id, Some(Cause::of(&envelope))).await.map(Some)
    }
    .await;
    match result {
        Ok(_) => Outcome::Ack,
        Err(failure) => {
            tracing::warn!(%failure, "chain event not handled");
            failure.into_outcome()
        }
    }
}

/// The redemption a chain event is about, if any.
async fn redemption_of(saga: &Saga, event: &ChainEvent) -> Result<Option<Uuid>, Failure> {
    let (tx_id, tx_type, redemption_id) = match event {
        ChainEvent::Confirmed(c) => (c.tx_id, c.tx_type, c.redemption_id),
        ChainEvent::Failed(f) => (f.tx_id, f.tx_type, f.redemption_id),
    };
    if let Some(id) = redemption_id {
        return Ok(Some(id));
    }
    if tx_type != TxType::Mint {
        return Ok(None);
    }
    // A mint: a refund if its `tx_id` says so.
    let tx = token_transactions::Entity::find_by_id(tx_id)
        .one(&saga.db)
        .await
        .map_err(EntityError::from)?;
    Ok(tx
        .filter(|tx| tx.reason == store::REFUND_REASON)
        .and_then(|tx| store::refunded_redemption(&tx.tx_id)))
}
