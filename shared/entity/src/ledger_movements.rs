//! `ledger_movements`: one business event in the ledger, whose entries sum
//! to zero. The unique reference makes posting idempotent.

use sea_orm::entity::prelude::*;

/// What a movement records.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum MovementKind {
    /// New tokens: supply -> user available.
    #[sea_orm(string_value = "mint")]
    Mint,
    /// A redemption holds tokens: user available -> user reserved.
    #[sea_orm(string_value = "reserve")]
    Reserve,
    /// A failed redemption gives them back: user reserved -> user available.
    #[sea_orm(string_value = "release")]
    Release,
    /// Tokens destroyed on chain: user reserved (or available) -> burned.
    #[sea_orm(string_value = "burn")]
    Burn,
    /// Fiat value paid out for a redemption.
    #[sea_orm(string_value = "payout")]
    Payout,
    /// Undoing an earlier movement (a cancelled booking's reward).
    #[sea_orm(string_value = "reversal")]
    Reversal,
    /// A manual correction by an operator.
    #[sea_orm(string_value = "adjustment")]
    Adjustment,
}

/// A movement.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_movements")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// Caller-chosen unique reference, e.g. `mint:<tx_id>`.
    pub reference: String,
    /// What happened.
    pub kind: MovementKind,
    /// When it was posted.
    pub created_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
