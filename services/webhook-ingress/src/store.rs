//! The database transactions that make an accepted request durable.
//!
//! Each function is one transaction: the dedupe record (or the row the
//! command creates) and the outbox message that announces it commit together
//! or not at all, so a 2xx is only ever answered for something that will be
//! published, and a retry after a lost answer finds the first attempt's
//! record instead of doing the work twice. The outbox relay publishes after
//! the commit.

use haven_common::db::begin_write;
use haven_common::money::Wei;
use haven_entity::inbound_events::{self, NewInboundEvent};
use haven_entity::kyc_decisions::{self, NewDecision};
use haven_entity::ledger::{self, Movement};
use haven_entity::redemptions::{self, KycRule, NewRedemption, WithdrawalMethod};
use haven_entity::token_transactions::{self, NewTokenTransaction, TxType};
use haven_entity::{EntityError, linked, users};
use haven_messages::{
    ChainRequest, Envelope, MintRequest, PartnerEvent, RedemptionCommand, RedemptionRequested,
};
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, EntityTrait, QuerySelect, sea_query::LockType,
};

use crate::error::Error;

/// What happened to a request that was valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored<T> {
    /// First time: recorded and queued.
    Accepted(T),
    /// Seen before (same event, or same idempotency key with the same
    /// request): nothing new was written; `T` describes the first one.
    Duplicate(T),
}

/// Records a partner event once per (partner, kind, "once per" key) and
/// once per (partner, `delivery_id`), and queues it for reward-calculator.
/// The same event under a new delivery id, or under the other signing
/// scheme, is a duplicate; so is a delivery id already spent, whatever the
/// route it is replayed to.
pub async fn accept_event(
    db: &DatabaseConnection,
    event: PartnerEvent,
    delivery_id: Option<String>,
) -> Result<Stored<()>, Error> {
    let event_key = event.once_per_key();
    let envelope = Envelope::new(event);
    let payload = serde_json::to_value(&envelope.payload)
        .map_err(|err| Error::Store(EntityError::Corrupt(err.to_string())))?;
    // The dedupe record and the outbox message: one statement on
    // PostgreSQL (the hot path of every webhook), neither for a duplicate.
    let rows = [
        inbound_events::linked_row(NewInboundEvent {
            partner: envelope.payload.partner().to_owned(),
            kind: envelope.kind().to_owned(),
            event_key,
            delivery_id,
            message_id: envelope.message_id,
            payload,
        }),
        haven_outbox::linked_row(&envelope).map_err(outbox_error)?,
    ];
    Ok(match linked::insert_committed(db, &rows).await? {
        0 => Stored::Duplicate(()),
        _ => Stored::Accepted(()),
    })
}

/// A mint command as the API received it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MintCommand {
    /// The partners' id of the user.
    pub user_id: String,
    pub amount: Wei,
    /// Why.
    pub reason: String,
    /// The idempotency key, which becomes the `tx_id`.
    pub tx_id: String,
    /// Who asked: the API key's name.
    pub requested_by: String,
}

/// Records a pending mint under `tx_id` and queues it for chain-minter.
/// The same `tx_id` with the same user, amount and reason is a duplicate;
/// with anything else, [`Error::IdempotencyMismatch`].
pub async fn queue_mint(
    db: &DatabaseConnection,
    command: MintCommand,
) -> Result<Stored<MintCommand>, Error> {
    let txn = begin_write(db).await?;
    let user = users::find_by_external_id(&txn, &command.user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    let amount = entity_wei(command.amount)?;
    let inserted = token_transactions::insert_pending(
        &txn,
        NewTokenTransaction {
            tx_id: command.tx_id.clone(),
            user_id: user.id,
            tx_type: TxType::Mint,
            amount,
            reason: command.reason.clone(),
            requested_by: Some(command.requested_by.clone()),
            accepted_at: Some(chrono::Utc::now()),
        },
    )
    .await?;
    let Some(tx) = inserted else {
        let existing = token_transactions::find_by_tx_id(&txn, &command.tx_id)
            .await?
            .ok_or_else(|| {
                EntityError::Corrupt(format!("tx_id `{}` conflicted but is gone", command.tx_id))
            })?;
        txn.rollback().await.map_err(EntityError::from)?;
        let same = existing.tx_type == TxType::Mint
            && existing.user_id == user.id
            && existing.amount == amount
            && existing.reason == command.reason;
        return if same {
            Ok(Stored::Duplicate(command))
        } else {
            Err(Error::IdempotencyMismatch(command.tx_id))
        };
    };
    let envelope = Envelope::new(ChainRequest::Mint(MintRequest {
        tx_id: tx.id,
        user_id: user.external_id.clone(),
        to_address: user.wallet_address.clone(),
        amount_wei: command.amount.as_wei(),
        reason: command.reason.clone(),
    }));
    haven_outbox::enqueue(&txn, &envelope)
        .await
        .map_err(outbox_error)?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(Stored::Accepted(command))
}

/// A redemption as the API received it, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedeemCommand {
    /// The partners' id of the user.
    pub user_id: String,
    /// Amount to redeem (burned in full).
    pub amount: Wei,
    /// How it is paid.
    pub method: WithdrawalMethod,
    /// Where (crypto address).
    pub address: Option<String>,
    /// The client's idempotency key.
    pub idempotency_key: String,
    /// Who asked: the API key's name.
    pub requested_by: String,
}

