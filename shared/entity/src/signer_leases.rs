//! `signer_leases`: which chain-minter instance may sign with a key, until when.

use sea_orm::entity::prelude::*;

/// A lease.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "signer_leases")]
pub struct Model {
    /// The signer's address.
    #[sea_orm(primary_key, auto_increment = false)]
    pub signer_address: String,
    /// Instance holding it.
    pub holder: String,
    /// When it lapses unless renewed.
    pub expires_at: DateTimeUtc,
    /// When the current holder took it.
    pub acquired_at: DateTimeUtc,
    /// Last renewal.
    pub updated_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
