//! `job_runs`: the periodic jobs that must run once per system
//! (reconciliation, the sweeps), whichever replica runs them.
//!
//! One row per job. A replica runs the job for a period only when its
//! conditional upsert wins the row (`next_due_at` passed, no unexpired
//! `running_until`), so two replicas never run the same period; the last
//! result is stored here, so every replica reports the same one.

use sea_orm_migration::prelude::*;

use crate::schema::{text, text_null, ts, ts_null};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

#[derive(DeriveIden)]
enum JobRuns {
    Table,
    Name,
    Holder,
    RunningUntil,
    NextDueAt,
    LastStartedAt,
    LastFinishedAt,
    LastOk,
    LastResult,
    LastHolder,
    Runs,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(JobRuns::Table)
                    .col(text(JobRuns::Name).primary_key())
                    // Who runs it now (or ran it last).
                    .col(text(JobRuns::Holder))
                    // Set while a run is in progress; renewed while it lasts.
                    .col(ts_null(JobRuns::RunningUntil))
                    .col(ts(JobRuns::NextDueAt))
                    .col(ts(JobRuns::LastStartedAt))
                    .col(ts_null(JobRuns::LastFinishedAt))
                    .col(ColumnDef::new(JobRuns::LastOk).boolean().null())
                    // The job's JSON report, verbatim.
                    .col(text_null(JobRuns::LastResult))
                    .col(text_null(JobRuns::LastHolder))
                    .col(
                        ColumnDef::new(JobRuns::Runs)
                            .big_integer()
                            .not_null()
                            .default(0),
                    )
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(JobRuns::Table).to_owned())
            .await
    }
}
