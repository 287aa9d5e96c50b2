//! The periodic job: pays due staking interest, releases held rewards into
//! the current emission period, and refreshes the held gauges.
//!
//! One replica of the system pays and releases each period (claimed in
//! `job_runs`, see `haven_common::jobs`); every replica refreshes the
//! gauges. Were two to run anyway (a lease lost mid-run), they never pay
//! twice: each stake advances one period at a time by a conditional update
//! on `periods_paid` (the loser of a race matches no row), each held reward
//! is released by a conditional `held -> pending` update, and every
//! reward's `source_reference` is unique in any case.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use haven_common::db::begin_write;
use haven_common::jobs::{OncePerSystem, Outcome as JobOutcome};
use haven_common::money::Wei;
use haven_common::shutdown::CancellationToken;
use haven_entity::rewards;
use haven_entity::stakes;
use haven_entity::users;
use sea_orm::EntityTrait;

use crate::context::Context;
use crate::handlers::partner_event::stake_period_reference;
use crate::metrics::Outcome;
use crate::rules::{Grant, Rule};
use crate::store::{self, Granted, Released, RewardRequest};
use haven_common::amqp::Failure;

/// Stakes (and held rewards) taken per query.
const BATCH: u64 = 100;
/// Most staking periods paid per run, so one run after a long outage
/// cannot starve the rest of the job; the next run carries on.
const MAX_PERIODS_PER_RUN: u32 = 10_000;
/// Most batches of due stakes looked at per run.
const MAX_BATCHES_PER_RUN: u32 = 100;

/// The name the job is claimed and stored under in `job_runs`.
pub const JOB: &str = "reward-calculator.jobs";

/// Runs the job every `period` until `shutdown`. A failing step is logged
/// and tried again at the next run.
pub async fn run(
    ctx: Arc<Context>,
    job: OncePerSystem,
    period: Duration,
    shutdown: CancellationToken,
) {
    haven_common::shutdown::every(period, &shutdown, || async {
        // Paying and releasing: one replica of the system per period.
        let ran = job.tick(|| async {
            let mut ok = true;
            if let Err(failure) = accrue_staking(&ctx, Utc::now()).await {
                tracing::warn!(%failure, "staking accrual interrupted; resuming at the next run");
                ok = false;
            }
            if let Err(failure) = release_held(&ctx).await {
                tracing::warn!(%failure, "releasing held rewards interrupted; resuming at the next run");
                ok = false;
            }
            if ok {
                JobOutcome::ok(&serde_json::json!({}))
            } else {
                JobOutcome::failed()
            }
        });
        if let Err(err) = ran.await {
            tracing::warn!(error = %haven_common::telemetry::ErrorChain(&err), "could not claim or record the reward jobs; trying again next run");
        }
        // The gauges count the shared database: every replica reports them.
        match haven_entity::clawbacks::total_outstanding(&ctx.db).await {
            Ok((owed, users)) => ctx.metrics.set_clawbacks(owed.get(), users),
            Err(err) => {
                tracing::warn!(error = %haven_common::telemetry::ErrorChain(&err), "cannot sum the clawbacks owed")
            }
        }
        match rewards::held_totals(&ctx.db).await {
            Ok((count, amount)) => ctx.metrics.set_held(count, amount.get()),
            Err(err) => {
                tracing::warn!(error = %haven_common::telemetry::ErrorChain(&err), "cannot count held rewards")
            }
        }
    })
    .await;
}

/// Pays every staking period completed by `now` and not paid yet.
pub async fn accrue_staking(ctx: &Context, now: DateTime<Utc>) -> Result<(), Failure> {
    let period = chrono::Duration::from_std(ctx.staking_period)
        .map_err(|_| Failure::permanent("STAKING_ACCRUAL_PERIOD is too long"))?;
    let mut budget = MAX_PERIODS_PER_RUN;
    for _ in 0..MAX_BATCHES_PER_RUN {
        let due = stakes::due(&ctx.db, now, BATCH).await?;
        let full = due.len() as u64 == BATCH;
        for stake in &due {
            let completed = completed_periods(stake.started_at, now, period);
            let mut paid = stake.periods_paid;
            while paid < completed && budget > 0 {
                budget -= 1;
                if !pay_period(ctx, stake, paid + 1, period).await? {
                    // Another replica is paying this stake.
                    break;
                }
                paid += 1;
            }
        }
        if !full || budget == 0 {
            break;
        }
    }
    Ok(())
}

/// Whole periods between `started_at` and `now`.
fn completed_periods(
    started_at: DateTime<Utc>,
    now: DateTime<Utc>,
    period: chrono::Duration,
) -> i64 {
    let elapsed = (now - started_at).num_milliseconds();
    let length = period.num_milliseconds().max(1);
    elapsed.max(0) / length
}

