//! `GET /analytics/*`: a user's figures and history, the token statistics
//! and the last reconciliation.

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse as _, Response};
use chrono::{DateTime, Utc};
use haven_common::money::Wei;
use haven_common::openapi::{Detail, HnvAmount};
use serde::Serialize;
use utoipa::ToSchema;

use super::extract::{Paging, UserId};
use super::state::AppState;
use crate::error::Error;
use crate::reconcile::Report;
use crate::stats::TokenStats;
use crate::store::HistoryRow;

/// Tag of the analytics routes.
pub const TAG: &str = "analytics";

/// A user's figures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct UserAnalytics {
    /// The partners' id of the user.
    #[schema(example = "test_user_123")]
    pub user_id: String,
    /// The email a partner sent, if any.
    pub email: Option<String>,
    /// The custodial wallet.
    pub wallet_address: String,
    /// Tokens per the ledger (available + reserved), as `GET /token/balance` says.
    #[schema(value_type = HnvAmount)]
    pub balance: Wei,
    /// Redeemable now.
    #[schema(value_type = HnvAmount)]
    pub available: Wei,
    /// Mints not yet confirmed.
    #[schema(value_type = HnvAmount)]
    pub pending: Wei,
    /// Every confirmed mint to the user (rewards and operator mints), refunds
    /// of failed redemption payouts excluded.
    #[schema(value_type = HnvAmount)]
    pub total_earned: Wei,
    /// Redemptions burned and not refunded.
    #[schema(value_type = HnvAmount)]
    pub total_redeemed: Wei,
    /// What the user owes for rewards reversed after their tokens were
    /// spent (a cancelled booking after a redemption); withheld from the
    /// user's next rewards.
    #[schema(value_type = HnvAmount)]
    pub clawback_outstanding: Wei,
    /// Whether the user passed KYC (needed to redeem above 10,000 HNV).
    pub kyc_verified: bool,
    /// Mints and burns of the user, in every status.
    pub transaction_count: u64,
    /// When the user was first seen.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
}

/// `mint` or `burn`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxType {
    /// Tokens created for the user.
    Mint,
    /// Tokens destroyed from the user's wallet.
    Burn,
}

/// Where a transaction is (SPEC.md's four states).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TxStatus {
    /// Queued, or sent and not yet confirmed (`blockchain_tx` is set once sent).
    Pending,
    /// Mined with enough confirmations; in the balance.
    Confirmed,
    /// Gave up; nothing changed on chain.
    Failed,
    /// Withdrawn before it was sent (a cancelled booking's reward).
    Cancelled,
}

impl TxStatus {
    /// SPEC.md's status of a stored one (`submitted` is still `pending` to a client).
    fn of(stored: &str) -> Result<Self, Error> {
        Ok(match stored {
            "pending" | "submitted" => Self::Pending,
            "confirmed" => Self::Confirmed,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => {
                return Err(Error::Store(haven_entity::EntityError::Corrupt(format!(
                    "unknown token transaction status `{other}`"
                ))));
            }
        })
    }

    /// The status of a redemption that has no burn yet.
    fn of_reservation(state: Option<&str>) -> Self {
        match state {
            // Released without a burn: nothing left the wallet.
            Some("failed") => Self::Failed,
            _ => Self::Pending,
        }
    }
}

/// One mint or burn of a user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transaction {
    /// The transaction's id; for a redemption whose burn is not requested
    /// yet, the redemption's `request_id`.
    pub tx_id: String,
    /// The partners' id of the user.
    pub user_id: String,
    /// Mint or burn.
    pub tx_type: TxType,
    /// Amount.
    #[schema(value_type = HnvAmount)]
    pub amount: Wei,
    /// Why: booking, review, redemption, refund, reversal, ...
    pub reason: String,
    /// Where it is.
    pub status: TxStatus,
    /// The chain transaction's hash once sent.
    pub blockchain_tx: Option<String>,
    /// When recorded.
    #[schema(value_type = String, format = DateTime)]
    pub created_at: DateTime<Utc>,
    /// When confirmed.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The redemption this burn (or refund mint) belongs to.
    pub redemption_id: Option<String>,
    /// That redemption's state: `reserved`, `burn_requested`, `burned`,
    /// `payout_unknown`, `payout_requested`, `paid`, `failed`,
    /// `refund_requested` or `refunded`.
    pub redemption_state: Option<String>,
}

/// A page of a user's history.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct Transactions {
    /// The partners' id of the user.
    pub user_id: String,
    /// Transactions in this page.
    pub count: usize,
    /// Transactions in the whole history.
    pub total: u64,
    /// The page size asked for.
    pub limit: u64,
    /// Transactions skipped.
    pub offset: u64,
    /// Newest first; equal times in a fixed order.
    pub transactions: Vec<Transaction>,
}

