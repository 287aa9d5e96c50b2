//! Partner events (`names::PARTNER_EVENTS`): one reward per rewarded fact.
//!
//! Idempotent on the event: every reward has a unique `source_reference`
//! built from the event's "once per" key, so a redelivered (or re-sent)
//! event finds its reward and is acked without effect. The reward, its mint
//! and the mint request commit together; the ack follows the commit.
//!
//! The common event (a grant with no emission budget, for a new user or one
//! who owes nothing) is one statement outside any transaction: the user's
//! lookup takes a new user's derivation index, then the new user, a
//! booking's first row, the reward, its mint and the mint request are one
//! [`linked::insert_committed`]. Everything else (a budget, a debt, an
//! address to record, a booking seen before, cancellations, stakes) runs
//! in one transaction per event.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use haven_common::amqp::{DeliveryContext, Outcome as Settle};
use haven_common::db::begin_write;
use haven_entity::bookings::{self, BookingEvent, BookingStatus};
use haven_entity::linked;
use haven_entity::stakes::{self, NewStake};
use haven_entity::users::{self, Found, NewUser};
use haven_messages::{Envelope, PartnerEvent, StakingStarted};
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter};

use crate::context::Context;
use crate::metrics::Outcome;
use crate::rules::{Grant, Rule};
use crate::store::{self, Cancelled, CommonGrant, Granted, RewardRequest};
use haven_common::amqp::Failure;

/// Handles one partner event; the consumer loop settles the delivery by the result.
pub async fn handle(
    ctx: Arc<Context>,
    envelope: Envelope<PartnerEvent>,
    delivery: DeliveryContext,
) -> Settle {
    match process(&ctx, &envelope).await {
        Ok(()) => Settle::Ack,
        Err(failure) => {
            tracing::warn!(
                message_id = %envelope.message_id,
                kind = envelope.kind(),
                attempt = delivery.attempt,
                %failure,
                "partner event not handled"
            );
            failure.into_outcome()
        }
    }
}

/// The `source_reference` of the reward an event earns:
/// `<partner>:<fact>:<once-per key>`, e.g. `aurora:booking:B1` or
/// `tribe:event:E1\u{1f}U1` (composite keys keep `once_per_key`'s separator).
pub fn source_reference(event: &PartnerEvent) -> String {
    let fact = match event {
        PartnerEvent::AuroraBookingCreated(_)
        | PartnerEvent::AuroraBookingCompleted(_)
        | PartnerEvent::AuroraBookingCancelled(_) => "booking",
        PartnerEvent::AuroraReviewSubmitted(_) => "review",
        PartnerEvent::TribeEventAttendance(_) => "event",
        PartnerEvent::TribeContribution(_) => "contribution",
        PartnerEvent::TribeStakingStarted(_) => "stake",
        PartnerEvent::TribeCoachingMilestone(_) => "coaching",
        PartnerEvent::TribeReferralSuccess(_) => "referral",
    };
    format!("{}:{fact}:{}", event.partner(), event.once_per_key())
}

/// The `source_reference` of period `period` (1-based) of Tribe stake `stake_id`.
pub fn stake_period_reference(stake_id: &str, period: i64) -> String {
    format!("tribe:stake:{stake_id}:period:{period}")
}

