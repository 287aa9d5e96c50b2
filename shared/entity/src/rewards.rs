//! `rewards`: one reward granted by a rule for one partner event.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, IntoActiveModel, QueryOrder, QuerySelect};

use crate::error::EntityError;
use crate::linked::LinkedRow;
use crate::wei::SignedWei;

/// Where a reward is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum RewardStatus {
    /// Granted, mint not confirmed yet.
    #[sea_orm(string_value = "pending")]
    Pending,
    /// Its mint is confirmed.
    #[sea_orm(string_value = "minted")]
    Minted,
    /// Withdrawn before the mint went out.
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
    /// Taken back by a burn after the mint.
    #[sea_orm(string_value = "reversed")]
    Reversed,
    /// Over the emission budget of its period: no mint yet; released (to
    /// `pending`, with its mint) in a later period that has room.
    #[sea_orm(string_value = "held")]
    Held,
}

/// A reward.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "rewards")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// What it is for, unique: `aurora:booking:<id>`, `tribe:referral:<a>:<b>`...
    pub source_reference: String,
    /// Who earns it.
    pub user_id: Uuid,
    /// The rule that granted it.
    pub rule: String,
    /// Version of the rules file it was computed with.
    pub rule_version: i32,
    /// What the rule granted, in wei (never negative).
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: SignedWei,
    /// Where it is.
    pub status: RewardStatus,
    /// The mint (`token_transactions.tx_id`) paying it.
    pub token_tx_id: Option<String>,
    /// When granted.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A reward to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewReward {
    /// Id to give it (UUIDv7), chosen by the caller so the mint's `tx_id`
    /// can be derived from it before the insert.
    pub id: Uuid,
    /// What it is for (unique).
    pub source_reference: String,
    /// Who earns it.
    pub user_id: Uuid,
    /// The rule that granted it.
    pub rule: String,
    /// Version of the rules file.
    pub rule_version: i32,
    /// Amount, positive.
    pub amount: SignedWei,
    /// `pending` (a mint follows in the same transaction) or `held`.
    pub status: RewardStatus,
    /// The mint paying it. It may be inserted later in the same
    /// transaction: the foreign key is checked at commit.
    pub token_tx_id: Option<String>,
}

/// Records a reward once per `source_reference`: `Some(row)` when this call
/// inserted it, `None` when a reward for that source already exists. Uses
/// `ON CONFLICT DO NOTHING`, so a duplicate does not abort the surrounding
/// transaction (on PostgreSQL a concurrent insert of the same source waits
/// for the other transaction and then does nothing).
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    new: NewReward,
) -> Result<Option<Model>, EntityError> {
    let model = new_model(new);
    let inserted = Entity::insert(model.clone().into_active_model())
        .on_conflict(
            OnConflict::column(Column::SourceReference)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok((inserted == 1).then_some(model))
}

/// The row [`insert`] writes for `new`, as a row of a
/// [`linked::insert`](crate::linked::insert): it and the rows after it
/// write nothing when a reward for the same source exists.
pub fn linked_row(new: NewReward) -> LinkedRow {
    LinkedRow::new(
        &new_model(new).into_active_model(),
        Some(
            OnConflict::column(Column::SourceReference)
                .do_nothing()
                .to_owned(),
        ),
    )
}

/// The row of `new`, created now.
fn new_model(new: NewReward) -> Model {
    let now = Utc::now();
    Model {
        id: new.id,
        source_reference: new.source_reference,
        user_id: new.user_id,
        rule: new.rule,
        rule_version: new.rule_version,
        amount: new.amount,
        status: new.status,
        token_tx_id: new.token_tx_id,
        created_at: now,
        updated_at: now,
    }
}

/// Finds the reward granted for a source.
pub async fn find_by_source_reference<C: ConnectionTrait>(
    db: &C,
    source_reference: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::SourceReference.eq(source_reference))
        .one(db)
        .await?)
}

/// What a [`transition`] does to the reward's `token_tx_id`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MintPointer {
    /// Leaves it as it is.
    Keep,
    /// Points the reward at this mint (`token_transactions.tx_id`).
    Set(String),
    /// Clears it: the reward ends without a mint (held, or withheld whole).
    Clear,
}

/// Moves a reward from status `from` to `to`, changing its mint pointer as
/// `mint` says. Conditional on the current status, so of two concurrent
/// callers exactly one gets `true`.
///
/// `rewards_token_tx_id_fkey` is checked at commit, so a reward may point
/// at a mint the same transaction inserts later; one pointing at a mint
/// that does not exist by then fails the commit.
pub async fn transition<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    from: RewardStatus,
    to: RewardStatus,
    mint: MintPointer,
) -> Result<bool, EntityError> {
    let mut change = ActiveModel {
        status: Set(to),
        updated_at: Set(Utc::now()),
        ..Default::default()
    };
    match mint {
        MintPointer::Keep => {}
        MintPointer::Set(tx_id) => change.token_tx_id = Set(Some(tx_id)),
        MintPointer::Clear => change.token_tx_id = Set(None),
    }
    let updated = Entity::update_many()
        .set(change)
        .filter(Column::Id.eq(id))
        .filter(Column::Status.eq(from))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}

/// Held rewards, oldest first, at most `limit` (served by
/// `rewards_status_created_at_idx`).
pub async fn oldest_held<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::Status.eq(RewardStatus::Held))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// How many rewards are held and their total amount (summed here, exactly;
/// never in SQL).
pub async fn held_totals<C: ConnectionTrait>(db: &C) -> Result<(u64, SignedWei), EntityError> {
    let held = Entity::find()
        .filter(Column::Status.eq(RewardStatus::Held))
        .all(db)
        .await?;
    let mut total = SignedWei::ZERO;
    for reward in &held {
        total = total
            .checked_add(reward.amount)
            .ok_or_else(|| EntityError::Corrupt("held reward amounts overflow".into()))?;
    }
    Ok((held.len() as u64, total))
}
