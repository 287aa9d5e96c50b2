//! `chain_deployments`: where `haven-deploy` put each contract on each chain.

use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

use crate::error::EntityError;

/// A recorded deployment.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "chain_deployments")]
pub struct Model {
    /// EIP-155 chain id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub chain_id: i64,
    /// Contract name, e.g. `HAVEN`.
    #[sea_orm(primary_key, auto_increment = false)]
    pub contract: String,
    /// Checksummed contract address.
    pub address: String,
    /// Creation transaction hash (`0x`-hex).
    pub tx_hash: String,
    /// Block the creation was mined in.
    pub block_number: i64,
    /// Checksummed deployer (admin) address.
    pub deployer: String,
    /// When it was recorded.
    pub deployed_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// The recorded deployment of `contract` on `chain_id`.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    chain_id: i64,
    contract: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find_by_id((chain_id, contract.to_owned()))
        .one(db)
        .await?)
}

/// The recorded deployment at `address` (checksummed), on whichever chain.
pub async fn find_by_address<C: ConnectionTrait>(
    db: &C,
    address: &str,
) -> Result<Option<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::Address.eq(address))
        .one(db)
        .await?)
}

/// Records a deployment, replacing an older one of the same contract on
/// the same chain (a chain reset to genesis lost the old one).
pub async fn upsert<C: ConnectionTrait>(db: &C, deployment: Model) -> Result<(), EntityError> {
    Entity::insert(ActiveModel::from(deployment))
        .on_conflict(
            OnConflict::columns([Column::ChainId, Column::Contract])
                .update_columns([
                    Column::Address,
                    Column::TxHash,
                    Column::BlockNumber,
                    Column::Deployer,
                    Column::DeployedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(())
}
