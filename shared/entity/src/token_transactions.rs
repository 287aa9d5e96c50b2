//! `token_transactions`: every mint and burn the backend asks the chain for.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{IntoActiveModel, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};

use crate::error::EntityError;
use crate::wei::Wei;

/// Mint or burn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TxType {
    /// New tokens to a user.
    #[sea_orm(string_value = "mint")]
    Mint,
    /// Tokens destroyed from a user.
    #[sea_orm(string_value = "burn")]
    Burn,
}

/// Where a transaction is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum TxStatus {
    /// Recorded, not yet sent.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Sent to the chain, not yet final.
    #[sea_orm(string_value = "submitted")]
    Submitted,
    /// Mined with enough confirmations.
    #[sea_orm(string_value = "confirmed")]
    Confirmed,
    /// Gave up.
    #[sea_orm(string_value = "failed")]
    Failed,
    /// Withdrawn before it was sent (a cancelled booking).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// A mint or burn.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "token_transactions")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The API's `tx_id` (the idempotency key for API mints).
    pub tx_id: String,
    /// 32-byte reference the contract refuses to use twice.
    pub chain_reference: Vec<u8>,
    /// The user minted to or burned from.
    pub user_id: Uuid,
    /// Mint or burn.
    pub tx_type: TxType,
    /// Amount, always positive.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: Wei,
    /// Why: booking, review, redemption, reversal...
    pub reason: String,
    /// Life-cycle state.
    pub status: TxStatus,
    /// Chain transaction hash once sent.
    pub tx_hash: Option<String>,
    /// Block it was mined in.
    pub block_number: Option<i64>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When recorded.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
    /// When sent.
    pub submitted_at: Option<DateTimeUtc>,
    /// When confirmed.
    pub confirmed_at: Option<DateTimeUtc>,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Domain separator so a reference can never collide with a hash of the same
/// bytes made for another purpose.
const REFERENCE_DOMAIN: &[u8] = b"haven:token-tx:v1:";

/// The deterministic 32-byte on-chain reference of the transaction `id`
/// (SHA-256 over a domain tag and the id): fixed before the first send and
/// reused by every resend, so the contract refuses to mint or burn it twice.
pub fn chain_reference(id: &Uuid) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(REFERENCE_DOMAIN);
    hasher.update(id.as_bytes());
    hasher.finalize().into()
}

/// A mint or burn to record before it is queued to chain-minter.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewTokenTransaction {
    /// The API's `tx_id` (unique).
    pub tx_id: String,
    /// The user minted to or burned from.
    pub user_id: Uuid,
    /// Mint or burn.
    pub tx_type: TxType,
    /// Amount, positive.
    pub amount: Wei,
    /// Why.
    pub reason: String,
}

/// Records a pending transaction once per `tx_id`: `Some(row)` when this
/// call inserted it, `None` when the `tx_id` already exists (the caller
/// loads it with [`find_by_tx_id`] to compare). Uses `ON CONFLICT DO
/// NOTHING`, so a duplicate does not abort the surrounding transaction.
pub async fn insert_pending<C: ConnectionTrait>(
    db: &C,
    new: NewTokenTransaction,
) -> Result<Option<Model>, EntityError> {
    let id = Uuid::now_v7();
    let now = Utc::now();
    let model = Model {
        id,
        tx_id: new.tx_id,
        chain_reference: chain_reference(&id).to_vec(),
        user_id: new.user_id,
        tx_type: new.tx_type,
        amount: new.amount,
        reason: new.reason,
        status: TxStatus::Pending,
        tx_hash: None,
        block_number: None,
        last_error: None,
        created_at: now,
        updated_at: now,
        submitted_at: None,
        confirmed_at: None,
    };
    let inserted = Entity::insert(model.clone().into_active_model())
        .on_conflict(OnConflict::column(Column::TxId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok((inserted == 1).then_some(model))
}

/// Finds a transaction by its API id.
pub async fn find_by_tx_id<C: ConnectionTrait>(
    db: &C,
    tx_id: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::TxId.eq(tx_id))
        .one(db)
        .await?)
}

/// A user's transactions, newest first (served by
/// `token_transactions_user_id_created_at_idx`).
pub async fn history<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    limit: u64,
    offset: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::UserId.eq(user_id))
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .offset(offset)
        .all(db)
        .await?)
}
