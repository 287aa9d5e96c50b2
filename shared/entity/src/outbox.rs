//! `outbox`: messages written in the same transaction as the state change
//! that caused them, published to the broker afterwards.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::{Expr, ExprTrait};
use sea_orm::{ActiveValue::Set, QueryOrder, QuerySelect};

use crate::error::EntityError;
use crate::linked::LinkedRow;

/// A message waiting to be (or already) published.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "outbox")]
pub struct Model {
    /// Insertion order, which is publication order.
    #[sea_orm(primary_key)]
    pub id: i64,
    /// The envelope's message id (unique: consumers dedupe on it).
    pub message_id: Uuid,
    /// Exchange to publish to.
    pub exchange: String,
    /// Binds it to the consuming queue (see `haven_messages::names`).
    pub routing_key: String,
    /// The serialized envelope.
    pub payload: Vec<u8>,
    /// When it was written.
    pub created_at: DateTimeUtc,
    /// When the broker confirmed it; `None` while pending.
    pub published_at: Option<DateTimeUtc>,
    /// Failed publish attempts.
    pub attempts: i32,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// The W3C trace context of the span that wrote it (`{"traceparent":
    /// "00-...", "tracestate": "..."}`), published as the message's
    /// headers; `None` when it was written outside a traced span.
    pub headers: Option<Json>,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A message to enqueue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewOutboxMessage {
    /// The envelope's message id.
    pub message_id: Uuid,
    /// Exchange to publish to.
    pub exchange: String,
    /// Binds it to the consuming queue (see `haven_messages::names`).
    pub routing_key: String,
    /// The serialized envelope.
    pub payload: Vec<u8>,
    /// The trace context to publish it with (see [`Model::headers`]).
    pub headers: Option<Json>,
}

/// Adds a message; call it inside the transaction that makes the change the
/// message announces. Returns the row id.
pub async fn enqueue<C: ConnectionTrait>(
    db: &C,
    message: NewOutboxMessage,
) -> Result<i64, EntityError> {
    let row = Entity::insert(new_row(message, Utc::now()))
        .exec(db)
        .await?;
    Ok(row.last_insert_id)
}

/// The row [`enqueue`] writes for `message`, as the last row of a
/// [`linked::insert`](crate::linked::insert): written only when the row
/// before it is (a second row for the same `message_id` is an error).
pub fn linked_row(message: NewOutboxMessage) -> LinkedRow {
    LinkedRow::new(&new_row(message, Utc::now()), None)
}

/// The unpublished row of `message`, written at `now`.
fn new_row(message: NewOutboxMessage, now: DateTimeUtc) -> ActiveModel {
    ActiveModel {
        message_id: Set(message.message_id),
        exchange: Set(message.exchange),
        routing_key: Set(message.routing_key),
        payload: Set(message.payload),
        created_at: Set(now),
        published_at: Set(None),
        attempts: Set(0),
        last_error: Set(None),
        headers: Set(message.headers),
        ..Default::default()
    }
}

/// Writes several messages in one statement per 500; returns how many.
pub async fn enqueue_many<C: ConnectionTrait>(
    db: &C,
    messages: Vec<NewOutboxMessage>,
) -> Result<u64, EntityError> {
    let now = Utc::now();
    let mut written = 0;
    let mut messages = messages.into_iter().peekable();
    while messages.peek().is_some() {
        let chunk: Vec<ActiveModel> = messages
            .by_ref()
            .take(500)
            .map(|message| new_row(message, now))
            .collect();
        written += Entity::insert_many(chunk)
            .exec_without_returning(db)
            .await?;
    }
    Ok(written)
}

/// The oldest unpublished messages, at most `limit` (served by the partial
/// index `outbox_unpublished_idx`).
pub async fn unpublished<C: ConnectionTrait>(
    db: &C,
    limit: u64,
) -> Result<Vec<Model>, EntityError> {
    Ok(Entity::find()
        .filter(Column::PublishedAt.is_null())
        .order_by_asc(Column::Id)
        .limit(limit)
        .all(db)
        .await?)
}

/// Marks a message published.
pub async fn mark_published<C: ConnectionTrait>(db: &C, id: i64) -> Result<(), EntityError> {
    Entity::update_many()
        .col_expr(Column::PublishedAt, Expr::value(Utc::now()))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}

/// Records a failed publish attempt.
pub async fn mark_failed<C: ConnectionTrait>(
    db: &C,
    id: i64,
    error: &str,
) -> Result<(), EntityError> {
    Entity::update_many()
        // An integer counter, exact in SQL on both backends (unlike amounts).
        .col_expr(Column::Attempts, Expr::col(Column::Attempts).add(1))
        .col_expr(Column::LastError, Expr::value(error))
        .filter(Column::Id.eq(id))
        .exec(db)
        .await?;
    Ok(())
}
