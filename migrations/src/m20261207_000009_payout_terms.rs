//! The payout request of a redemption, fixed once: the fiat amount and its
//! currency are stored the first time they are computed (before the burn is
//! queued), and every payout attempt sends exactly those. A retry after a
//! lost answer then carries the same body under the same idempotency key,
//! whatever `HNV_REFERENCE_VALUE` or `PAYOUT_CURRENCY` say by then. NULL on
//! redemptions recorded before this migration: they fix theirs before their
//! first payout attempt.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    PayoutFiatAmount,
    PayoutCurrency,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        for column in [Redemptions::PayoutFiatAmount, Redemptions::PayoutCurrency] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Redemptions::Table)
                        .add_column(ColumnDef::new(column).text().null())
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for column in [Redemptions::PayoutCurrency, Redemptions::PayoutFiatAmount] {
            manager
                .alter_table(
                    Table::alter()
                        .table(Redemptions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
