//! The stuck-transaction sweep: a token transaction is driven by its chain
//! request message; when that message is gone (dead-lettered after its
//! retries while the chain was away, lost with a purged queue), the row
//! would stay `pending` or `submitted` for ever, and a redemption waiting on
//! its burn would keep the user's tokens reserved.
//!
//! Every `TX_SWEEP_INTERVAL` the sweep takes the unfinished rows unchanged
//! for `TX_STALE_AFTER` and queues their request again through the outbox,
//! built from the row (same id, so the same on-chain reference: the
//! contract's guard keeps a mint or burn once however many copies run),
//! marking the row looked at in the same transaction, so each stale row is
//! queued once per stale period. A row this process is handling right now
//! is left alone. Rows recorded more than `TX_GIVE_UP_AFTER` ago are not
//! driven any more and are counted in `haven_chain_transactions_stuck`.
//!
//! One replica of the system sweeps each interval (claimed in `job_runs`,
//! see `haven_common::jobs`); its report is stored there and every replica
//! sets `haven_chain_transactions_stuck` from it. Were two to sweep the same
//! rows anyway (a lease lost mid-run), the conditional touch lets one of
//! them queue a row, and a second copy would be harmless.

use std::time::Duration;

use chrono::Utc;
use haven_common::amqp::Failure;
use haven_common::db::begin_write;
use haven_common::jobs::{OncePerSystem, Outcome};
use haven_common::shutdown::{CancellationToken, every};
use haven_common::telemetry::ErrorChain;
use haven_entity::token_transactions::{self, TxType};
use haven_entity::{EntityError, redemptions, users};
use haven_messages::{BurnRequest, ChainRequest, Envelope, MintRequest};
use haven_outbox::OutboxNotifier;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde::{Deserialize, Serialize};

use crate::config::SweepConfig;
use crate::metrics::Metrics;
use crate::minter::Handling;

/// Rows looked at per sweep at most (the rest wait for the next one).
const SWEEP_BATCH: u64 = 200;

/// What the sweep needs.
#[derive(Debug, Clone)]
pub struct Sweep {
    /// The database pool.
    pub db: DatabaseConnection,
    /// Wakes the outbox relay after requests were queued.
    pub outbox: OutboxNotifier,
    /// The requests this process is handling now (left alone).
    pub handling: Handling,
    /// This service's instruments.
    pub metrics: Metrics,
    /// The settings.
    pub config: SweepConfig,
}

/// The name the sweep is claimed and stored under in `job_runs`.
pub const JOB: &str = "chain-minter.sweep";

/// What a sweep reports (stored with the job, shared by every replica).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepReport {
    /// Rows queued again.
    pub requeued: u64,
    /// Rows past `TX_GIVE_UP_AFTER`, no longer driven.
    pub stuck: u64,
}

impl Sweep {
    /// Sweeps every interval until `stop` is cancelled; `job` makes one
    /// replica of the system sweep each interval, and every replica sets
    /// `haven_chain_transactions_stuck` from the last stored report.
    pub async fn run(self, job: OncePerSystem, stop: CancellationToken) {
        every(self.config.tx_sweep_interval, &stop, || async {
            let ran = job.tick(|| async {
                match self.once().await {
                    Ok(report) => {
                        if report.requeued > 0 {
                            tracing::warn!(
                                requeued = report.requeued,
                                "token transactions had no request driving them; queued again"
                            );
                        }
                        Outcome::ok(&report)
                    }
                    Err(failure) => {
                        tracing::warn!(%failure, "the stuck-transaction sweep failed; trying again next interval");
                        Outcome::failed()
                    }
                }
            });
            if let Err(err) = ran.await {
                tracing::warn!(error = %ErrorChain(&err), "could not claim or record the sweep; trying again next interval");
            }
            match job.last().await {
                Ok(Some(last)) => {
                    if let Some(report) = last
                        .result
                        .and_then(|json| serde_json::from_str::<SweepReport>(&json).ok())
                    {
                        self.metrics.stuck(report.stuck);
                    }
                }
                Ok(None) => {}
                Err(err) => tracing::debug!(error = %ErrorChain(&err), "cannot read the last sweep"),
            }
        })
        .await;
    }

