//! Rows that are written together: each one only when the row before it
//! was (its `ON CONFLICT DO NOTHING` found no clash), as a reward, its mint
//! and the mint's outbox message are.
//!
//! On PostgreSQL the whole chain is ONE statement: every row is a
//! data-modifying CTE whose `INSERT ... SELECT` reads the one before it, so
//! a row is inserted exactly when its predecessor's insert returned a row.
//! Elsewhere (SQLite) it is one statement per row, stopping at the first
//! that writes nothing. Either way the caller's transaction holds all of
//! it, and [`insert`] says how many of the rows were written (a prefix).

use sea_orm::sea_query::{
    Alias, CommonTableExpression, Expr, InsertStatement, OnConflict, Query, WithClause,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue, ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend,
    EntityName, EntityTrait, IdenStatic, Iterable, Statement,
};

use haven_common::db::begin_write;

use crate::EntityError;

/// One row of a chain: its table, columns and values (with each column's
/// write-side cast) and the `ON CONFLICT ... DO NOTHING` under which a
/// clash makes it (and every row after it) write nothing. Without one, a
/// clash is an error.
#[derive(Debug, Clone)]
pub struct LinkedRow {
    table: String,
    columns: Vec<String>,
    values: Vec<Expr>,
    on_conflict: Option<OnConflict>,
}

impl LinkedRow {
    /// The row `model` holds (its set columns), skipped on a clash
    /// `on_conflict` names (a `DO NOTHING`).
    pub fn new<A: ActiveModelTrait>(model: &A, on_conflict: Option<OnConflict>) -> Self {
        let mut columns = Vec::new();
        let mut values = Vec::new();
        for column in <A::Entity as EntityTrait>::Column::iter() {
            if let ActiveValue::Set(value) | ActiveValue::Unchanged(value) = model.get(column) {
                columns.push(column.as_str().to_owned());
                values.push(column.save_as(Expr::val(value)));
            }
        }
        Self {
            table: A::Entity::default().table_name().to_owned(),
            columns,
            values,
            on_conflict,
        }
    }

    /// The insert of this row: its values, or (`after`) the same values
    /// selected from the CTE of the row before it, once per row it returned.
    fn statement(&self, after: Option<&str>) -> Result<InsertStatement, EntityError> {
        let mut insert = Query::insert();
        insert
            .into_table(Alias::new(self.table.as_str()))
            .columns(self.columns.iter().map(|c| Alias::new(c.as_str())));
        let built = match after {
            None => insert.values(self.values.iter().cloned()).map(|_| ()),
            Some(previous) => insert
                .select_from(
                    Query::select()
                        .exprs(self.values.iter().cloned())
                        .from(Alias::new(previous))
                        .take(),
                )
                .map(|_| ()),
        };
        built.map_err(|err| EntityError::Corrupt(format!("row of {}: {err}", self.table)))?;
        if let Some(on_conflict) = &self.on_conflict {
            insert.on_conflict(on_conflict.clone());
        }
        Ok(insert)
    }
}

/// [`insert`] committed on its own: the one statement on PostgreSQL, a
/// transaction of one statement per row elsewhere. What was written (a
/// prefix of `rows`) is committed, so every prefix must be a state of its
/// own; a row that must not be left without the ones after it has those
/// as plain inserts (no `on_conflict`), whose clash fails the whole.
pub async fn insert_committed(
    db: &DatabaseConnection,
    rows: &[LinkedRow],
) -> Result<usize, EntityError> {
    if db.get_database_backend() == DbBackend::Postgres {
        return insert(db, rows).await;
    }
    let txn = begin_write(db).await?;
    let written = insert(&txn, rows).await?;
    txn.commit().await?;
    Ok(written)
}

/// Writes `rows` in order, each only if the one before it was written;
/// returns how many were (`rows.len()` when all were, 0 when the first
/// clashed). Run it inside the transaction the rows belong to.
pub async fn insert<C: ConnectionTrait>(db: &C, rows: &[LinkedRow]) -> Result<usize, EntityError> {
    let backend = db.get_database_backend();
    if rows.is_empty() {
        return Ok(0);
    }
    if backend != DbBackend::Postgres {
        for (written, row) in rows.iter().enumerate() {
            let done = db.execute(&row.statement(None)?).await?;
            if done.rows_affected() != 1 {
                return Ok(written);
            }
        }
        return Ok(rows.len());
    }
    let name = |i: usize| format!("linked_{i}");
    let mut with = WithClause::new();
    for (i, row) in rows.iter().enumerate() {
        let previous = i.checked_sub(1).map(name);
        let mut insert = row.statement(previous.as_deref())?;
        insert.returning(Query::returning().expr(Expr::val(1)));
        let mut cte = CommonTableExpression::new();
        cte.query(insert).table_name(Alias::new(name(i)));
        with.cte(cte);
    }
    // Data-modifying CTEs run whether or not the query reads them; the
    // count of each says how far the chain got.
    let written = (0..rows.len())
        .map(|i| format!("(SELECT count(*) FROM {})", name(i)))
        .collect::<Vec<_>>()
        .join(" + ");
    let query = Query::select()
        .expr_as(Expr::cust(written), Alias::new("written"))
        .take()
        .with(with);
    let (sql, values) = query.build(sea_orm::sea_query::PostgresQueryBuilder);
    let row = db
        .query_one_raw(Statement::from_sql_and_values(backend, sql, values))
        .await?
        .ok_or_else(|| EntityError::Corrupt("the linked insert returned no row".into()))?;
    let written: i64 = row.try_get("", "written")?;
    usize::try_from(written)
        .map_err(|_| EntityError::Corrupt(format!("linked insert wrote {written} rows")))
}
