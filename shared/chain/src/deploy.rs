//! Idempotent deployment of the HAVEN contract (behind `haven-deploy`).
//!
//! The creation code is compiled into the binary from the committed
//! artifact (through the `sol!` bindings), so deploying needs no Node.js
//! and no compiler. The deployment is recorded (chain id, address, creation
//! transaction, block) in a [`DeploymentStore`]: the database table
//! `chain_deployments` (`haven_entity::chain_store`) or a JSON file
//! ([`DeploymentFile`]); a second run finds the record, checks that code still exists
//! at that address on the same chain, and reuses it. Role grants are
//! idempotent too: only missing roles are granted.

use std::path::{Path, PathBuf};

use alloy::primitives::{Address, Bytes, TxHash};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::SolConstructor;
use haven_common::config::Redacted;
use serde::{Deserialize, Serialize};

use crate::client::SIGNER_ROLES;
use crate::config::{RpcConfig, SignerConfig, TxConfig};
use crate::contract::HAVEN;
use crate::error::ChainError;
use crate::rpc::Rpc;
use crate::sender::{DirectNonces, NonceSource, TxRequest, TxSender};
use crate::signer::SignerPool;
use crate::store::StorageError;

/// Name the HAVEN deployment is recorded under.
pub const CONTRACT_NAME: &str = "HAVEN";

/// Settings of `haven-deploy`.
#[derive(clap::Args, Debug, Clone)]
pub struct DeployConfig {
    /// RPC endpoint and chain.
    #[command(flatten)]
    pub rpc: RpcConfig,

    /// Hex private key of the deployer. It becomes the contract's admin
    /// (DEFAULT_ADMIN_ROLE, and PAUSER/GOVERNANCE as the constructor grants).
    #[arg(long, env = "DEPLOYER_PRIVATE_KEY", hide_env_values = true)]
    pub deployer_private_key: Redacted<String>,

    /// The signer pool (SIGNER_PRIVATE_KEYS or SIGNER_MNEMONIC): each pool
    /// address is granted MINTER_ROLE and BURNER_ROLE. Optional.
    #[command(flatten)]
    pub signers: SignerConfig,

    /// More addresses to grant MINTER_ROLE and BURNER_ROLE (comma-separated).
    #[arg(long, env = "GRANT_MINTER_BURNER_TO", value_delimiter = ',')]
    pub grant_to: Vec<Address>,

    /// Database to record the deployment in (table `chain_deployments`; run
    /// the migrations first).
    #[arg(
        long,
        env = "DATABASE_URL",
        hide_env_values = true,
        conflicts_with = "deployment_file",
        required_unless_present = "deployment_file"
    )]
    pub database_url: Option<Redacted<String>>,

    /// JSON file to record the deployment in, instead of the database.
    #[arg(long, env = "DEPLOYMENT_FILE")]
    pub deployment_file: Option<PathBuf>,

    /// Fees and confirmations of the deployment transactions.
    #[command(flatten)]
    pub tx: TxConfig,
}

/// A recorded deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentRecord {
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// Contract name (`HAVEN`).
    pub contract: String,
    /// Contract address.
    pub address: Address,
    /// Creation transaction.
    pub tx_hash: TxHash,
    /// Block of the creation.
    pub block_number: u64,
    /// Deployer (admin).
    pub deployer: Address,
}

/// A role granted by this run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Grant {
    /// Who got it.
    pub account: Address,
    /// Which role, e.g. `MINTER_ROLE`.
    pub role: &'static str,
    /// The granting transaction.
    pub tx_hash: TxHash,
}

/// What `haven-deploy` did (its `--json` output).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Deployment {
    /// The deployment in use.
    #[serde(flatten)]
    pub record: DeploymentRecord,
    /// `true` when an earlier deployment was found and reused.
    pub reused: bool,
    /// Roles granted by this run (empty when every role was already there).
    pub granted: Vec<Grant>,
}

/// Where `haven-deploy` records each contract on each chain.
#[async_trait::async_trait]
pub trait DeploymentStore: Send + Sync + std::fmt::Debug {
    /// The record of `contract` on `chain_id`.
    async fn load(
        &self,
        chain_id: u64,
        contract: &str,
    ) -> Result<Option<DeploymentRecord>, StorageError>;

    /// Records `record`, replacing an older one of the same contract and chain.
    async fn save(&self, record: &DeploymentRecord) -> Result<(), StorageError>;
}

/// Deployments recorded in a JSON file holding a list of records (what
/// `cargo xtask up` uses: the file lives beside the stack's state, so a
/// fresh anvil makes it stale).
#[derive(Debug, Clone)]
pub struct DeploymentFile {
    path: PathBuf,
}

impl DeploymentFile {
    /// Records in the file at `path` (created on the first save).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self { path: path.into() }
    }
}

#[async_trait::async_trait]
impl DeploymentStore for DeploymentFile {
    async fn load(
        &self,
        chain_id: u64,
        contract: &str,
    ) -> Result<Option<DeploymentRecord>, StorageError> {
        Ok(read_file(&self.path)?
            .into_iter()
            .find(|r| r.chain_id == chain_id && r.contract == contract))
    }

