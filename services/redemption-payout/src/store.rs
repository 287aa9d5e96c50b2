//! The database side of each saga step: one transaction per step, each
//! starting with a conditional state change (`UPDATE redemptions ... WHERE
//! state = <previous>`), so a redelivered message, the recovery sweep and a
//! second replica can all try the same step and exactly one of them makes
//! it; the others change nothing and read the row again.
//!
//! What each step writes with its state change:
//!
//! | step | state | also written in the same transaction |
//! |---|---|---|
//! | [`request_burn`] | `reserved` -> `burn_requested` | the pending burn (`redemption_<id>`) and its `ChainRequest::Burn`; the payout's fiat amount and currency, fixed |
//! | [`mark_burned`] | `burn_requested` -> `burned` | nothing: chain-minter posted reserved -> burned when it confirmed the burn |
//! | [`release`] | `reserved`/`burn_requested` -> `failed` | ledger `release:<id>`: user reserved -> user available |
//! | [`payout_sending`] | `burned` -> `payout_unknown` | nothing: recorded before the first creation is sent, so a crash or a lost answer can never be read as "no payout" |
//! | [`payout_accepted`] | `payout_unknown` -> `payout_requested` | the provider's payout id |
//! | [`mark_paid`] | `payout_requested` -> `paid` | ledger `payout:<id>`: burned -> payout (98 %; the 2 % fee stays burned) |
//! | [`request_refund`] | `payout_unknown`/`payout_requested` -> `refund_requested` | the pending refund mint (`refund_<id>`, reason `refund`) and its `ChainRequest::Mint` |
//! | [`mark_refunded`] | `refund_requested` -> `refunded` | nothing: chain-minter posted supply -> user available when it confirmed the mint |
//! | [`retry_refund`] (an operator, `havenctl refund retry`) | stays `refund_requested` | its failed refund mint back to `pending` (same row, same on-chain reference) and its `ChainRequest::Mint` queued again |
//!
//! Every ledger movement has a unique reference, so even a step replayed
//! past its state check could not post twice; the ledger refuses entries
//! that do not sum to zero, so it balances at every state.
//!
//! Locks are taken in one order, redemption row first (token transaction
//! rows are only ever inserted here), then ledger rows, as chain-minter
//! (token transaction, then ledger) does, so the two never deadlock.

use haven_common::db::begin_write;
use haven_entity::ledger::{self, Account, Movement, Posted};
use haven_entity::ledger_entries;
use haven_entity::ledger_movements::{self, MovementKind};
use haven_entity::redemptions::{self, Changes, PayoutTerms, RedemptionState};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxStatus, TxType};
use haven_entity::{EntityError, SignedWei, users};
use haven_messages::{BurnRequest, ChainRequest, Envelope, MintRequest, QueueMessage};
use sea_orm::{ColumnTrait, DatabaseConnection, DatabaseTransaction, EntityTrait, QueryFilter};
use uuid::Uuid;

use haven_common::amqp::Failure;

/// Reason of a redemption's burn (on chain and in `token_transactions`).
pub const BURN_REASON: &str = "redemption";
/// Reason of the mint that refunds a redemption whose payout was refused
/// (shared with chain-minter, which announces these mints' confirmations).
pub use haven_messages::REFUND_REASON;
/// Prefix of a refund mint's `tx_id`.
const REFUND_PREFIX: &str = "refund_";

/// The `tx_id` of redemption `id`'s burn.
pub fn burn_tx_id(id: Uuid) -> String {
    format!("redemption_{id}")
}

/// The `tx_id` of redemption `id`'s refund mint.
pub fn refund_tx_id(id: Uuid) -> String {
    format!("{REFUND_PREFIX}{id}")
}

/// The redemption a refund mint's `tx_id` belongs to (`None` for any other mint).
pub fn refunded_redemption(tx_id: &str) -> Option<Uuid> {
    tx_id.strip_prefix(REFUND_PREFIX)?.parse().ok()
}

/// The ledger reference of redemption `id`'s reservation (posted by webhook-ingress).
pub fn reserve_reference(id: Uuid) -> String {
    format!("reserve:{id}")
}

/// Where a new message came from, for its correlation and causation ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cause {
    /// The conversation it belongs to.
    pub correlation_id: Uuid,
    /// The message that caused it.
    pub causation_id: Uuid,
}

impl Cause {
    /// The cause for messages sent while handling `envelope`.
    pub fn of<P>(envelope: &Envelope<P>) -> Self {
        Self {
            correlation_id: envelope.correlation_id,
            causation_id: envelope.message_id,
        }
    }
}

fn envelope<P: QueueMessage>(payload: P, cause: Option<Cause>) -> Envelope<P> {
    let mut envelope = Envelope::new(payload);
    if let Some(cause) = cause {
        envelope.correlation_id = cause.correlation_id;
        envelope.causation_id = Some(cause.causation_id);
    }
    envelope
}

