//! `redemption-payout.requests`: a redemption reserved at ingress.
//!
//! Idempotent: the saga resumes from the recorded state, so a redelivered
//! (or duplicated) request changes nothing that is already done.

use std::sync::Arc;

use haven_common::amqp::{DeliveryContext, Outcome};
use haven_entity::EntityError;
use haven_entity::redemptions;
use haven_messages::{Envelope, RedemptionCommand};
use sea_orm::EntityTrait;

use crate::saga::Saga;
use crate::store::{self, Cause};
use haven_common::amqp::Failure;

/// Handles one redemption command.
#[tracing::instrument(skip_all, fields(message_id = %envelope.message_id, attempt = ctx.attempt, kind = envelope.kind()))]
pub async fn handle(
    saga: Arc<Saga>,
    envelope: Envelope<RedemptionCommand>,
    ctx: DeliveryContext,
) -> Outcome {
    let RedemptionCommand::Requested(requested) = &envelope.payload;
    let result = async {
        check(&saga, requested).await?;
        saga.advance(requested.redemption_id, Some(Cause::of(&envelope)))
            .await
    }
    .await;
    if let Err(failure) = &result {
        tracing::warn!(redemption_id = %requested.redemption_id, %failure, "redemption request not handled");
    }
    super::settle(result)
}

/// The message must describe its row: the row is what is burned and paid,
/// and a message that contradicts it is a bug to park, not to act on.
async fn check(
    saga: &Saga,
    requested: &haven_messages::RedemptionRequested,
) -> Result<(), Failure> {
    let id = requested.redemption_id;
    let row = redemptions::Entity::find_by_id(id)
        .one(&saga.db)
        .await
        .map_err(EntityError::from)?
        .ok_or_else(|| Failure::permanent(format!("redemption {id} does not exist")))?;
    let amount = store::chain_wei(row.amount)?;
    let payout = store::chain_wei(row.payout_amount)?;
    if amount != requested.amount_wei || payout != requested.payout_wei {
        return Err(Failure::permanent(format!(
            "redemption {id}: the message says {} / {} wei, the row {amount} / {payout} wei",
            requested.amount_wei, requested.payout_wei
        )));
    }
    Ok(())
}
