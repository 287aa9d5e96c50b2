//! What reward-calculator needs besides the reward rows themselves: held
//! rewards, the bookings it has seen (so a cancellation that arrives before
//! its booking still wins), the stakes it pays interest on, and the emission
//! of each budget period.

use sea_orm_migration::prelude::*;

use crate::m20250601_000001_users_and_ledger::Users;
use crate::schema::{
    exec, is_postgres, pg_check, text, text_null, ts, ts_null, uuid, uuid_pk, wei,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// `rewards.status` values before this migration.
const OLD_REWARD_STATUSES: &str = "'pending', 'minted', 'cancelled', 'reversed'";
/// `rewards.status` values after it: `held` waits for the next emission period.
const NEW_REWARD_STATUSES: &str = "'pending', 'minted', 'cancelled', 'reversed', 'held'";

#[derive(DeriveIden)]
enum Rewards {
    Table,
    Id,
    SourceReference,
    UserId,
    Rule,
    RuleVersion,
    Amount,
    Status,
    TokenTxId,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum TokenTransactions {
    Table,
    TxId,
}

#[derive(DeriveIden)]
enum Bookings {
    Table,
    BookingId,
    GuestId,
    Status,
    CancellationReason,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
    CancelledAt,
}

#[derive(DeriveIden)]
enum Stakes {
    Table,
    Id,
    StakeId,
    UserId,
    Amount,
    StartedAt,
    PeriodsPaid,
    NextAccrualAt,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum EmissionPeriods {
    Table,
    Period,
    Emitted,
    Version,
    UpdatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_reward_statuses(manager, NEW_REWARD_STATUSES).await?;
        // The release job takes held rewards oldest first.
        manager
            .create_index(
                Index::create()
                    .name("rewards_status_created_at_idx")
                    .table(Rewards::Table)
                    .col(Rewards::Status)
                    .col(Rewards::CreatedAt)
                    .to_owned(),
            )
            .await?;

        // One row per Aurora booking seen by any event, keyed by Aurora's id.
        // No user foreign key: a cancellation may be the first thing seen.
        manager
            .create_table(
                Table::create()
                    .table(Bookings::Table)
                    .col(text(Bookings::BookingId).primary_key())
                    .col(text(Bookings::GuestId))
                    .col(text(Bookings::Status))
                    .col(text_null(Bookings::CancellationReason))
                    .col(ts(Bookings::CreatedAt))
                    .col(ts(Bookings::UpdatedAt))
                    .col(ts_null(Bookings::CompletedAt))
                    .col(ts_null(Bookings::CancelledAt))
                    .check(Check::named(
                        "bookings_status",
                        Expr::cust("status IN ('created', 'completed', 'cancelled')"),
                    ))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Stakes::Table)
                    .col(uuid_pk(Stakes::Id))
                    .col(text(Stakes::StakeId))
                    .col(uuid(Stakes::UserId))
                    .col(wei(Stakes::Amount))
                    .col(ts(Stakes::StartedAt))
                    .col(
                        ColumnDef::new(Stakes::PeriodsPaid)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(Stakes::NextAccrualAt))
                    .col(ts(Stakes::CreatedAt))
                    .col(ts(Stakes::UpdatedAt))
                    .check(Check::named(
                        "stakes_periods_paid_non_negative",
                        Expr::cust("periods_paid >= 0"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("stakes_user_id_fkey")
                            .from(Stakes::Table, Stakes::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(manager, "stakes", "stakes_amount_positive", "amount > 0").await?;
        manager
            .create_index(
                Index::create()
                    .name("stakes_stake_id_key")
                    .table(Stakes::Table)
                    .col(Stakes::StakeId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        // The accrual job takes the stakes that are due.
        manager
            .create_index(
                Index::create()
                    .name("stakes_next_accrual_at_idx")
                    .table(Stakes::Table)
                    .col(Stakes::NextAccrualAt)
                    .to_owned(),
            )
            .await?;

        // The amount granted per budget period (`YYYY-MM`), updated with an
        // optimistic version check: amounts are added in Rust, never in SQL.
        manager
            .create_table(
                Table::create()
                    .table(EmissionPeriods::Table)
                    .col(text(EmissionPeriods::Period).primary_key())
                    .col(wei(EmissionPeriods::Emitted))
                    .col(
                        ColumnDef::new(EmissionPeriods::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(EmissionPeriods::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        pg_check(
            manager,
            "emission_periods",
            "emission_periods_emitted_non_negative",
            "emitted >= 0",
        )
        .await?;
        Ok(())
    }

    /// Fails while held rewards exist: the old status check cannot hold them.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            EmissionPeriods::Table.into_iden(),
            Stakes::Table.into_iden(),
            Bookings::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        manager
            .drop_index(
                Index::drop()
                    .name("rewards_status_created_at_idx")
                    .table(Rewards::Table)
                    .if_exists()
                    .to_owned(),
            )
            .await?;
        set_reward_statuses(manager, OLD_REWARD_STATUSES).await
    }
}

/// Replaces the `rewards_status` CHECK with one allowing `statuses`.
///
/// PostgreSQL alters the named constraint in place. SQLite cannot alter a
/// constraint, so the table is rebuilt the documented way (create the new
/// shape, copy, drop, rename, re-index); nothing references `rewards`, so
/// dropping it touches no other table.
async fn set_reward_statuses(manager: &SchemaManager<'_>, statuses: &str) -> Result<(), DbErr> {
    if is_postgres(manager) {
        return exec(
            manager,
            &format!(
                r#"ALTER TABLE "rewards" DROP CONSTRAINT "rewards_status", ADD CONSTRAINT "rewards_status" CHECK (status IN ({statuses}))"#
            ),
        )
        .await;
    }
    manager
        .create_table(rewards_table("rewards_rebuilt", statuses))
        .await?;
    exec(
        manager,
        "INSERT INTO rewards_rebuilt (id, source_reference, user_id, rule, rule_version, amount, \
         status, token_tx_id, created_at, updated_at) \
         SELECT id, source_reference, user_id, rule, rule_version, amount, status, token_tx_id, \
         created_at, updated_at FROM rewards",
    )
    .await?;
    exec(manager, "DROP TABLE rewards").await?;
    exec(manager, "ALTER TABLE rewards_rebuilt RENAME TO rewards").await?;
    // Same indexes as m20250601_000003_tokens (dropped with the old table).
    manager
        .create_index(
            Index::create()
                .name("rewards_source_reference_key")
                .table(Rewards::Table)
                .col(Rewards::SourceReference)
                .unique()
                .to_owned(),
        )
        .await?;
    manager
        .create_index(
            Index::create()
                .name("rewards_user_id_created_at_idx")
                .table(Rewards::Table)
                .col(Rewards::UserId)
                .col((Rewards::CreatedAt, IndexOrder::Desc))
                .to_owned(),
        )
        .await
}

/// The `rewards` table of m20250601_000003_tokens under `name`, with `statuses`
/// (SQLite only: the amount check is PostgreSQL-only there too).
fn rewards_table(name: &str, statuses: &str) -> TableCreateStatement {
    Table::create()
        .table(Alias::new(name))
        .col(uuid_pk(Rewards::Id))
        .col(text(Rewards::SourceReference))
        .col(uuid(Rewards::UserId))
        .col(text(Rewards::Rule))
        .col(ColumnDef::new(Rewards::RuleVersion).integer().not_null())
        .col(wei(Rewards::Amount))
        .col(text(Rewards::Status))
        .col(text_null(Rewards::TokenTxId))
        .col(ts(Rewards::CreatedAt))
        .col(ts(Rewards::UpdatedAt))
        .check(Check::named(
            "rewards_status",
            Expr::cust(format!("status IN ({statuses})")),
        ))
        .foreign_key(
            ForeignKey::create()
                .name("rewards_user_id_fkey")
                .from(Alias::new(name), Rewards::UserId)
                .to(Users::Table, Users::Id),
        )
        .foreign_key(
            ForeignKey::create()
                .name("rewards_token_tx_id_fkey")
                .from(Alias::new(name), Rewards::TokenTxId)
                .to(TokenTransactions::Table, TokenTransactions::TxId),
        )
        .to_owned()
}
