//! A real anvil per test (`haven_chain::testing`), the contract deployed on
//! it with one account per role.

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, U256, keccak256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use alloy::rpc::types::TransactionReceipt;
use alloy::signers::local::PrivateKeySigner;
use haven_chain::contract::{HAVEN, encode_reason};
use haven_chain::testing::{AnvilInstance, dev_key};

/// Funded development accounts used: admin, one per role, an outsider, a holder.
const ACCOUNTS: u32 = 7;

/// 1 HNV in base units.
pub const HNV: U256 = U256::from_limbs([1_000_000_000_000_000_000, 0, 0, 0]);

/// The supply cap, 1,000,000,000 HNV.
pub fn cap() -> U256 {
    U256::from(1_000_000_000u64) * HNV
}

pub fn hnv(n: u64) -> U256 {
    U256::from(n) * HNV
}

/// The contract on a fresh anvil, with one account per role.
pub struct Chain {
    /// Kept alive for the test: dropping it kills the node.
    _anvil: AnvilInstance,
    pub provider: DynProvider,
    pub token: HAVEN::HAVENInstance<DynProvider>,
    pub admin: Address,
    pub minter: Address,
    pub burner: Address,
    pub pauser: Address,
    pub governor: Address,
    /// Holds no role.
    pub outsider: Address,
    /// A funded account without a role, used as a token holder that sends
    /// transactions itself.
    pub holder: Address,
}

impl Chain {
    pub async fn start() -> Chain {
        let anvil = AnvilInstance::spawn();
        let signers: Vec<PrivateKeySigner> = (0..ACCOUNTS).map(dev_key).collect();
        let addresses: Vec<Address> = signers.iter().map(|s| s.address()).collect();
        let mut wallet = EthereumWallet::from(signers[0].clone());
        for signer in signers.into_iter().skip(1) {
            wallet.register_signer(signer);
        }
        // The simple nonce manager asks the node every time: the default
        // cached one keeps a nonce taken by a call whose gas estimate then
        // reverted, and every later transaction from that account would wait
        // behind the gap. Tests send many refused calls on purpose.
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(wallet)
            .connect_http(anvil.endpoint().parse().expect("anvil url"))
            .erased();
        let token = deploy(&provider, addresses[0]).await;
        let chain = Chain {
            _anvil: anvil,
            provider,
            token,
            admin: addresses[0],
            minter: addresses[1],
            burner: addresses[2],
            pauser: addresses[3],
            governor: addresses[4],
            outsider: addresses[5],
            holder: addresses[6],
        };
        chain.grant_roles(&chain.token).await;
        chain
    }

    /// Another deployment on the same anvil, roles granted the same way
    /// (for tests that need an untouched supply).
    pub async fn redeploy(&self) -> HAVEN::HAVENInstance<DynProvider> {
        let token = deploy(&self.provider, self.admin).await;
        self.grant_roles(&token).await;
        token
    }

    async fn grant_roles(&self, token: &HAVEN::HAVENInstance<DynProvider>) {
        let roles = [
            (token.MINTER_ROLE().call().await.expect("role"), self.minter),
            (token.BURNER_ROLE().call().await.expect("role"), self.burner),
            (token.PAUSER_ROLE().call().await.expect("role"), self.pauser),
            (
                token.GOVERNANCE_ROLE().call().await.expect("role"),
                self.governor,
            ),
        ];
        for (role, account) in roles {
            mined(token.grantRole(role, account).from(self.admin)).await;
        }
    }

    pub async fn balance(&self, holder: Address) -> U256 {
        self.token
            .balanceOf(holder)
            .call()
            .await
            .expect("balanceOf")
    }

    pub async fn ref_used(&self, reference: B256) -> bool {
        self.token.refUsed(reference).call().await.expect("refUsed")
    }

    /// Mints `amount` to `to` through the unguarded path, as the minter.
    pub async fn mint(&self, to: Address, amount: U256) -> TransactionReceipt {
        mined(
            self.token
                .mint(to, amount, reason("setup"))
                .from(self.minter),
        )
        .await
    }
}

async fn deploy(provider: &DynProvider, admin: Address) -> HAVEN::HAVENInstance<DynProvider> {
    HAVEN::deploy(provider.clone(), admin)
        .await
        .expect("deploy HAVEN")
}

/// Sends the call and waits for a successful receipt.
pub async fn mined<D: CallDecoder>(call: CallBuilder<&DynProvider, D>) -> TransactionReceipt {
    let receipt = call
        .send()
        .await
        .expect("transaction accepted")
        .get_receipt()
        .await
        .expect("receipt");
    assert!(receipt.status(), "transaction reverted: {receipt:?}");
    receipt
}

/// Sends the call: the receipt when it lands, the contract's error when the
/// node refuses it.
pub async fn outcome<D: CallDecoder>(
    call: CallBuilder<&DynProvider, D>,
) -> Result<TransactionReceipt, HAVEN::HAVENErrors> {
    match call.send().await {
        Ok(pending) => {
            let receipt = pending.get_receipt().await.expect("receipt");
            assert!(receipt.status(), "transaction reverted: {receipt:?}");
            Ok(receipt)
        }
        Err(e) => Err(e
            .as_decoded_interface_error::<HAVEN::HAVENErrors>()
            .unwrap_or_else(|| panic!("not a HAVEN error: {e:?}"))),
    }
}

/// Sends the call, expects the node to refuse it with one of the contract's
/// errors (custom or OpenZeppelin's) and returns that error.
pub async fn reverted<D: CallDecoder>(call: CallBuilder<&DynProvider, D>) -> HAVEN::HAVENErrors {
    match call.send().await {
        Ok(pending) => panic!(
            "expected a revert, transaction {} was sent",
            pending.tx_hash()
        ),
        Err(e) => e
            .as_decoded_interface_error::<HAVEN::HAVENErrors>()
            .unwrap_or_else(|| panic!("not a HAVEN error: {e:?}")),
    }
}

pub fn reason(code: &str) -> B256 {
    encode_reason(code).expect("short reason")
}

/// A distinct address nobody holds a key for: a brand-new token holder.
pub fn fresh_holder(seed: &str) -> Address {
    Address::from_word(keccak256(format!("holder:{seed}")))
}

/// A reference the way an unrelated hash would look.
pub fn hashed_ref(seed: &str) -> B256 {
    keccak256(format!("ref:{seed}"))
}

/// Asserts an access-control refusal for `account` missing `role`.
pub fn assert_unauthorized(error: HAVEN::HAVENErrors, account: Address, role: B256) {
    match error {
        HAVEN::HAVENErrors::AccessControlUnauthorizedAccount(e) => {
            assert_eq!((e.account, e.neededRole), (account, role));
        }
        other => panic!("expected AccessControlUnauthorizedAccount, got {other:?}"),
    }
}
