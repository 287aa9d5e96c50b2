//! Typed messages that travel between HAVEN services over RabbitMQ.
//!
//! Every message is an [`Envelope`] around the one tagged enum of the queue it
//! is consumed from ([`PartnerEvent`], [`ChainRequest`], [`ChainEvent`],
//! [`RedemptionCommand`]). The envelope carries the message id (UUIDv7),
//! the schema version, when the fact happened and the correlation/causation
//! chain; the payload is serialized as `"kind": "...", "payload": {...}` so a
//! consumer can reject a kind or a version it does not know with a clear error
//! (the consumer loop dead-letters it) instead of guessing.
//!
//! This crate is serde only: no I/O, no broker client.

mod envelope;
pub mod names;
mod payloads;
pub mod wei;

pub use envelope::{DecodeError, Envelope, QueueMessage};
pub use payloads::*;