    async fn save(&self, record: &DeploymentRecord) -> Result<(), StorageError> {
        let mut records = read_file(&self.path)?;
        records.retain(|r| !(r.chain_id == record.chain_id && r.contract == record.contract));
        records.push(record.clone());
        write_file(&self.path, &records)
    }
}

/// Deploys HAVEN unless a recorded deployment with code exists on the
/// configured chain, then grants MINTER_ROLE and BURNER_ROLE to every pool
/// signer and `grant_to` address that lacks them. The record goes to
/// `store` (the caller opens the one `config` names: see `haven-deploy`).
#[tracing::instrument(skip_all, fields(chain_id = config.rpc.chain_id))]
pub async fn deploy(
    config: &DeployConfig,
    store: &dyn DeploymentStore,
) -> Result<Deployment, ChainError> {
    let rpc = Rpc::new(&config.rpc)?;
    let chain_id = config.rpc.chain_id;
    let actual = rpc.chain_id().await?;
    if actual != chain_id {
        return Err(ChainError::WrongChainId {
            expected: chain_id,
            actual,
        });
    }
    let deployer: PrivateKeySigner = config
        .deployer_private_key
        .expose()
        .trim()
        .parse()
        .map_err(|_| {
            ChainError::Config("DEPLOYER_PRIVATE_KEY is not a valid private key".into())
        })?;
    let mut grantees = config.grant_to.clone();
    if config.signers.signer_private_keys.is_some() || config.signers.signer_mnemonic.is_some() {
        grantees.extend(SignerPool::from_config(&config.signers)?.addresses());
    }
    grantees.dedup();

    let sender = TxSender::new(
        rpc.clone(),
        NonceSource::Direct(Box::new(DirectNonces::new(deployer.clone()))),
        chain_id,
        &config.tx,
    )?;

    let (record, reused) = match store.load(chain_id, CONTRACT_NAME).await? {
        Some(record) if !rpc.code_at(record.address).await?.is_empty() => {
            tracing::info!(address = %record.address, "reusing the recorded deployment");
            (record, true)
        }
        stale => {
            if let Some(record) = stale {
                tracing::warn!(
                    address = %record.address,
                    "recorded deployment has no code on this chain (was the chain reset?); deploying again"
                );
            }
            let record = create(&sender, deployer.address(), chain_id).await?;
            store.save(&record).await?;
            (record, false)
        }
    };

    let mut granted = Vec::new();
    for role in SIGNER_ROLES {
        let id = role.id(&rpc, record.address).await?;
        for account in &grantees {
            if rpc.has_role(record.address, id, *account).await? {
                continue;
            }
            let confirmed = sender
                .send_and_confirm(TxRequest::call(
                    record.address,
                    &HAVEN::grantRoleCall {
                        role: id,
                        account: *account,
                    },
                ))
                .await?;
            tracing::info!(%account, role = role.name(), "role granted");
            granted.push(Grant {
                account: *account,
                role: role.name(),
                tx_hash: confirmed.tx_hash,
            });
        }
    }
    Ok(Deployment {
        record,
        reused,
        granted,
    })
}

/// Sends the creation transaction: the committed creation code with the
/// ABI-encoded constructor arguments appended.
async fn create(
    sender: &TxSender,
    admin: Address,
    chain_id: u64,
) -> Result<DeploymentRecord, ChainError> {
    let code: Bytes = [
        HAVEN::BYTECODE.as_ref(),
        HAVEN::constructorCall { admin }.abi_encode().as_slice(),
    ]
    .concat()
    .into();
    let confirmed = sender.send_and_confirm(TxRequest::create(code)).await?;
    let address = confirmed.contract_address.ok_or_else(|| {
        ChainError::Config("the creation receipt carries no contract address".into())
    })?;
    tracing::info!(%address, tx_hash = %confirmed.tx_hash, "HAVEN deployed");
    Ok(DeploymentRecord {
        chain_id,
        contract: CONTRACT_NAME.to_owned(),
        address,
        tx_hash: confirmed.tx_hash,
        block_number: confirmed.block_number,
        deployer: admin,
    })
}

fn read_file(path: &Path) -> Result<Vec<DeploymentRecord>, StorageError> {
    match std::fs::read(path) {
        Ok(bytes) if bytes.iter().all(u8::is_ascii_whitespace) => Ok(Vec::new()),
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|err| {
            StorageError::permanent(format!(
                "{} is not a deployment file: {err}",
                path.display()
            ))
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(StorageError::permanent(format!(
            "cannot read {}: {err}",
            path.display()
        ))),
    }
}

/// Writes through a temporary file and a rename, so a crash never leaves a
/// half-written record behind.
fn write_file(path: &Path, records: &[DeploymentRecord]) -> Result<(), StorageError> {
    let io = |err: std::io::Error| {
        StorageError::permanent(format!("cannot write {}: {err}", path.display()))
    };
    let json = serde_json::to_vec_pretty(records)
        .map_err(|err| StorageError::permanent(format!("cannot encode the deployment: {err}")))?;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, json).map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
