//! Users with their custodial wallets, and the double-entry ledger.
//!
//! Ledger model: a *movement* (one business event: a mint, a reservation,
//! a burn...) is a set of *entries*, each a signed change to one account,
//! and the entries of a movement sum to zero. The accounts are the system
//! accounts in `ledger_accounts` (supply, burned, payout) and two accounts
//! per user (available, reserved) whose running balances live in
//! `user_balances`, one row per user with an optimistic `version`.

use sea_orm_migration::prelude::*;

use crate::schema::{
    WALLET_DERIVATION_COUNTER_TABLE, WALLET_DERIVATION_SEQUENCE, WEI_TYPE, exec, is_postgres,
    pg_check, serial_pk, text, text_null, ts, uuid, uuid_pk, wei,
};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
pub(crate) enum Users {
    Table,
    Id,
    Partner,
    ExternalId,
    Email,
    WalletAddress,
    DerivationIndex,
    KycVerified,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum UserBalances {
    Table,
    UserId,
    Available,
    Reserved,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LedgerAccounts {
    Table,
    Id,
    Balance,
    Version,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum LedgerMovements {
    Table,
    Id,
    Reference,
    Kind,
    CreatedAt,
}

#[derive(DeriveIden)]
enum LedgerEntries {
    Table,
    Id,
    MovementId,
    Account,
    UserId,
    Amount,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if is_postgres(manager) {
            // Guarded because `migrate fresh` drops tables but a failed run
            // may have left the domain behind.
            exec(
                manager,
                &format!(
                    "DO $$ BEGIN \
                       IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace \
                                      WHERE t.typname = '{WEI_TYPE}' AND n.nspname = current_schema()) THEN \
                         CREATE DOMAIN {WEI_TYPE} AS NUMERIC(78,0); \
                       END IF; \
                     END $$"
                ),
            )
            .await?;
            // Derivation indexes are BIP-32 non-hardened child numbers, so
            // they stay below 2^31. A sequence never hands out a number
            // twice, even when the inserting transaction rolls back, so a
            // wallet key can never be shared by two users. Index 0 is left
            // for operational wallets.
            exec(
                manager,
                &format!(
                    "CREATE SEQUENCE IF NOT EXISTS {WALLET_DERIVATION_SEQUENCE} \
                     AS BIGINT MINVALUE 1 MAXVALUE 2147483647 START 1 NO CYCLE"
                ),
            )
            .await?;
        } else {
            // SQLite has no sequences. AUTOINCREMENT guarantees rowids are
            // never reused (the high-water mark lives in sqlite_sequence),
            // which is the property the sequence gives on Postgres.
            exec(
                manager,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {WALLET_DERIVATION_COUNTER_TABLE} \
                     (id INTEGER PRIMARY KEY AUTOINCREMENT)"
                ),
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid_pk(Users::Id))
                    .col(text(Users::Partner))
                    .col(text(Users::ExternalId))
                    .col(text_null(Users::Email))
                    .col(text(Users::WalletAddress))
                    .col(
                        ColumnDef::new(Users::DerivationIndex)
                            .big_integer()
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::KycVerified)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ts(Users::CreatedAt))
                    .col(ts(Users::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    // The partners share guest ids (an Aurora guest id is the
                    // same person's Tribe user id), so a user is one row
                    // whichever partner mentions them.
                    .name("users_external_id_key")
                    .table(Users::Table)
                    .col(Users::ExternalId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_wallet_address_key")
                    .table(Users::Table)
                    .col(Users::WalletAddress)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("users_derivation_index_key")
                    .table(Users::Table)
                    .col(Users::DerivationIndex)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(UserBalances::Table)
                    .col(uuid_pk(UserBalances::UserId))
                    .col(wei(UserBalances::Available))
                    .col(wei(UserBalances::Reserved))
                    .col(
                        ColumnDef::new(UserBalances::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(UserBalances::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("user_balances_user_id_fkey")
                            .from(UserBalances::Table, UserBalances::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(
            manager,
            "user_balances",
            "user_balances_non_negative",
            "available >= 0 AND reserved >= 0",
        )
        .await?;

        manager
            .create_table(
                Table::create()
                    .table(LedgerAccounts::Table)
                    .col(text(LedgerAccounts::Id).primary_key())
                    .col(wei(LedgerAccounts::Balance))
                    .col(
                        ColumnDef::new(LedgerAccounts::Version)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .col(ts(LedgerAccounts::UpdatedAt))
                    .to_owned(),
            )
            .await?;
        // The system accounts exist from the start so a posting never has
        // to create one under contention.
        manager
            .exec_stmt(
                Query::insert()
                    .into_table(LedgerAccounts::Table)
                    .columns([
                        LedgerAccounts::Id,
                        LedgerAccounts::Balance,
                        LedgerAccounts::Version,
                        LedgerAccounts::UpdatedAt,
                    ])
                    .values_panic(system_account("supply"))
                    .values_panic(system_account("burned"))
                    .values_panic(system_account("payout"))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LedgerMovements::Table)
                    .col(uuid_pk(LedgerMovements::Id))
                    .col(text(LedgerMovements::Reference))
                    .col(text(LedgerMovements::Kind))
                    .col(ts(LedgerMovements::CreatedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_movements_reference_key")
                    .table(LedgerMovements::Table)
                    .col(LedgerMovements::Reference)
                    .unique()
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(LedgerEntries::Table)
                    .col(serial_pk(LedgerEntries::Id))
                    .col(uuid(LedgerEntries::MovementId))
                    .col(text(LedgerEntries::Account))
                    .col(ColumnDef::new(LedgerEntries::UserId).uuid().null())
                    .col(wei(LedgerEntries::Amount))
                    .col(ts(LedgerEntries::CreatedAt))
                    // A user account names its user; a system account names none.
                    .check(Check::named(
                        "ledger_entries_account_owner",
                        Expr::cust(
                            "(account IN ('user_available', 'user_reserved') AND user_id IS NOT NULL) \
                             OR (account IN ('supply', 'burned', 'payout') AND user_id IS NULL)",
                        ),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("ledger_entries_movement_id_fkey")
                            .from(LedgerEntries::Table, LedgerEntries::MovementId)
                            .to(LedgerMovements::Table, LedgerMovements::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("ledger_entries_user_id_fkey")
                            .from(LedgerEntries::Table, LedgerEntries::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(
            manager,
            "ledger_entries",
            "ledger_entries_amount_non_zero",
            "amount <> 0",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("ledger_entries_movement_id_idx")
                    .table(LedgerEntries::Table)
                    .col(LedgerEntries::MovementId)
                    .to_owned(),
            )
            .await?;
        // A user's statement: their entries, newest first.
        manager
            .create_index(
                Index::create()
                    .name("ledger_entries_user_id_id_idx")
                    .table(LedgerEntries::Table)
                    .col(LedgerEntries::UserId)
                    .col((LedgerEntries::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            LedgerEntries::Table.into_iden(),
            LedgerMovements::Table.into_iden(),
            LedgerAccounts::Table.into_iden(),
            UserBalances::Table.into_iden(),
            Users::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        if is_postgres(manager) {
            exec(
                manager,
                &format!("DROP SEQUENCE IF EXISTS {WALLET_DERIVATION_SEQUENCE}"),
            )
            .await?;
            exec(manager, &format!("DROP DOMAIN IF EXISTS {WEI_TYPE}")).await?;
        } else {
            exec(
                manager,
                &format!("DROP TABLE IF EXISTS {WALLET_DERIVATION_COUNTER_TABLE}"),
            )
            .await?;
        }
        Ok(())
    }
}

/// Values of a system account row at zero balance. The balance is cast to
/// the amount type exactly as the entities write it.
fn system_account(id: &str) -> [Expr; 4] {
    [
        Expr::val(id),
        Expr::val("0").cast_as(Alias::new(WEI_TYPE)),
        Expr::val(0i64),
        // Bound from Rust rather than CURRENT_TIMESTAMP so SQLite stores the
        // same text format the entities write.
        Expr::val(sea_orm_migration::sea_orm::prelude::ChronoUtc::now()),
    ]
}
