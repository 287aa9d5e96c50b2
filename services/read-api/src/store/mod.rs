//! The queries behind every read, each one statement written for both
//! backends (PostgreSQL in production and tests, SQLite for `cargo xtask up`).
//!
//! Every statement is built once at start for the connected backend
//! ([`Store::new`]); sqlx prepares it on first use per connection and reuses
//! it, so a hot read costs one round trip.
//!
//! `dialect` rewrites a statement for the backend, `queries` holds their
//! texts, `rows` what they return, [`batch`] the batched balance read, and
//! [`records`] the look-ups of one transaction or redemption; none of them
//! imports this module, which ties them together.

pub mod batch;
mod dialect;
mod queries;
pub mod records;
mod rows;

use std::sync::Arc;

use haven_entity::EntityError;
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend};
use uuid::Uuid;

use self::batch::BalanceBatcher;
use self::dialect::Sql;
use self::queries::Statements;
pub use self::queries::{REASON_REDEMPTION, REASON_REFUND};
pub use self::records::{MovementRecord, RedemptionRecord, TransactionRecord};
pub use self::rows::{BalanceRow, HistoryPage, HistoryRow, LedgerAccount, Totals, UserRow};

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

/// The statements, built once for the connected backend.
#[derive(Debug, Clone)]
pub struct Store {
    db: DatabaseConnection,
    sql: Arc<Statements>,
    /// Balance reads by user id, batched (PostgreSQL).
    batcher: Option<BalanceBatcher>,
}

impl Store {
    /// The statements for `db`'s backend. On PostgreSQL, balance reads by
    /// user id go through `balance_workers` batching workers ([`batch`],
    /// started here: call it inside a Tokio runtime); with 0, one statement
    /// per read.
    pub fn new(db: DatabaseConnection, balance_workers: usize) -> Self {
        let backend = db.get_database_backend();
        let batcher = (backend == DbBackend::Postgres && balance_workers > 0).then(|| {
            BalanceBatcher::start(
                &db,
                Sql::new(backend, &batch::statement(queries::BALANCE_COLUMNS))
                    .text()
                    .to_owned(),
                balance_workers,
            )
        });
        Self {
            db,
            sql: Arc::new(Statements::new(backend)),
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
        let found = self.db.query_all_raw(sql.bind(&[value.into()])).await?;
        match found.as_slice() {
            [] => Ok(Lookup::NotFound),
            [row] => Ok(Lookup::Found(rows::balance_row(row)?)),
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
        Ok(Some(rows::user_row(&row)?))
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
            Some(row) => rows::count(&row, "total")?,
            None => 0,
        };
        let mut entries = page
            .iter()
            .map(rows::history_row)
            .collect::<Result<Vec<_>, _>>()?;
        self.link_refunds(id, &mut entries).await?;
        Ok(Some(HistoryPage {
            rows: entries,
            total,
        }))
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

    /// One token transaction by its API id, with the redemption it belongs
    /// to and its ledger movement; `None` when there is none.
    pub async fn transaction(&self, tx_id: &str) -> Result<Option<TransactionRecord>, EntityError> {
        records::transaction(&self.db, tx_id).await
    }

    /// One redemption with its states, burn, refund and ledger movements;
    /// `None` when there is none.
    pub async fn redemption(
        &self,
        request_id: Uuid,
    ) -> Result<Option<RedemptionRecord>, EntityError> {
        records::redemption(&self.db, request_id).await
    }

    /// The database's totals.
    pub async fn totals(&self) -> Result<Totals, EntityError> {
        let row = self
            .db
            .query_one_raw(self.sql.totals.bind(&[]))
            .await?
            .ok_or_else(|| EntityError::Corrupt("the totals query returned no row".into()))?;
        rows::totals(&row)
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
            .map(rows::ledger_account)
            .collect()
    }

    /// One user, read again (reconciliation's second look at a difference).
    pub async fn account(&self, id: Uuid) -> Result<Option<LedgerAccount>, EntityError> {
        self.db
            .query_one_raw(self.sql.account.bind(&[id.into()]))
            .await?
            .as_ref()
            .map(rows::ledger_account)
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
