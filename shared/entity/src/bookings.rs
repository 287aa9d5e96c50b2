//! `bookings`: every Aurora booking an event mentioned, with where it is.
//!
//! The row is the meeting point of a booking's events, which may arrive in
//! any order: a cancellation recorded before its booking-created makes the
//! later booking-created grant nothing. Both sides take the row's lock
//! ([`record`] inserts or locks it) before looking at the reward, so they
//! never interleave.

use chrono::Utc;
use sea_orm::entity::prelude::*;
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, QuerySelect};

use crate::error::EntityError;
use crate::linked::LinkedRow;

/// Where a booking is. `cancelled` is final: a later `completed` does not undo it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "Text")]
pub enum BookingStatus {
    /// Booked.
    #[sea_orm(string_value = "created")]
    Created,
    /// The stay is over.
    #[sea_orm(string_value = "completed")]
    Completed,
    /// Cancelled (possibly before its creation was seen).
    #[sea_orm(string_value = "cancelled")]
    Cancelled,
}

/// A booking.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "bookings")]
pub struct Model {
    /// Aurora's booking id.
    #[sea_orm(primary_key, auto_increment = false)]
    pub booking_id: String,
    /// Aurora's guest id (the partners' user id).
    pub guest_id: String,
    /// Where it is.
    pub status: BookingStatus,
    /// Why it was cancelled, when Aurora said.
    pub cancellation_reason: Option<String>,
    /// When first seen.
    pub created_at: DateTimeUtc,
    /// Last change.
    pub updated_at: DateTimeUtc,
    /// When the completion was recorded.
    pub completed_at: Option<DateTimeUtc>,
    /// When the cancellation was recorded.
    pub cancelled_at: Option<DateTimeUtc>,
}

/// No relations are declared; queries join explicitly.
#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

/// What an event says about a booking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum BookingEvent {
    /// booking-created.
    Created,
    /// booking-completed.
    Completed,
    /// booking-cancelled, with Aurora's reason if any.
    Cancelled(Option<String>),
}

/// Records `event` for `booking_id` and returns the booking as it is now,
/// locked until the caller's transaction ends (`FOR UPDATE` on PostgreSQL).
///
/// The first event creates the row in one statement (`ON CONFLICT DO
/// NOTHING RETURNING`: the new row is this transaction's until it commits,
/// so it needs no lock, and it already says what the event says). A later
/// event reads and locks the existing row (a concurrent first event makes
/// the insert wait for it, then do nothing). `Created` never changes
/// an existing row; `Completed` sets `completed_at` and moves `created` to
/// `completed`; `Cancelled` always ends in `cancelled`. Every event is
/// idempotent: recording it twice leaves the same row.
pub async fn record<C: ConnectionTrait>(
    db: &C,
    booking_id: &str,
    guest_id: &str,
    event: BookingEvent,
) -> Result<Model, EntityError> {
    let now = Utc::now();
    let reason = match &event {
        BookingEvent::Cancelled(reason) => reason.clone(),
        _ => None,
    };
    // `exec_with_returning_many`: with `DO NOTHING` it returns no row
    // instead of failing the way `exec_with_returning` does.
    let inserted = Entity::insert(new_row(booking_id, guest_id, &event, now))
        .on_conflict(on_conflict())
        .exec_with_returning_many(db)
        .await?
        .pop();
    if let Some(row) = inserted {
        return Ok(row);
    }

    let row = Entity::find_by_id(booking_id.to_owned())
        .lock_exclusive()
        .one(db)
        .await?
        .ok_or_else(|| EntityError::Corrupt(format!("booking `{booking_id}` vanished")))?;
    let mut change = ActiveModel {
        updated_at: Set(now),
        ..Default::default()
    };
    let changed = match event {
        BookingEvent::Created => false,
        BookingEvent::Completed if row.completed_at.is_none() => {
            if row.status == BookingStatus::Created {
                change.status = Set(BookingStatus::Completed);
            }
            change.completed_at = Set(Some(now));
            true
        }
        BookingEvent::Completed => false,
        BookingEvent::Cancelled(_) if row.status != BookingStatus::Cancelled => {
            change.status = Set(BookingStatus::Cancelled);
            change.cancelled_at = Set(Some(now));
            change.cancellation_reason = Set(reason);
            true
        }
        BookingEvent::Cancelled(_) => false,
    };
    if !changed {
        return Ok(row);
    }
    Entity::update_many()
        .set(change)
        .filter(Column::BookingId.eq(booking_id))
        .exec(db)
        .await?;
    Entity::find_by_id(booking_id.to_owned())
        .one(db)
        .await?
        .ok_or_else(|| EntityError::Corrupt(format!("booking `{booking_id}` vanished")))
}

/// The row [`record`] inserts for a booking's first event `event`, as the
/// first row of a [`linked::insert`](crate::linked::insert): when the
/// booking exists nothing is written, and the caller [`record`]s the event
/// against the existing row instead.
pub fn linked_row(booking_id: &str, guest_id: &str, event: &BookingEvent) -> LinkedRow {
    LinkedRow::new(
        &new_row(booking_id, guest_id, event, Utc::now()),
        Some(on_conflict()),
    )
}

/// A booking's row as its first event `event` makes it at `now`.
fn new_row(
    booking_id: &str,
    guest_id: &str,
    event: &BookingEvent,
    now: DateTimeUtc,
) -> ActiveModel {
    let (status, completed_at, cancelled_at, reason) = match event {
        BookingEvent::Created => (BookingStatus::Created, None, None, None),
        BookingEvent::Completed => (BookingStatus::Completed, Some(now), None, None),
        BookingEvent::Cancelled(reason) => {
            (BookingStatus::Cancelled, None, Some(now), reason.clone())
        }
    };
    ActiveModel {
        booking_id: Set(booking_id.to_owned()),
        guest_id: Set(guest_id.to_owned()),
        status: Set(status),
        cancellation_reason: Set(reason),
        created_at: Set(now),
        updated_at: Set(now),
        completed_at: Set(completed_at),
        cancelled_at: Set(cancelled_at),
    }
}

/// A second first event of a booking writes nothing.
fn on_conflict() -> OnConflict {
    OnConflict::column(Column::BookingId)
        .do_nothing()
        .to_owned()
}
