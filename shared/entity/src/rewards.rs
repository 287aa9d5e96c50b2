//! `rewards`: one reward granted by a rule for one partner event.

use sea_orm::entity::prelude::*;

use crate::wei::Wei;

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
    /// Amount.
    #[sea_orm(select_as = "text", save_as = "wei_text")]
    pub amount: Wei,
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
