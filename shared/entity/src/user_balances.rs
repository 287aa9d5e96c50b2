//! `user_balances`: one row per user with the running balances of the
//! user's two ledger accounts, updated by [`crate::ledger::post`] in the same
//! transaction as the entries.

use sea_orm::entity::prelude::*;

use crate::wei::SignedWei;

/// A user's balances.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "user_balances")]
pub struct Model {
    /// The user.
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    /// Spendable balance (what `GET /token/balance` shows).
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub available: SignedWei,
    /// Held for redemptions in flight.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub reserved: SignedWei,
    /// Optimistic concurrency version, bumped by every update.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