/// The amount the ledger holds reserved for redemption `id` of `user_id`:
/// the user-reserved entry of its `reserve:<id>` movement, `None` when
/// there is no such movement.
pub async fn reserved_amount(
    db: &DatabaseConnection,
    id: Uuid,
    user_id: Uuid,
) -> Result<Option<SignedWei>, Failure> {
    let Some(movement) = ledger_movements::Entity::find()
        .filter(ledger_movements::Column::Reference.eq(reserve_reference(id)))
        .one(db)
        .await
        .map_err(EntityError::from)?
    else {
        return Ok(None);
    };
    if movement.kind != MovementKind::Reserve {
        return Err(Failure::permanent(format!(
            "ledger movement `{}` is a {:?}, not a reservation",
            movement.reference, movement.kind
        )));
    }
    let entries = ledger_entries::Entity::find()
        .filter(ledger_entries::Column::MovementId.eq(movement.id))
        .filter(ledger_entries::Column::Account.eq(ledger_entries::AccountKind::UserReserved))
        .filter(ledger_entries::Column::UserId.eq(user_id))
        .all(db)
        .await
        .map_err(EntityError::from)?;
    let mut total = SignedWei::ZERO;
    for entry in entries {
        total = total
            .checked_add(entry.amount)
            .ok_or_else(|| Failure::permanent("reservation entries overflow"))?;
    }
    Ok(Some(total))
}

/// A stored amount as the messages' unsigned wei.
pub fn chain_wei(wei: SignedWei) -> Result<u128, Failure> {
    u128::try_from(wei.get())
        .map_err(|_| Failure::permanent(format!("stored amount {wei} wei is negative")))
}

/// Rolls back (by dropping `txn`) and says so.
async fn lost(txn: DatabaseTransaction) -> Result<bool, Failure> {
    txn.rollback().await.map_err(EntityError::from)?;
    Ok(false)
}

/// `reserved` -> `burn_requested`: records the pending burn of the whole
/// reserved amount and queues its `ChainRequest::Burn` for chain-minter.
pub async fn request_burn(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
    user: &users::Model,
    terms: PayoutTerms,
    cause: Option<Cause>,
) -> Result<bool, Failure> {
    let id = redemption.request_id;
    let tx_id = burn_tx_id(id);
    let txn = begin_write(db).await.map_err(EntityError::from)?;
    // The burn first: the redemption row points at it (foreign key). Of two
    // racing callers the second waits on the unique `tx_id` until the first
    // commits, then inserts nothing.
    let Some(burn) = token_transactions::insert_pending(
        &txn,
        NewTokenTransaction {
            tx_id: tx_id.clone(),
            user_id: redemption.user_id,
            tx_type: TxType::Burn,
            amount: redemption.burn_amount,
            reason: BURN_REASON.to_owned(),
            // The operator who asked for the redemption asked for its burn.
            requested_by: redemption.requested_by.clone(),
            accepted_at: Some(redemption.created_at),
        },
    )
    .await?
    else {
        return lost(txn).await;
    };
    let moved = redemptions::transition(
        &txn,
        id,
        RedemptionState::Reserved,
        RedemptionState::BurnRequested,
        Changes {
            burn_tx_id: Some(tx_id),
            // Fixed with the burn: every payout attempt sends these.
            payout_terms: redemption.payout_fiat_amount.is_none().then_some(terms),
            ..Changes::default()
        },
    )
    .await?;
    if !moved {
        return lost(txn).await;
    }
    let request = ChainRequest::Burn(BurnRequest {
        tx_id: burn.id,
        user_id: user.external_id.clone(),
        from_address: user.wallet_address.clone(),
        amount_wei: chain_wei(redemption.burn_amount)?,
        reason: BURN_REASON.to_owned(),
        redemption_id: Some(id),
    });
    haven_outbox::enqueue(&txn, &envelope(request, cause)).await?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(true)
}

/// `burn_requested` -> `burned`, once chain-minter confirmed the burn.
pub async fn mark_burned(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
) -> Result<bool, Failure> {
    Ok(redemptions::transition(
        db,
        redemption.request_id,
        RedemptionState::BurnRequested,
        RedemptionState::Burned,
        Changes::default(),
    )
    .await?)
}

