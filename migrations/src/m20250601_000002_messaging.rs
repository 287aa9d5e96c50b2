//! Webhook dedupe records, the transactional outbox and idempotency keys.

use sea_orm_migration::prelude::*;

use crate::schema::{exec, serial_pk, text, text_null, ts, ts_null, uuid, uuid_pk};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum InboundEvents {
    Table,
    Id,
    Partner,
    Kind,
    EventKey,
    MessageId,
    Payload,
    ReceivedAt,
}

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Id,
    MessageId,
    Exchange,
    RoutingKey,
    Payload,
    CreatedAt,
    PublishedAt,
    Attempts,
    LastError,
}

#[derive(DeriveIden)]
enum IdempotencyKeys {
    Table,
    Scope,
    Key,
    RequestHash,
    StatusCode,
    Response,
    CreatedAt,
    ExpiresAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One row per partner event ever accepted: the unique key is what
        // makes a webhook retried by the partner a no-op.
        manager
            .create_table(
                Table::create()
                    .table(InboundEvents::Table)
                    .col(uuid_pk(InboundEvents::Id))
                    .col(text(InboundEvents::Partner))
                    .col(text(InboundEvents::Kind))
                    .col(text(InboundEvents::EventKey))
                    .col(uuid(InboundEvents::MessageId))
                    .col(
                        ColumnDef::new(InboundEvents::Payload)
                            .json_binary()
                            .not_null(),
                    )
                    .col(ts(InboundEvents::ReceivedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("inbound_events_partner_kind_event_key_key")
                    .table(InboundEvents::Table)
                    .col(InboundEvents::Partner)
                    .col(InboundEvents::Kind)
                    .col(InboundEvents::EventKey)
                    .unique()
                    .to_owned(),
            )
            .await?;

        // Messages written in the same transaction as the state change that
        // caused them, published afterwards by a relay.
        manager
            .create_table(
                Table::create()
                    .table(Outbox::Table)
                    .col(serial_pk(Outbox::Id))
                    .col(uuid(Outbox::MessageId))
                    .col(text(Outbox::Exchange))
                    .col(text(Outbox::RoutingKey))
                    .col(ColumnDef::new(Outbox::Payload).blob().not_null())
                    .col(ts(Outbox::CreatedAt))
                    .col(ts_null(Outbox::PublishedAt))
                    .col(
                        ColumnDef::new(Outbox::Attempts)
                            .integer()
                            .not_null()
                            .default(0),
                    )
                    .col(text_null(Outbox::LastError))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("outbox_message_id_key")
                    .table(Outbox::Table)
                    .col(Outbox::MessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The relay only ever scans unpublished rows in id order; a partial
        // index keeps that scan small however large the history grows.
        // Same syntax on PostgreSQL and SQLite.
        exec(
            manager,
            "CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at IS NULL",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(IdempotencyKeys::Table)
                    .col(text(IdempotencyKeys::Scope))
                    .col(text(IdempotencyKeys::Key))
                    .col(text(IdempotencyKeys::RequestHash))
                    // NULL while the first request is still being processed.
                    .col(ColumnDef::new(IdempotencyKeys::StatusCode).integer().null())
                    .col(
                        ColumnDef::new(IdempotencyKeys::Response)
                            .json_binary()
                            .null(),
                    )
                    .col(ts(IdempotencyKeys::CreatedAt))
                    .col(ts(IdempotencyKeys::ExpiresAt))
                    .primary_key(
                        Index::create()
                            .name("idempotency_keys_pkey")
                            .col(IdempotencyKeys::Scope)
                            .col(IdempotencyKeys::Key),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("idempotency_keys_expires_at_idx")
                    .table(IdempotencyKeys::Table)
                    .col(IdempotencyKeys::ExpiresAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            IdempotencyKeys::Table.into_iden(),
            Outbox::Table.into_iden(),
            InboundEvents::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
