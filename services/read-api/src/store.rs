//! The queries behind every read, each one statement written for both
//! backends (PostgreSQL in production and tests, SQLite for `cargo xtask up`).
//!
//! Amounts are read as text and added up in Rust, never in SQL: SQLite would
//! add them as floats. Where a handler needs a sum (pending mints, earnings)
//! the query returns the amounts joined by commas (`string_agg` /
//! `group_concat`) in the same row, so each read stays one round trip.
//!
//! Every statement is built once at start for the connected backend
//! ([`Store::new`]); sqlx prepares it on first use per connection and reuses
//! it, so a hot read costs one round trip.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use haven_common::money::Wei;
use haven_entity::EntityError;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::batch::{self, BalanceBatcher};

/// `token_transactions.reason` of the burn of a redemption.
pub const REASON_REDEMPTION: &str = "redemption";
/// `token_transactions.reason` of the mint refunding a redemption whose payout failed.
pub const REASON_REFUND: &str = "refund";

/// A statement written with PostgreSQL's `$n` placeholders, rewritten for
/// SQLite's positional `?` (the values are then repeated in placeholder order).
#[derive(Debug, Clone)]
struct Sql {
    backend: DbBackend,
    text: String,
    /// For SQLite, the 0-based value index of each `?`, in order.
    order: Option<Vec<usize>>,
}

impl Sql {
    fn new(backend: DbBackend, postgres: &str) -> Self {
        let agg = match backend {
            DbBackend::Postgres => "string_agg",
            _ => "group_concat",
        };
        let text = postgres.replace("{agg}", agg);
        if backend == DbBackend::Postgres {
            return Self {
                backend,
                text,
                order: None,
            };
        }
        let mut out = String::with_capacity(text.len());
        let mut order = Vec::new();
        let mut chars = text.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                let mut n = 0usize;
                while let Some(d) = chars.peek().and_then(|c| c.to_digit(10)) {
                    n = n * 10 + d as usize;
                    chars.next();
                }
                out.push('?');
                order.push(n.saturating_sub(1));
            } else {
                out.push(c);
            }
        }
        Self {
            backend,
            text: out,
            order: Some(order),
        }
    }

    fn bind(&self, values: &[Value]) -> Statement {
        let values: Vec<Value> = match &self.order {
            None => values.to_vec(),
            Some(order) => order
                .iter()
                .filter_map(|i| values.get(*i).cloned())
                .collect(),
        };
        Statement::from_sql_and_values(self.backend, self.text.clone(), values)
    }
}