#[tracing::instrument(skip_all, fields(message_id = %envelope.message_id, kind = envelope.kind()))]
async fn process(ctx: &Context, envelope: &Envelope<PartnerEvent>) -> Result<(), Failure> {
    let event = &envelope.payload;
    // Before anything is written: an event no rule can price is parked for
    // an operator, not half-processed.
    let grant = ctx
        .rules
        .evaluate(event)
        .map_err(|err| Failure::permanent(format!("{}: {err}", envelope.kind())))?;
    if let Some(grant) = grant
        && rewarded_at_once(ctx, envelope, grant).await?
    {
        return Ok(());
    }
    // One transaction for everything the event writes, the user it may
    // create included: a new guest costs one commit, not two.
    let txn = begin_write(&ctx.db).await?;
    let user = ensure_user(ctx, &txn, event).await?;
    let reference = source_reference(event);

    match event {
        PartnerEvent::AuroraBookingCreated(booking) => {
            let row = bookings::record(
                &txn,
                &booking.booking_id,
                &booking.guest_id,
                BookingEvent::Created,
            )
            .await?;
            if row.status == BookingStatus::Cancelled {
                txn.commit().await?;
                tracing::info!(booking_id = %booking.booking_id, "booking already cancelled: no reward");
                ctx.metrics.reward(Rule::Booking, Outcome::Cancelled);
                return Ok(());
            }
            reward(ctx, txn, &reference, &user, grant, Rule::Booking, envelope).await
        }
        PartnerEvent::AuroraBookingCompleted(booking) => {
            bookings::record(
                &txn,
                &booking.booking_id,
                &booking.guest_id,
                BookingEvent::Completed,
            )
            .await?;
            txn.commit().await?;
            Ok(())
        }
        PartnerEvent::AuroraBookingCancelled(cancellation) => {
            bookings::record(
                &txn,
                &cancellation.booking_id,
                &cancellation.guest_id,
                BookingEvent::Cancelled(cancellation.cancellation_reason.clone()),
            )
            .await?;
            // On a transient failure (a mint in flight) the transaction is
            // dropped, which rolls it back; the retry does it all again.
            let done = store::cancel_reward(&txn, &reference, envelope).await?;
            txn.commit().await?;
            let outcome = match done {
                Cancelled::NoReward => Outcome::None,
                Cancelled::AlreadyDone => Outcome::Duplicate,
                Cancelled::Cancelled => Outcome::Cancelled,
                Cancelled::Reversed { burn, owed } => {
                    if let Some(burn) = &burn {
                        ctx.outbox.notify();
                        tracing::info!(booking_id = %cancellation.booking_id, burn_tx = %burn.tx_id, "booking reward reversed by a burn");
                    }
                    if owed.is_positive() {
                        ctx.metrics.clawback_opened();
                    }
                    Outcome::Reversed
                }
            };
            ctx.metrics.reward(Rule::Booking, outcome);
            Ok(())
        }
        PartnerEvent::TribeStakingStarted(stake) => {
            record_stake(ctx, txn, &user, stake, envelope.occurred_at).await
        }
        PartnerEvent::AuroraReviewSubmitted(_) => {
            reward(ctx, txn, &reference, &user, grant, Rule::Review, envelope).await
        }
        PartnerEvent::TribeEventAttendance(_) => {
            reward(
                ctx,
                txn,
                &reference,
                &user,
                grant,
                Rule::EventAttendance,
                envelope,
            )
            .await
        }
        PartnerEvent::TribeContribution(_) => {
            reward(
                ctx,
                txn,
                &reference,
                &user,
                grant,
                Rule::Contribution,
                envelope,
            )
            .await
        }
        PartnerEvent::TribeCoachingMilestone(_) => {
            reward(
                ctx,
                txn,
                &reference,
                &user,
                grant,
                Rule::CoachingMilestone,
                envelope,
            )
            .await
        }
        PartnerEvent::TribeReferralSuccess(_) => {
            reward(ctx, txn, &reference, &user, grant, Rule::Referral, envelope).await
        }
    }
}

