//! What the statements return, and the conversions from their columns:
//! amounts arrive as decimal text of wei and become exact [`Wei`] here.

use chrono::{DateTime, Utc};
use haven_common::money::Wei;
use haven_entity::EntityError;
use sea_orm::QueryResult;
use uuid::Uuid;

/// A user's balances as `GET /token/balance` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BalanceRow {
    /// The partners' id.
    pub user_id: String,
    /// Custodial wallet.
    pub wallet_address: String,
    /// Spendable.
    pub available: Wei,
    /// Held for redemptions in flight.
    pub reserved: Wei,
    /// Mints queued or sent but not yet confirmed (not in the ledger yet).
    pub pending: Wei,
}

/// A user's figures as `GET /analytics/user` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRow {
    /// Balances and ids.
    pub balance: BalanceRow,
    /// Email if a partner sent one.
    pub email: Option<String>,
    /// Whether KYC passed.
    pub kyc_verified: bool,
    /// Confirmed mints, refunds excluded.
    pub total_earned: Wei,
    /// Redemptions burned and not refunded.
    pub total_redeemed: Wei,
    /// Owed for reversed rewards whose tokens were spent.
    pub clawback_outstanding: Wei,
    /// Token transactions of the user.
    pub transactions: u64,
    /// When the user was first seen.
    pub created_at: DateTime<Utc>,
}

/// One entry of a user's history.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRow {
    /// Row id (the token transaction's, or the redemption's for a redemption
    /// that has no burn yet); the tie-breaker of the order.
    pub id: Uuid,
    /// The token transaction's `tx_id`; `None` for a redemption without burn yet.
    pub tx_id: Option<String>,
    /// `mint` or `burn`.
    pub tx_type: String,
    pub amount: Wei,
    /// Why.
    pub reason: String,
    /// The stored status; `None` for a redemption without burn yet.
    pub status: Option<String>,
    /// Chain transaction hash once sent.
    pub tx_hash: Option<String>,
    /// When recorded.
    pub created_at: DateTime<Utc>,
    /// When confirmed.
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The redemption this row belongs to (its burn, or the reservation itself).
    pub redemption_id: Option<Uuid>,
    /// That redemption's state.
    pub redemption_state: Option<String>,
}

/// One page of a user's history and the user's total number of entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryPage {
    /// Newest first.
    pub rows: Vec<HistoryRow>,
    /// Entries in the whole history.
    pub total: u64,
}

/// The database's token totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    /// Ever minted (the negated supply account).
    pub minted: Wei,
    /// Ever burned: the `burned` account (burns not paid out, and the fees
    /// of paid ones) plus the `payout` account (what paid redemptions paid).
    pub burned: Wei,
    pub users: u64,
    /// Token transactions (mints and burns, every status).
    pub transactions: u64,
    /// Token transactions queued or sent, not yet confirmed or failed.
    pub in_flight: u64,
}

/// One user as reconciliation compares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerAccount {
    /// Internal id (paging key).
    pub id: Uuid,
    /// The partners' id.
    pub user_id: String,
    /// Custodial wallet.
    pub wallet_address: String,
    /// Available + reserved: what the wallet should hold on chain.
    pub balance: Wei,
    /// Whether a mint or burn of the user is queued or sent.
    pub in_flight: bool,
}

pub(super) fn balance_row(row: &QueryResult) -> Result<BalanceRow, EntityError> {
    parse_balance(
        row.try_get("", "user_id")?,
        row.try_get("", "wallet_address")?,
        row.try_get("", "available")?,
        row.try_get("", "reserved")?,
        row.try_get("", "pending")?,
    )
}

/// A balance row from the columns of `queries::BALANCE_COLUMNS` (amounts as text;
/// no balance row is zero; `pending` comma-joined).
pub(super) fn parse_balance(
    user_id: String,
    wallet_address: String,
    available: Option<String>,
    reserved: Option<String>,
    pending: Option<String>,
) -> Result<BalanceRow, EntityError> {
    Ok(BalanceRow {
        user_id,
        wallet_address,
        available: amount(available.as_deref())?,
        reserved: amount(reserved.as_deref())?,
        pending: sum(pending)?,
    })
}

/// A row of the user statement: the balance columns and the user's figures.
pub(super) fn user_row(row: &QueryResult) -> Result<UserRow, EntityError> {
    Ok(UserRow {
        balance: balance_row(row)?,
        email: row.try_get("", "email")?,
        kyc_verified: row.try_get("", "kyc_verified")?,
        total_earned: sum(row.try_get("", "earned")?)?,
        total_redeemed: sum(row.try_get("", "redeemed")?)?,
        clawback_outstanding: signed_sum(row.try_get("", "clawbacks")?)?,
        transactions: count(row, "transactions")?,
        created_at: row.try_get("", "created_at")?,
    })
}

pub(super) fn history_row(row: &QueryResult) -> Result<HistoryRow, EntityError> {
    Ok(HistoryRow {
        id: row.try_get("", "id")?,
        tx_id: row.try_get("", "tx_id")?,
        tx_type: row.try_get("", "tx_type")?,
        amount: amount(Some(&row.try_get::<String>("", "amount")?))?,
        reason: row.try_get("", "reason")?,
        status: row.try_get("", "status")?,
        tx_hash: row.try_get("", "tx_hash")?,
        created_at: row.try_get("", "created_at")?,
        confirmed_at: row.try_get("", "confirmed_at")?,
        redemption_id: row.try_get("", "redemption_id")?,
        redemption_state: row.try_get("", "redemption_state")?,
    })
}

