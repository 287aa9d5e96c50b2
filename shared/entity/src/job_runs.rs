//! `job_runs`: the periodic jobs that run once per system, and their last
//! result; [`DbJobStore`] is `haven_common::jobs`'s storage over it.
//!
//! Every statement works on PostgreSQL and SQLite (both support
//! `ON CONFLICT ... DO UPDATE ... WHERE`), and each method is one
//! statement, so two replicas racing on a job see one winner.

use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt as _;
use futures::future::BoxFuture;
use haven_common::jobs::{JobRun, JobStore, JobStoreError, Outcome};
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ActiveValue::Set, Condition, DatabaseConnection, QueryFilter};

/// One periodic job.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "job_runs")]
pub struct Model {
    /// The job's name (a constant of the service that runs it).
    #[sea_orm(primary_key, auto_increment = false)]
    pub name: String,
    /// The replica running it now, or that ran it last.
    pub holder: String,
    /// Set while a run is in progress: until when it holds the job.
    pub running_until: Option<DateTimeUtc>,
    /// The end of the period last claimed: the next claim waits for it.
    pub next_due_at: DateTimeUtc,
    /// When the last run started.
    pub last_started_at: DateTimeUtc,
    /// When the last run finished (`None` before the first finishes).
    pub last_finished_at: Option<DateTimeUtc>,
    /// Whether the last finished run succeeded.
    pub last_ok: Option<bool>,
    /// The last finished run's JSON report, verbatim.
    pub last_result: Option<String>,
    /// The replica that finished the last run.
    pub last_holder: Option<String>,
    /// Runs finished so far, every replica counted.
    pub runs: i64,
}

/// No relations.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// `haven_common::jobs`'s storage in `job_runs`.
#[derive(Debug, Clone)]
pub struct DbJobStore {
    db: DatabaseConnection,
}

impl DbJobStore {
    /// The store over `db` (migrated).
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }
}

fn store_err(err: DbErr) -> JobStoreError {
    JobStoreError(Box::new(err))
}

fn later(now: DateTime<Utc>, by: Duration) -> DateTime<Utc> {
    now + chrono::Duration::from_std(by).unwrap_or(chrono::TimeDelta::MAX)
}

impl JobStore for DbJobStore {
    /// A conditional upsert: inserts the job's row, or takes it only when
    /// its period is over and no unexpired run holds it.
    fn claim<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        now: DateTime<Utc>,
        next_due: DateTime<Utc>,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, JobStoreError>> {
        async move {
            let row = ActiveModel {
                name: Set(job.to_owned()),
                holder: Set(holder.to_owned()),
                running_until: Set(Some(later(now, lease))),
                next_due_at: Set(next_due),
                last_started_at: Set(now),
                last_finished_at: Set(None),
                last_ok: Set(None),
                last_result: Set(None),
                last_holder: Set(None),
                runs: Set(0),
            };
            let taken = Entity::insert(row)
                .on_conflict(
                    OnConflict::column(Column::Name)
                        .update_columns([
                            Column::Holder,
                            Column::RunningUntil,
                            Column::NextDueAt,
                            Column::LastStartedAt,
                        ])
                        .action_and_where(
                            Expr::col((Entity, Column::NextDueAt)).lte(now).and(
                                Expr::col((Entity, Column::RunningUntil))
                                    .is_null()
                                    .or(Expr::col((Entity, Column::RunningUntil)).lte(now)),
                            ),
                        )
                        .to_owned(),
                )
                .exec_without_returning(&self.db)
                .await
                .map_err(store_err)?;
            Ok(taken == 1)
        }
        .boxed()
    }

    fn renew<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        lease: Duration,
    ) -> BoxFuture<'a, Result<bool, JobStoreError>> {
        async move {
            let res = Entity::update_many()
                .col_expr(Column::RunningUntil, Expr::value(later(Utc::now(), lease)))
                .filter(Column::Name.eq(job))
                .filter(Column::Holder.eq(holder))
                .filter(Column::RunningUntil.is_not_null())
                .exec(&self.db)
                .await
                .map_err(store_err)?;
            Ok(res.rows_affected == 1)
        }
        .boxed()
    }

    /// Records the outcome (a failed run keeps the last report); a run
    /// whose lease another replica took over meanwhile still records what
    /// it found (it did run), but frees the job only if it still holds it.
    fn finish<'a>(
        &'a self,
        job: &'a str,
        holder: &'a str,
        outcome: &'a Outcome,
    ) -> BoxFuture<'a, Result<(), JobStoreError>> {
        async move {
            let now = Utc::now();
            let running_until = Expr::case(
                Condition::all().add(Column::Holder.eq(holder)),
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .finally(Expr::col(Column::RunningUntil));
            let mut update = Entity::update_many()
                .col_expr(Column::RunningUntil, running_until.into())
                .col_expr(Column::LastFinishedAt, Expr::value(now))
                .col_expr(Column::LastOk, Expr::value(outcome.ok))
                .col_expr(Column::LastHolder, Expr::value(holder))
                .col_expr(Column::Runs, Expr::col(Column::Runs).add(1));
            // A run without a report (a failure) keeps the last one.
            if let Some(result) = &outcome.result {
                update = update.col_expr(Column::LastResult, Expr::value(result.clone()));
            }
            update
                .filter(Column::Name.eq(job))
                .exec(&self.db)
                .await
                .map_err(store_err)?;
            Ok(())
        }
        .boxed()
    }

    fn last<'a>(&'a self, job: &'a str) -> BoxFuture<'a, Result<Option<JobRun>, JobStoreError>> {
        async move {
            let row = Entity::find_by_id(job.to_owned())
                .one(&self.db)
                .await
                .map_err(store_err)?;
            Ok(row.and_then(|row| {
                Some(JobRun {
                    holder: row.last_holder?,
                    finished_at: row.last_finished_at?,
                    ok: row.last_ok?,
                    result: row.last_result,
                    runs: u64::try_from(row.runs).unwrap_or(0),
                })
            }))
        }
        .boxed()
    }
}
