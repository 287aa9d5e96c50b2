//! Startup checks: every bad setting is a clear error and a 503, never a
//! panic or a hang.

use std::sync::Arc;
use std::time::Duration;

use alloy::primitives::Address;
use haven_chain::client::{ChainClient, Role};
use haven_chain::error::ChainError;
use haven_chain::testing::AnvilInstance;
use haven_common::config::Redacted;
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::MetricsRegistry;

use crate::helpers::{chain_config, deploy_haven};

/// A port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn health_status(probe: impl Probe) -> (u16, serde_json::Value) {
    let registry = MetricsRegistry::new("test").unwrap();
    let probes: Vec<Arc<dyn Probe>> = vec![Arc::new(probe)];
    let router = ops_router(registry, probes).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let res = reqwest::get(format!("http://{addr}/health")).await.unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

#[tokio::test]
async fn a_good_configuration_connects_and_reports_healthy() {
    let anvil = AnvilInstance::spawn();
    let minter = anvil.key(1).address();
    let contract = deploy_haven(&anvil, &[minter]).await;
    let client = ChainClient::connect(&chain_config(&anvil, contract, &[1]))
        .await
        .expect("connects");
    assert_eq!(client.chain_id(), 31337);
    let probe = client.probe();
    assert_eq!(probe.name(), "blockchain");
    let (status, body) = health_status(probe).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["blockchain"], "connected");
}

#[tokio::test]
async fn each_bad_setting_names_its_problem_and_turns_health_red() {
    let anvil = AnvilInstance::spawn();
    let minter = anvil.key(1).address();
    let contract = deploy_haven(&anvil, &[minter]).await;
    let good = chain_config(&anvil, contract, &[1]);

    // Nothing listening at RPC_URL.
    let mut cfg = good.clone();
    cfg.rpc.rpc_url = Redacted::new(format!("http://127.0.0.1:{}", closed_port()));
    cfg.rpc.rpc_retries = 1;
    let err = ChainClient::connect(&cfg).await.unwrap_err();
    assert!(matches!(err, ChainError::Unreachable { .. }), "{err:?}");
    assert!(err.to_string().contains("RPC_URL"), "{err}");
    let client = ChainClient::unchecked(&cfg, &[]).unwrap();
    let (status, body) = health_status(client.probe()).await;
    assert_eq!((status, &body["blockchain"]), (503, &"disconnected".into()));

    // Not a URL at all: refused before any network traffic.
    let mut cfg = good.clone();
    cfg.rpc.rpc_url = Redacted::new("not a url".into());
    let err = ChainClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(err, ChainError::Config(ref m) if m.contains("RPC_URL")),
        "{err:?}"
    );

    // Wrong chain id.
    let mut cfg = good.clone();
    cfg.rpc.chain_id = 1;
    let err = ChainClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::WrongChainId {
                expected: 1,
                actual: 31337
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("CHAIN_ID"), "{err}");
    let (status, _) = health_status(ChainClient::unchecked(&cfg, &[]).unwrap().probe()).await;
    assert_eq!(status, 503);

    // No code at the contract address.
    let mut cfg = good.clone();
    let empty = Address::repeat_byte(0xAB);
    cfg.contract_address = empty;
    let err = ChainClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(err, ChainError::NoContractCode { address, chain_id: 31337 } if address == empty),
        "{err:?}"
    );
    assert!(err.to_string().contains("CONTRACT_ADDRESS"), "{err}");

    // A signer without the role.
    let cfg = chain_config(&anvil, contract, &[1, 6]);
    let err = ChainClient::connect(&cfg).await.unwrap_err();
    assert!(
        matches!(err, ChainError::MissingRole { signer, role: "MINTER_ROLE", .. } if signer == anvil.key(6).address()),
        "{err:?}"
    );
    let (status, _) = health_status(
        ChainClient::unchecked(&cfg, &[Role::Minter, Role::Burner])
            .unwrap()
            .probe(),
    )
    .await;
    assert_eq!(status, 503);
    // A read-only service does not need the roles.
    ChainClient::connect_with_roles(&cfg, &[])
        .await
        .expect("no roles needed");
}

#[tokio::test]
async fn an_endpoint_that_never_answers_times_out_instead_of_hanging() {
    // Accepts connections and never writes a byte.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let anvil = AnvilInstance::spawn();
    let mut cfg = chain_config(&anvil, Address::repeat_byte(1), &[1]);
    cfg.rpc.rpc_url = Redacted::new(format!("http://{addr}"));
    cfg.rpc.rpc_timeout = Duration::from_millis(300);
    cfg.rpc.rpc_retries = 1;
    let err = tokio::time::timeout(Duration::from_secs(30), ChainClient::connect(&cfg))
        .await
        .expect("connect must give up by itself")
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::Timeout {
                method: "eth_chainId",
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.is_retryable());
}
