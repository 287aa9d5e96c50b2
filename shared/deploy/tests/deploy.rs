//! `haven-deploy`: deploys once, reuses the recorded deployment afterwards.
#![allow(clippy::unwrap_used)] // a failed unwrap here is a failed test, with its message

use std::path::PathBuf;

use haven_chain::client::ChainClient;
use haven_chain::config::ChainConfig;
use haven_chain::deploy::{DeployConfig, DeploymentFile, deploy};
use haven_chain::error::ChainError;
use haven_chain::testing::{AnvilInstance, dev_key, dev_signer_config, test_tx_config};
use haven_common::config::Redacted;
use haven_common::testing::db::TestDb;
use haven_entity::chain_store::DbDeployments;

fn config(
    anvil: &AnvilInstance,
    database_url: Option<&str>,
    file: Option<PathBuf>,
) -> DeployConfig {
    DeployConfig {
        rpc: anvil.rpc_config(),
        deployer_private_key: Redacted::new(format!("0x{}", hex::encode(dev_key(0).to_bytes()))),
        signers: dev_signer_config(&[1, 2]),
        grant_to: vec![dev_key(3).address()],
        database_url: database_url.map(|u| Redacted::new(u.to_owned())),
        deployment_file: file,
        tx: test_tx_config(),
    }
}

/// The pool of `signers` against the deployment at `contract`.
fn chain_config(
    anvil: &AnvilInstance,
    contract: alloy::primitives::Address,
    signers: &[u32],
) -> ChainConfig {
    ChainConfig {
        rpc: anvil.rpc_config(),
        contract_address: contract,
        signers: dev_signer_config(signers),
        tx: test_tx_config(),
    }
}

#[tokio::test]
async fn deploying_twice_reuses_the_recorded_deployment() {
    let anvil = AnvilInstance::spawn();
    let db = TestDb::new().await;
    let cfg = config(&anvil, Some(db.url()), None);
    let store = DbDeployments::new(db.conn().clone());

    let first = deploy(&cfg, &store).await.expect("deploys");
    assert!(!first.reused);
    assert_eq!(first.record.chain_id, 31337);
    assert_eq!(first.record.deployer, dev_key(0).address());
    // MINTER and BURNER for the two pool signers and the extra address.
    assert_eq!(first.granted.len(), 6);

    let second = deploy(&cfg, &store).await.expect("reuses");
    assert!(second.reused);
    assert_eq!(second.record, first.record);
    assert!(second.granted.is_empty(), "roles are only granted once");

    // The pool can now start: roles and code are in place.
    ChainClient::connect(&chain_config(&anvil, first.record.address, &[1, 2]))
        .await
        .expect("services start against the deployment");

    // Wrong chain id: refused before anything is sent.
    let mut wrong = cfg.clone();
    wrong.rpc.chain_id = 5;
    assert!(matches!(
        deploy(&wrong, &store).await,
        Err(ChainError::WrongChainId {
            expected: 5,
            actual: 31337
        })
    ));
    db.cleanup().await;
}

#[tokio::test]
async fn a_recorded_deployment_without_code_is_deployed_again() {
    let file = std::env::temp_dir().join(format!("haven-deploy-{}.json", uuid::Uuid::new_v4()));
    let first = {
        let anvil = AnvilInstance::spawn();
        deploy(
            &config(&anvil, None, Some(file.clone())),
            &DeploymentFile::new(&file),
        )
        .await
        .unwrap()
    };
    // A fresh chain (same id, empty state): the record points at nothing.
    let anvil = AnvilInstance::spawn();
    let cfg = config(&anvil, None, Some(file.clone()));
    let store = DeploymentFile::new(&file);
    let again = deploy(&cfg, &store).await.unwrap();
    assert!(!again.reused);
    // Same deployer, nonce and chain: the same address, now with code again.
    assert_eq!(again.record.address, first.record.address);
    let rpc = haven_chain::rpc::Rpc::new(&anvil.rpc_config()).unwrap();
    assert!(!rpc.code_at(again.record.address).await.unwrap().is_empty());
    assert_eq!(
        again.granted.len(),
        6,
        "roles granted again on the new chain"
    );
    let reused = deploy(&cfg, &store).await.unwrap();
    assert!(reused.reused);
    assert_eq!(reused.record, again.record);
    let _ = std::fs::remove_file(file);
}

#[tokio::test]
async fn the_binary_prints_json_for_xtask() {
    let anvil = AnvilInstance::spawn();
    let file = std::env::temp_dir().join(format!("haven-deploy-{}.json", uuid::Uuid::new_v4()));
    let run = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_haven-deploy"))
            .env_clear()
            .args([
                "--rpc-url",
                &anvil.endpoint(),
                "--chain-id",
                "31337",
                "--json",
            ])
            .arg("--deployment-file")
            .arg(&file)
            .env(
                "DEPLOYER_PRIVATE_KEY",
                format!("0x{}", hex::encode(dev_key(0).to_bytes())),
            )
            .env(
                "SIGNER_PRIVATE_KEYS",
                format!("0x{}", hex::encode(dev_key(1).to_bytes())),
            )
            .output()
            .expect("runs")
    };
    let out = run();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("stdout is JSON only");
    assert_eq!(json["chain_id"], 31337);
    assert_eq!(json["reused"], false);
    assert_eq!(json["granted"].as_array().unwrap().len(), 2);
    let address = json["address"].as_str().unwrap().to_owned();
    // No secret reaches the output.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains(&hex::encode(dev_key(0).to_bytes())));

    let out = run();
    assert!(out.status.success());
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["reused"], true);
    assert_eq!(json["address"], address.as_str());
    let _ = std::fs::remove_file(file);
}
