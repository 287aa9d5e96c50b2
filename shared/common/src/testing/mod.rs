//! Test helpers (feature `test-util`): every integration test gets its own
//! database and broker namespace, and a TCP proxy it can cut to simulate outages.

pub mod amqp;
pub mod app;
pub mod config;
pub mod db;
pub mod proxy;
mod workspace;

pub use self::workspace::workspace_root;
