//! Shared setup: a deployed HAVEN contract and senders on anvil, and a
//! signer that is not a local key.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use alloy::consensus::SignableTransaction;
use alloy::network::TxSigner;
use alloy::primitives::{Address, Bytes, Signature};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolConstructor;
use haven_chain::config::{ChainConfig, TxConfig};
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_chain::sender::{DirectNonces, NonceSource, TxRequest, TxSender};
use haven_chain::testing::{
    ANVIL_CHAIN_ID, AnvilInstance, dev_key, dev_signer_config, test_tx_config,
};

/// A sender of a development account (or any signer) with no lease.
pub fn direct_sender(
    anvil: &AnvilInstance,
    key: impl TxSigner<Signature> + Send + Sync + 'static,
    tx: &TxConfig,
) -> TxSender {
    let rpc = Rpc::new(&anvil.rpc_config()).expect("rpc");
    TxSender::new(
        rpc,
        NonceSource::Direct(Box::new(DirectNonces::new(key))),
        ANVIL_CHAIN_ID,
        tx,
    )
    .expect("sender")
}

/// Deploys HAVEN with development account 0 as admin and grants MINTER
/// and BURNER to `minters`.
pub async fn deploy_haven(anvil: &AnvilInstance, minters: &[Address]) -> Address {
    let admin = dev_key(0);
    let sender = direct_sender(anvil, admin.clone(), &test_tx_config());
    let code: Bytes = [
        HAVEN::BYTECODE.to_vec(),
        HAVEN::constructorCall {
            admin: admin.address(),
        }
        .abi_encode(),
    ]
    .concat()
    .into();
    let deployed = sender
        .send_and_confirm(TxRequest::create(code))
        .await
        .expect("deploy");
    let contract = deployed.contract_address.expect("a creation");
    let rpc = sender.rpc();
    let minter = rpc
        .view(contract, &HAVEN::MINTER_ROLECall {})
        .await
        .unwrap();
    let burner = rpc
        .view(contract, &HAVEN::BURNER_ROLECall {})
        .await
        .unwrap();
    for account in minters {
        for role in [minter, burner] {
            sender
                .send_and_confirm(TxRequest::call(
                    contract,
                    &HAVEN::grantRoleCall {
                        role,
                        account: *account,
                    },
                ))
                .await
                .expect("grant");
        }
    }
    contract
}

/// A full chain config for `anvil`, the contract and the given development signers.
pub fn chain_config(anvil: &AnvilInstance, contract: Address, signers: &[u32]) -> ChainConfig {
    ChainConfig {
        rpc: anvil.rpc_config(),
        contract_address: contract,
        signers: dev_signer_config(signers),
        tx: test_tx_config(),
    }
}

/// A signer reached only through alloy's async [`TxSigner`], as a KMS or
/// remote signer is: it signs with a local key underneath, yields to the
/// runtime first (an answer from elsewhere), and counts its signatures.
#[derive(Debug, Clone)]
pub struct CountingSigner {
    key: PrivateKeySigner,
    signed: Arc<AtomicUsize>,
}

impl CountingSigner {
    pub fn new(key: PrivateKeySigner) -> Self {
        Self {
            key,
            signed: Arc::default(),
        }
    }

    /// Transactions signed so far (by this signer and its clones).
    pub fn signed(&self) -> usize {
        self.signed.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl TxSigner<Signature> for CountingSigner {
    fn address(&self) -> Address {
        self.key.address()
    }

    async fn sign_transaction(
        &self,
        tx: &mut dyn SignableTransaction<Signature>,
    ) -> alloy::signers::Result<Signature> {
        tokio::task::yield_now().await;
        self.signed.fetch_add(1, Ordering::SeqCst);
        TxSigner::sign_transaction(&self.key, tx).await
    }
}
