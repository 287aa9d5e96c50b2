//! Answers to "what happened to X?".
//!
//! Who asked for a token command: the name of the operator's API key
//! (`name:key` in `API_KEYS`), on the redemption and on every token
//! transaction a command leads to (an operator's mint; a redemption's burn
//! and refund). Nullable: the services' own transactions (a reward's mint, a
//! reversal's burn) have no operator, and rows older than this column have
//! no record of one.
//!
//! When the request a token transaction carries out was accepted from
//! outside (`accepted_at`: the partner's webhook of a reward's mint, the
//! operator's command), so mint latency is measured from what guests feel
//! (`haven_mint_since_acceptance_seconds`). Nullable for the same reasons.
//!
//! Every state a redemption entered, with when (`redemption_states`). Its
//! row keeps only the current state, and `updated_at` moves while a step
//! waits (a payout being polled), so the history cannot be derived from it.
//! A trigger writes the history, in the statement that changes the state:
//! atomic with it whatever the caller (a service, `havenctl`, an operator's
//! SQL), and never forgotten by a new code path. Existing redemptions get
//! their creation and their current state.

use sea_orm_migration::prelude::*;

use crate::schema::{exec, is_postgres, serial_pk, text, ts, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TokenTransactions {
    Table,
    RequestedBy,
    AcceptedAt,
}

#[derive(DeriveIden)]
enum Redemptions {
    Table,
    RequestId,
    RequestedBy,
}

#[derive(DeriveIden)]
enum RedemptionStates {
    Table,
    Id,
    RequestId,
    State,
    EnteredAt,
}

const HISTORY_INDEX: &str = "redemption_states_request_id_idx";

/// PostgreSQL: one function for both events; `IS DISTINCT FROM` so an
/// update that leaves the state as it was (a touch) writes nothing.
const PG_TRIGGER: [&str; 2] = [
    r#"CREATE OR REPLACE FUNCTION redemption_state_entered() RETURNS trigger AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.state IS DISTINCT FROM OLD.state THEN
        INSERT INTO redemption_states (request_id, state, entered_at)
        VALUES (NEW.request_id, NEW.state, NEW.updated_at);
    END IF;
    RETURN NULL;
END
$$ LANGUAGE plpgsql"#,
    r#"CREATE TRIGGER redemptions_state_history
    AFTER INSERT OR UPDATE OF state ON redemptions
    FOR EACH ROW EXECUTE FUNCTION redemption_state_entered()"#,
];

/// SQLite: one trigger per event.
const SQLITE_TRIGGER: [&str; 2] = [
    r#"CREATE TRIGGER redemptions_state_inserted AFTER INSERT ON redemptions
BEGIN
    INSERT INTO redemption_states (request_id, state, entered_at)
    VALUES (NEW.request_id, NEW.state, NEW.updated_at);
END"#,
    r#"CREATE TRIGGER redemptions_state_updated AFTER UPDATE OF state ON redemptions
WHEN NEW.state IS NOT OLD.state
BEGIN
    INSERT INTO redemption_states (request_id, state, entered_at)
    VALUES (NEW.request_id, NEW.state, NEW.updated_at);
END"#,
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // One column per statement: SQLite alters one thing at a time.
        manager
            .alter_table(
                Table::alter()
                    .table(TokenTransactions::Table)
                    .add_column(ColumnDef::new(TokenTransactions::RequestedBy).text().null())
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(TokenTransactions::Table)
                    .add_column(
                        ColumnDef::new(TokenTransactions::AcceptedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .add_column(ColumnDef::new(Redemptions::RequestedBy).text().null())
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RedemptionStates::Table)
                    .if_not_exists()
                    .col(serial_pk(RedemptionStates::Id))
                    .col(uuid(RedemptionStates::RequestId))
                    .col(text(RedemptionStates::State))
                    .col(ts(RedemptionStates::EnteredAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("redemption_states_request_id_fkey")
                            .from(RedemptionStates::Table, RedemptionStates::RequestId)
                            .to(Redemptions::Table, Redemptions::RequestId),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name(HISTORY_INDEX)
                    .table(RedemptionStates::Table)
                    .col(RedemptionStates::RequestId)
                    .col(RedemptionStates::Id)
                    .if_not_exists()
                    .to_owned(),
            )
            .await?;
        // What is known of the redemptions recorded before: when each was
        // reserved, and the state it is in since its last change.
        exec(
            manager,
            "INSERT INTO redemption_states (request_id, state, entered_at) \
             SELECT request_id, 'reserved', created_at FROM redemptions",
        )
        .await?;
        exec(
            manager,
            "INSERT INTO redemption_states (request_id, state, entered_at) \
             SELECT request_id, state, updated_at FROM redemptions WHERE state <> 'reserved'",
        )
        .await?;
        let trigger = if is_postgres(manager) {
            PG_TRIGGER
        } else {
            SQLITE_TRIGGER
        };
        for statement in trigger {
            exec(manager, statement).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if is_postgres(manager) {
            exec(
                manager,
                "DROP TRIGGER IF EXISTS redemptions_state_history ON redemptions",
            )
            .await?;
            exec(
                manager,
                "DROP FUNCTION IF EXISTS redemption_state_entered()",
            )
            .await?;
        } else {
            exec(manager, "DROP TRIGGER IF EXISTS redemptions_state_inserted").await?;
            exec(manager, "DROP TRIGGER IF EXISTS redemptions_state_updated").await?;
        }
        manager
            .drop_table(Table::drop().table(RedemptionStates::Table).to_owned())
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Redemptions::Table)
                    .drop_column(Redemptions::RequestedBy)
                    .to_owned(),
            )
            .await?;
        for column in [
            TokenTransactions::AcceptedAt,
            TokenTransactions::RequestedBy,
        ] {
            manager
                .alter_table(
                    Table::alter()
                        .table(TokenTransactions::Table)
                        .drop_column(column)
                        .to_owned(),
                )
                .await?;
        }
        Ok(())
    }
}
