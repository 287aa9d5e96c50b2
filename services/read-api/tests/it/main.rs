//! Integration tests of read-api: the real service in-process on port 0,
//! against its own PostgreSQL database (and, for the chain, a throw-away
//! anvil with the HAVEN contract deployed).

mod access;
mod analytics;
mod balance;
mod chain;
mod config;
mod health;
mod helpers;
mod history;
mod hostile;
mod openapi;
mod sqlite;
mod transactions;
