//! A reward names its mint from the moment it is inserted.
//!
//! reward-calculator derives a reward's mint `tx_id` from the reward's id
//! (`reward_<id>`), inserts the reward (the insert is the duplicate check),
//! and inserts the mint after the budget and the user's debt have decided
//! its amount. With `rewards_token_tx_id_fkey` checked at once, the reward
//! could not name a mint not inserted yet, so every grant paid an extra
//! `UPDATE rewards SET token_tx_id` after the mint. Checked at commit
//! instead, the reward is inserted already pointing at its mint; a grant
//! that ends without one (held, or withheld whole to settle debt) clears
//! the pointer in the status change it makes anyway. The guarantee is the
//! same: no transaction commits a reward naming a mint that does not exist.

use sea_orm_migration::prelude::*;

use crate::schema::{exec, is_postgres};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// When `rewards_token_tx_id_fkey` is checked.
#[derive(Clone, Copy)]
enum MintCheck {
    /// At commit (after this migration).
    AtCommit,
    /// At the end of each statement (before it).
    PerStatement,
}

impl MintCheck {
    /// The constraint's timing on PostgreSQL.
    fn pg(self) -> &'static str {
        match self {
            Self::AtCommit => "DEFERRABLE INITIALLY DEFERRED",
            Self::PerStatement => "NOT DEFERRABLE",
        }
    }

    /// What ends SQLite's foreign key clause (nothing is its default: per
    /// statement).
    fn sqlite(self) -> &'static str {
        match self {
            Self::AtCommit => " DEFERRABLE INITIALLY DEFERRED",
            Self::PerStatement => "",
        }
    }
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_mint_check(manager, MintCheck::AtCommit).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        set_mint_check(manager, MintCheck::PerStatement).await
    }
}

/// Makes `rewards_token_tx_id_fkey` checked when `check` says.
///
/// PostgreSQL alters the named constraint in place. SQLite cannot alter a
/// constraint (and its connections enforce foreign keys), so the table is
/// rebuilt as m20251126_000006_rewards rebuilt it: create the new shape,
/// copy, drop, rename, re-index. Nothing references `rewards`, so dropping
/// it touches no other table.
async fn set_mint_check(manager: &SchemaManager<'_>, check: MintCheck) -> Result<(), DbErr> {
    if is_postgres(manager) {
        return exec(
            manager,
            &format!(
                r#"ALTER TABLE "rewards" ALTER CONSTRAINT "rewards_token_tx_id_fkey" {}"#,
                check.pg()
            ),
        )
        .await;
    }
    exec(manager, &sqlite_rewards_table("rewards_rebuilt", check)).await?;
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
    // The indexes of m20250601_000003_tokens, m20251126_000006_rewards and
    // m20261126_000007_lookup_indexes, dropped with the old table.
    for index in [
        r#"CREATE UNIQUE INDEX "rewards_source_reference_key" ON "rewards" ("source_reference")"#,
        r#"CREATE INDEX "rewards_user_id_created_at_idx" ON "rewards" ("user_id", "created_at" DESC)"#,
        r#"CREATE INDEX "rewards_status_created_at_idx" ON "rewards" ("status", "created_at")"#,
        r#"CREATE INDEX "rewards_token_tx_id_idx" ON "rewards" ("token_tx_id")"#,
    ] {
        exec(manager, index).await?;
    }
    Ok(())
}

/// The SQLite `rewards` table as m20251126_000006_rewards left it, under
/// `name`, its mint's foreign key checked when `check` says. Written out
/// because sea-query cannot declare a deferrable foreign key; the declared
/// types are the ones sea-query gave the columns (they set SQLite's column
/// affinities, which must not change).
fn sqlite_rewards_table(name: &str, check: MintCheck) -> String {
    let timing = check.sqlite();
    format!(
        r#"CREATE TABLE "{name}" (
            "id" uuid_text NOT NULL PRIMARY KEY,
            "source_reference" text NOT NULL,
            "user_id" uuid_text NOT NULL,
            "rule" text NOT NULL,
            "rule_version" integer NOT NULL,
            "amount" wei_text NOT NULL,
            "status" text NOT NULL,
            "token_tx_id" text NULL,
            "created_at" timestamp_with_timezone_text NOT NULL,
            "updated_at" timestamp_with_timezone_text NOT NULL,
            FOREIGN KEY ("user_id") REFERENCES "users" ("id"),
            FOREIGN KEY ("token_tx_id") REFERENCES "token_transactions" ("tx_id"){timing},
            CONSTRAINT "rewards_status" CHECK (status IN ('pending', 'minted', 'cancelled', 'reversed', 'held'))
        )"#
    )
}