/// The figures of a reserved redemption, as the API answers them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The redemption id.
    pub request_id: uuid::Uuid,
    /// Amount burned on chain (the whole amount).
    pub burn_amount: Wei,
    /// Amount paid out (98 %).
    pub payout_amount: Wei,
}

/// Redemption fee in basis points (SPEC.md "Money": 2 %).
pub const REDEMPTION_FEE_BPS: u128 = 200;

/// What is paid out for `amount`: the amount less the 2 % fee, rounded down
/// to the wei, so the fee is never less than 2 %.
pub fn payout_for(amount: Wei) -> Wei {
    let wei = amount.as_wei();
    // `wei` is at most the supply cap (10^27), so `* 9_800` cannot overflow a u128.
    Wei::from_wei(
        wei / 10_000 * (10_000 - REDEMPTION_FEE_BPS)
            + wei % 10_000 * (10_000 - REDEMPTION_FEE_BPS) / 10_000,
    )
}

/// Refuses the redemption just recorded in `txn` when the user's
/// redemptions within the KYC window, it included, exceed the threshold.
async fn check_kyc(
    kyc: &KycRule,
    txn: &DatabaseTransaction,
    user_id: uuid::Uuid,
) -> Result<(), Error> {
    // One unverified redemption of this user at a time: the row lock
    // (PostgreSQL; SQLite's write transactions are serial already) makes a
    // concurrent one wait and then see this one, so two cannot each pass
    // without the other. NO KEY UPDATE, because the redemption's foreign key
    // already holds KEY SHARE on the row: two FOR UPDATE requests would each
    // wait on the other's KEY SHARE.
    users::Entity::find_by_id(user_id)
        .lock(LockType::NoKeyUpdate)
        .one(txn)
        .await
        .map_err(EntityError::from)?;
    if kyc.exceeded(txn, user_id, None).await? {
        return Err(Error::KycRequired {
            threshold: kyc.threshold.to_string(),
            window: kyc.window_in_words(),
        });
    }
    Ok(())
}

