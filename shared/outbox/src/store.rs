//! The queries the relay needs beyond those in `haven_entity::outbox`.

use chrono::{DateTime, Utc};
use haven_entity::outbox::{Column, Entity, Model};
use sea_orm::sea_query::{Expr, LockBehavior, LockType};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder, QuerySelect,
};

use crate::OutboxError;

/// Ids per `UPDATE ... WHERE id IN (...)`: far below PostgreSQL's 65,535
/// bind parameters and SQLite's 32,766, whatever batch size is configured.
const IDS_PER_UPDATE: usize = 1_000;

/// Unpublished rows (served by the partial index `outbox_unpublished_idx`).
pub(crate) async fn pending_count<C: ConnectionTrait>(db: &C) -> Result<u64, OutboxError> {
    Ok(Entity::find()
        .filter(Column::PublishedAt.is_null())
        .count(db)
        .await?)
}

/// When the oldest unpublished row was written, if any (the partial index
/// `outbox_unpublished_idx` again: ids grow with time).
pub(crate) async fn oldest_pending<C: ConnectionTrait>(
    db: &C,
) -> Result<Option<DateTime<Utc>>, OutboxError> {
    Ok(Entity::find()
        .filter(Column::PublishedAt.is_null())
        .order_by_asc(Column::Id)
        .one(db)
        .await?
        .map(|row| row.created_at))
}

/// The oldest unpublished rows, at most `limit`, locked `FOR UPDATE SKIP
/// LOCKED`: inside a transaction on PostgreSQL, a row another relay holds is
/// skipped instead of published twice. SQLite has no row locks (one writer)
/// and sea-query renders no lock clause for it, so the same query is a
/// plain select there.
pub(crate) async fn take_batch<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<Model>, OutboxError> {
    Ok(Entity::find()
        .filter(Column::PublishedAt.is_null())
        .order_by_asc(Column::Id)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .all(db)
        .await?)
}

/// Marks `ids` published now.
pub(crate) async fn mark_published<C: ConnectionTrait>(
    db: &C,
    ids: &[i64],
) -> Result<(), OutboxError> {
    let now = Utc::now();
    for chunk in ids.chunks(IDS_PER_UPDATE) {
        Entity::update_many()
            .col_expr(Column::PublishedAt, Expr::value(now))
            .filter(Column::Id.is_in(chunk.iter().copied()))
            .exec(db)
            .await?;
    }
    Ok(())
}

/// Deletes published rows whose confirm is older than `older_than`; returns
/// how many. Unpublished rows are never deleted, however old.
pub async fn purge_published<C: ConnectionTrait>(
    db: &C,
    older_than: DateTime<Utc>,
) -> Result<u64, OutboxError> {
    let deleted = Entity::delete_many()
        .filter(Column::PublishedAt.is_not_null())
        .filter(Column::PublishedAt.lt(older_than))
        .exec(db)
        .await?;
    Ok(deleted.rows_affected)
}
