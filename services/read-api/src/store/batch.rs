//! Balance reads by user id, batched: the hot read of the API.
//!
//! Concurrent `GET /token/balance/{user_id}` requests are answered by one
//! statement per batch (`external_id = ANY(...)` on the unique index)
//! instead of one per request. A worker takes whatever requests are waiting
//! when it is free (up to [`MAX_BATCH`]) and never waits for more, so a lone
//! request costs what it did before, and under load the database sees one
//! round trip and one statement for a whole batch.
//!
//! Each worker keeps one pooled connection checked out for as long as it
//! works: the pool pings a connection on every checkout and every return, two
//! round trips that would cost as much as the statement itself. A connection
//! that fails is given back (the pool drops it if it is broken) and the next
//! batch checks out another, so a database restart heals by itself.
//!
//! PostgreSQL only: SQLite has one connection anyway, and no arrays.

use std::collections::HashMap;
use std::sync::Arc;

use haven_common::telemetry::ErrorChain;
use haven_entity::EntityError;
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::postgres::PgRow;
use sea_orm::sqlx::{self, AssertSqlSafe, PgPool, Postgres, Row as _};
use sea_orm::{DatabaseConnection, DbErr};
use tokio::sync::{Mutex, mpsc, oneshot};

use super::rows::{BalanceRow, parse_balance};

/// Most requests answered by one statement.
pub const MAX_BATCH: usize = 128;

/// The separator of the ids in the statement's one text parameter: a control
/// character, which no user id may contain (see `routes::extract`).
const SEPARATOR: char = '\u{1f}';

/// How many batching workers a pool of `pool` connections gets: a quarter
/// of it, 1 to 8. Fewer workers make bigger batches, and on the two-core
/// machine the database is no faster with more statements running at once
/// (measured with `read-bench`: `docs/benchmarks.md`); the rest of the pool
/// serves the other reads.
pub fn workers(pool: u32) -> usize {
    usize::try_from(pool / 4).unwrap_or(1).clamp(1, 8)
}

/// The batch statement: one text parameter holding the ids.
pub fn statement(balance_columns: &str) -> String {
    format!(
        "SELECT {balance_columns} FROM users u LEFT JOIN user_balances b ON b.user_id = u.id \
         WHERE u.external_id = ANY(string_to_array($1, chr(31)))"
    )
}

type Reply = oneshot::Sender<Result<Option<BalanceRow>, EntityError>>;

/// The front of the workers; cheap to clone.
#[derive(Debug, Clone)]
pub struct BalanceBatcher {
    jobs: mpsc::Sender<(String, Reply)>,
}

impl BalanceBatcher {
    /// Starts `workers` workers running `sql` on `db`'s PostgreSQL pool. They
    /// stop (and give their connections back) when the last clone of the
    /// batcher is dropped.
    pub fn start(db: &DatabaseConnection, sql: String, workers: usize) -> Self {
        let (jobs, queue) = mpsc::channel(MAX_BATCH * workers.max(1) * 4);
        let queue = Arc::new(Mutex::new(queue));
        let sql: Arc<str> = sql.into();
        for _ in 0..workers.max(1) {
            tokio::spawn(work(
                db.get_postgres_connection_pool().clone(),
                Arc::clone(&sql),
                Arc::clone(&queue),
            ));
        }
        Self { jobs }
    }

    /// The balance row of `user_id`, `None` for an unknown user.
    pub async fn get(&self, user_id: &str) -> Result<Option<BalanceRow>, EntityError> {
        let (reply, answer) = oneshot::channel();
        let gone = || EntityError::Db(DbErr::Custom("the balance workers stopped".into()));
        self.jobs
            .send((user_id.to_owned(), reply))
            .await
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

async fn work(pool: PgPool, sql: Arc<str>, queue: Arc<Mutex<mpsc::Receiver<(String, Reply)>>>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    let mut conn: Option<PoolConnection<Postgres>> = None;
    loop {
        {
            // One worker collects at a time; the others are busy or waiting here.
            let mut queue = queue.lock().await;
            if queue.recv_many(&mut batch, MAX_BATCH).await == 0 {
                return;
            }
        }
        let ids = batch
            .iter()
            .map(|(id, _)| id.as_str())
            .collect::<Vec<_>>()
            .join(&SEPARATOR.to_string());
        let rows = match read(&pool, &mut conn, &sql, ids).await {
            Ok(rows) => rows
                .iter()
                .map(|row| balance(row).map(|b| (b.user_id.clone(), b)))
                .collect::<Result<HashMap<_, _>, _>>(),
            Err(err) => {
                // Give the connection back; the pool drops it if it is broken.
                conn = None;
                Err(err)
            }
        };
        match rows {
            Ok(rows) => {
                for (id, reply) in batch.drain(..) {
                    // A waiter that went away (client disconnected) is fine.
                    let _ = reply.send(Ok(rows.get(&id).cloned()));
                }
            }
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), requests = batch.len(), "a batch of balance reads failed");
                for (_, reply) in batch.drain(..) {
                    let _ = reply.send(Err(EntityError::Db(DbErr::Custom(err.to_string()))));
                }
            }
        }
    }
}

/// Runs the statement on the worker's connection, checking one out first if needed.
async fn read(
    pool: &PgPool,
    conn: &mut Option<PoolConnection<Postgres>>,
    sql: &Arc<str>,
    ids: String,
) -> Result<Vec<PgRow>, EntityError> {
    let db = |err: sqlx::Error| EntityError::Db(DbErr::Custom(err.to_string()));
    let held = match conn {
        Some(held) => held,
        None => conn.insert(pool.acquire().await.map_err(db)?),
    };
    sqlx::query(AssertSqlSafe(Arc::clone(sql)))
        .bind(ids)
        .fetch_all(&mut **held)
        .await
        .map_err(db)
}

fn balance(row: &PgRow) -> Result<BalanceRow, EntityError> {
    let text = |column: &str| {
        row.try_get::<Option<String>, _>(column)
            .map_err(|err| EntityError::Corrupt(format!("column `{column}`: {err}")))
    };
    let required = |column: &str| {
        text(column)?.ok_or_else(|| EntityError::Corrupt(format!("column `{column}` is null")))
    };
    parse_balance(
        required("user_id")?,
        required("wallet_address")?,
        text("available")?,
        text("reserved")?,
        text("pending")?,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarter_of_the_pool_works_in_batches() {
        assert_eq!(workers(1), 1);
        assert_eq!(workers(10), 2);
        assert_eq!(workers(16), 4);
        assert_eq!(workers(1000), 8);
    }
}
