//! [`ChainClient`]: the startup checks a service runs before it talks to
//! the chain, and the `/health` probe that repeats them.

use std::sync::Arc;

use alloy::primitives::{Address, B256};
use futures::future::BoxFuture;
use haven_common::health::Probe;

use crate::config::{ChainConfig, RpcConfig};
use crate::contract::HAVEN;
use crate::error::ChainError;
use crate::rpc::Rpc;
use crate::signer::SignerPool;

/// A role of the HAVEN contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// May mint.
    Minter,
    /// May burn from any holder.
    Burner,
    /// May pause and unpause.
    Pauser,
    /// May propose and execute the monthly mint target.
    Governance,
    /// May grant and revoke roles.
    Admin,
}

impl Role {
    /// The Solidity constant's name, as error messages show it.
    pub fn name(self) -> &'static str {
        match self {
            Role::Minter => "MINTER_ROLE",
            Role::Burner => "BURNER_ROLE",
            Role::Pauser => "PAUSER_ROLE",
            Role::Governance => "GOVERNANCE_ROLE",
            Role::Admin => "DEFAULT_ADMIN_ROLE",
        }
    }

    /// The role id, read from the contract (never recomputed here, so a
    /// contract that derives it differently is still checked correctly).
    pub async fn id(self, rpc: &Rpc, contract: Address) -> Result<B256, ChainError> {
        match self {
            Role::Minter => rpc.view(contract, &HAVEN::MINTER_ROLECall {}).await,
            Role::Burner => rpc.view(contract, &HAVEN::BURNER_ROLECall {}).await,
            Role::Pauser => rpc.view(contract, &HAVEN::PAUSER_ROLECall {}).await,
            Role::Governance => rpc.view(contract, &HAVEN::GOVERNANCE_ROLECall {}).await,
            Role::Admin => rpc.view(contract, &HAVEN::DEFAULT_ADMIN_ROLECall {}).await,
        }
    }
}

/// Roles every pool signer needs: minting rewards and burning redemptions
/// and reversals.
pub const SIGNER_ROLES: &[Role] = &[Role::Minter, Role::Burner];

/// A checked connection to the HAVEN contract.
#[derive(Debug, Clone)]
pub struct ChainClient {
    inner: Arc<Checks>,
}

/// What is verified at startup and by the probe.
#[derive(Debug)]
struct Checks {
    rpc: Rpc,
    chain_id: u64,
    /// False for a reader, which signs nothing and is given no chain id.
    verify_chain_id: bool,
    contract: Address,
    signers: Vec<Address>,
    roles: Vec<Role>,
}

impl Checks {
    /// Chain id, contract code, then each signer's roles. Each RPC call has
    /// the configured timeout, so a dead endpoint fails instead of hanging.
    async fn run(&self) -> Result<(), ChainError> {
        if self.verify_chain_id {
            let actual = self.rpc.chain_id().await?;
            if actual != self.chain_id {
                return Err(ChainError::WrongChainId {
                    expected: self.chain_id,
                    actual,
                });
            }
        }
        if self.rpc.code_at(self.contract).await?.is_empty() {
            return Err(ChainError::NoContractCode {
                address: self.contract,
                chain_id: self.chain_id,
            });
        }
        for role in &self.roles {
            let id = role.id(&self.rpc, self.contract).await?;
            for signer in &self.signers {
                if !self.rpc.has_role(self.contract, id, *signer).await? {
                    return Err(ChainError::MissingRole {
                        signer: *signer,
                        role: role.name(),
                        contract: self.contract,
                    });
                }
            }
        }
        Ok(())
    }
}

impl ChainClient {
    /// Connects and checks everything a minting service needs: the RPC URL
    /// answers, it serves `CHAIN_ID`, the contract has code, and every
    /// configured pool signer holds MINTER_ROLE and BURNER_ROLE. Each
    /// failure is an error naming the problem (see [`ChainError`]).
    pub async fn connect(config: &ChainConfig) -> Result<Self, ChainError> {
        Self::connect_with_roles(config, SIGNER_ROLES).await
    }

    /// [`Self::connect`] checking only `roles` (none for read-only services;
    /// signers are only checked when configured).
    pub async fn connect_with_roles(
        config: &ChainConfig,
        roles: &[Role],
    ) -> Result<Self, ChainError> {
        let client = Self::unchecked(config, roles)?;
        client.check().await?;
        tracing::info!(
            chain_id = config.rpc.chain_id,
            contract = %config.contract_address,
            "chain connection checked"
        );
        Ok(client)
    }

    /// The client without any network check yet (for a service that starts
    /// its `/health` first and retries [`Self::check`]). Fails only on
    /// malformed configuration.
    pub fn unchecked(config: &ChainConfig, roles: &[Role]) -> Result<Self, ChainError> {
        let rpc = Rpc::new(&config.rpc)?;
        let configured = config.signers.signer_private_keys.is_some()
            || config.signers.signer_mnemonic.is_some();
        let signers = if configured {
            SignerPool::from_config(&config.signers)?.addresses()
        } else {
            Vec::new()
        };
        Ok(Self {
            inner: Arc::new(Checks {
                rpc,
                chain_id: config.rpc.chain_id,
                verify_chain_id: true,
                contract: config.contract_address,
                signers,
                roles: roles.to_vec(),
            }),
        })
    }

    /// A client for a service that only reads `contract` (read-api,
    /// reward-calculator): its probe checks that the RPC endpoint answers
    /// and the contract has code there, with no chain id (nothing is signed)
    /// and no roles. No network traffic here.
    pub fn reader(rpc: &RpcConfig, contract: Address) -> Result<Self, ChainError> {
        Ok(Self {
            inner: Arc::new(Checks {
                rpc: Rpc::new(rpc)?,
                chain_id: rpc.chain_id,
                verify_chain_id: false,
                contract,
                signers: Vec::new(),
                roles: Vec::new(),
            }),
        })
    }

    /// Runs the startup checks again.
    pub async fn check(&self) -> Result<(), ChainError> {
        self.inner.run().await
    }

    /// The RPC connection.
    pub fn rpc(&self) -> &Rpc {
        &self.inner.rpc
    }

    /// The configured chain id (verified by [`Self::check`]).
    pub fn chain_id(&self) -> u64 {
        self.inner.chain_id
    }

    /// The contract address (code verified by [`Self::check`]).
    pub fn contract_address(&self) -> Address {
        self.inner.contract
    }

    /// The `/health` probe, named `"blockchain"`.
    pub fn probe(&self) -> BlockchainProbe {
        BlockchainProbe {
            client: self.clone(),
        }
    }
}

/// `/health` probe of the chain: the startup checks, every time. Any
/// failure (unreachable, wrong chain, no code, a signer without its role)
/// reports `"blockchain": "disconnected"` and a 503.
#[derive(Debug, Clone)]
pub struct BlockchainProbe {
    client: ChainClient,
}

impl Probe for BlockchainProbe {
    fn name(&self) -> &'static str {
        "blockchain"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        Box::pin(async move {
            self.client
                .check()
                .await
                .map_err(|err| haven_common::telemetry::ErrorChain(&err).to_string())
        })
    }
}