/// Pays period `n` of `stake` in one transaction: the conditional advance,
/// the reward and its mint. `false` when another replica advanced it first.
async fn pay_period(
    ctx: &Context,
    stake: &stakes::Model,
    n: i64,
    period: chrono::Duration,
) -> Result<bool, Failure> {
    let next_at = period
        .checked_mul(
            i32::try_from(n + 1).map_err(|_| Failure::permanent("too many staking periods"))?,
        )
        .and_then(|offset| stake.started_at.checked_add_signed(offset))
        .ok_or_else(|| {
            Failure::permanent(format!(
                "stake {} period {n} is out of range",
                stake.stake_id
            ))
        })?;
    let txn = begin_write(&ctx.db).await?;
    if !stakes::advance(&txn, stake.id, n, next_at).await? {
        txn.rollback().await?;
        return Ok(false);
    }
    let staked = u128::try_from(stake.amount.get()).map_err(|_| {
        Failure::permanent(format!("stake {} has a negative amount", stake.stake_id))
    })?;
    let interest = ctx
        .rules
        .staking_interest(Wei::from_wei(staked))
        .map_err(|err| Failure::permanent(format!("stake {}: {err}", stake.stake_id)))?;
    let Some(amount) = interest else {
        // Too small a stake to earn a wei this period: just move on.
        txn.commit().await?;
        return Ok(true);
    };
    let user = users::Entity::find_by_id(stake.user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| Failure::permanent(format!("user of stake {} is gone", stake.stake_id)))?;
    let reference = stake_period_reference(&stake.stake_id, n);
    let granted = store::grant(
        ctx,
        &txn,
        RewardRequest {
            source_reference: &reference,
            user: &user,
            grant: Grant {
                rule: Rule::StakingInterest,
                amount,
            },
            cause: None,
        },
    )
    .await?;
    txn.commit().await?;
    let outcome = match granted {
        Granted::Minted(_) => {
            ctx.outbox.notify();
            Outcome::Granted
        }
        Granted::Withheld => Outcome::Granted,
        Granted::Held => Outcome::Held,
        Granted::Duplicate => Outcome::Duplicate,
    };
    if outcome != Outcome::Duplicate {
        ctx.metrics.staking_accrual();
        tracing::info!(stake_id = %stake.stake_id, period = n, amount_wei = %amount.as_wei(), "staking interest paid");
    }
    ctx.metrics.reward(Rule::StakingInterest, outcome);
    Ok(true)
}

/// Releases held rewards, oldest first, while the current period has room.
/// Stops at the first one that does not fit, so none is overtaken by a
/// younger one.
pub async fn release_held(ctx: &Context) -> Result<(), Failure> {
    loop {
        let held = rewards::oldest_held(&ctx.db, BATCH).await?;
        if held.is_empty() {
            return Ok(());
        }
        for reward in &held {
            let txn = begin_write(&ctx.db).await?;
            match store::release_held(ctx, &txn, reward).await? {
                Released::Minted(tx) => {
                    txn.commit().await?;
                    ctx.outbox.notify();
                    tracing::info!(reward_id = %reward.id, source_reference = %reward.source_reference, tx_id = %tx.tx_id, "held reward released");
                    if let Some(rule) = Rule::ALL.into_iter().find(|r| r.as_str() == reward.rule) {
                        ctx.metrics.reward(rule, Outcome::Released);
                    }
                }
                Released::Withheld => {
                    txn.commit().await?;
                    tracing::info!(reward_id = %reward.id, source_reference = %reward.source_reference, "held reward released, its whole amount withheld to settle a clawback");
                    if let Some(rule) = Rule::ALL.into_iter().find(|r| r.as_str() == reward.rule) {
                        ctx.metrics.reward(rule, Outcome::Released);
                    }
                }
                Released::Gone => txn.rollback().await?,
                Released::NoRoom => {
                    txn.rollback().await?;
                    return Ok(());
                }
            }
        }
        if (held.len() as u64) < BATCH {
            return Ok(());
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn completed_periods_count_whole_periods_only() {
        let start = Utc.timestamp_opt(1_000, 0).unwrap();
        let week = chrono::Duration::days(7);
        let at = |secs: i64| Utc.timestamp_opt(1_000 + secs, 0).unwrap();
        assert_eq!(completed_periods(start, at(0), week), 0);
        assert_eq!(completed_periods(start, at(7 * 86_400 - 1), week), 0);
        assert_eq!(completed_periods(start, at(7 * 86_400), week), 1);
        assert_eq!(completed_periods(start, at(15 * 86_400), week), 2);
        assert_eq!(completed_periods(start, at(-5), week), 0);
    }
}