/// `from` (`reserved`, or `burn_requested` whose burn failed for good) ->
/// `failed`, giving the reserved tokens back: user reserved -> user
/// available, posted once (`release:<id>`).
pub async fn release(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
    from: RedemptionState,
    reason: String,
) -> Result<bool, Failure> {
    let id = redemption.request_id;
    let txn = begin_write(db).await.map_err(EntityError::from)?;
    let moved = redemptions::transition(
        &txn,
        id,
        from,
        RedemptionState::Failed,
        Changes {
            failure_reason: Some(reason),
            completed: true,
            ..Changes::default()
        },
    )
    .await?;
    if !moved {
        return lost(txn).await;
    }
    let movement = Movement::release(
        format!("release:{id}"),
        redemption.user_id,
        redemption.amount,
    )?;
    if ledger::post(&txn, &movement).await? == Posted::Duplicate {
        // The state said not released; the ledger says released: never
        // release twice, and tell an operator.
        return Err(Failure::permanent(format!(
            "redemption {id} was {from:?} but its reservation is already released"
        )));
    }
    txn.commit().await.map_err(EntityError::from)?;
    Ok(true)
}

/// `burned` -> `payout_unknown`, before the first payout creation is sent:
/// from here on a payout may exist, and only the provider's word says
/// otherwise.
pub async fn payout_sending(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
) -> Result<bool, Failure> {
    Ok(redemptions::transition(
        db,
        redemption.request_id,
        RedemptionState::Burned,
        RedemptionState::PayoutUnknown,
        Changes::default(),
    )
    .await?)
}

/// `payout_unknown` -> `payout_requested`: the provider has the payout
/// `reference` (its answer to the creation, or found by reference).
pub async fn payout_accepted(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
    reference: &str,
) -> Result<bool, Failure> {
    Ok(redemptions::transition(
        db,
        redemption.request_id,
        RedemptionState::PayoutUnknown,
        RedemptionState::PayoutRequested,
        Changes {
            payout_reference: Some(reference.to_owned()),
            ..Changes::default()
        },
    )
    .await?)
}

/// `payout_requested` -> `paid`, posting the payout: burned -> payout
/// (the payout amount; the fee stays in burned), once (`payout:<id>`).
pub async fn mark_paid(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
) -> Result<bool, Failure> {
    let id = redemption.request_id;
    let txn = begin_write(db).await.map_err(EntityError::from)?;
    let moved = redemptions::transition(
        &txn,
        id,
        RedemptionState::PayoutRequested,
        RedemptionState::Paid,
        Changes {
            completed: true,
            ..Changes::default()
        },
    )
    .await?;
    if !moved {
        return lost(txn).await;
    }
    let movement = Movement::transfer(
        format!("payout:{id}"),
        MovementKind::Payout,
        Account::Burned,
        Account::Payout,
        redemption.payout_amount,
    )?;
    ledger::post(&txn, &movement).await?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(true)
}

/// `from` (`payout_unknown` or `payout_requested`) -> `refund_requested`: records a
/// pending mint of the whole burned amount back to the user, with its own
/// `tx_id` (and so its own on-chain reference), and queues its `ChainRequest::Mint`.
pub async fn request_refund(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
    user: &users::Model,
    from: RedemptionState,
    reason: String,
    cause: Option<Cause>,
) -> Result<bool, Failure> {
    let id = redemption.request_id;
    let txn = begin_write(db).await.map_err(EntityError::from)?;
    let moved = redemptions::transition(
        &txn,
        id,
        from,
        RedemptionState::RefundRequested,
        Changes {
            failure_reason: Some(reason),
            ..Changes::default()
        },
    )
    .await?;
    if !moved {
        return lost(txn).await;
    }
    let tx_id = refund_tx_id(id);
    let mint = token_transactions::insert_pending(
        &txn,
        NewTokenTransaction {
            tx_id: tx_id.clone(),
            user_id: redemption.user_id,
            tx_type: TxType::Mint,
            amount: redemption.burn_amount,
            reason: REFUND_REASON.to_owned(),
            // The refund carries out the same operator's redemption.
            requested_by: redemption.requested_by.clone(),
            // Nobody outside asked for a refund.
            accepted_at: None,
        },
    )
    .await?
    .ok_or_else(|| {
        Failure::permanent(format!(
            "refund `{tx_id}` exists while redemption {id} was {from:?}"
        ))
    })?;
    let request = ChainRequest::Mint(MintRequest {
        tx_id: mint.id,
        user_id: user.external_id.clone(),
        to_address: user.wallet_address.clone(),
        amount_wei: chain_wei(redemption.burn_amount)?,
        reason: REFUND_REASON.to_owned(),
    });
    haven_outbox::enqueue(&txn, &envelope(request, cause)).await?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(true)
}

/// `refund_requested` -> `refunded`, once chain-minter confirmed the refund mint.
pub async fn mark_refunded(
    db: &DatabaseConnection,
    redemption: &redemptions::Model,
) -> Result<bool, Failure> {
    Ok(redemptions::transition(
        db,
        redemption.request_id,
        RedemptionState::RefundRequested,
        RedemptionState::Refunded,
        Changes {
            completed: true,
            ..Changes::default()
        },
    )
    .await?)
}

