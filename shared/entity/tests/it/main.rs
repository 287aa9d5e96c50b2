//! Integration tests of the entities and queries against real PostgreSQL
//! and SQLite databases (one fresh database per test).
#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message

mod amounts;
mod dedupe;
mod helpers;
mod job_runs;
mod leases;
mod ledger;
mod linked;
mod redemptions;
mod rewards;
mod uniques;
mod users;
