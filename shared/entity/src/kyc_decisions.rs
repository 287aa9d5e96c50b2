//! `kyc_decisions`: every KYC outcome an operator recorded, with who asked;
//! `users.kyc_verified` holds the latest ([`decide`] writes both at once).

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::QueryOrder;
use sea_orm::entity::prelude::*;

use crate::error::EntityError;
use crate::users;

/// One decision.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "kyc_decisions")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// The user it is about (`users.id`).
    pub user_id: Uuid,
    /// Whether the user passed the check.
    pub verified: bool,
    /// The check's reference at the KYC vendor, when given.
    pub reference: Option<String>,
    /// Who recorded it: the API key's name (`API_KEYS`; `api_key:<n>/<fingerprint>` before keys had names),
    /// never the key.
    pub decided_by: String,
    /// When it was recorded.
    pub decided_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A decision to record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewDecision {
    /// The user (`users.id`).
    pub user_id: Uuid,
    /// The outcome.
    pub verified: bool,
    /// The check's reference.
    pub reference: Option<String>,
    /// Who asked.
    pub decided_by: String,
}

/// Records `decision` and sets the user's `kyc_verified` to it, in the
/// caller's transaction (`db` should be one). Returns the user as updated.
pub async fn decide<C: ConnectionTrait>(
    db: &C,
    decision: NewDecision,
) -> Result<users::Model, EntityError> {
    let now = Utc::now();
    Entity::insert(ActiveModel {
        id: Set(Uuid::now_v7()),
        user_id: Set(decision.user_id),
        verified: Set(decision.verified),
        reference: Set(decision.reference),
        decided_by: Set(decision.decided_by),
        decided_at: Set(now),
    })
    .exec_without_returning(db)
    .await?;
    users::Entity::update_many()
        .set(users::ActiveModel {
            kyc_verified: Set(decision.verified),
            updated_at: Set(now),
            ..Default::default()
        })
        .filter(users::Column::Id.eq(decision.user_id))
        .exec(db)
        .await?;
    users::Entity::find_by_id(decision.user_id)
        .one(db)
        .await?
        .ok_or_else(|| EntityError::Corrupt(format!("user {} vanished", decision.user_id)))
}

/// A user's decisions, newest first.
pub async fn history<C: ConnectionTrait>(db: &C, user_id: Uuid) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::UserId.eq(user_id))
        .order_by_desc(Column::DecidedAt)
        .order_by_desc(Column::Id)
        .all(db)
        .await?)
}
