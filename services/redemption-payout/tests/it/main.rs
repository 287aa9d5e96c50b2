//! Integration tests of redemption-payout: the real service in-process on
//! port 0 (and as the real binary in `faults`), against its own PostgreSQL
//! database and RabbitMQ namespace, a throw-away anvil with chain-minter,
//! and a stand-in payout provider.

mod config;
mod faults;
mod health;
mod helpers;
mod provider;
mod saga;
