//! The statements behind every read, each one text written for both
//! backends (see `dialect`).
//!
//! Amounts are read as text and added up in Rust, never in SQL: SQLite would
//! add them as floats. Where a handler needs a sum (pending mints, earnings)
//! the query returns the amounts joined by commas (`string_agg` /
//! `group_concat`) in the same row, so each read stays one round trip.

use sea_orm::DbBackend;

use super::dialect::Sql;

/// `token_transactions.reason` of the burn of a redemption.
pub const REASON_REDEMPTION: &str = "redemption";
/// `token_transactions.reason` of the mint refunding a redemption whose payout failed.
pub const REASON_REFUND: &str = "refund";

/// Columns and subqueries of a balance row; `u` is the user.
pub(super) const BALANCE_COLUMNS: &str = "u.external_id AS user_id, u.wallet_address AS wallet_address, \
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

/// Every statement of the store, built once for the connected backend.
#[derive(Debug)]
pub(super) struct Statements {
    pub(super) balance_by_user_id: Sql,
    pub(super) balance_by_wallet: Sql,
    pub(super) balance_by_email: Sql,
    pub(super) user_by_user_id: Sql,
    pub(super) user_id_of: Sql,
    pub(super) history: Sql,
    pub(super) history_total: Sql,
    pub(super) refunded: Sql,
    pub(super) totals: Sql,
    pub(super) accounts_after: Sql,
    pub(super) account: Sql,
}

impl Statements {
    /// The statements for `backend`.
    pub(super) fn new(backend: DbBackend) -> Self {
        let sql = |text: &str| Sql::new(backend, text);
        let balance_by = |condition: &str| {
            sql(&format!(
                "SELECT {BALANCE_COLUMNS} FROM users u \
                 LEFT JOIN user_balances b ON b.user_id = u.id WHERE {condition} LIMIT 2"
            ))
        };
        Self {
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
                     WHERE r.user_id = u.id AND r.state IN ('burned', 'payout_unknown', 'payout_requested', 'paid')) AS redeemed, \
                   (SELECT {{agg}}(CAST(c.amount AS text), ',') FROM clawbacks c \
                     WHERE c.user_id = u.id) AS clawbacks, \
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
        }
    }
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
