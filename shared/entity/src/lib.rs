//! SeaORM entities of the HAVEN database and the queries services share.
//!
//! One module per table (hand-written `DeriveEntityModel`s that follow
//! `haven-migrations`), plus [`ledger`] for posting double-entry movements
//! and [`chain_store`], the database behind `haven-chain`'s lease, nonce and
//! deployment storage traits.
//! Amounts are [`SignedWei`], bound as exact decimal strings (see [`wei`]). Every
//! query returns [`EntityError`], whose constraint variants let the HTTP
//! layer answer 409/422 without looking at driver errors.

#![warn(missing_docs)]

pub mod bookings;
pub mod chain_deployments;
pub mod chain_store;
pub mod clawbacks;
pub mod emission_periods;
pub mod error;
pub mod idempotency_keys;
pub mod inbound_events;
pub mod job_runs;
pub mod kyc_decisions;
pub mod ledger;
pub mod ledger_accounts;
pub mod ledger_entries;
pub mod ledger_movements;
pub mod linked;
pub mod outbox;
pub mod redemption_states;
pub mod redemptions;
pub mod rewards;
pub mod signer_leases;
pub mod signer_nonces;
pub mod stakes;
pub mod token_transactions;
pub mod user_balances;
pub mod users;
pub mod wei;

pub use error::EntityError;
pub use wei::SignedWei;
