//! `clawbacks`: a user's clawback account. When a reversed reward's tokens
//! are already spent (redeemed, paid out), the part that cannot be burned
//! is owed: an entry of `+amount` opens it (reference `clawback:<id>`), an
//! entry of `-amount` settles it (withheld from a later reward,
//! `clawback-settle:<reward id>`). What a user owes is the sum of their
//! entries, never below zero. Each reference is recorded once, so a
//! redelivered cancellation or grant never counts twice.
//!
//! Writers of one user's entries hold the user's row lock ([`lock_user`])
//! while they read the sum and write, so two grants cannot settle the same
//! debt twice.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{DatabaseTransaction, QuerySelect, sea_query::LockType};

use crate::error::EntityError;
use crate::users;
use crate::wei::SignedWei;

/// One entry of a user's clawback account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "clawbacks")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Who owes (`users.id`).
    pub user_id: Uuid,
    /// Unique: `clawback:<id>` opens, `clawback-settle:<reward id>` settles.
    pub reference: String,
    /// Positive opens debt, negative settles it.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: SignedWei,
    /// Why, for the statement (`reversal`, `settled by reward`...).
    pub reason: String,
    /// When recorded.
    pub created_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The reference of the debt opened by reversing `id` (a reward, or a
/// reversal burn that failed).
pub fn opened_reference(id: Uuid) -> String {
    format!("clawback:{id}")
}

/// The reference of the debt reward `reward_id` settled.
pub fn settled_reference(reward_id: Uuid) -> String {
    format!("clawback-settle:{reward_id}")
}

/// Locks user `user_id`'s row until the transaction ends (NO KEY UPDATE:
/// rows referencing the user keep their KEY SHARE), so one writer at a
/// time reads and changes the user's clawback account.
pub async fn lock_user(txn: &DatabaseTransaction, user_id: Uuid) -> Result<(), EntityError> {
    users::Entity::find_by_id(user_id)
        .lock(LockType::NoKeyUpdate)
        .one(txn)
        .await?;
    Ok(())
}

/// What user `user_id` owes now (summed here, exactly).
pub async fn outstanding<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
) -> Result<SignedWei, EntityError> {
    let entries = Entity::find()
        .filter(Column::UserId.eq(user_id))
        .all(db)
        .await?;
    sum(&entries.iter().map(|e| e.amount).collect::<Vec<_>>())
}

/// What every user owes together, and how many users owe something.
pub async fn total_outstanding<C: ConnectionTrait>(
    db: &C,
) -> Result<(SignedWei, u64), EntityError> {
    let entries = Entity::find().all(db).await?;
    let mut per_user: std::collections::BTreeMap<Uuid, SignedWei> = Default::default();
    for Model {
        user_id: user,
        amount,
        ..
    } in entries
    {
        let slot = per_user.entry(user).or_default();
        *slot = slot
            .checked_add(amount)
            .ok_or_else(|| EntityError::Corrupt("clawback sum overflows".into()))?;
    }
    let owing = per_user.values().filter(|owed| !owed.is_zero()).count() as u64;
    Ok((sum(&per_user.into_values().collect::<Vec<_>>())?, owing))
}

fn sum(amounts: &[SignedWei]) -> Result<SignedWei, EntityError> {
    amounts.iter().try_fold(SignedWei::ZERO, |total, amount| {
        total
            .checked_add(*amount)
            .ok_or_else(|| EntityError::Corrupt("clawback sum overflows".into()))
    })
}

/// Records one entry once per reference; `false` when the reference was
/// recorded before (nothing changed).
pub async fn record<C: ConnectionTrait>(
    db: &C,
    user_id: Uuid,
    reference: String,
    amount: SignedWei,
    reason: &str,
) -> Result<bool, EntityError> {
    if amount.is_zero() {
        return Err(EntityError::InvalidMovement(format!(
            "clawback `{reference}` of zero"
        )));
    }
    let inserted = Entity::insert(ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(user_id),
        reference: Set(reference),
        amount: Set(amount),
        reason: Set(reason.to_owned()),
        created_at: Set(Utc::now()),
    })
    .on_conflict(
        OnConflict::column(Column::Reference)
            .do_nothing()
            .to_owned(),
    )
    .exec_without_returning(db)
    .await?;
    Ok(inserted == 1)
}
