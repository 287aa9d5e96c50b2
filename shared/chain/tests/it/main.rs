//! Chain-crate tests against a real anvil (one per test). The database
//! stores behind leases and deployments are tested in haven-entity and
//! haven-deploy.
#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message

mod helpers;
mod sender;
mod startup;
