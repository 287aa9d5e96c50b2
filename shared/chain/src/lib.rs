//! Chain-side building blocks shared by chain-minter and the services that
//! prepare its work.
//!
//! - [`contract`]: `sol!` bindings generated from the committed artifact.
//! - [`config`]: the chain settings services flatten in (RPC, signers, fees).
//! - [`signer`]: the signer pool and custodial wallets derived by BIP-44 index.
//! - [`nonce`]: signer leases and the nonce manager.
//! - [`store`]: the storage trait behind leases and nonces (database version
//!   in `haven-entity`), an in-memory store, and the storage error.
//! - [`fees`], [`sender`]: EIP-1559 fees, stuck-transaction replacement, receipts.
//! - [`rpc`], [`error`]: RPC calls with timeouts and retries; one error classification.
//! - [`client`]: startup checks and the "blockchain" health probe.
//! - [`deploy`]: the idempotent deployment behind the `haven-deploy` binary.
//!
//! And the one rule every service must agree on: how a token transaction id
//! becomes the 32-byte on-chain reference the contract refuses to use twice.

pub mod contract;

pub mod client;
pub mod config;
pub mod deploy;
pub mod error;
pub mod fees;
pub mod nonce;
pub mod rpc;
pub mod sender;
pub mod signer;
pub mod store;
#[cfg(feature = "test-util")]
pub mod testing;
