//! `users`: a guest or member, known by the id the partners share for them
//! (an Aurora guest id is the same person's Tribe user id), with a custodial
//! wallet derived from a unique index.

use std::error::Error as StdError;

use chrono::Utc;
use haven_common::db::begin_write;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{
    ActiveValue::Set, DbBackend, FromQueryResult, Statement, TransactionSession, TransactionTrait,
};

use crate::error::EntityError;
use crate::linked::{self, LinkedRow};
use crate::user_balances;
use crate::wei::SignedWei;

/// A HAVEN user.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "users")]
pub struct Model {
    /// HAVEN's internal id (UUIDv7), used by the ledger.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The partner that first mentioned the user: `aurora` or `tribe`.
    pub partner: String,
    /// The partners' id for the user (guest id = Tribe user id): the
    /// `user_id` of the HTTP API. Unique.
    pub external_id: String,
    /// Email when the partner sent one.
    pub email: Option<String>,
    /// Checksummed address of the custodial wallet.
    pub wallet_address: String,
    /// BIP-32 child index the wallet is derived from; unique, never reused.
    pub derivation_index: i64,
    /// Whether the user passed KYC (needed to redeem above 10,000 HNV).
    pub kyc_verified: bool,
    /// When the user was first seen.
    pub created_at: DateTimeUtc,
    /// Last change to this row.
    pub updated_at: DateTimeUtc,
    /// Not a column: `true` only on the user [`find_or_create_in`] returns
    /// when it created them, i.e. while the row is still uncommitted, so
    /// nothing another transaction writes (a reward, a clawback) can refer
    /// to it yet. `false` on every row read from the database.
    #[sea_orm(ignore)]
    pub new_in_transaction: bool,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What is needed to create a user the first time a partner mentions them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewUser {
    /// `aurora` or `tribe`.
    pub partner: String,
    /// The partner's id for the user.
    pub external_id: String,
    /// Email if known.
    pub email: Option<String>,
}

/// Result of [`find_or_create`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FoundOrCreated {
    /// The user, new or existing.
    pub user: Model,
    /// `true` when this call created it.
    pub created: bool,
}

/// Highest BIP-32 non-hardened child index.
const MAX_DERIVATION_INDEX: i64 = (1 << 31) - 1;

/// Finds a user by the partners' id for them (the API's `user_id`).
pub async fn find_by_external_id<C: ConnectionTrait>(
    db: &C,
    external_id: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::ExternalId.eq(external_id))
        .one(db)
        .await?)
}

/// Returns the user known by `external_id`, creating it with a
/// fresh custodial wallet and a zero balance row if it does not exist.
///
/// `derive_wallet` turns a derivation index into the wallet address; it is
/// called at most once. Race-safe: concurrent callers for the same new user
/// all get the same row, because the insert is
/// `ON CONFLICT (external_id) DO NOTHING` followed by a read of the winner.
/// A loser burns one derivation index, which is harmless: the index is
/// never reused, so no two users can ever share a key.
pub async fn find_or_create<C, F, E>(
    db: &C,
    new: NewUser,
    derive_wallet: F,
) -> Result<FoundOrCreated, EntityError>
where
    C: ConnectionTrait + TransactionTrait,
    F: FnOnce(u32) -> Result<String, E>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    if let Some(user) = find_by_external_id(db, &new.external_id).await? {
        return Ok(FoundOrCreated {
            user,
            created: false,
        });
    }
    let txn = begin_write(db).await?;
    let mut found = find_or_create_in(&txn, new, derive_wallet).await?;
    txn.commit().await?;
    // Committed: from now on others may write rows that refer to it.
    found.user.new_in_transaction = false;
    Ok(found)
}

/// [`find_or_create`] inside the caller's transaction (`txn` must be one:
/// on SQLite the user and its balance row are two inserts), so a new user
/// commits together with whatever the caller writes for them (one commit
/// instead of two for an event about a new guest). A racing creator of the
/// same user makes the insert wait for its commit and then read its row.
///
/// An existing user costs one `SELECT`; a new one on PostgreSQL one more
/// statement for the user and its balance row (the same `SELECT` took its
/// derivation index); on SQLite three more. A user created here has
/// [`Model::new_in_transaction`] set.
pub async fn find_or_create_in<C, F, E>(
    txn: &C,
    new: NewUser,
    derive_wallet: F,
) -> Result<FoundOrCreated, EntityError>
where
    C: ConnectionTrait,
    F: FnOnce(u32) -> Result<String, E>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let index = match find_or_next_index(txn, &new.external_id).await? {
        Found::User(user) => {
            return Ok(FoundOrCreated {
                user,
                created: false,
            });
        }
        Found::NextIndex(index) => index,
    };
    let user = new_model(new, index, derive_wallet)?;

    if insert_with_balance(txn, &user).await? {
        return Ok(FoundOrCreated {
            user,
            created: true,
        });
    }

    // Someone else created it between our read and our insert.
    let user = find_by_external_id(txn, &user.external_id)
        .await?
        .ok_or_else(|| {
            EntityError::Corrupt("user conflicted on insert but cannot be read back".into())
        })?;
    Ok(FoundOrCreated {
        user,
        created: false,
    })
}