/// The common rewarding event in one statement, outside any transaction:
/// a grant with no emission budget for a user who owes nothing, written
/// with the user when they are new and with the booking's row for a
/// booking's first event ([`linked::insert_committed`]). `false` when the
/// event is not that common case, or when a row it expected to be new
/// exists (a user created concurrently, a booking already recorded): then
/// nothing was written but, perhaps, the new user, a state of its own, and
/// the event takes the transactional path, which finds what is there.
async fn rewarded_at_once(
    ctx: &Context,
    envelope: &Envelope<PartnerEvent>,
    grant: Grant,
) -> Result<bool, Failure> {
    let event = &envelope.payload;
    let (booking, email) = match event {
        PartnerEvent::AuroraBookingCreated(booking) => (Some(booking), booking.guest_email.clone()),
        PartnerEvent::AuroraReviewSubmitted(_)
        | PartnerEvent::TribeEventAttendance(_)
        | PartnerEvent::TribeContribution(_)
        | PartnerEvent::TribeCoachingMilestone(_)
        | PartnerEvent::TribeReferralSuccess(_) => (None, None),
        PartnerEvent::AuroraBookingCompleted(_)
        | PartnerEvent::AuroraBookingCancelled(_)
        | PartnerEvent::TribeStakingStarted(_) => return Ok(false),
    };
    // A budget makes no grant common: spare the lookup.
    if ctx.emission.budget().is_some() {
        return Ok(false);
    }
    let mut rows = Vec::new();
    let user = match users::find_or_next_index(&ctx.db, event.user_external_id()).await? {
        Found::User(user) => {
            // An address to record, or a debt to withhold: the general path.
            if (email.is_some() && user.email.is_none())
                || !CommonGrant::applies(ctx, &ctx.db, &user).await?
            {
                return Ok(false);
            }
            user
        }
        Found::NextIndex(index) => {
            let new = NewUser {
                partner: event.partner().to_owned(),
                external_id: event.user_external_id().to_owned(),
                email,
            };
            let user = users::new_model(new, index, |index| ctx.wallets.wallet_address(index))?;
            rows.extend(users::linked_rows(&user));
            user
        }
    };
    let created = !rows.is_empty();
    if let Some(booking) = booking {
        rows.push(bookings::linked_row(
            &booking.booking_id,
            &booking.guest_id,
            &BookingEvent::Created,
        ));
    }
    let leading = rows.len();
    let reference = source_reference(event);
    let CommonGrant {
        rows: grant_rows,
        mint,
    } = CommonGrant::new(
        ctx,
        &RewardRequest {
            source_reference: &reference,
            user: &user,
            grant,
            cause: Some(envelope),
        },
    )?;
    rows.extend(grant_rows);
    let written = linked::insert_committed(&ctx.db, &rows).await?;
    if created && written >= 2 {
        new_user(ctx, &user, event.partner());
    }
    let Some(written) = written.checked_sub(leading) else {
        return Ok(false);
    };
    let granted = CommonGrant::granted(mint, written, &reference)?;
    report(ctx, &reference, &user, grant, grant.rule, &granted);
    Ok(true)
}

/// Grants `grant` (if any) in `txn`, commits, wakes the relay and counts it.
async fn reward(
    ctx: &Context,
    txn: DatabaseTransaction,
    reference: &str,
    user: &users::Model,
    grant: Option<Grant>,
    rule: Rule,
    envelope: &Envelope<PartnerEvent>,
) -> Result<(), Failure> {
    let Some(grant) = grant else {
        // The transaction may hold a booking row: keep it.
        txn.commit().await?;
        ctx.metrics.reward(rule, Outcome::None);
        return Ok(());
    };
    let granted = store::grant(
        ctx,
        &txn,
        RewardRequest {
            source_reference: reference,
            user,
            grant,
            cause: Some(envelope),
        },
    )
    .await?;
    settle(ctx, txn, reference, user, grant, rule, granted).await
}

/// Commits what [`store::grant`] did (rolls back a duplicate, which wrote
/// nothing), wakes the relay for a mint and counts it.
async fn settle(
    ctx: &Context,
    txn: DatabaseTransaction,
    reference: &str,
    user: &users::Model,
    grant: Grant,
    rule: Rule,
    granted: Granted,
) -> Result<(), Failure> {
    if granted == Granted::Duplicate {
        // Nothing new was written.
        txn.rollback().await?;
    } else {
        txn.commit().await?;
    }
    report(ctx, reference, user, grant, rule, &granted);
    Ok(())
}