/// How a client names a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UserKey<'a> {
    /// The partners' id (the API's `user_id`).
    UserId(&'a str),
    /// The custodial wallet, EIP-55 checksummed as stored.
    Wallet(&'a str),
    /// The email a partner sent (not unique: two matches are an error).
    Email(&'a str),
}

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
    /// Amount.
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
    /// Users.
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

/// The statements, built once for the connected backend.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    sql: Arc<Statements>,
    /// Balance reads by user id, batched (PostgreSQL).
    batcher: Option<BalanceBatcher>,
}

#[derive(Debug)]
struct Statements {
    balance_by_user_id: Sql,
    balance_by_wallet: Sql,
    balance_by_email: Sql,
    user_by_user_id: Sql,
    user_id_of: Sql,
    history: Sql,
    history_total: Sql,
    refunded: Sql,
    totals: Sql,
    accounts_after: Sql,
    account: Sql,
}

/// Columns and subqueries of a balance row; `u` is the user.
const BALANCE_COLUMNS: &str = "u.external_id AS user_id, u.wallet_address AS wallet_address, \
     CAST(b.available AS text) AS available, CAST(b.reserved AS text) AS reserved, \
     (SELECT {agg}(CAST(t.amount AS text), ',') FROM token_transactions t \
       WHERE t.user_id = u.id AND t.tx_type = 'mint' AND t.status IN ('pending', 'submitted')) AS pending";

/// Of the user's history: token transactions (a redemption's burn carries
/// the redemption), then redemptions that have no burn yet.
const HISTORY: &str = "SELECT t.id AS id, t.tx_id AS tx_id, t.tx_type AS tx_type, \
        CAST(t.amount AS text) AS amount, t.reason AS reason, t.status AS status, \
        t.tx_hash AS tx_hash, t.created_at AS created_at, t.confirmed_at AS confirmed_at, \
        r.request_id AS redemption_id, r.state AS redemption_state \
   FROM token_transactions t \
   LEFT JOIN redemptions r ON r.user_id = t.user_id AND r.burn_tx_id = t.tx_id \
  WHERE t.user_id = $1 \
 UNION ALL \
 SELECT r.request_id, NULL, 'burn', CAST(r.amount AS text), 'redemption', NULL, NULL, \
        r.created_at, NULL, r.request_id, r.state \
   FROM redemptions r \
  WHERE r.user_id = $1 AND r.burn_tx_id IS NULL \
  ORDER BY created_at DESC, id DESC \
  LIMIT $2 OFFSET $3";

impl Store {
    /// The statements for `db`'s backend. On PostgreSQL, balance reads by
    /// user id go through `balance_workers` batching workers ([`crate::batch`],
    /// started here: call it inside a Tokio runtime); with 0, one statement
    /// per read.
    pub fn new(db: DatabaseConnection, balance_workers: usize) -> Self {
        let backend = db.get_database_backend();
        let sql = |text: &str| Sql::new(backend, text);
        let balance_by = |condition: &str| {
            sql(&format!(
                "SELECT {BALANCE_COLUMNS} FROM users u \
                 LEFT JOIN user_balances b ON b.user_id = u.id WHERE {condition} LIMIT 2"
            ))
        };
        let statements = Statements {
            balance_by_user_id: balance_by("u.external_id = $1"),
            balance_by_wallet: balance_by("u.wallet_address = $1"),
            // No index: a partner's look-up, not a hot path.
            balance_by_email: balance_by("lower(u.email) = lower($1)"),
            user_by_user_id: sql(&format!(
                "SELECT {BALANCE_COLUMNS}, u.email AS email, u.kyc_verified AS kyc_verified, \
                   u.created_at AS created_at, \
                   (SELECT {{agg}}(CAST(t.amount AS text), ',') FROM token_transactions t \
                     WHERE t.user_id = u.id AND t.tx_type = 'mint' AND t.status = 'confirmed' \
                       AND t.reason <> '{REASON_REFUND}') AS earned, \
                   (SELECT {{agg}}(CAST(r.amount AS text), ',') FROM redemptions r \
                     WHERE r.user_id = u.id AND r.state IN ('burned', 'payout_requested', 'paid')) AS redeemed, \
                   (SELECT COUNT(*) FROM token_transactions t WHERE t.user_id = u.id) AS transactions \
                 FROM users u LEFT JOIN user_balances b ON b.user_id = u.id \
                 WHERE u.external_id = $1"
            )),
            user_id_of: sql("SELECT id FROM users WHERE external_id = $1"),
            history: sql(HISTORY),
            history_total: sql(
                "SELECT (SELECT COUNT(*) FROM token_transactions WHERE user_id = $1) \
                      + (SELECT COUNT(*) FROM redemptions WHERE user_id = $1 AND burn_tx_id IS NULL) AS total",
            ),
            refunded: sql(
                "SELECT request_id, state FROM redemptions WHERE user_id = $1 AND state = 'refunded'",
            ),
            totals: sql(
                "SELECT (SELECT CAST(balance AS text) FROM ledger_accounts WHERE id = 'supply') AS supply, \
                        (SELECT CAST(balance AS text) FROM ledger_accounts WHERE id = 'burned') AS burned, \
                        (SELECT CAST(balance AS text) FROM ledger_accounts WHERE id = 'payout') AS paid_out, \
                        (SELECT COUNT(*) FROM users) AS users, \
                        (SELECT COUNT(*) FROM token_transactions) AS transactions, \
                        (SELECT COUNT(*) FROM token_transactions \
                          WHERE status IN ('pending', 'submitted')) AS in_flight",
            ),
            accounts_after: sql(&account_query("u.id > $1 ORDER BY u.id LIMIT $2")),
            account: sql(&account_query("u.id = $1")),
        };
        let batcher = (backend == DbBackend::Postgres && balance_workers > 0).then(|| {
            BalanceBatcher::start(
                &db,
                Sql::new(backend, &batch::statement(BALANCE_COLUMNS)).text,
                balance_workers,
            )
        });
        Self {
            db,
            sql: Arc::new(statements),
            batcher,
        }
    }

    /// The pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// A user's balances, `None` for an unknown user. An email shared by
    /// several users is [`Lookup::Ambiguous`].
    pub async fn balance(&self, key: UserKey<'_>) -> Result<Lookup<BalanceRow>, EntityError> {
        let (sql, value) = match key {
            UserKey::UserId(v) => {
                if let Some(batcher) = &self.batcher {
                    return Ok(match batcher.get(v).await? {
                        Some(row) => Lookup::Found(row),
                        None => Lookup::NotFound,
                    });
                }
                (&self.sql.balance_by_user_id, v)
            }
            UserKey::Wallet(v) => (&self.sql.balance_by_wallet, v),
            UserKey::Email(v) => (&self.sql.balance_by_email, v),
        };
        let rows = self.db.query_all_raw(sql.bind(&[value.into()])).await?;
        match rows.as_slice() {
            [] => Ok(Lookup::NotFound),
            [row] => Ok(Lookup::Found(balance_row(row)?)),
            _ => Ok(Lookup::Ambiguous),
        }
    }

    /// A user's analytics, `None` for an unknown user.
    pub async fn user(&self, user_id: &str) -> Result<Option<UserRow>, EntityError> {
        let Some(row) = self
            .db
            .query_one_raw(self.sql.user_by_user_id.bind(&[user_id.into()]))
            .await?
        else {
            return Ok(None);
        };
        Ok(Some(UserRow {
            balance: balance_row(&row)?,
            email: row.try_get("", "email")?,
            kyc_verified: row.try_get("", "kyc_verified")?,
            total_earned: sum(row.try_get("", "earned")?)?,
            total_redeemed: sum(row.try_get("", "redeemed")?)?,
            transactions: count(&row, "transactions")?,
            created_at: row.try_get("", "created_at")?,
        }))
    }

    /// One page of a user's history, newest first, `None` for an unknown user.
    pub async fn history(
        &self,
        user_id: &str,
        limit: u64,
        offset: u64,
    ) -> Result<Option<HistoryPage>, EntityError> {
        let Some(row) = self
            .db
            .query_one_raw(self.sql.user_id_of.bind(&[user_id.into()]))
            .await?
        else {
            return Ok(None);
        };
        let id: Uuid = row.try_get("", "id")?;
        let page = self.db.query_all_raw(self.sql.history.bind(&[
            id.into(),
            // Bounded by the handler (limit <= 500, offset < 2^63).
            i64::try_from(limit).unwrap_or(i64::MAX).into(),
            i64::try_from(offset).unwrap_or(i64::MAX).into(),
        ]));
        let total = self
            .db
            .query_one_raw(self.sql.history_total.bind(&[id.into()]));
        let (page, total) = futures::try_join!(page, total)?;
        let total = match total {
            Some(row) => count(&row, "total")?,
            None => 0,
        };
        let mut rows = page
            .iter()
            .map(history_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.link_refunds(id, &mut rows).await?;
        Ok(Some(HistoryPage { rows, total }))
    }

    /// Attaches each refund mint of the page to its redemption: a refund's
    /// `tx_id` carries the redemption's id (there is no column for the link).
    async fn link_refunds(&self, user: Uuid, rows: &mut [HistoryRow]) -> Result<(), EntityError> {
        let is_refund = |row: &HistoryRow| {
            row.redemption_id.is_none() && row.tx_type == "mint" && row.reason == REASON_REFUND
        };
        if !rows.iter().any(is_refund) {
            return Ok(());
        }
        let refunded = self
            .db
            .query_all_raw(self.sql.refunded.bind(&[user.into()]))
            .await?;
        let refunded = refunded
            .iter()
            .map(|row| {
                Ok::<_, EntityError>((
                    row.try_get::<Uuid>("", "request_id")?,
                    row.try_get::<String>("", "state")?,
                ))
            })
            .collect::<Result<Vec<_>, _>>()?;
        for row in rows.iter_mut().filter(|row| is_refund(row)) {
            let tx_id = row.tx_id.as_deref().unwrap_or_default();
            if let Some((id, state)) = refunded.iter().find(|(id, _)| {
                tx_id.contains(&id.hyphenated().to_string())
                    || tx_id.contains(&id.simple().to_string())
            }) {
                row.redemption_id = Some(*id);
                row.redemption_state = Some(state.clone());
            }
        }
        Ok(())
    }

    /// The database's totals.
    pub async fn totals(&self) -> Result<Totals, EntityError> {
        let row = self
            .db
            .query_one_raw(self.sql.totals.bind(&[]))
            .await?
            .ok_or_else(|| EntityError::Corrupt("the totals query returned no row".into()))?;
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
            users: count(&row, "users")?,
            transactions: count(&row, "transactions")?,
            in_flight: count(&row, "in_flight")?,
        })
    }

    /// Up to `limit` users after `after` (by internal id), for reconciliation.
    pub async fn accounts_after(
        &self,
        after: Uuid,
        limit: u64,
    ) -> Result<Vec<LedgerAccount>, EntityError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.db
            .query_all_raw(self.sql.accounts_after.bind(&[after.into(), limit.into()]))
            .await?
            .iter()
            .map(ledger_account)
            .collect()
    }

    /// One user, read again (reconciliation's second look at a difference).
    pub async fn account(&self, id: Uuid) -> Result<Option<LedgerAccount>, EntityError> {
        self.db
            .query_one_raw(self.sql.account.bind(&[id.into()]))
            .await?
            .as_ref()
            .map(ledger_account)
            .transpose()
    }
}

