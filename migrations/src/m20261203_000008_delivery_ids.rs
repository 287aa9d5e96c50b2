//! The Standard Webhooks delivery id of an inbound event, unique per partner.
//!
//! An event is deduplicated by its "once per" key whatever the scheme it
//! came under, so the same event delivered again under a new `webhook-id`, or
//! once per signing scheme, answers `duplicate`. The delivery id is kept
//! beside it, unique per partner, so one signed delivery cannot be replayed
//! to another route within its timestamp window: the id was spent by the
//! first. NULL (the hex scheme) never conflicts.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum InboundEvents {
    Table,
    Partner,
    DeliveryId,
}

const DELIVERY_ID_KEY: &str = "inbound_events_partner_delivery_id_key";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(InboundEvents::Table)
                    .add_column(
                        ColumnDef::new(InboundEvents::DeliveryId)
                            .string_len(255)
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(DELIVERY_ID_KEY)
                    .table(InboundEvents::Table)
                    .col(InboundEvents::Partner)
                    .col(InboundEvents::DeliveryId)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_index(
                Index::drop()
                    .name(DELIVERY_ID_KEY)
                    .table(InboundEvents::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(InboundEvents::Table)
                    .drop_column(InboundEvents::DeliveryId)
                    .to_owned(),
            )
            .await
    }
}
