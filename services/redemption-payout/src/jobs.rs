//! The recovery sweep: every interval, resume the redemptions that have sat
//! in an unfinished state longer than the stale age, and refresh the
//! per-state gauges.
//!
//! Messages normally drive the saga; the sweep is what makes it finish
//! anyway: a payout the provider settles later is polled here, and a
//! redemption whose message was dead-lettered (the provider away for hours)
//! or whose handler died is resumed from its recorded state. One replica
//! of the system sweeps each interval (claimed in `job_runs`, see
//! `haven_common::jobs`); were two to sweep the same rows anyway (a lease
//! lost mid-run), every step is conditional and the provider call
//! idempotent, so the worst case is a repeated look.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use haven_common::jobs::{OncePerSystem, Outcome};
use haven_common::shutdown::{CancellationToken, every};
use haven_common::telemetry::ErrorChain;
use haven_entity::redemptions::{self, RedemptionState};

use crate::saga::Saga;
use haven_common::amqp::Failure;

/// Redemptions resumed per sweep at most (the rest wait for the next one).
const SWEEP_BATCH: u64 = 100;

/// States the sweep resumes.
const UNFINISHED: [RedemptionState; 6] = [
    RedemptionState::Reserved,
    RedemptionState::BurnRequested,
    RedemptionState::Burned,
    RedemptionState::PayoutUnknown,
    RedemptionState::PayoutRequested,
    RedemptionState::RefundRequested,
];

/// States whose tokens are still reserved (the burn not confirmed).
const RESERVED: [RedemptionState; 2] = [RedemptionState::Reserved, RedemptionState::BurnRequested];

/// The name the sweep is claimed and stored under in `job_runs`.
pub const JOB: &str = "redemption-payout.sweep";

/// Sweeps every `interval` until `stop` is cancelled: `job` makes one
/// replica of the system resume the stale redemptions each interval (its
/// report, `{"resumed": n}`, stored with the job); every replica refreshes
/// the gauges, which are counts of the shared database.
pub async fn run(
    saga: Arc<Saga>,
    job: OncePerSystem,
    interval: Duration,
    stale_after: Duration,
    stop: CancellationToken,
) {
    every(interval, &stop, || async {
        // A sweep in progress is not cut short by shutdown between two
        // redemptions: each step is its own transaction, so stopping is
        // safe anywhere, but stopping mid-call to the provider wastes it.
        // Boxed: the sweep's future (provider calls) is large.
        let ran = Box::pin(job.tick(|| async {
            match sweep(&saga, stale_after, &stop).await {
                Ok(resumed) => Outcome::ok(&serde_json::json!({ "resumed": resumed })),
                Err(failure) => {
                    tracing::warn!(%failure, "redemption sweep failed; trying again next interval");
                    Outcome::failed()
                }
            }
        }));
        if let Err(err) = ran.await {
            tracing::warn!(error = %ErrorChain(&err), "could not claim or record the redemption sweep; trying again next interval");
        }
        if let Err(failure) = gauges(&saga, stale_after).await {
            tracing::warn!(%failure, "could not refresh the redemption gauges");
        }
    })
    .await;
}

/// Resumes up to [`SWEEP_BATCH`] stale redemptions; returns how many.
pub async fn sweep(
    saga: &Saga,
    stale_after: Duration,
    stop: &CancellationToken,
) -> Result<usize, Failure> {
    let age = chrono::Duration::from_std(stale_after)
        .map_err(|_| Failure::permanent("REDEMPTION_STALE_AFTER is too long"))?;
    let stale = redemptions::stale(&saga.db, &UNFINISHED, Utc::now() - age, SWEEP_BATCH).await?;
    let found = stale.len();
    for redemption in stale {
        if stop.is_cancelled() {
            break;
        }
        match saga.advance(redemption.request_id, None).await {
            Ok(progress) => {
                tracing::debug!(redemption_id = %redemption.request_id, ?progress, "swept")
            }
            Err(failure) => tracing::warn!(
                redemption_id = %redemption.request_id,
                state = redemption.state.as_str(),
                %failure,
                "could not resume a stale redemption"
            ),
        }
    }
    Ok(found)
}

/// Refreshes the per-state counts, the payouts left unresolved and the
/// reserved amount outstanding.
pub async fn gauges(saga: &Saga, stale_after: Duration) -> Result<(), Failure> {
    let counts = redemptions::count_by_state(&saga.db).await?;
    saga.metrics.set_states(&counts);
    // A payout the sweep could not resolve keeps its row unchanged (a
    // lookup that proves nothing writes nothing), so it is stale here.
    let age = chrono::Duration::from_std(stale_after)
        .map_err(|_| Failure::permanent("REDEMPTION_STALE_AFTER is too long"))?;
    let unresolved = redemptions::count_stale(
        &saga.db,
        &[RedemptionState::PayoutUnknown],
        Utc::now() - age,
    )
    .await?;
    saga.metrics.set_unresolved(unresolved);
    let (_, reserved) = redemptions::total_in(&saga.db, &RESERVED).await?;
    saga.metrics.set_reserved(reserved.get());
    Ok(())
}
