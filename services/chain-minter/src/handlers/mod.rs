//! Queue handlers of chain-minter: one per message type.

pub mod chain_request;