/// The row of new user `new` with derivation index `index` (its wallet
/// derived by `derive_wallet`), [`Model::new_in_transaction`] set.
pub fn new_model<F, E>(new: NewUser, index: u32, derive_wallet: F) -> Result<Model, EntityError>
where
    F: FnOnce(u32) -> Result<String, E>,
    E: Into<Box<dyn StdError + Send + Sync>>,
{
    let wallet_address =
        derive_wallet(index).map_err(|err| EntityError::WalletDerivation(err.into()))?;
    let now = Utc::now();
    Ok(Model {
        id: Uuid::now_v7(),
        partner: new.partner,
        external_id: new.external_id,
        email: new.email,
        wallet_address,
        derivation_index: i64::from(index),
        kyc_verified: false,
        created_at: now,
        updated_at: now,
        new_in_transaction: true,
    })
}

/// What [`find_or_next_index`] found.
#[derive(Debug)]
pub enum Found {
    /// The user exists.
    User(Model),
    /// It does not: the derivation index it is to be created with.
    NextIndex(u32),
}

/// The user known by `external_id` or, when there is none, the next
/// derivation index: one statement on PostgreSQL (the `CASE` takes the
/// index only when the join found no user), two elsewhere.
pub async fn find_or_next_index<C: ConnectionTrait>(
    db: &C,
    external_id: &str,
) -> Result<Found, EntityError> {
    let backend = db.get_database_backend();
    if backend != DbBackend::Postgres {
        return Ok(match find_by_external_id(db, external_id).await? {
            Some(user) => Found::User(user),
            None => Found::NextIndex(allocate_derivation_index(db).await?),
        });
    }
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "SELECT users.*, CASE WHEN users.id IS NULL THEN nextval('{}') END AS idx
                 FROM (SELECT 1) AS one LEFT JOIN users ON users.external_id = $1",
                haven_sequence::WALLET_DERIVATION_SEQUENCE
            ),
            [external_id.into()],
        ))
        .await?
        .ok_or_else(|| EntityError::Corrupt("the user lookup returned no row".into()))?;
    match row.try_get::<Option<i64>>("", "idx")? {
        Some(index) => Ok(Found::NextIndex(derivation_index(index)?)),
        None => Ok(Found::User(Model::from_query_result(&row, "")?)),
    }
}

/// Inserts `user` and its zero balance row ([`linked_rows`], one statement
/// on PostgreSQL); `false`, with nothing written, when a user with the same
/// external id exists (`ON CONFLICT DO NOTHING`).
async fn insert_with_balance<C: ConnectionTrait>(
    db: &C,
    user: &Model,
) -> Result<bool, EntityError> {
    let written = linked::insert(db, &linked_rows(user)).await?;
    Ok(written == 2)
}

/// The rows of new user `user`, as the first rows of a
/// [`linked::insert`]: the user (nothing after it is written when a user
/// with the same external id exists) and its zero balance row, there from
/// the start so the first posting only ever updates it.
pub fn linked_rows(user: &Model) -> [LinkedRow; 2] {
    [
        LinkedRow::new(
            &ActiveModel::from(user.clone()),
            Some(
                OnConflict::column(Column::ExternalId)
                    .do_nothing()
                    .to_owned(),
            ),
        ),
        LinkedRow::new(
            &user_balances::ActiveModel {
                user_id: Set(user.id),
                available: Set(SignedWei::ZERO),
                reserved: Set(SignedWei::ZERO),
                version: Set(0),
                updated_at: Set(user.created_at),
            },
            None,
        ),
    ]
}

/// Takes the next custodial wallet derivation index: from a SEQUENCE on
/// PostgreSQL, from an AUTOINCREMENT counter table on SQLite. Both never
/// hand out the same number twice.
pub async fn allocate_derivation_index<C: ConnectionTrait>(db: &C) -> Result<u32, EntityError> {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => format!(
            "SELECT nextval('{}') AS idx",
            haven_sequence::WALLET_DERIVATION_SEQUENCE
        ),
        _ => format!(
            "INSERT INTO {} DEFAULT VALUES RETURNING id AS idx",
            haven_sequence::WALLET_DERIVATION_COUNTER_TABLE
        ),
    };
    let row = db
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| EntityError::Corrupt("derivation index query returned no row".into()))?;
    let index: i64 = row.try_get("", "idx")?;
    if backend != DbBackend::Postgres {
        // Only the high-water mark matters (AUTOINCREMENT keeps it in
        // sqlite_sequence), so old counter rows can go.
        db.execute_raw(Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {} WHERE id < ?",
                haven_sequence::WALLET_DERIVATION_COUNTER_TABLE
            ),
            [index.into()],
        ))
        .await?;
    }
    derivation_index(index)
}

/// `index` as a derivation index, if it is one (1 to 2^31 - 1).
fn derivation_index(index: i64) -> Result<u32, EntityError> {
    if !(1..=MAX_DERIVATION_INDEX).contains(&index) {
        return Err(EntityError::DerivationIndexExhausted);
    }
    u32::try_from(index).map_err(|_| EntityError::DerivationIndexExhausted)
}

/// Names of the derivation index sources created by the migrations (kept
/// in sync with `haven_migrations`, which this crate does not depend on).
mod haven_sequence {
    pub(super) const WALLET_DERIVATION_SEQUENCE: &str = "wallet_derivation_index_seq";
    pub(super) const WALLET_DERIVATION_COUNTER_TABLE: &str = "wallet_derivation_counter";
}
