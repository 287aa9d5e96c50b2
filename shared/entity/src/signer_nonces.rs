//! `signer_nonces`: the next nonce of a signer on a chain.

use sea_orm::entity::prelude::*;

/// A signer's nonce.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signer_nonces")]
pub struct Model {
    /// EIP-155 chain id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub chain_id: i64,
    /// The signer's address.
    #[sea_orm(primary_key, auto_increment = false)]
    pub signer_address: String,
    /// Next nonce to use.
    pub next_nonce: i64,
    /// Last change.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
