//! Integration tests of chain-minter: the real service in-process on port 0,
//! against its own PostgreSQL database and RabbitMQ namespace (`record`: the
//! database side alone, on PostgreSQL and SQLite).

mod config;
mod faults;
mod finality;
mod health;
mod helpers;
mod minting;
mod record;
mod sweep;