    /// One sweep: queues the stale rows again and refreshes the stuck
    /// count; returns how many were queued and how many are stuck.
    pub async fn once(&self) -> Result<SweepReport, Failure> {
        let now = Utc::now();
        let stale_before = now - age(self.config.tx_stale_after, "TX_STALE_AFTER")?;
        let give_up_before = now - age(self.config.tx_give_up_after, "TX_GIVE_UP_AFTER")?;
        let stale =
            token_transactions::unfinished_since(&self.db, stale_before, SWEEP_BATCH).await?;
        let mut requeued = 0;
        for row in stale {
            if row.created_at < give_up_before || self.handling.contains(row.id) {
                continue;
            }
            if self.requeue(&row).await? {
                tracing::info!(
                    tx_id = %row.tx_id,
                    status = ?row.status,
                    since = %row.updated_at,
                    "stale token transaction queued again"
                );
                requeued += 1;
            }
        }
        if requeued > 0 {
            self.outbox.notify();
            self.metrics.requeued(requeued);
        }
        let stuck =
            token_transactions::count_unfinished_recorded_before(&self.db, give_up_before).await?;
        self.metrics.stuck(stuck);
        Ok(SweepReport { requeued, stuck })
    }

    /// Queues `row`'s request again and marks the row looked at, in one
    /// transaction; `false` when the row changed since it was read.
    async fn requeue(&self, row: &token_transactions::Model) -> Result<bool, Failure> {
        let request = request_of(&self.db, row).await?;
        let txn = begin_write(&self.db).await.map_err(EntityError::from)?;
        if !token_transactions::touch_if_unchanged(&txn, row).await? {
            return Ok(false);
        }
        haven_outbox::enqueue(&txn, &Envelope::new(request))
            .await
            .map_err(|err| Failure::transient(format!("outbox: {err}")))?;
        txn.commit().await.map_err(EntityError::from)?;
        Ok(true)
    }
}

/// The chain request of `row`, as its producer queued it: the user's
/// wallet, the amount and reason, and for a burn the redemption it
/// belongs to (which decides the ledger movement).
pub(crate) async fn request_of(
    db: &DatabaseConnection,
    row: &token_transactions::Model,
) -> Result<ChainRequest, Failure> {
    let user = users::Entity::find_by_id(row.user_id)
        .one(db)
        .await
        .map_err(EntityError::from)?
        .ok_or_else(|| {
            Failure::permanent(format!("user of token transaction {} is gone", row.id))
        })?;
    let amount_wei = u128::try_from(row.amount.get()).map_err(|_| {
        Failure::permanent(format!(
            "token transaction {} has a negative amount",
            row.id
        ))
    })?;
    Ok(match row.tx_type {
        TxType::Mint => ChainRequest::Mint(MintRequest {
            tx_id: row.id,
            user_id: user.external_id,
            to_address: user.wallet_address,
            amount_wei,
            reason: row.reason.clone(),
        }),
        TxType::Burn => {
            let redemption = redemptions::Entity::find()
                .filter(redemptions::Column::BurnTxId.eq(row.tx_id.as_str()))
                .one(db)
                .await
                .map_err(EntityError::from)?;
            ChainRequest::Burn(BurnRequest {
                tx_id: row.id,
                user_id: user.external_id,
                from_address: user.wallet_address,
                amount_wei,
                reason: row.reason.clone(),
                redemption_id: redemption.map(|r| r.request_id),
            })
        }
    })
}

fn age(duration: Duration, name: &str) -> Result<chrono::Duration, Failure> {
    chrono::Duration::from_std(duration)
        .map_err(|_| Failure::permanent(format!("{name} is too long")))
}
