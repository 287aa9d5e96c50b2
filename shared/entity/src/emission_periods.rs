//! `emission_periods`: how much reward-calculator has granted per budget
//! period (`YYYY-MM`), so rewards beyond the monthly target wait.
//!
//! [`reserve`] adds an amount only if it fits the budget, with the same
//! optimistic version check as the ledger (read, add in Rust, `UPDATE ...
//! WHERE version = <read>`, retry on a lost race): amounts are never summed
//! in SQL, where SQLite would use floating point. On PostgreSQL the losing
//! UPDATE waits for the winner's commit and the next read in the same
//! transaction sees it, so concurrent grants of one period take turns and
//! the budget is never overshot.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

use crate::error::EntityError;
use crate::wei::SignedWei;

/// Retries of the optimistic update before giving up with
/// [`EntityError::Contention`]; each retry follows someone else's commit.
const MAX_OPTIMISTIC_ATTEMPTS: u32 = 256;

/// One budget period.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "emission_periods")]
pub struct Model {
    /// The period: `YYYY-MM` for calendar months (UTC).
    #[sea_orm(primary_key, auto_increment = false)]
    pub period: String,
    /// Granted in this period so far.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub emitted: SignedWei,
    /// Optimistic concurrency version, bumped by every update.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What [`reserve`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reservation {
    /// Added: the period's total is now `emitted`.
    Reserved {
        /// The period's total including this amount.
        emitted: SignedWei,
    },
    /// Not added: it would take the period beyond `budget`.
    OverBudget {
        /// The period's total before (and after) the call.
        emitted: SignedWei,
    },
}

/// Adds `amount` to `period` if the total stays within `budget` (`None`:
/// no budget, always added). Call it inside the transaction that grants
/// the reward, so a rollback gives the amount back.
pub async fn reserve<C: ConnectionTrait>(
    db: &C,
    period: &str,
    amount: SignedWei,
    budget: Option<SignedWei>,
) -> Result<Reservation, EntityError> {
    if amount.is_negative() {
        return Err(EntityError::Corrupt(format!(
            "cannot reserve a negative amount ({amount} wei)"
        )));
    }
    let now = Utc::now();
    Entity::insert(ActiveModel {
        period: Set(period.to_owned()),
        emitted: Set(SignedWei::ZERO),
        version: Set(0),
        updated_at: Set(now),
    })
    .on_conflict(OnConflict::column(Column::Period).do_nothing().to_owned())
    .exec_without_returning(db)
    .await?;
    for _ in 0..MAX_OPTIMISTIC_ATTEMPTS {
        let row = Entity::find_by_id(period.to_owned())
            .one(db)
            .await?
            .ok_or_else(|| EntityError::Corrupt(format!("emission period `{period}` vanished")))?;
        let emitted = row.emitted.checked_add(amount).ok_or_else(|| {
            EntityError::Corrupt(format!("emission of period `{period}` overflows"))
        })?;
        if budget.is_some_and(|budget| emitted > budget) {
            return Ok(Reservation::OverBudget {
                emitted: row.emitted,
            });
        }
        let updated = Entity::update_many()
            .set(ActiveModel {
                emitted: Set(emitted),
                version: Set(row.version + 1),
                updated_at: Set(now),
                ..Default::default()
            })
            .filter(Column::Period.eq(period))
            .filter(Column::Version.eq(row.version))
            .exec(db)
            .await?;
        if updated.rows_affected == 1 {
            return Ok(Reservation::Reserved { emitted });
        }
    }
    Err(EntityError::Contention(format!(
        "emission period `{period}`"
    )))
}

/// The amount granted in `period` so far (zero when nothing was).
pub async fn emitted<C: ConnectionTrait>(db: &C, period: &str) -> Result<SignedWei, EntityError> {
    Ok(Entity::find_by_id(period.to_owned())
        .one(db)
        .await?
        .map_or(SignedWei::ZERO, |row| row.emitted))
}
