//! One handler per consumed queue.

pub mod partner_event;