/// A user's figures.
#[utoipa::path(
    get,
    path = "/analytics/user/{user_id}",
    tag = TAG,
    summary = "A user's balance, earnings and redemptions",
    params(("user_id" = String, Path, description = "The partners' id of the user")),
    responses(
        (status = 200, description = "The user's figures", body = UserAnalytics),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 422, description = "A malformed user id", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn user(
    State(state): State<AppState>,
    UserId(user_id): UserId,
) -> Result<Json<UserAnalytics>, Error> {
    let row = state
        .store
        .user(&user_id)
        .await?
        .ok_or(Error::UserNotFound)?;
    let balance = super::balance::BalanceBody::from_row(row.balance)?;
    Ok(Json(UserAnalytics {
        user_id: balance.user_id,
        email: row.email,
        wallet_address: balance.wallet_address,
        balance: balance.balance,
        available: balance.available,
        pending: balance.pending,
        total_earned: row.total_earned,
        total_redeemed: row.total_redeemed,
        clawback_outstanding: row.clawback_outstanding,
        kyc_verified: row.kyc_verified,
        transaction_count: row.transactions,
        created_at: row.created_at,
    }))
}

/// The database's token totals and the contract's.
#[utoipa::path(
    get,
    path = "/analytics/token-stats",
    tag = TAG,
    summary = "Token totals: the ledger's and the contract's",
    description = "Cached for STATS_CACHE_TTL (`cache_age_seconds` says how old the answer is). When the chain cannot be read the database figures are still answered, with `chain.status` `unavailable`.",
    responses(
        (status = 200, description = "The totals", body = TokenStats),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn token_stats(State(state): State<AppState>) -> Result<Json<TokenStats>, Error> {
    Ok(Json(state.stats.get().await?))
}

/// A page of a user's history.
#[utoipa::path(
    get,
    path = "/analytics/transactions/{user_id}",
    tag = TAG,
    summary = "A user's mints and burns, newest first",
    description = "Every token transaction of the user with its status, newest first (equal times in a fixed order, so pages never overlap). A redemption shows as its burn, with the redemption's id and state; before its burn is requested, as a pending burn whose `tx_id` is the redemption's id. A refund mint carries the redemption it refunds.",
    params(
        ("user_id" = String, Path, description = "The partners' id of the user"),
        ("limit" = Option<u64>, Query, description = "Transactions per page, 1 to 500 (default 50)", minimum = 1, maximum = 500),
        ("offset" = Option<u64>, Query, description = "Transactions to skip (default 0)", minimum = 0),
    ),
    responses(
        (status = 200, description = "The page", body = Transactions),
        (status = 404, description = "`User not found`", body = Detail),
        (status = 422, description = "A malformed user id, `limit` or `offset`", body = Detail),
        (status = 503, description = "The database is unavailable", body = Detail),
    )
)]
#[tracing::instrument(skip_all, fields(limit = paging.limit, offset = paging.offset))]
pub async fn transactions(
    State(state): State<AppState>,
    UserId(user_id): UserId,
    paging: Paging,
) -> Result<Json<Transactions>, Error> {
    let page = state
        .store
        .history(&user_id, paging.limit, paging.offset)
        .await?
        .ok_or(Error::UserNotFound)?;
    let transactions = page
        .rows
        .into_iter()
        .map(|row| transaction(&user_id, row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Json(Transactions {
        count: transactions.len(),
        user_id,
        total: page.total,
        limit: paging.limit,
        offset: paging.offset,
        transactions,
    }))
}

fn transaction(user_id: &str, row: HistoryRow) -> Result<Transaction, Error> {
    let tx_type = match row.tx_type.as_str() {
        "mint" => TxType::Mint,
        "burn" => TxType::Burn,
        other => {
            return Err(Error::Store(haven_entity::EntityError::Corrupt(format!(
                "unknown token transaction type `{other}`"
            ))));
        }
    };
    let status = match &row.status {
        Some(stored) => TxStatus::of(stored)?,
        None => TxStatus::of_reservation(row.redemption_state.as_deref()),
    };
    Ok(Transaction {
        tx_id: row
            .tx_id
            .or_else(|| row.redemption_id.map(|id| id.to_string()))
            .unwrap_or_else(|| row.id.to_string()),
        user_id: user_id.to_owned(),
        tx_type,
        amount: row.amount,
        reason: row.reason,
        status,
        blockchain_tx: row.tx_hash,
        created_at: row.created_at,
        confirmed_at: row.confirmed_at,
        redemption_id: row.redemption_id.map(|id| id.to_string()),
        redemption_state: row.redemption_state,
    })
}

/// The last reconciliation of the ledger with the chain.
#[utoipa::path(
    get,
    path = "/analytics/reconciliation",
    tag = TAG,
    summary = "The last reconciliation of the ledger with the chain",
    description = "Run every RECONCILE_INTERVAL when RPC_URL and CONTRACT_ADDRESS are set. Differences are reported, never fixed.",
    responses(
        (status = 200, description = "The last report", body = Report),
        (status = 404, description = "Reconciliation is not configured, or has not run yet", body = Detail),
    )
)]
#[tracing::instrument(skip_all)]
pub async fn reconciliation(State(state): State<AppState>) -> Result<Response, Error> {
    let Some(job) = &state.reconciliation else {
        return Err(Error::NoReport(
            "Reconciliation is not configured (RPC_URL and CONTRACT_ADDRESS)",
        ));
    };
    // The stored JSON, verbatim: whichever replica ran it, every replica
    // answers the same report, its amounts exact.
    match crate::reconcile::last_report(job).await? {
        Some(json) => Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response()),
        None => Err(Error::NoReport("No reconciliation has finished yet")),
    }
}
