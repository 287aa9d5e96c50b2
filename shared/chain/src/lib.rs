//! Chain-side building blocks shared by chain-minter and the services that
//! prepare its work.
//!
//! - [`contract`]: `sol!` bindings generated from the committed artifact.
//! - [`config`]: the chain settings services flatten in (RPC, signers, fees).
//! - [`signer`]: the signer pool and custodial wallets derived by BIP-44 index.
//! - [`nonce`]: signer leases in the database and the nonce manager.
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
#[cfg(feature = "test-util")]
pub mod testing;

use uuid::Uuid;

/// The deterministic on-chain reference of a token transaction.
///
/// Every resend of the same transaction carries the same reference, so the
/// contract's per-reference guard refuses (single mint/burn) or skips (batch
/// mint) it instead of minting twice. Defined next to the table that stores
/// it ([`haven_entity::token_transactions::chain_reference`]), so services
/// that only record transactions agree with chain-minter without the chain stack.
pub fn tx_reference(tx_id: &Uuid) -> [u8; 32] {
    haven_entity::token_transactions::chain_reference(tx_id)
}

/// The reference as `0x`-prefixed lower-case hex, as stored and logged.
pub fn tx_reference_hex(tx_id: &Uuid) -> String {
    format!("0x{}", hex::encode(tx_reference(tx_id)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_is_deterministic_and_distinct_per_transaction() {
        let a = Uuid::now_v7();
        let b = Uuid::now_v7();
        assert_eq!(tx_reference(&a), tx_reference(&a));
        assert_ne!(tx_reference(&a), tx_reference(&b));
        assert_eq!(tx_reference_hex(&a).len(), 66);
    }

    #[test]
    fn reference_is_stable_across_releases() {
        // A changed derivation would let a resend after an upgrade mint again:
        // pin one value.
        let id = Uuid::from_u128(0x0192_0000_0000_7000_8000_0000_0000_0001);
        assert_eq!(
            tx_reference_hex(&id),
            "0x8ef7ec858f56ba6c6d13a6ee423c7e9a127fd76e11ad5ba579cd56642b581cf8"
        );
    }
}