/// Reserves `amount` of the user's available balance and queues the
/// redemption for redemption-payout, in one transaction. Not enough
/// available: [`Error::InsufficientBalance`] and nothing reserved. The same
/// idempotency key with the same request is a duplicate; with another,
/// [`Error::IdempotencyMismatch`].
pub async fn reserve_redemption(
    db: &DatabaseConnection,
    command: &RedeemCommand,
    kyc: KycRule,
) -> Result<Stored<Reservation>, Error> {
    let txn = begin_write(db).await?;
    let user = users::find_by_external_id(&txn, &command.user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    let amount = entity_wei(command.amount)?;
    let payout = payout_for(command.amount);
    let inserted = redemptions::insert_reserved(
        &txn,
        NewRedemption {
            user_id: user.id,
            idempotency_key: command.idempotency_key.clone(),
            amount,
            payout_amount: entity_wei(payout)?,
            method: command.method,
            address: command.address.clone(),
            requested_by: Some(command.requested_by.clone()),
        },
    )
    .await?;
    let Some(redemption) = inserted else {
        let existing = redemptions::find_by_idempotency_key(&txn, &command.idempotency_key)
            .await?
            .ok_or_else(|| {
                EntityError::Corrupt(format!(
                    "idempotency key `{}` conflicted but is gone",
                    command.idempotency_key
                ))
            })?;
        txn.rollback().await.map_err(EntityError::from)?;
        let same = existing.user_id == user.id
            && existing.amount == amount
            && existing.method == command.method
            && existing.address == command.address;
        return if same {
            Ok(Stored::Duplicate(Reservation {
                request_id: existing.request_id,
                burn_amount: money_wei(existing.burn_amount)?,
                payout_amount: money_wei(existing.payout_amount)?,
            }))
        } else {
            Err(Error::IdempotencyMismatch(command.idempotency_key.clone()))
        };
    };
    // Checked after the duplicate lookup so a retry of an accepted request
    // still gets its first answer.
    if !user.kyc_verified {
        check_kyc(&kyc, &txn, user.id).await?;
    }
    let reserve = Movement::reserve(
        format!("reserve:{}", redemption.request_id),
        user.id,
        amount,
    )?;
    match ledger::post(&txn, &reserve).await {
        Ok(_) => {}
        // Dropping `txn` rolls the redemption row back too.
        Err(EntityError::InsufficientBalance { .. }) => return Err(Error::InsufficientBalance),
        Err(err) => return Err(err.into()),
    }
    let envelope = Envelope::new(RedemptionCommand::Requested(RedemptionRequested {
        redemption_id: redemption.request_id,
        user_id: user.external_id.clone(),
        amount_wei: command.amount.as_wei(),
        payout_wei: payout.as_wei(),
        withdrawal_method: message_method(command.method),
        withdrawal_address: command.address.clone(),
    }));
    haven_outbox::enqueue(&txn, &envelope)
        .await
        .map_err(outbox_error)?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(Stored::Accepted(Reservation {
        request_id: redemption.request_id,
        burn_amount: command.amount,
        payout_amount: payout,
    }))
}

/// An operator's KYC decision about a user.
#[derive(Debug, Clone)]
pub struct KycCommand {
    /// The partners' id of the user.
    pub user_id: String,
    /// The outcome of the check.
    pub verified: bool,
    /// The check's reference at the KYC vendor.
    pub reference: Option<String>,
    /// Who asked ([`haven_common::auth::KeyGuard::name`]).
    pub decided_by: String,
}

/// Records a KYC decision and sets the user's `kyc_verified`, in one
/// transaction. Unknown user: [`Error::UserNotFound`] and nothing written.
pub async fn record_kyc(
    db: &DatabaseConnection,
    command: KycCommand,
) -> Result<users::Model, Error> {
    let txn = begin_write(db).await?;
    let user = users::find_by_external_id(&txn, &command.user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    let updated = kyc_decisions::decide(
        &txn,
        NewDecision {
            user_id: user.id,
            verified: command.verified,
            reference: command.reference,
            decided_by: command.decided_by,
        },
    )
    .await?;
    txn.commit().await.map_err(EntityError::from)?;
    Ok(updated)
}

fn message_method(method: WithdrawalMethod) -> haven_messages::WithdrawalMethod {
    match method {
        WithdrawalMethod::BankTransfer => haven_messages::WithdrawalMethod::BankTransfer,
        WithdrawalMethod::Paypal => haven_messages::WithdrawalMethod::Paypal,
        WithdrawalMethod::Crypto => haven_messages::WithdrawalMethod::Crypto,
    }
}

/// API amounts (at most the supply cap) always fit the ledger's i128.
fn entity_wei(amount: Wei) -> Result<haven_entity::SignedWei, Error> {
    i128::try_from(amount.as_wei())
        .map(haven_entity::SignedWei::new)
        .map_err(|_| Error::Validation("amount is too large".to_owned()))
}

fn money_wei(amount: haven_entity::SignedWei) -> Result<Wei, Error> {
    u128::try_from(amount.get())
        .map(Wei::from_wei)
        .map_err(|_| Error::Store(EntityError::Corrupt(format!("negative amount {amount}"))))
}

fn outbox_error(err: haven_outbox::OutboxError) -> Error {
    match err {
        haven_outbox::OutboxError::Database(err) => Error::Store(err),
        other => Error::Store(EntityError::Corrupt(format!("outbox: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hnv(text: &str) -> Wei {
        Wei::parse(text).unwrap()
    }

    #[test]
    fn payout_is_98_percent_and_the_fee_never_rounds_below_2_percent() {
        assert_eq!(payout_for(hnv("500")), hnv("490"));
        assert_eq!(payout_for(hnv("200")), hnv("196"));
        assert_eq!(payout_for(hnv("0.000000000000000001")), Wei::ZERO);
        assert_eq!(
            payout_for(Wei::from_wei(12_345)),
            Wei::from_wei(12_098) // 12_345 * 0.98 = 12_098.1, rounded down
        );
        assert_eq!(payout_for(Wei::SUPPLY_CAP), hnv("980000000"));
    }
}
