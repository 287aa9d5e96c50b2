//! `token_transactions`: every mint and burn the backend asks the chain for.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{IntoActiveModel, QueryOrder, QuerySelect};
use sha2::{Digest, Sha256};

use crate::error::EntityError;
use crate::linked::LinkedRow;
use crate::wei::SignedWei;

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
    pub amount: SignedWei,
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
    /// When chain-minter found it buried under `CHAIN_FINALITY_DEPTH`
    /// blocks: final. A payout follows only a final burn.
    pub final_at: Option<DateTimeUtc>,
    /// How many times a reorganisation removed it after it was confirmed
    /// (each time it is sent again, same reference).
    pub reorgs: i32,
    /// Who asked, for a token command: the name of the operator's API key
    /// (`API_KEYS`), also on the burn and refund of a redemption it asked
    /// for. NULL for what the services do on their own (a reward's mint, a
    /// reversal's burn) and for rows older than the column.
    pub requested_by: Option<String>,
    /// When the request this transaction carries out was accepted from
    /// outside: the partner's webhook of a reward's mint or a reversal's
    /// burn (its envelope's `occurred_at`, stamped by webhook-ingress on
    /// acceptance), the operator's command of a mint or a redemption's burn.
    /// NULL when nothing outside is waiting on it (a held reward released in
    /// a later period, a refund, a periodic reward) and for rows older than
    /// the column. `haven_mint_since_acceptance_seconds` is measured from it.
    pub accepted_at: Option<DateTimeUtc>,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// Domain separator so a reference block can never collide with a hash of
/// the same bytes made for another purpose.
const REFERENCE_BLOCK_DOMAIN: &[u8] = b"haven:token-tx-reference-block:v2:";

/// Where this process hands out references: a random salt fixed at start and
/// a counter, see [`next_chain_reference`].
struct ReferenceBlocks {
    salt: [u8; 16],
    next: AtomicU64,
}

static REFERENCE_BLOCKS: LazyLock<ReferenceBlocks> = LazyLock::new(|| ReferenceBlocks {
    salt: *Uuid::new_v4().as_bytes(),
    next: AtomicU64::new(0),
});

/// The starts of the `tx_id`s the services derive from their own ids: a
/// reward's mint (`reward_`), a reversal's burn (`reversal_`), a
/// redemption's burn (`redemption_`) and refund (`refund_`). An operator's
/// idempotency key becomes a `tx_id` too, so one that starts like these is
/// refused at the door: `refund_<id>` would otherwise be read as the refund
/// of redemption `<id>`, and `reward_<id>` would take the reward's place.
/// (`mint_`, the start of a keyless operator mint's generated id, is not
/// here: the seed guide's own keys are `mint_key_1`, and the generated
/// suffix is a fresh UUIDv7 nobody can name in advance.)
pub const INTERNAL_TX_ID_PREFIXES: [&str; 4] = ["reward_", "reversal_", "redemption_", "refund_"];

/// Whether `key` starts like a `tx_id` the services make (case ignored, so
/// `Refund_...` does not slip past a reader that lower-cases).
pub fn is_internal_tx_id(key: &str) -> bool {
    INTERNAL_TX_ID_PREFIXES.iter().any(|prefix| {
        key.get(..prefix.len())
            .is_some_and(|start| start.eq_ignore_ascii_case(prefix))
    })
}

/// A new 32-byte on-chain reference for a token transaction about to be
/// recorded. It is stored with the row and every send and resend reads it
/// from there, so the contract refuses (single mint, burn) or skips (batch
/// mint) a resend instead of minting or burning twice.
///
/// References come in blocks of 256 that differ only in their last byte
/// (`haven_chain::contract::reference_in_block`): the contract keeps used
/// references as one bit each in a 256-bit storage word per block, so a
/// batch whose references share a block writes that word once instead of
/// once per recipient (about 29,000 instead of 51,000 gas per recipient for
/// 100 new holders). The upper 31 bytes are SHA-256 over a domain tag, a
/// random per-process salt and a block counter, so two processes never
/// share a block; the unique index on the column backs that up. A block a
/// process did not fill is never used again, which costs nothing.
pub fn next_chain_reference() -> [u8; 32] {
    let blocks = &*REFERENCE_BLOCKS;
    let n = blocks.next.fetch_add(1, Ordering::Relaxed);
    let mut hasher = Sha256::new();
    hasher.update(REFERENCE_BLOCK_DOMAIN);
    hasher.update(blocks.salt);
    hasher.update((n >> 8).to_be_bytes());
    let mut reference: [u8; 32] = hasher.finalize().into();
    reference[31] = (n & 0xff) as u8;
    reference
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
    pub amount: SignedWei,
    /// Why.
    pub reason: String,
    /// Who asked ([`Model::requested_by`]).
    pub requested_by: Option<String>,
    /// When the request behind it was accepted ([`Model::accepted_at`]).
    pub accepted_at: Option<DateTimeUtc>,
}

