//! Contract deployments made by `haven-deploy`, so a second run reuses the
//! first one instead of deploying again.

use sea_orm_migration::prelude::*;

use crate::schema::{text, ts};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum ChainDeployments {
    Table,
    ChainId,
    Contract,
    Address,
    TxHash,
    BlockNumber,
    Deployer,
    DeployedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(ChainDeployments::Table)
                    .col(
                        ColumnDef::new(ChainDeployments::ChainId)
                            .big_integer()
                            .not_null(),
                    )
                    // Contract name (`HAVEN`): one deployment per contract per chain.
                    .col(text(ChainDeployments::Contract))
                    .col(text(ChainDeployments::Address))
                    .col(text(ChainDeployments::TxHash))
                    .col(
                        ColumnDef::new(ChainDeployments::BlockNumber)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(ChainDeployments::Deployer))
                    .col(ts(ChainDeployments::DeployedAt))
                    .primary_key(
                        Index::create()
                            .name("chain_deployments_pkey")
                            .col(ChainDeployments::ChainId)
                            .col(ChainDeployments::Contract),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(ChainDeployments::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
