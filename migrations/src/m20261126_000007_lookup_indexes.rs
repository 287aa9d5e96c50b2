//! Indexes for look-ups the pipeline makes once per token transaction.
//!
//! chain-minter marks a reward `minted` by its token transaction
//! (`UPDATE rewards ... WHERE token_tx_id = ?`) for every confirmed mint;
//! without an index on `token_tx_id` PostgreSQL read it through the status
//! index, i.e. every pending reward, for each one (quadratic in the backlog).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Rewards {
    Table,
    TokenTxId,
}

const REWARDS_TOKEN_TX_ID_IDX: &str = "rewards_token_tx_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_index(
                Index::create()
                    .name(REWARDS_TOKEN_TX_ID_IDX)
                    .table(Rewards::Table)
                    .col(Rewards::TokenTxId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(REWARDS_TOKEN_TX_ID_IDX)
                    .table(Rewards::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
