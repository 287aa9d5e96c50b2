//! Test helpers (feature `test-util`): a throw-away anvil node per test.
//!
//! The binary comes from the npm package `@foundry-rs/anvil` installed at
//! the workspace root (`npm ci`, run by `cargo xtask`), or from `ANVIL_BIN`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use alloy::signers::local::{MnemonicBuilder, PrivateKeySigner};
use haven_common::config::Redacted;

use crate::config::{RpcConfig, SignerConfig, TxConfig};

/// Mnemonic of anvil's funded development accounts.
pub const DEV_MNEMONIC: &str = "test test test test test test test test test test test junk";

/// anvil's default chain id.
pub const ANVIL_CHAIN_ID: u64 = 31337;

/// A running anvil on a free port, killed when dropped.
#[derive(Debug)]
pub struct AnvilInstance {
    child: Child,
    port: u16,
}

impl AnvilInstance {
    /// Starts anvil with its defaults (automine, chain id 31337, 10 funded accounts).
    pub fn spawn() -> Self {
        Self::spawn_with(&[])
    }

    /// Starts anvil with extra arguments (e.g. `["--no-mining"]`).
    ///
    /// # Panics
    /// When no anvil binary is found or it does not start: a test
    /// environment problem, reported with what to do about it.
    pub fn spawn_with(args: &[&str]) -> Self {
        let bin = anvil_bin();
        let mut child = Command::new(&bin)
            .args(["--port", "0", "--host", "127.0.0.1"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start anvil at {}: {err}", bin.display()));
        let stdout = child.stdout.take().expect("stdout is piped");
        let mut lines = BufReader::new(stdout).lines();
        let port = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(addr) = line.trim().strip_prefix("Listening on ") {
                        let port = addr
                            .rsplit(':')
                            .next()
                            .and_then(|p| p.trim().parse::<u16>().ok())
                            .unwrap_or_else(|| panic!("cannot parse anvil's address `{addr}`"));
                        break port;
                    }
                }
                _ => {
                    let _ = child.kill();
                    panic!("anvil exited before listening");
                }
            }
        };
        // Keep draining stdout: a full pipe would block anvil.
        std::thread::spawn(move || for _ in lines.by_ref() {});
        Self { child, port }
    }

    /// The node's process id (for a benchmark's CPU accounting).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The node's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://127.0.0.1:{port}`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Funded development account `index` (0..10).
    pub fn key(&self, index: u32) -> PrivateKeySigner {
        dev_key(index)
    }

    /// An [`RpcConfig`] for this node with short timeouts and fast polling.
    pub fn rpc_config(&self) -> RpcConfig {
        RpcConfig {
            rpc_url: Redacted::new(self.endpoint()),
            chain_id: ANVIL_CHAIN_ID,
            rpc_timeout: Duration::from_secs(5),
            rpc_retries: 2,
            poll_interval: Duration::from_millis(100),
        }
    }
}

impl Drop for AnvilInstance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Funded development account `index` of [`DEV_MNEMONIC`].
pub fn dev_key(index: u32) -> PrivateKeySigner {
    MnemonicBuilder::english()
        .phrase(DEV_MNEMONIC)
        .index(index)
        .and_then(|b| b.build())
        .expect("the development mnemonic derives")
}

/// The `CUSTODY_XPUB` of [`DEV_MNEMONIC`]: what reward-calculator is given in
/// tests whose user wallets are the development mnemonic's.
pub fn dev_custody_xpub() -> String {
    crate::signer::CustodyAddresses::from_mnemonic(&Redacted::new(DEV_MNEMONIC.to_owned()))
        .and_then(|addresses| addresses.to_xpub())
        .expect("the development mnemonic has an xpub")
}

/// A [`SignerConfig`] of the given development accounts, as private keys.
pub fn dev_signer_config(indexes: &[u32]) -> SignerConfig {
    let keys = indexes
        .iter()
        .map(|i| format!("0x{}", hex::encode(dev_key(*i).to_bytes())))
        .collect::<Vec<_>>()
        .join(",");
    SignerConfig {
        signer_private_keys: Some(Redacted::new(keys)),
        signer_mnemonic: None,
        signer_count: 1,
    }
}

/// A [`TxConfig`] for tests: one confirmation, replacement after 2 blocks.
pub fn test_tx_config() -> TxConfig {
    TxConfig {
        confirmations: 1,
        max_fee_per_gas: 200_000_000_000,
        max_priority_fee_per_gas: 20_000_000_000,
        min_priority_fee_per_gas: 1_000_000_000,
        stuck_after_blocks: 2,
        lease_ttl: Duration::from_secs(30),
    }
}

/// The anvil binary: `ANVIL_BIN`, else the native binary of the npm
/// package (so killing it kills the node, not a Node.js wrapper), else
/// the `node_modules/.bin/anvil` wrapper.
fn anvil_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("ANVIL_BIN") {
        return PathBuf::from(bin);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    for dir in manifest.ancestors() {
        let scope = dir.join("node_modules/@foundry-rs");
        if let Ok(entries) = std::fs::read_dir(&scope) {
            for entry in entries.flatten() {
                let native = entry.path().join("bin/anvil");
                if entry.file_name().to_string_lossy().starts_with("anvil-") && native.is_file() {
                    return native;
                }
            }
        }
        let wrapper = dir.join("node_modules/.bin/anvil");
        if wrapper.is_file() {
            return wrapper;
        }
    }
    panic!("anvil not found: run `npm ci` at the workspace root or set ANVIL_BIN")
}

/// Deploys HAVEN on `anvil` with dev account 0, granting MINTER and BURNER
/// to the dev accounts `signers`, and records it in `store` (the
/// `chain_deployments` table through `haven_entity::chain_store`, where the
/// services read the deployment block). Retries the first requests a node that has just started
/// may drop.
///
/// # Panics
/// When the deployment fails for good: a broken test environment.
pub async fn deploy_for_tests(
    anvil: &AnvilInstance,
    signers: &[u32],
    store: &dyn crate::deploy::DeploymentStore,
) -> alloy::primitives::Address {
    let config = crate::deploy::DeployConfig {
        rpc: anvil.rpc_config(),
        deployer_private_key: Redacted::new(format!("0x{}", hex::encode(dev_key(0).to_bytes()))),
        signers: dev_signer_config(signers),
        grant_to: vec![],
        // The store is given; these only say where the CLI would record it.
        database_url: None,
        deployment_file: None,
        tx: test_tx_config(),
    };
    let mut deployed = crate::deploy::deploy(&config, store).await;
    for _ in 0..3 {
        match &deployed {
            Err(err) if err.is_retryable() => {
                eprintln!("deploy failed ({err}); retrying");
                tokio::time::sleep(Duration::from_millis(500)).await;
                deployed = crate::deploy::deploy(&config, store).await;
            }
            _ => break,
        }
    }
    deployed.expect("the contract deploys").record.address
}
