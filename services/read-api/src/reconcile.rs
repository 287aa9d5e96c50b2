//! Reconciliation: the ledger against the chain. Fixes nothing; it reports.
//!
//! For every user, the ledger balance (available + reserved: reserved tokens
//! are still in the wallet until their burn is confirmed) is compared with
//! `balanceOf(wallet)`; the ledger's totals (ever minted, ever burned,
//! minted less burned) with the contract's `totalMinted`, `totalBurned` and
//! `totalSupply`.
//!
//! A difference is a *mismatch* unless transactions in flight explain it
//! (a mint or burn of that user, or any for the totals, is `pending` or
//! `submitted`): then it is *unsettled*, expected to go away once
//! chain-minter records the outcome. The database is always read before the
//! chain, so a transaction recorded between the two reads shows as in flight
//! rather than as a mismatch, and every user difference is read a second
//! time before it is reported, so one that settled during the run is not.
//!
//! The periodic run is claimed per period in `job_runs` (one replica of the
//! whole system runs it, see `haven_common::jobs`) and its JSON report is
//! stored there: `GET /analytics/reconciliation` serves the stored one and
//! every replica sets the [`crate::metrics`] gauges from it, so all agree.
//! `read-api reconcile` runs one and prints it.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt as _, TryStreamExt as _};
use haven_common::jobs::{OncePerSystem, Outcome as JobOutcome};
use haven_common::money::Wei;
use haven_common::openapi::HnvAmount;
use haven_common::telemetry::ErrorChain;
use serde::{Deserialize, Serialize, Serializer};
use tokio_util::sync::CancellationToken;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::chain::{ChainReader, parse_address};
use crate::error::Error;
use crate::metrics::{Metrics, RECONCILIATION_KINDS};
use crate::store::{LedgerAccount, Store};

/// Users read from the database per page.
const PAGE: u64 = 500;
/// Most differences listed per kind in a report (the counts are complete).
pub const MAX_LISTED: usize = 100;

/// An amount that may be negative (chain less ledger), as an exact JSON decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedHnv {
    negative: bool,
    magnitude: Wei,
}

impl SignedHnv {
    /// `a - b`.
    pub fn difference(a: Wei, b: Wei) -> Self {
        match a.checked_sub(b) {
            Some(magnitude) => Self {
                negative: false,
                magnitude,
            },
            None => Self {
                negative: true,
                magnitude: b.checked_sub(a).unwrap_or(Wei::ZERO),
            },
        }
    }
}

impl std::fmt::Display for SignedHnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = if self.negative && !self.magnitude.is_zero() {
            "-"
        } else {
            ""
        };
        write!(f, "{sign}{}", self.magnitude)
    }
}

impl Serialize for SignedHnv {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // `-` followed by Wei's decimal text is a valid JSON number.
        serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?
            .serialize(serializer)
    }
}

/// How a compared figure came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Ledger and chain agree.
    Match,
    /// They differ and nothing in flight explains it.
    Mismatch,
    /// They differ while transactions are in flight.
    Unsettled,
}

/// One of the totals, compared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct TotalCheck {
    /// `total_minted`, `total_burned` or `total_supply`.
    pub kind: &'static str,
    /// The ledger's figure.
    #[schema(value_type = HnvAmount)]
    pub ledger: Wei,
    /// The contract's figure.
    #[schema(value_type = HnvAmount)]
    pub chain: Wei,
    /// Chain less ledger.
    #[schema(value_type = f64)]
    pub difference: SignedHnv,
    /// How it came out.
    pub outcome: Outcome,
}

/// A user whose ledger balance and wallet differ.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserDifference {
    /// The partners' id.
    pub user_id: String,
    /// The custodial wallet.
    pub wallet_address: String,
    /// Available + reserved in the ledger.
    #[schema(value_type = HnvAmount)]
    pub ledger_balance: Wei,
    /// `balanceOf(wallet)`; none when the stored address is not one.
    #[schema(value_type = Option<HnvAmount>)]
    pub chain_balance: Option<Wei>,
    /// Chain less ledger.
    #[schema(value_type = Option<f64>)]
    pub difference: Option<SignedHnv>,
}

