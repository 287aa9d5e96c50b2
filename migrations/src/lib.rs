//! The HAVEN database schema, for PostgreSQL and SQLite.
//!
//! The same migrations run on both backends. Where the backends differ (the
//! amount domain, the wallet derivation sequence, a few CHECK constraints)
//! the migration branches on [`SchemaManager::get_database_backend`] and
//! says why. Migrations never depend on `haven-entity`: the schema is the
//! contract, the entities follow it.
//!
//! # Amounts
//! Every token amount is an integer number of wei (1 HNV = 10^18 wei) stored
//! in a column of type `wei_text`:
//! - on PostgreSQL `wei_text` is a DOMAIN over `NUMERIC(78,0)` (78 digits hold
//!   any uint256), so the database itself rejects fractions and non-numbers;
//! - on SQLite `wei_text` is just a declared type name. SQLite derives a
//!   column's affinity from the name, and a name containing `TEXT` (and not
//!   `INT`) gives TEXT affinity, so the decimal string is stored verbatim.
//!
//! The entities read the column as `CAST(col AS text)` and write it as
//! `CAST($1 AS wei_text)` with the value bound as a decimal string. That one
//! cast name is valid on both backends and exact on both: SQLite never turns
//! the value into a REAL (which is what binding a Decimal would do), and
//! Postgres parses the string straight into NUMERIC. Arithmetic on amounts is
//! never done in SQL (SQLite would do it in floating point); it happens in
//! Rust inside the transaction.

#![warn(missing_docs)]

use sea_orm_migration::prelude::*;

mod m20250601_000001_users_and_ledger;
mod m20250601_000002_messaging;
mod m20250601_000003_tokens;
mod m20250601_000004_signers;
mod m20251125_000005_chain_deployments;
mod m20251126_000006_rewards;
mod m20261126_000007_lookup_indexes;
mod m20261203_000008_delivery_ids;
mod m20261207_000009_payout_terms;
mod m20261207_000010_kyc_decisions;
mod m20261207_000011_clawbacks;
mod m20261207_000012_finality;
mod m20261208_000013_outbox_trace_headers;
mod m20261208_000014_requested_by;
mod m20261208_000015_job_runs;
mod m20261209_000016_reward_mint_deferred;
mod schema;

pub use schema::{WALLET_DERIVATION_COUNTER_TABLE, WALLET_DERIVATION_SEQUENCE, WEI_TYPE};
/// Re-exported so callers can run [`Migrator`] without their own
/// sea-orm-migration dependency.
pub use sea_orm_migration::MigratorTrait;

/// Every HAVEN migration, oldest first.
#[derive(Debug)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20250601_000001_users_and_ledger::Migration),
            Box::new(m20250601_000002_messaging::Migration),
            Box::new(m20250601_000003_tokens::Migration),
            Box::new(m20250601_000004_signers::Migration),
            Box::new(m20251125_000005_chain_deployments::Migration),
            Box::new(m20251126_000006_rewards::Migration),
            Box::new(m20261126_000007_lookup_indexes::Migration),
            Box::new(m20261203_000008_delivery_ids::Migration),
            Box::new(m20261207_000009_payout_terms::Migration),
            Box::new(m20261207_000010_kyc_decisions::Migration),
            Box::new(m20261207_000011_clawbacks::Migration),
            Box::new(m20261207_000012_finality::Migration),
            Box::new(m20261208_000013_outbox_trace_headers::Migration),
            Box::new(m20261208_000014_requested_by::Migration),
            Box::new(m20261208_000015_job_runs::Migration),
            Box::new(m20261209_000016_reward_mint_deferred::Migration),
        ]
    }
}
