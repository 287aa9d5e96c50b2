//! Signer leases and nonces: at most one chain-minter instance signs with a
//! given key at a time, and the next nonce survives restarts.

use sea_orm_migration::prelude::*;

use crate::schema::{text, ts};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum SignerLeases {
    Table,
    SignerAddress,
    Holder,
    ExpiresAt,
    AcquiredAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum SignerNonces {
    Table,
    ChainId,
    SignerAddress,
    NextNonce,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(SignerLeases::Table)
                    .col(text(SignerLeases::SignerAddress).primary_key())
                    .col(text(SignerLeases::Holder))
                    .col(ts(SignerLeases::ExpiresAt))
                    .col(ts(SignerLeases::AcquiredAt))
                    .col(ts(SignerLeases::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(SignerNonces::Table)
                    .col(
                        ColumnDef::new(SignerNonces::ChainId)
                            .big_integer()
                            .not_null(),
                    )
                    .col(text(SignerNonces::SignerAddress))
                    .col(
                        ColumnDef::new(SignerNonces::NextNonce)
                            .big_integer()
                            .not_null(),
                    )
                    .col(ts(SignerNonces::UpdatedAt))
                    .primary_key(
                        Index::create()
                            .name("signer_nonces_pkey")
                            .col(SignerNonces::ChainId)
                            .col(SignerNonces::SignerAddress),
                    )
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            SignerNonces::Table.into_iden(),
            SignerLeases::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
