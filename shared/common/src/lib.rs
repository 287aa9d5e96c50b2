//! Plumbing shared by every HAVEN service: config fragments, telemetry,
//! metrics and health, the database pool, the AMQP topology, confirmed
//! publisher and the one consumer loop, retry policy, money, shutdown and
//! the one service skeleton every binary runs in.

pub mod amqp;
pub mod auth;
pub mod config;
pub mod db;
pub mod health;
pub mod http_trace;
pub mod jobs;
pub mod metrics;
pub mod money;
pub mod openapi;
pub mod retry;
mod schemas;
pub mod server;
pub mod service;
pub mod shutdown;
pub mod telemetry;

#[cfg(feature = "test-util")]
pub mod testing;