/// What one reconciliation found.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Report {
    /// When it started.
    #[schema(value_type = String, format = DateTime)]
    pub started_at: DateTime<Utc>,
    /// When it finished.
    #[schema(value_type = String, format = DateTime)]
    pub finished_at: DateTime<Utc>,
    /// The contract compared with.
    pub contract_address: String,
    /// The block the contract's totals were read at.
    pub block_number: u64,
    /// No mismatch at all (unsettled differences allowed).
    pub matched: bool,
    /// Users compared.
    pub users_checked: u64,
    /// Token transactions in flight when the totals were read.
    pub in_flight_transactions: u64,
    /// The totals, compared.
    pub totals: Vec<TotalCheck>,
    /// Users whose balances differ with nothing in flight.
    pub user_mismatches: u64,
    /// Users whose balances differ while a transaction of theirs is in flight.
    pub user_unsettled: u64,
    /// The first [`MAX_LISTED`] mismatched users.
    pub mismatches: Vec<UserDifference>,
    /// The first [`MAX_LISTED`] unsettled users.
    pub unsettled: Vec<UserDifference>,
}

/// Compares the ledger with the chain.
#[derive(Debug, Clone)]
pub struct Reconciler {
    store: Store,
    chain: ChainReader,
    concurrency: usize,
}

/// One user compared.
enum Compared {
    Equal,
    Differs(UserDifference),
}

impl Reconciler {
    /// A reconciler keeping `concurrency` `balanceOf` calls in flight.
    pub fn new(store: Store, chain: ChainReader, concurrency: usize) -> Self {
        Self {
            store,
            chain,
            concurrency: concurrency.max(1),
        }
    }

    /// One full run. Fails only when the database or the chain cannot be
    /// read at all; a difference is in the report, never an error.
    #[tracing::instrument(skip_all, fields(contract = %self.chain.contract()))]
    pub async fn run(&self) -> Result<Report, Error> {
        let started_at = Utc::now();
        // Database first (see the module docs).
        let totals = self.store.totals().await?;
        let figures = self.chain.figures().await.map_err(Error::ChainRead)?;
        let ledger_supply = totals
            .minted
            .checked_sub(totals.burned)
            .unwrap_or(Wei::ZERO);
        let totals_checks: Vec<TotalCheck> = [
            ("total_minted", totals.minted, figures.total_minted),
            ("total_burned", totals.burned, figures.total_burned),
            ("total_supply", ledger_supply, figures.total_supply),
        ]
        .into_iter()
        .map(|(kind, ledger, chain)| TotalCheck {
            kind,
            ledger,
            chain,
            difference: SignedHnv::difference(chain, ledger),
            outcome: if ledger == chain {
                Outcome::Match
            } else if totals.in_flight > 0 {
                Outcome::Unsettled
            } else {
                Outcome::Mismatch
            },
        })
        .collect();

        let mut users_checked = 0u64;
        let mut suspects = Vec::new();
        let mut unsettled = Vec::new();
        let mut after = Uuid::nil();
        loop {
            let page = self.store.accounts_after(after, PAGE).await?;
            let Some(last) = page.last() else { break };
            after = last.id;
            users_checked += page.len() as u64;
            let compared: Vec<(LedgerAccount, Compared)> = futures::stream::iter(page)
                .map(|account| async move {
                    let compared = self.compare(&account).await?;
                    Ok::<_, Error>((account, compared))
                })
                .buffer_unordered(self.concurrency)
                .try_collect()
                .await?;
            for (account, compared) in compared {
                if let Compared::Differs(difference) = compared {
                    if account.in_flight {
                        unsettled.push(difference);
                    } else {
                        suspects.push(account.id);
                    }
                }
            }
        }

        // A second look at each difference: one that settled meanwhile is
        // not reported.
        let mut mismatches = Vec::new();
        for id in suspects {
            let Some(account) = self.store.account(id).await? else {
                continue;
            };
            if let Compared::Differs(difference) = self.compare(&account).await? {
                if account.in_flight {
                    unsettled.push(difference);
                } else {
                    mismatches.push(difference);
                }
            }
        }

        let user_mismatches = mismatches.len() as u64;
        let user_unsettled = unsettled.len() as u64;
        mismatches.truncate(MAX_LISTED);
        unsettled.truncate(MAX_LISTED);
        let matched =
            user_mismatches == 0 && totals_checks.iter().all(|t| t.outcome != Outcome::Mismatch);
        Ok(Report {
            started_at,
            finished_at: Utc::now(),
            contract_address: self.chain.contract().to_string(),
            block_number: figures.block_number,
            matched,
            users_checked,
            in_flight_transactions: totals.in_flight,
            totals: totals_checks,
            user_mismatches,
            user_unsettled,
            mismatches,
            unsettled,
        })
    }

