//! Integration tests of read-api: the real service in-process on port 0,
//! against its own PostgreSQL database.

mod config;
mod health;
mod helpers;
