//! [`EntityError`]: the one error type of this crate's queries.

use sea_orm::{DbErr, SqlErr};
use uuid::Uuid;

use crate::wei::SignedWei;

/// Why a query failed. Variants a caller can act on are separate from
/// [`EntityError::Db`], which means the database itself failed (down, timed
/// out, bug) and maps to a 5xx / a retry.
#[derive(Debug, thiserror::Error)]
pub enum EntityError {
    /// A unique key refused the row (HTTP 409). The message names the
    /// constraint, e.g. `token_transactions_tx_id_key`.
    #[error("unique constraint violated: {0}")]
    UniqueViolation(String),

    /// A foreign key refused the row: it names something that does not
    /// exist, usually an unknown user (HTTP 404/422).
    #[error("foreign key constraint violated: {0}")]
    ForeignKeyViolation(String),

    /// The entries of a ledger movement do not sum to zero: a bug in the
    /// caller, never retried.
    #[error("ledger movement `{reference}` is unbalanced: entries sum to {sum} wei")]
    Unbalanced {
        /// The movement's reference.
        reference: String,
        /// What the entries sum to instead of zero.
        sum: SignedWei,
    },

    /// A ledger movement that is malformed in another way (no entries, a
    /// zero entry, an empty reference): a bug in the caller.
    #[error("invalid ledger movement: {0}")]
    InvalidMovement(String),

    /// The movement would take an account below zero (HTTP 400
    /// `Insufficient balance`).
    #[error(
        "insufficient balance in {account} for user {user_id:?}: have {balance} wei, change {change} wei"
    )]
    InsufficientBalance {
        /// The account that would go negative, e.g. `user_available`.
        account: &'static str,
        /// Its owner, `None` for a system account.
        user_id: Option<Uuid>,
        /// Its balance before the movement.
        balance: SignedWei,
        /// The change the movement asked for.
        change: SignedWei,
    },

    /// A balance row kept changing under us and the optimistic retries ran
    /// out: retry the whole transaction later.
    #[error("balance row for {0} kept changing concurrently; retry the transaction")]
    Contention(String),

    /// No more custodial wallet derivation indexes (2^31 - 1 users).
    #[error("wallet derivation indexes are exhausted")]
    DerivationIndexExhausted,

    /// The caller's wallet derivation failed.
    #[error("deriving the custodial wallet address failed")]
    WalletDerivation(#[source] Box<dyn std::error::Error + Send + Sync>),

    /// A value read from the database is not what the schema promises.
    #[error("corrupt row: {0}")]
    Corrupt(String),

    /// The database failed: unreachable, timed out, or an unexpected error.
    #[error("database error")]
    Db(#[source] DbErr),
}

impl EntityError {
    /// Whether this is a unique-key violation (HTTP 409).
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, Self::UniqueViolation(_))
    }
}

impl From<DbErr> for EntityError {
    /// Constraint violations become their own variants so callers never
    /// have to inspect driver errors; everything else stays [`EntityError::Db`].
    fn from(err: DbErr) -> Self {
        match err.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(msg)) => Self::UniqueViolation(msg),
            Some(SqlErr::ForeignKeyConstraintViolation(msg)) => Self::ForeignKeyViolation(msg),
            _ => Self::Db(err),
        }
    }
}

impl EntityError {
    /// Whether another attempt could succeed: the database is down or busy,
    /// or another writer won a race whose result the next attempt will see.
    /// The rest (an unbalanced movement, an overdraft, a corrupt row) fails
    /// the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            EntityError::Db(_)
            | EntityError::Contention(_)
            | EntityError::UniqueViolation(_)
            | EntityError::ForeignKeyViolation(_) => true,
            EntityError::Unbalanced { .. }
            | EntityError::InvalidMovement(_)
            | EntityError::InsufficientBalance { .. }
            | EntityError::DerivationIndexExhausted
            | EntityError::WalletDerivation(_)
            | EntityError::Corrupt(_) => false,
        }
    }
}

impl From<EntityError> for haven_common::amqp::Failure {
    fn from(err: EntityError) -> Self {
        let reason = haven_common::telemetry::ErrorChain(&err).to_string();
        if err.is_transient() {
            Self::Transient(reason)
        } else {
            Self::Permanent(reason)
        }
    }
}