    async fn compare(&self, account: &LedgerAccount) -> Result<Compared, Error> {
        let Some(wallet) = parse_address(&account.wallet_address) else {
            return Ok(Compared::Differs(UserDifference {
                user_id: account.user_id.clone(),
                wallet_address: account.wallet_address.clone(),
                ledger_balance: account.balance,
                chain_balance: None,
                difference: None,
            }));
        };
        let chain = self
            .chain
            .balance_of(wallet)
            .await
            .map_err(Error::ChainRead)?;
        if chain == account.balance {
            return Ok(Compared::Equal);
        }
        Ok(Compared::Differs(UserDifference {
            user_id: account.user_id.clone(),
            wallet_address: account.wallet_address.clone(),
            ledger_balance: account.balance,
            chain_balance: Some(chain),
            difference: Some(SignedHnv::difference(chain, account.balance)),
        }))
    }
}

impl Report {
    /// Sets the gauges from this report and counts the run.
    pub fn record(&self, metrics: &Metrics) {
        let totals: Vec<(&str, Outcome)> =
            self.totals.iter().map(|t| (t.kind, t.outcome)).collect();
        set_gauges(
            metrics,
            self.user_mismatches,
            self.user_unsettled,
            &totals,
            self.finished_at,
        );
        count_run(metrics, self.matched);
    }

    /// Logs the report: a warning with the whole JSON when anything
    /// mismatched, else an info line with the JSON.
    pub fn log(&self) {
        let json = serde_json::to_string(self).unwrap_or_default();
        if self.matched {
            tracing::info!(
                users_checked = self.users_checked,
                user_unsettled = self.user_unsettled,
                report = %json,
                "reconciliation: ledger and chain agree"
            );
        } else {
            tracing::warn!(
                users_checked = self.users_checked,
                user_mismatches = self.user_mismatches,
                report = %json,
                "reconciliation: ledger and chain DISAGREE"
            );
        }
    }
}

/// Sets the per-kind gauges and the last-run time.
fn set_gauges(
    metrics: &Metrics,
    user_mismatches: u64,
    user_unsettled: u64,
    totals: &[(&str, Outcome)],
    finished_at: DateTime<Utc>,
) {
    for kind in RECONCILIATION_KINDS {
        let (mismatched, unsettled) = if kind == "user_balance" {
            (user_mismatches, user_unsettled)
        } else {
            let outcome = totals.iter().find(|t| t.0 == kind).map(|t| t.1);
            (
                u64::from(outcome == Some(Outcome::Mismatch)),
                u64::from(outcome == Some(Outcome::Unsettled)),
            )
        };
        let gauge = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
        metrics
            .mismatches
            .with_label_values(&[kind])
            .set(gauge(mismatched));
        metrics
            .unsettled
            .with_label_values(&[kind])
            .set(gauge(unsettled));
    }
    metrics.last_run.set(finished_at.timestamp());
}

/// Counts one run by whether it matched.
fn count_run(metrics: &Metrics, matched: bool) {
    let outcome = if matched { "matched" } else { "mismatched" };
    metrics.runs.with_label_values(&[outcome]).inc();
}