/// Records a pending transaction once per `tx_id`: `Some(row)` when this
/// call inserted it, `None` when the `tx_id` already exists (the caller
/// loads it with [`find_by_tx_id`] to compare). Uses `ON CONFLICT DO
/// NOTHING`, so a duplicate does not abort the surrounding transaction.
pub async fn insert_pending<C: ConnectionTrait>(
    db: &C,
    new: NewTokenTransaction,
) -> Result<Option<Model>, EntityError> {
    let model = new_pending(new);
    let inserted = Entity::insert(model.clone().into_active_model())
        .on_conflict(OnConflict::column(Column::TxId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok((inserted == 1).then_some(model))
}

/// `model` (from [`new_pending`]) as a row of a
/// [`linked::insert`](crate::linked::insert), a plain insert: a clash of
/// its `tx_id` fails the whole statement.
pub fn linked_row(model: &Model) -> LinkedRow {
    LinkedRow::new(&model.clone().into_active_model(), None)
}

/// The pending row of `new`, with a fresh id and on-chain reference, as
/// [`insert_pending`] writes it.
pub fn new_pending(new: NewTokenTransaction) -> Model {
    let id = Uuid::now_v7();
    let now = Utc::now();
    Model {
        id,
        tx_id: new.tx_id,
        chain_reference: next_chain_reference().to_vec(),
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
        final_at: None,
        reorgs: 0,
        requested_by: new.requested_by,
        accepted_at: new.accepted_at,
    }
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

/// Unfinished (`pending` or `submitted`) transactions unchanged since
/// `before`, oldest change first: what the stuck-transaction sweep drives.
pub async fn unfinished_since<C: ConnectionTrait>(
    db: &C,
    before: DateTimeUtc,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::Status.is_in([TxStatus::Pending, TxStatus::Submitted]))
        .filter(Column::UpdatedAt.lt(before))
        .order_by_asc(Column::UpdatedAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Confirmed transactions not yet final, mined at or below block
/// `up_to`, lowest block first.
pub async fn confirmed_not_final<C: ConnectionTrait>(
    db: &C,
    up_to: i64,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::Status.eq(TxStatus::Confirmed))
        .filter(Column::FinalAt.is_null())
        .filter(Column::BlockNumber.lte(up_to))
        .order_by_asc(Column::BlockNumber)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// How many unfinished transactions were recorded before `before`.
pub async fn count_unfinished_recorded_before<C: ConnectionTrait>(
    db: &C,
    before: DateTimeUtc,
) -> Result<u64, EntityError> {
    Ok(Entity::find()
        .filter(Column::Status.is_in([TxStatus::Pending, TxStatus::Submitted]))
        .filter(Column::CreatedAt.lt(before))
        .count(db)
        .await?)
}

/// Marks `row` looked at now, if it has not changed since it was read
/// (same status, same `updated_at`); `false` when someone else changed it.
pub async fn touch_if_unchanged<C: ConnectionTrait>(
    db: &C,
    row: &Model,
) -> Result<bool, EntityError> {
    let updated = Entity::update_many()
        .col_expr(
            Column::UpdatedAt,
            sea_orm::sea_query::Expr::value(Utc::now()),
        )
        .filter(Column::Id.eq(row.id))
        .filter(Column::Status.eq(row.status))
        .filter(Column::UpdatedAt.eq(row.updated_at))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn references_come_in_blocks_of_256_and_never_repeat() {
        let refs: Vec<[u8; 32]> = (0..1024).map(|_| next_chain_reference()).collect();
        let unique: HashSet<_> = refs.iter().collect();
        assert_eq!(unique.len(), refs.len(), "a reference was handed out twice");
        let blocks: HashSet<[u8; 31]> = refs
            .iter()
            .map(|r| r[..31].try_into().expect("31 bytes"))
            .collect();
        // Other tests in this process may take references meanwhile, so the
        // 1,024 span at least 4 blocks and at most a few more.
        assert!(
            (4..=8).contains(&blocks.len()),
            "{} blocks for 1,024 consecutive references",
            blocks.len()
        );
    }
}
