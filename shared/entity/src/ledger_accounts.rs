//! `ledger_accounts`: the system accounts (supply, burned, payout) and their
//! running balances.

use sea_orm::entity::prelude::*;

use crate::wei::SignedWei;

/// A system account.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "ledger_accounts")]
pub struct Model {
    /// `supply`, `burned` or `payout`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    /// Running balance. `supply` is the source of every mint, so it is the
    /// negated amount ever minted.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub balance: SignedWei,
    /// Optimistic concurrency version, bumped by every update.
    pub version: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