/// The row of the totals statement.
pub(super) fn totals(row: &QueryResult) -> Result<Totals, EntityError> {
    let supply = ledger_wei(row.try_get::<Option<String>>("", "supply")?.as_deref())?;
    let minted = supply
        .checked_neg()
        .ok_or_else(|| EntityError::Corrupt("the supply account overflows".into()))?;
    // A paid redemption moves its payout from `burned` to `payout`: both
    // were burned on chain (only the fee stays in `burned`).
    let burned = amount(row.try_get::<Option<String>>("", "burned")?.as_deref())?
        .checked_add(amount(
            row.try_get::<Option<String>>("", "paid_out")?.as_deref(),
        )?)
        .ok_or_else(|| EntityError::Corrupt("the burned total overflows".into()))?;
    Ok(Totals {
        minted: to_money(minted)?,
        burned,
        users: count(row, "users")?,
        transactions: count(row, "transactions")?,
        in_flight: count(row, "in_flight")?,
    })
}

pub(super) fn ledger_account(row: &QueryResult) -> Result<LedgerAccount, EntityError> {
    let available = amount(row.try_get::<Option<String>>("", "available")?.as_deref())?;
    let reserved = amount(row.try_get::<Option<String>>("", "reserved")?.as_deref())?;
    Ok(LedgerAccount {
        id: row.try_get("", "id")?,
        user_id: row.try_get("", "user_id")?,
        wallet_address: row.try_get("", "wallet_address")?,
        balance: available
            .checked_add(reserved)
            .ok_or_else(|| EntityError::Corrupt("a balance overflows".into()))?,
        in_flight: row.try_get("", "in_flight")?,
    })
}

/// A `COUNT(*)` column (BIGINT on PostgreSQL, INTEGER on SQLite).
pub(super) fn count(row: &QueryResult, column: &str) -> Result<u64, EntityError> {
    let n: i64 = row.try_get("", column)?;
    u64::try_from(n).map_err(|_| EntityError::Corrupt(format!("negative count in `{column}`")))
}

/// A stored amount (decimal text of wei); a missing one (no balance row) is zero.
fn ledger_wei(text: Option<&str>) -> Result<haven_entity::SignedWei, EntityError> {
    match text {
        None => Ok(haven_entity::SignedWei::ZERO),
        Some(text) => text
            .parse()
            .map_err(|err: haven_entity::wei::ParseWeiError| EntityError::Corrupt(err.to_string())),
    }
}

/// The ledger's signed wei as a non-negative amount.
fn to_money(wei: haven_entity::SignedWei) -> Result<Wei, EntityError> {
    u128::try_from(wei.get())
        .map(Wei::from_wei)
        .map_err(|_| EntityError::Corrupt(format!("negative amount {wei}")))
}

/// A stored non-negative amount.
fn amount(text: Option<&str>) -> Result<Wei, EntityError> {
    to_money(ledger_wei(text)?)
}

/// The sum of comma-joined amounts (`string_agg` / `group_concat`); none is zero.
fn sum(joined: Option<String>) -> Result<Wei, EntityError> {
    let mut total = Wei::ZERO;
    for part in joined.iter().flat_map(|text| text.split(',')) {
        total = total
            .checked_add(amount(Some(part))?)
            .ok_or_else(|| EntityError::Corrupt("a sum of amounts overflows".into()))?;
    }
    Ok(total)
}

/// The sum of comma-joined signed wei amounts (the entries of an account
/// that opens and settles), which must not be negative.
fn signed_sum(joined: Option<String>) -> Result<Wei, EntityError> {
    let mut total: i128 = 0;
    for part in joined.iter().flat_map(|text| text.split(',')) {
        let value: i128 = part
            .trim()
            .parse()
            .map_err(|_| EntityError::Corrupt(format!("`{part}` is not an amount")))?;
        total = total
            .checked_add(value)
            .ok_or_else(|| EntityError::Corrupt("a sum of amounts overflows".into()))?;
    }
    u128::try_from(total)
        .map(Wei::from_wei)
        .map_err(|_| EntityError::Corrupt("an account's entries sum below zero".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opened_and_settled_entries_sum_exactly_and_never_below_zero() {
        assert_eq!(signed_sum(None).unwrap(), Wei::ZERO);
        let joined = "300000000000000000000,-100000000000000000000".to_owned();
        assert_eq!(signed_sum(Some(joined)).unwrap().to_string(), "200.0");
        assert!(signed_sum(Some("5,-6".to_owned())).is_err());
        assert!(signed_sum(Some("x".to_owned())).is_err());
    }

    #[test]
    fn joined_amounts_add_up_exactly() {
        assert_eq!(sum(None).unwrap(), Wei::ZERO);
        let joined = "100000000000000000,200000000000000000".to_owned();
        // 0.1 + 0.2 HNV is exactly 0.3, never 0.30000000000000004.
        assert_eq!(sum(Some(joined)).unwrap().to_string(), "0.3");
        assert!(sum(Some("-5".to_owned())).is_err());
        assert!(sum(Some("1.5".to_owned())).is_err());
    }
}
