//! Chain-crate tests against a real anvil (one per test) and, for leases,
//! a real PostgreSQL (and SQLite) database.
#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message

mod deploy;
mod helpers;
mod leases;
mod sender;
mod startup;
