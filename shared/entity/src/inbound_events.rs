//! `inbound_events`: the dedupe record of every partner webhook accepted.

use chrono::Utc;
use sea_orm::ActiveValue::Set;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;

use crate::error::EntityError;
use crate::linked::LinkedRow;

/// An accepted partner event.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "inbound_events")]
pub struct Model {
    /// UUIDv7.
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    /// `aurora` or `tribe`.
    pub partner: String,
    /// Event kind, e.g. `booking-created`.
    pub kind: String,
    /// The event's "once per" key (booking id, (event id, attendee)...),
    /// whatever the scheme it was signed with.
    pub event_key: String,
    /// The Standard Webhooks `webhook-id` it came with, unique per partner
    /// (`None` for the hex scheme).
    pub delivery_id: Option<String>,
    /// Id of the message published for it.
    pub message_id: Uuid,
    /// The payload as received.
    pub payload: Json,
    /// When it was accepted.
    pub received_at: DateTimeUtc,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// A partner event to record.
#[derive(Clone, Debug, PartialEq)]
pub struct NewInboundEvent {
    /// `aurora` or `tribe`.
    pub partner: String,
    /// Event kind.
    pub kind: String,
    /// The event's "once per" key.
    pub event_key: String,
    /// The sender's delivery id (Standard Webhooks), spent by this event.
    pub delivery_id: Option<String>,
    /// Id of the message that will carry it.
    pub message_id: Uuid,
    /// The event as it was accepted, kept so a lost message can be rebuilt.
    pub payload: Json,
}

/// What [`record`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Recorded {
    /// First time this (partner, kind, event key) and this delivery id are
    /// seen: go on and queue it.
    Accepted,
    /// The event, or the delivery id, was seen before: answer `duplicate`
    /// and do nothing else.
    Duplicate,
}

/// Records an inbound event once per (partner, kind, event key) and once per
/// (partner, delivery id). Does not abort the surrounding transaction on a
/// duplicate of either (`ON CONFLICT DO NOTHING` without a target covers
/// both unique keys), so it can share one with the outbox insert.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    event: NewInboundEvent,
) -> Result<Recorded, EntityError> {
    let inserted = Entity::insert(new_row(event))
        .on_conflict(OnConflict::new().do_nothing().to_owned())
        .exec_without_returning(db)
        .await?;
    Ok(if inserted == 1 {
        Recorded::Accepted
    } else {
        Recorded::Duplicate
    })
}

/// The row [`record`] writes for `event`, as the first row of a
/// [`linked::insert`](crate::linked::insert): nothing after it (the
/// outbox message) is written for a duplicate of either unique key.
pub fn linked_row(event: NewInboundEvent) -> LinkedRow {
    LinkedRow::new(
        &new_row(event),
        Some(OnConflict::new().do_nothing().to_owned()),
    )
}

/// The row of `event`, received now.
fn new_row(event: NewInboundEvent) -> ActiveModel {
    ActiveModel {
        id: Set(Uuid::now_v7()),
        partner: Set(event.partner),
        kind: Set(event.kind),
        event_key: Set(event.event_key),
        delivery_id: Set(event.delivery_id),
        message_id: Set(event.message_id),
        payload: Set(event.payload),
        received_at: Set(Utc::now()),
    }
}
