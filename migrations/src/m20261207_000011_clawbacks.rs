//! Clawbacks: what a user owes when a reversed reward's tokens were already
//! spent (redeemed and paid out) and cannot be burned. Each row is one entry
//! of the user's clawback account: a positive amount opens debt (a reversal,
//! `clawback:<reward id>`), a negative one settles it (withheld from a later
//! reward, `clawback-settle:<reward id>`); the outstanding debt is their
//! sum. The unique reference makes every entry once-only; the index serves
//! a user's sum.

use sea_orm_migration::prelude::*;

use crate::m20250601_000001_users_and_ledger::Users;
use crate::schema::{text, ts, uuid, uuid_pk, wei};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum Clawbacks {
    Table,
    Id,
    UserId,
    Reference,
    Amount,
    Reason,
    CreatedAt,
}

const REFERENCE_KEY: &str = "clawbacks_reference_key";
const USER_INDEX: &str = "clawbacks_user_id_idx";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Clawbacks::Table)
                    .if_not_exists()
                    .col(uuid_pk(Clawbacks::Id))
                    .col(uuid(Clawbacks::UserId))
                    .col(text(Clawbacks::Reference))
                    .col(wei(Clawbacks::Amount))
                    .col(text(Clawbacks::Reason))
                    .col(ts(Clawbacks::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("clawbacks_user_id_fkey")
                            .from(Clawbacks::Table, Clawbacks::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(REFERENCE_KEY)
                    .table(Clawbacks::Table)
                    .col(Clawbacks::Reference)
                    .unique()
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(USER_INDEX)
                    .table(Clawbacks::Table)
                    .col(Clawbacks::UserId)
                    .if_not_exists()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Clawbacks::Table).if_exists().to_owned())
            .await
    }
}
