//! Integration tests of reward-calculator: the real service in-process on port 0,
//! against its own PostgreSQL database and RabbitMQ namespace.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

mod cancellation;
mod config;
mod emission;
mod health;
mod helpers;
mod rewards;
mod schema;
mod staking;
