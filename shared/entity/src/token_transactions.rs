//! `token_transactions`: every mint and burn the backend asks the chain for.

use sea_orm::entity::prelude::*;
use sea_orm::{QueryOrder, QuerySelect};

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
