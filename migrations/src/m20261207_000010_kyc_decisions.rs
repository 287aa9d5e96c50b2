//! Operators' KYC decisions: each `POST /users/{user_id}/kyc` is kept with
//! who asked (an API key's label, never the key), when, and the check's
//! reference; `users.kyc_verified` holds the latest. The index serves a
//! user's history, newest first.

use sea_orm_migration::prelude::*;

use crate::m20250601_000001_users_and_ledger::Users;
use crate::schema::{text, text_null, ts, uuid, uuid_pk};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum KycDecisions {
    Table,
    Id,
    UserId,
    Verified,
    Reference,
    DecidedBy,
    DecidedAt,
}

const USER_INDEX: &str = "kyc_decisions_user_id_decided_at_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(KycDecisions::Table)
                    .if_not_exists()
                    .col(uuid_pk(KycDecisions::Id))
                    .col(uuid(KycDecisions::UserId))
                    .col(ColumnDef::new(KycDecisions::Verified).boolean().not_null())
                    .col(text_null(KycDecisions::Reference))
                    .col(text(KycDecisions::DecidedBy))
                    .col(ts(KycDecisions::DecidedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("kyc_decisions_user_id_fkey")
                            .from(KycDecisions::Table, KycDecisions::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(USER_INDEX)
                    .table(KycDecisions::Table)
                    .col(KycDecisions::UserId)
                    .col(KycDecisions::DecidedAt)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(
                Table::drop()
                    .table(KycDecisions::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await
    }
}
