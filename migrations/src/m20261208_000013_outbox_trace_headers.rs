//! The trace context of an outbox row: the W3C `traceparent` (and
//! `tracestate`) of the span that wrote it, as a JSON object, so the relay
//! publishes the message with them and its consumer continues the trace of
//! the request that caused it. Null for rows written without a traced span
//! (and for every row written before this migration).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Outbox {
    Table,
    Headers,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    // jsonb on PostgreSQL, JSON text on SQLite (as the other JSON columns).
                    .add_column(ColumnDef::new(Outbox::Headers).json_binary().null())
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Outbox::Table)
                    .drop_column(Outbox::Headers)
                    .to_owned(),
            )
            .await
    }
}