/// What [`retry_refund`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundRetry {
    /// The refund mint (as it was before: `failed` or `cancelled`) is
    /// `pending` again and its `ChainRequest::Mint` is in the outbox.
    Queued(Box<token_transactions::Model>),
    /// The redemption is not waiting for an operator: its state, and its
    /// refund mint's status when it has one. Nothing was changed.
    NotWaiting {
        /// The redemption's state.
        state: RedemptionState,
        /// The refund mint's status.
        refund: Option<TxStatus>,
    },
}

/// An operator's retry of a refund the saga left for an operator: the
/// redemption is `refund_requested` and its refund mint (`refund_<id>`)
/// failed or was cancelled, so the user's tokens are burned and neither
/// paid nor given back. Sends the same mint again: the row goes back to
/// `pending` (same `tx_id`, same on-chain reference, so the contract can
/// never mint it twice) and its `ChainRequest::Mint` is queued as
/// [`request_refund`] queued it, in one transaction; the saga then follows
/// it as it follows any refund mint. `Ok(None)` when there is no such
/// redemption.
pub async fn retry_refund(
    db: &DatabaseConnection,
    request_id: Uuid,
) -> Result<Option<RefundRetry>, Failure> {
    let txn = begin_write(db).await.map_err(EntityError::from)?;
    let Some(redemption) = redemptions::Entity::find_by_id(request_id)
        .one(&txn)
        .await
        .map_err(EntityError::from)?
    else {
        txn.rollback().await.map_err(EntityError::from)?;
        return Ok(None);
    };
    let tx_id = refund_tx_id(request_id);
    let mint = token_transactions::find_by_tx_id(&txn, &tx_id).await?;
    let not_waiting = RefundRetry::NotWaiting {
        state: redemption.state,
        refund: mint.as_ref().map(|m| m.status),
    };
    let Some(mint) = mint.filter(|m| {
        redemption.state == RedemptionState::RefundRequested
            && matches!(m.status, TxStatus::Failed | TxStatus::Cancelled)
    }) else {
        txn.rollback().await.map_err(EntityError::from)?;
        return Ok(Some(not_waiting));
    };
    // Both conditional: a racing retry (or anything else that moved them)
    // leaves this one changing nothing.
    if !redemptions::touch(&txn, request_id, RedemptionState::RefundRequested, None).await? {
        txn.rollback().await.map_err(EntityError::from)?;
        return Ok(Some(not_waiting));
    }
    let note = format!(
        "sent again by an operator after: {}",
        mint.last_error.as_deref().unwrap_or("no recorded error")
    );
    let reset = token_transactions::Entity::update_many()
        .col_expr(
            token_transactions::Column::Status,
            sea_orm::sea_query::Expr::value(sea_orm::ActiveEnum::to_value(&TxStatus::Pending)),
        )
        .col_expr(
            token_transactions::Column::LastError,
            sea_orm::sea_query::Expr::value(note),
        )
        .col_expr(
            token_transactions::Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(chrono::Utc::now()),
        )
        .filter(token_transactions::Column::Id.eq(mint.id))
        .filter(token_transactions::Column::Status.is_in([TxStatus::Failed, TxStatus::Cancelled]))
        .exec(&txn)
        .await
        .map_err(EntityError::from)?;
    if reset.rows_affected != 1 {
        txn.rollback().await.map_err(EntityError::from)?;
        return Ok(Some(not_waiting));
    }
    let user = users::Entity::find_by_id(redemption.user_id)
        .one(&txn)
        .await
        .map_err(EntityError::from)?
        .ok_or_else(|| {
            Failure::permanent(format!(
                "user {} of redemption {request_id} does not exist",
                redemption.user_id
            ))
        })?;
    let request = ChainRequest::Mint(MintRequest {
        tx_id: mint.id,
        user_id: user.external_id.clone(),
        to_address: user.wallet_address.clone(),
        amount_wei: chain_wei(mint.amount)?,
        reason: REFUND_REASON.to_owned(),
    });
    haven_outbox::enqueue(&txn, &envelope(request, None)).await?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(Some(RefundRetry::Queued(Box::new(mint))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refund_tx_ids_lead_back_to_their_redemption() {
        let id = Uuid::now_v7();
        assert_eq!(refunded_redemption(&refund_tx_id(id)), Some(id));
        assert_eq!(refunded_redemption(&burn_tx_id(id)), None);
        assert_eq!(refunded_redemption("reward_abc"), None);
        assert_eq!(refunded_redemption("refund_not-a-uuid"), None);
        assert_ne!(burn_tx_id(id), refund_tx_id(id));
        // webhook-ingress refuses operator keys in this space.
        assert!(haven_entity::token_transactions::is_internal_tx_id(
            &burn_tx_id(id)
        ));
        assert!(haven_entity::token_transactions::is_internal_tx_id(
            &refund_tx_id(id)
        ));
    }
}
