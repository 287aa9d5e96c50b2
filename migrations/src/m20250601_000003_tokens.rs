//! Token transactions (mints and burns), rewards and redemptions.

use sea_orm_migration::prelude::*;

use crate::m20250601_000001_users_and_ledger::Users;
use crate::schema::{pg_check, text, text_null, ts, ts_null, uuid, uuid_pk, wei};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum TokenTransactions {
    Table,
    Id,
    TxId,
    ChainReference,
    UserId,
    TxType,
    Amount,
    Reason,
    Status,
    TxHash,
    BlockNumber,
    LastError,
    CreatedAt,
    UpdatedAt,
    SubmittedAt,
    ConfirmedAt,
}

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
enum Redemptions {
    Table,
    RequestId,
    UserId,
    IdempotencyKey,
    Amount,
    BurnAmount,
    PayoutAmount,
    Method,
    Address,
    State,
    BurnTxId,
    PayoutReference,
    FailureReason,
    CreatedAt,
    UpdatedAt,
    CompletedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TokenTransactions::Table)
                    .col(uuid_pk(TokenTransactions::Id))
                    .col(text(TokenTransactions::TxId))
                    // The 32-byte reference the contract refuses to see twice:
                    // what makes a retried mint or burn harmless on chain.
                    .col(
                        ColumnDef::new(TokenTransactions::ChainReference)
                            .blob()
                            .not_null(),
                    )
                    .col(uuid(TokenTransactions::UserId))
                    .col(text(TokenTransactions::TxType))
                    .col(wei(TokenTransactions::Amount))
                    .col(text(TokenTransactions::Reason))
                    .col(text(TokenTransactions::Status))
                    .col(text_null(TokenTransactions::TxHash))
                    .col(
                        ColumnDef::new(TokenTransactions::BlockNumber)
                            .big_integer()
                            .null(),
                    )
                    .col(text_null(TokenTransactions::LastError))
                    .col(ts(TokenTransactions::CreatedAt))
                    .col(ts(TokenTransactions::UpdatedAt))
                    .col(ts_null(TokenTransactions::SubmittedAt))
                    .col(ts_null(TokenTransactions::ConfirmedAt))
                    .check(Check::named(
                        "token_transactions_chain_reference_len",
                        Expr::cust("length(chain_reference) = 32"),
                    ))
                    .check(Check::named(
                        "token_transactions_tx_type",
                        Expr::cust("tx_type IN ('mint', 'burn')"),
                    ))
                    .check(Check::named(
                        "token_transactions_status",
                        Expr::cust(
                            "status IN ('pending', 'submitted', 'confirmed', 'failed', 'cancelled')",
                        ),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("token_transactions_user_id_fkey")
                            .from(TokenTransactions::Table, TokenTransactions::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(
            manager,
            "token_transactions",
            "token_transactions_amount_positive",
            "amount > 0",
        )
        .await?;
        for (name, col) in [
            ("token_transactions_tx_id_key", TokenTransactions::TxId),
            (
                "token_transactions_chain_reference_key",
                TokenTransactions::ChainReference,
            ),
        ] {
            manager
                .create_index(
                    Index::create()
                        .name(name)
                        .table(TokenTransactions::Table)
                        .col(col)
                        .unique()
                        .to_owned(),
                )
                .await?;
        }
        // GET /analytics/transactions/{user}: newest first.
        manager
            .create_index(
                Index::create()
                    .name("token_transactions_user_id_created_at_idx")
                    .table(TokenTransactions::Table)
                    .col(TokenTransactions::UserId)
                    .col((TokenTransactions::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Workers sweeping pending/submitted transactions, oldest first.
        manager
            .create_index(
                Index::create()
                    .name("token_transactions_status_created_at_idx")
                    .table(TokenTransactions::Table)
                    .col(TokenTransactions::Status)
                    .col(TokenTransactions::CreatedAt)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Rewards::Table)
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
                        Expr::cust("status IN ('pending', 'minted', 'cancelled', 'reversed')"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("rewards_user_id_fkey")
                            .from(Rewards::Table, Rewards::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("rewards_token_tx_id_fkey")
                            .from(Rewards::Table, Rewards::TokenTxId)
                            .to(TokenTransactions::Table, TokenTransactions::TxId),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(manager, "rewards", "rewards_amount_positive", "amount > 0").await?;
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
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Redemptions::Table)
                    .col(uuid_pk(Redemptions::RequestId))
                    .col(uuid(Redemptions::UserId))
                    .col(text(Redemptions::IdempotencyKey))
                    .col(wei(Redemptions::Amount))
                    .col(wei(Redemptions::BurnAmount))
                    .col(wei(Redemptions::PayoutAmount))
                    .col(text(Redemptions::Method))
                    .col(text_null(Redemptions::Address))
                    .col(text(Redemptions::State))
                    .col(text_null(Redemptions::BurnTxId))
                    .col(text_null(Redemptions::PayoutReference))
                    .col(text_null(Redemptions::FailureReason))
                    .col(ts(Redemptions::CreatedAt))
                    .col(ts(Redemptions::UpdatedAt))
                    .col(ts_null(Redemptions::CompletedAt))
                    .check(Check::named(
                        "redemptions_method",
                        Expr::cust("method IN ('bank_transfer', 'paypal', 'crypto')"),
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("redemptions_user_id_fkey")
                            .from(Redemptions::Table, Redemptions::UserId)
                            .to(Users::Table, Users::Id),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("redemptions_burn_tx_id_fkey")
                            .from(Redemptions::Table, Redemptions::BurnTxId)
                            .to(TokenTransactions::Table, TokenTransactions::TxId),
                    )
                    .to_owned(),
            )
            .await?;
        pg_check(
            manager,
            "redemptions",
            "redemptions_amounts_positive",
            "amount > 0 AND burn_amount > 0 AND payout_amount > 0",
        )
        .await?;
        manager
            .create_index(
                Index::create()
                    .name("redemptions_idempotency_key_key")
                    .table(Redemptions::Table)
                    .col(Redemptions::IdempotencyKey)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("redemptions_user_id_created_at_idx")
                    .table(Redemptions::Table)
                    .col(Redemptions::UserId)
                    .col((Redemptions::CreatedAt, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Recovery sweeps pick up redemptions stuck in a state.
        manager
            .create_index(
                Index::create()
                    .name("redemptions_state_updated_at_idx")
                    .table(Redemptions::Table)
                    .col(Redemptions::State)
                    .col(Redemptions::UpdatedAt)
                    .to_owned(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            Redemptions::Table.into_iden(),
            Rewards::Table.into_iden(),
            TokenTransactions::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