/// Logs and counts what a committed grant did; wakes the relay for a mint.
fn report(
    ctx: &Context,
    reference: &str,
    user: &users::Model,
    grant: Grant,
    rule: Rule,
    granted: &Granted,
) {
    let outcome = match granted {
        Granted::Duplicate => {
            tracing::info!(
                source_reference = reference,
                "already rewarded: duplicate event"
            );
            ctx.metrics.reward(rule, Outcome::Duplicate);
            return;
        }
        Granted::Held => Outcome::Held,
        Granted::Minted(_) | Granted::Withheld => Outcome::Granted,
    };
    if let Granted::Minted(tx) = granted {
        ctx.outbox.notify();
        tracing::info!(
            source_reference = reference,
            rule = rule.as_str(),
            user_id = %user.external_id,
            amount_wei = %grant.amount.as_wei(),
            tx_id = %tx.tx_id,
            "reward granted"
        );
    }
    ctx.metrics.reward(rule, outcome);
}

/// The HAVEN user the event is about, created (with its custodial wallet)
/// the first time any partner mentions them. Race-safe: two events for the
/// same new user create one user.
async fn ensure_user(
    ctx: &Context,
    txn: &DatabaseTransaction,
    event: &PartnerEvent,
) -> Result<users::Model, Failure> {
    let email = match event {
        PartnerEvent::AuroraBookingCreated(booking) => booking.guest_email.clone(),
        _ => None,
    };
    let found = users::find_or_create_in(
        txn,
        NewUser {
            partner: event.partner().to_owned(),
            external_id: event.user_external_id().to_owned(),
            email: email.clone(),
        },
        |index| ctx.wallets.wallet_address(index),
    )
    .await?;
    if let (Some(email), None) = (email, &found.user.email) {
        // First seen through an event without one (a Tribe event racing the
        // booking): record the address now, unless someone already did.
        users::Entity::update_many()
            .set(users::ActiveModel {
                email: Set(Some(email.clone())),
                updated_at: Set(Utc::now()),
                ..Default::default()
            })
            .filter(users::Column::Id.eq(found.user.id))
            .filter(users::Column::Email.is_null())
            .exec(txn)
            .await?;
        let mut user = found.user;
        user.email = Some(email);
        return Ok(user);
    }
    if found.created {
        new_user(ctx, &found.user, event.partner());
    }
    Ok(found.user)
}

/// Counts and logs a user created for an event from `partner`.
fn new_user(ctx: &Context, user: &users::Model, partner: &str) {
    ctx.metrics.user_created();
    tracing::info!(
        user_id = %user.external_id,
        partner,
        wallet = %user.wallet_address,
        derivation_index = user.derivation_index,
        "new HAVEN user"
    );
}

/// Records a stake; its interest is paid by the periodic job from the end
/// of its first period.
async fn record_stake(
    ctx: &Context,
    txn: DatabaseTransaction,
    user: &users::Model,
    stake: &StakingStarted,
    started_at: DateTime<Utc>,
) -> Result<(), Failure> {
    let period = chrono::Duration::from_std(ctx.staking_period)
        .map_err(|_| Failure::permanent("STAKING_ACCRUAL_PERIOD is too long"))?;
    let first_accrual_at = started_at
        .checked_add_signed(period)
        .ok_or_else(|| Failure::permanent("the first accrual of the stake is out of range"))?;
    let inserted = stakes::insert(
        &txn,
        NewStake {
            stake_id: stake.stake_id.clone(),
            user_id: user.id,
            amount: store::entity_wei(stake.amount_wei)?,
            started_at,
            first_accrual_at,
        },
    )
    .await?;
    txn.commit().await?;
    match inserted {
        Some(_) => {
            tracing::info!(stake_id = %stake.stake_id, user_id = %user.external_id, %first_accrual_at, "stake recorded")
        }
        None => {
            tracing::info!(stake_id = %stake.stake_id, "stake already recorded: duplicate event")
        }
    }
    Ok(())
}
