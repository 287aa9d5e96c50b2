//! `stakes`: Tribe stakes and how many interest periods each has been paid.
//!
//! Interest is paid per completed period since `started_at`. The accrual job
//! takes the stakes whose `next_accrual_at` has passed ([`due`]) and moves
//! each one period at a time with [`advance`], a conditional update on
//! `periods_paid`: of several replicas advancing the same stake, exactly
//! one wins each period.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, IntoActiveModel, QueryOrder, QuerySelect};

use crate::error::EntityError;
use crate::wei::SignedWei;

/// A stake.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "stakes")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Tribe's stake id (unique).
    pub stake_id: String,
    /// The staker.
    pub user_id: Uuid,
    /// Staked amount.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: SignedWei,
    /// When the stake started (when Tribe's event happened).
    pub started_at: DateTimeUtc,
    /// Interest periods paid so far (period `n` ends at `started_at + n * period`).
    pub periods_paid: i64,
    /// When the next period ends.
    pub next_accrual_at: DateTimeUtc,
    /// When recorded.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A stake to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewStake {
    /// Tribe's stake id.
    pub stake_id: String,
    /// The staker.
    pub user_id: Uuid,
    /// Staked amount, positive.
    pub amount: SignedWei,
    /// When it started.
    pub started_at: DateTimeUtc,
    /// When its first period ends.
    pub first_accrual_at: DateTimeUtc,
}

/// Records a stake once per Tribe stake id: `Some(row)` when this call
/// inserted it, `None` when it was already recorded (`ON CONFLICT DO NOTHING`).
pub async fn insert<C: ConnectionTrait>(
    db: &C,
    new: NewStake,
) -> Result<Option<Model>, EntityError> {
    let now = Utc::now();
    let model = Model {
        id: Uuid::now_v7(),
        stake_id: new.stake_id,
        user_id: new.user_id,
        amount: new.amount,
        started_at: new.started_at,
        periods_paid: 0,
        next_accrual_at: new.first_accrual_at,
        created_at: now,
        updated_at: now,
    };
    let inserted = Entity::insert(model.clone().into_active_model())
        .on_conflict(OnConflict::column(Column::StakeId).do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok((inserted == 1).then_some(model))
}

/// Stakes whose next period ended at or before `now`, earliest first, at
/// most `limit` (served by `stakes_next_accrual_at_idx`).
pub async fn due<C: ConnectionTrait>(
    db: &C,
    now: DateTimeUtc,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::NextAccrualAt.lte(now))
        .order_by_asc(Column::NextAccrualAt)
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Marks period `paid` as paid, if `paid - 1` periods were paid until now,
/// and sets when the next one ends. `true` when this call moved it; `false`
/// when another caller already did (on PostgreSQL the loser waits for the
/// winner's commit, then matches no row).
pub async fn advance<C: ConnectionTrait>(
    db: &C,
    id: Uuid,
    paid: i64,
    next_accrual_at: DateTimeUtc,
) -> Result<bool, EntityError> {
    let updated = Entity::update_many()
        .set(ActiveModel {
            periods_paid: Set(paid),
            next_accrual_at: Set(next_accrual_at),
            updated_at: Set(Utc::now()),
            ..Default::default()
        })
        .filter(Column::Id.eq(id))
        .filter(Column::PeriodsPaid.eq(paid - 1))
        .exec(db)
        .await?;
    Ok(updated.rows_affected == 1)
}
