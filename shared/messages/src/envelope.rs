//! The envelope every message travels in.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::names::QueueSpec;

/// Implemented by the one tagged enum of each queue.
pub trait QueueMessage: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// The queue this enum is consumed from.
    const QUEUE: QueueSpec;
    /// Highest schema version this build understands; newer ones are rejected.
    const SCHEMA_VERSION: u16;
    /// Every `kind` this enum knows, as written on the wire.
    const KINDS: &'static [&'static str];
    /// The `kind` of this message, as written on the wire.
    fn kind(&self) -> &'static str;
    /// Routing key on [`crate::names::EVENTS_EXCHANGE`].
    fn routing_key(&self) -> String;
}

/// A message with its identity and provenance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<P> {
    /// Unique id of this message (UUIDv7, so ids sort by creation time).
    pub message_id: Uuid,
    /// Version of the payload schema the sender wrote.
    pub schema_version: u16,
    /// When the fact this message reports happened.
    pub occurred_at: DateTime<Utc>,
    /// Id shared by every message caused by the same outside request.
    pub correlation_id: Uuid,
    /// Id of the message that caused this one, if any.
    pub causation_id: Option<Uuid>,
    /// Serialized as `"kind": "...", "payload": {...}`.
    #[serde(flatten)]
    pub payload: P,
}

/// Why bytes from the broker are not a message this build can handle.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or a field is missing or of the wrong type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A `kind` this queue does not carry.
    #[error("unknown message kind `{kind}`")]
    UnknownKind {
        /// The kind found on the wire.
        kind: String,
    },
    /// Written by a newer sender than this build understands.
    #[error("schema version {found} is newer than the supported version {supported}")]
    UnsupportedVersion {
        /// Version found on the wire.
        found: u16,
        /// Highest version this build reads.
        supported: u16,
    },
}

/// The fields read before the payload, to give a precise error.
#[derive(Deserialize)]
struct Header {
    schema_version: u16,
    kind: String,
}

impl<P: QueueMessage> Envelope<P> {
    /// A new message at the start of a causal chain.
    pub fn new(payload: P) -> Self {
        let message_id = Uuid::now_v7();
        Self {
            message_id,
            schema_version: P::SCHEMA_VERSION,
            occurred_at: Utc::now(),
            correlation_id: message_id,
            causation_id: None,
            payload,
        }
    }

    /// A new message caused by `parent`: same correlation id, causation = parent's id.
    pub fn caused_by<Q>(parent: &Envelope<Q>, payload: P) -> Self {
        Self {
            correlation_id: parent.correlation_id,
            causation_id: Some(parent.message_id),
            ..Self::new(payload)
        }
    }

    /// The payload's kind.
    pub fn kind(&self) -> &'static str {
        self.payload.kind()
    }

    /// Routing key on the events exchange.
    pub fn routing_key(&self) -> String {
        self.payload.routing_key()
    }

    /// The JSON bytes published to the broker.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec(self)
    }

    /// Reads a message from broker bytes; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let header: Header =
            serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        if header.schema_version > P::SCHEMA_VERSION {
            return Err(DecodeError::UnsupportedVersion {
                found: header.schema_version,
                supported: P::SCHEMA_VERSION,
            });
        }
        if !P::KINDS.contains(&header.kind.as_str()) {
            return Err(DecodeError::UnknownKind { kind: header.kind });
        }
        serde_json::from_slice(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}
