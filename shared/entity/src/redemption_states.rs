//! `redemption_states`: every state a redemption entered, and when. Written
//! by the database itself (a trigger on `redemptions`, see migration
//! `m20261208_000014_requested_by`) in the statement that changes the
//! state, so it is never behind the row and no writer can forget it.
//! Redemptions recorded before the table have their creation and the state
//! they were in then.

use sea_orm::QueryOrder;
use sea_orm::entity::prelude::*;

use crate::error::EntityError;
use crate::redemptions::RedemptionState;

/// One state entered.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "redemption_states")]
pub struct Model {
    /// Insertion order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The redemption (`redemptions.request_id`).
    pub request_id: Uuid,
    /// The state it entered.
    pub state: RedemptionState,
    /// When (the redemption's `updated_at` as the state changed).
    pub entered_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The states redemption `request_id` entered, oldest first (served by
/// `redemption_states_request_id_idx`).
pub async fn history<C: ConnectionTrait>(
    db: &C,
    request_id: Uuid,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::RequestId.eq(request_id))
        .order_by_asc(Column::Id)
        .all(db)
        .await?)
}
