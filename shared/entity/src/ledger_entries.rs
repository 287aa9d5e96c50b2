//! `ledger_entries`: signed changes to one account, grouped by movement.

use sea_orm::entity::prelude::*;

use crate::wei::SignedWei;

/// Which kind of account an entry changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum AccountKind {
    /// Source of every mint (system).
    #[sea_orm(string_value = "supply")]
    Supply,
    /// Sink of every burn (system).
    #[sea_orm(string_value = "burned")]
    Burned,
    /// Value paid out for redemptions (system).
    #[sea_orm(string_value = "payout")]
    Payout,
    /// A user's spendable tokens.
    #[sea_orm(string_value = "user_available")]
    UserAvailable,
    /// A user's tokens held for a redemption.
    #[sea_orm(string_value = "user_reserved")]
    UserReserved,
}

/// An entry.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_entries")]
pub struct Model {
    /// Insertion order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The movement it belongs to.
    pub movement_id: Uuid,
    /// The account kind.
    pub account: AccountKind,
    /// The account's owner for user accounts, `None` for system accounts.
    pub user_id: Option<Uuid>,
    /// Signed change to the account.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: SignedWei,
    /// When it was posted.
    pub created_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
