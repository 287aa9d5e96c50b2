//! Confirmed is not final: chain-minter keeps watching a confirmed token
//! transaction until it is buried under `CHAIN_FINALITY_DEPTH` blocks
//! (`final_at`), and sends one that a reorganisation removed again
//! (`reorgs` counts how often). Rows confirmed before this migration are
//! taken as final.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TokenTransactions {
    Table,
    FinalAt,
    Reorgs,
    ConfirmedAt,
    Status,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(TokenTransactions::Table)
                    .add_column(
                        ColumnDef::new(TokenTransactions::FinalAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TokenTransactions::Table)
                    .add_column(
                        ColumnDef::new(TokenTransactions::Reorgs)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .exec_stmt(
                Query::update()
                    .table(TokenTransactions::Table)
                    .value(
                        TokenTransactions::FinalAt,
                        Expr::col(TokenTransactions::ConfirmedAt),
                    )
                    .and_where(Expr::col(TokenTransactions::Status).eq("confirmed"))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [TokenTransactions::Reorgs, TokenTransactions::FinalAt] {
            manager
                .alter_table(
                    Table::alter()
                        .table(TokenTransactions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