/// The name the periodic reconciliation is claimed and stored under in
/// `job_runs`.
pub const JOB: &str = "read-api.reconciliation";

/// The periodic reconciliation, run by one replica at a time; its last
/// report is stored with the job, so `GET /analytics/reconciliation` and
/// the gauges of every replica show the same one.
pub type LastReport = OncePerSystem;

/// The figures of a stored report the gauges need (the rest, amounts
/// included, is served verbatim and never parsed here).
#[derive(Debug, Deserialize)]
struct StoredFigures {
    finished_at: DateTime<Utc>,
    user_mismatches: u64,
    user_unsettled: u64,
    totals: Vec<StoredTotal>,
}

#[derive(Debug, Deserialize)]
struct StoredTotal {
    kind: String,
    outcome: Outcome,
}

/// The stored report, verbatim JSON, if any run made one.
pub async fn last_report(job: &LastReport) -> Result<Option<String>, Error> {
    let last = job.last().await.map_err(Error::JobStore)?;
    Ok(last.and_then(|run| run.result))
}

/// Sets the gauges from the stored report (whichever replica made it).
async fn record_shared(job: &LastReport, metrics: &Metrics) {
    let stored = match last_report(job).await {
        Ok(Some(json)) => serde_json::from_str::<StoredFigures>(&json),
        Ok(None) => return,
        Err(err) => {
            tracing::warn!(error = %ErrorChain(&err), "cannot read the last reconciliation report");
            return;
        }
    };
    match stored {
        Ok(figures) => {
            let totals: Vec<(&str, Outcome)> = figures
                .totals
                .iter()
                .map(|t| (t.kind.as_str(), t.outcome))
                .collect();
            set_gauges(
                metrics,
                figures.user_mismatches,
                figures.user_unsettled,
                &totals,
                figures.finished_at,
            );
        }
        Err(err) => {
            tracing::warn!(error = %ErrorChain(&err), "the stored reconciliation report does not parse")
        }
    }
}

/// Every `every` until `shutdown`: runs `reconciler` if this replica wins
/// the period (one replica per period in the whole system), then sets the
/// gauges from the stored last report. A run that fails is counted and
/// logged; the next period tries again.
pub async fn periodically(
    reconciler: Reconciler,
    every: Duration,
    metrics: Metrics,
    job: LastReport,
    shutdown: CancellationToken,
) {
    haven_common::shutdown::every(every, &shutdown, || async {
        let run = job.tick(|| async {
            let run = tokio::select! {
                () = shutdown.cancelled() => return JobOutcome::failed(),
                run = reconciler.run() => run,
            };
            match run {
                Ok(report) => {
                    // The gauges are set before the report is stored, so
                    // whoever reads the stored report finds them set.
                    report.record(&metrics);
                    report.log();
                    JobOutcome::ok(&report)
                }
                Err(err) => {
                    metrics.runs.with_label_values(&["failed"]).inc();
                    tracing::warn!(error = %ErrorChain(&err), "reconciliation could not run; retrying at the next interval");
                    JobOutcome::failed()
                }
            }
        });
        if let Err(err) = run.await {
            tracing::warn!(error = %ErrorChain(&err), "could not claim or record the reconciliation; trying again next interval");
        }
        record_shared(&job, &metrics).await;
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_are_signed_exact_decimals() {
        let hnv = |n: u128| Wei::from_hnv(n).unwrap();
        let json = |d: SignedHnv| serde_json::to_string(&d).unwrap();
        assert_eq!(json(SignedHnv::difference(hnv(50), hnv(70))), "-20.0");
        assert_eq!(json(SignedHnv::difference(hnv(70), hnv(50))), "20.0");
        assert_eq!(json(SignedHnv::difference(hnv(5), hnv(5))), "0.0");
        assert_eq!(
            json(SignedHnv::difference(Wei::from_wei(1), Wei::from_wei(3))),
            "-0.000000000000000002"
        );
    }
}