/// What a look-up by a key that may not be unique found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup<T> {
    /// Exactly one.
    Found(T),
    /// None.
    NotFound,
    /// More than one (an email two users share).
    Ambiguous,
}

fn account_query(condition: &str) -> String {
    format!(
        "SELECT u.id AS id, u.external_id AS user_id, u.wallet_address AS wallet_address, \
                CAST(b.available AS text) AS available, CAST(b.reserved AS text) AS reserved, \
                EXISTS (SELECT 1 FROM token_transactions t WHERE t.user_id = u.id \
                          AND t.status IN ('pending', 'submitted')) AS in_flight \
           FROM users u LEFT JOIN user_balances b ON b.user_id = u.id \
          WHERE {condition}"
    )
}

fn balance_row(row: &QueryResult) -> Result<BalanceRow, EntityError> {
    parse_balance(
        row.try_get("", "user_id")?,
        row.try_get("", "wallet_address")?,
        row.try_get("", "available")?,
        row.try_get("", "reserved")?,
        row.try_get("", "pending")?,
    )
}

/// A balance row from the columns of [`BALANCE_COLUMNS`] (amounts as text;
/// no balance row is zero; `pending` comma-joined).
pub(crate) fn parse_balance(
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

fn history_row(row: &QueryResult) -> Result<HistoryRow, EntityError> {
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

fn ledger_account(row: &QueryResult) -> Result<LedgerAccount, EntityError> {
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
fn count(row: &QueryResult, column: &str) -> Result<u64, EntityError> {
    let n: i64 = row.try_get("", column)?;
    u64::try_from(n).map_err(|_| EntityError::Corrupt(format!("negative count in `{column}`")))
}

/// A stored amount (decimal text of wei); a missing one (no balance row) is zero.
fn ledger_wei(text: Option<&str>) -> Result<haven_entity::Wei, EntityError> {
    match text {
        None => Ok(haven_entity::Wei::ZERO),
        Some(text) => text
            .parse()
            .map_err(|err: haven_entity::wei::ParseWeiError| EntityError::Corrupt(err.to_string())),
    }
}

/// The ledger's signed wei as a non-negative amount.
fn to_money(wei: haven_entity::Wei) -> Result<Wei, EntityError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_placeholders_become_positional_for_sqlite() {
        let sql = Sql::new(
            DbBackend::Sqlite,
            "a = $1 AND b = $2 OR c = $1 LIMIT $10 -- $x",
        );
        assert_eq!(sql.text, "a = ? AND b = ? OR c = ? LIMIT ? -- $x");
        assert_eq!(sql.order, Some(vec![0, 1, 0, 9]));
        let pg = Sql::new(DbBackend::Postgres, "SELECT {agg}(x, ',') WHERE a = $1");
        assert_eq!(pg.text, "SELECT string_agg(x, ',') WHERE a = $1");
        assert_eq!(pg.order, None);
        let lite = Sql::new(DbBackend::Sqlite, "SELECT {agg}(x, ',')");
        assert_eq!(lite.text, "SELECT group_concat(x, ',')");
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
