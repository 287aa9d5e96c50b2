//! Against a real anvil with the HAVEN contract deployed: token-stats with
//! the contract's figures, and reconciliation finding a planted mismatch,
//! through the `read-api reconcile` command and the periodic task.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap here is a failed test

use std::time::Duration;

use alloy::network::EthereumWallet;
use alloy::primitives::{Address, U256};
use alloy::providers::{DynProvider, Provider, ProviderBuilder};
use clap::Parser as _;
use haven_chain::contract::{HAVEN, encode_reason};
use haven_chain::testing::{AnvilInstance, deploy_for_tests, dev_key};
use haven_common::testing::app::{TestApp, TestDeps};
use haven_entity::chain_store::DbDeployments;
use haven_entity::ledger::{Account, Movement};
use haven_entity::ledger_movements::MovementKind;
use haven_entity::token_transactions::{self, TxStatus, TxType};
use read_api::Config;
use sea_orm::ActiveValue::Set;
use sea_orm::{ActiveModelTrait, ColumnTrait, EntityTrait, QueryFilter};
use serde_json::{Value, json};

use crate::helpers::{hnv, post, token_tx, user, wallet};

/// The dev account granted MINTER and BURNER by the deployment.
const MINTER: u32 = 1;

/// The contract on a fresh anvil, and a client that mints and burns as MINTER.
struct Chain {
    anvil: AnvilInstance,
    contract: Address,
    token: HAVEN::HAVENInstance<DynProvider>,
}

impl Chain {
    async fn start(deps: &TestDeps) -> Self {
        let anvil = AnvilInstance::spawn();
        let contract = deploy_for_tests(
            &anvil,
            &[MINTER],
            &DbDeployments::new(deps.db.conn().clone()),
        )
        .await;
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .fetch_chain_id()
            .wallet(EthereumWallet::from(dev_key(MINTER)))
            .connect_http(anvil.endpoint().parse().unwrap())
            .erased();
        let token = HAVEN::new(contract, provider);
        Self {
            anvil,
            contract,
            token,
        }
    }

    fn wei(n: u64) -> U256 {
        U256::from(n) * U256::from(10u64).pow(U256::from(18))
    }

    async fn mint(&self, to: &str, hnv: u64) {
        let reason = encode_reason("test").unwrap();
        self.token
            .mint(to.parse().unwrap(), Self::wei(hnv), reason)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    async fn burn(&self, from: &str, hnv: u64) {
        let reason = encode_reason("test").unwrap();
        self.token
            .burnFrom(from.parse().unwrap(), Self::wei(hnv), reason)
            .send()
            .await
            .unwrap()
            .get_receipt()
            .await
            .unwrap();
    }

    fn args(&self) -> Vec<String> {
        vec![
            "--rpc-url".into(),
            self.anvil.endpoint(),
            "--contract-address".into(),
            self.contract.to_string(),
        ]
    }
}

/// `read-api reconcile --output <file>`, the real binary: exit code and report.
async fn reconcile_command(deps: &TestDeps, chain: &Chain) -> (i32, Value) {
    let dir = std::env::temp_dir().join(format!("read-api-reconcile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.json");
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_read-api"))
        .env_clear()
        .env("DATABASE_URL", deps.db.url())
        .env("RPC_URL", chain.anvil.endpoint())
        .env("CONTRACT_ADDRESS", chain.contract.to_string())
        .env("LOG_FORMAT", "json")
        .args(["reconcile", "--output"])
        .arg(&report)
        .output()
        .await
        .unwrap();
    let code = output.status.code().unwrap();
    let text = std::fs::read_to_string(&report).unwrap_or_else(|err| {
        panic!(
            "no report ({err}); exit {code}, stdout {}, stderr {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let _ = std::fs::remove_dir_all(&dir);
    (code, serde_json::from_str(&text).unwrap())
}

fn total<'a>(report: &'a Value, kind: &str) -> &'a Value {
    report["totals"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["kind"] == kind)
        .unwrap()
}

#[tokio::test]
async fn reconciliation_finds_a_planted_mismatch_and_fixes_nothing() {
    let deps = TestDeps::new().await;
    let chain = Chain::start(&deps).await;
    let db = deps.db.conn();
    let (wa, wb, wc) = (wallet(100), wallet(101), wallet(102));

    // Phase 0: one user, ledger and chain agree (a mint and a burn each).
    let a = user(db, "recon-a", None, &wa, false).await;
    token_tx(
        db,
        a,
        "a-mint",
        TxType::Mint,
        hnv(100),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    token_tx(
        db,
        a,
        "a-burn",
        TxType::Burn,
        hnv(10),
        "reversal",
        TxStatus::Confirmed,
    )
    .await;
    chain.mint(&wa, 100).await;
    chain.burn(&wa, 10).await;
    let (code, report) = reconcile_command(&deps, &chain).await;
    assert_eq!(code, 0, "{report}");
    assert_eq!(report["matched"], true);
    assert_eq!(report["users_checked"], 1);
    assert_eq!(total(&report, "total_minted")["outcome"], "match");
    assert_eq!(total(&report, "total_burned")["ledger"], json!(10.0));

    // Phase 1: B's ledger says 70 where the chain holds 50 (planted); C has
    // a mint in flight that the chain already has.
    let b = user(db, "recon-b", None, &wb, false).await;
    token_tx(
        db,
        b,
        "b-mint",
        TxType::Mint,
        hnv(70),
        "booking",
        TxStatus::Confirmed,
    )
    .await;
    chain.mint(&wb, 50).await;
    let c = user(db, "recon-c", None, &wc, false).await;
    token_tx(
        db,
        c,
        "c-mint",
        TxType::Mint,
        hnv(30),
        "event",
        TxStatus::Confirmed,
    )
    .await;
    let in_flight = token_tx(
        db,
        c,
        "c-mint-2",
        TxType::Mint,
        hnv(5),
        "event",
        TxStatus::Submitted,
    )
    .await;
    chain.mint(&wc, 35).await;

    let (code, report) = reconcile_command(&deps, &chain).await;
    assert_eq!(code, 2, "mismatches exit with 2: {report}");
    assert_eq!(report["matched"], false);
    assert_eq!(report["users_checked"], 3);
    assert_eq!(report["user_mismatches"], 1);
    let mismatch = &report["mismatches"][0];
    assert_eq!(mismatch["user_id"], "recon-b");
    assert_eq!(mismatch["wallet_address"], wb);
    assert_eq!(mismatch["ledger_balance"], json!(70.0));
    assert_eq!(mismatch["chain_balance"], json!(50.0));
    assert_eq!(mismatch["difference"], json!(-20.0));
    assert_eq!(report["user_unsettled"], 1);
    assert_eq!(report["unsettled"][0]["user_id"], "recon-c");
    assert_eq!(report["in_flight_transactions"], 1);
    // With a transaction in flight the totals' difference is not (yet) a mismatch.
    assert_eq!(total(&report, "total_minted")["outcome"], "unsettled");

    // Nothing was fixed: the ledger still says 70 for B.
    let (_, balance) = spawned_get(&deps, &chain, "/token/balance/recon-b").await;
    assert_eq!(balance["balance"], json!(70.0));

    // Phase 2: C's mint is recorded as confirmed (ledger 35 = chain 35), so
    // nothing is in flight and the totals' difference is B's 20.
    let row = token_transactions::Entity::find()
        .filter(token_transactions::Column::Id.eq(in_flight))
        .one(db)
        .await
        .unwrap()
        .unwrap();
    let mut confirmed: token_transactions::ActiveModel = row.into();
    confirmed.status = Set(TxStatus::Confirmed);
    confirmed.update(db).await.unwrap();
    post(
        db,
        Movement::transfer(
            "mint:c-mint-2",
            MovementKind::Mint,
            Account::Supply,
            Account::UserAvailable(c),
            hnv(5),
        )
        .unwrap(),
    )
    .await;

    // The periodic task runs once at start.
    let app = spawn(
        &deps,
        &chain,
        &["--reconcile-interval", "1h", "--stats-cache-ttl", "0s"],
    )
    .await;
    let report = wait_for_report(&app).await;
    assert_eq!(report["matched"], false);
    assert_eq!(report["user_mismatches"], 1);
    assert_eq!(report["user_unsettled"], 0);
    assert_eq!(report["contract_address"], chain.contract.to_string());
    let minted = total(&report, "total_minted");
    assert_eq!(minted["ledger"], json!(205.0));
    assert_eq!(minted["chain"], json!(185.0));
    assert_eq!(minted["difference"], json!(-20.0));
    assert_eq!(minted["outcome"], "mismatch");
    assert_eq!(total(&report, "total_burned")["outcome"], "match");
    assert_eq!(total(&report, "total_supply")["outcome"], "mismatch");

    let metrics = app.get_text("/metrics", 200).await;
    for line in [
        r#"haven_reconciliation_mismatches{kind="user_balance",service="read-api"} 1"#,
        r#"haven_reconciliation_mismatches{kind="total_minted",service="read-api"} 1"#,
        r#"haven_reconciliation_mismatches{kind="total_burned",service="read-api"} 0"#,
        r#"haven_reconciliation_mismatches{kind="total_supply",service="read-api"} 1"#,
        r#"haven_reconciliation_unsettled{kind="user_balance",service="read-api"} 0"#,
        r#"haven_reconciliation_runs_total{outcome="mismatched",service="read-api"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from:\n{metrics}");
    }

    // token-stats: the ledger's figures next to the contract's.
    let (status, stats) = app.get_json("/analytics/token-stats").await;
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["total_minted"], json!(205.0));
    assert_eq!(stats["total_burned"], json!(10.0));
    assert_eq!(stats["circulating_supply"], json!(195.0));
    let on_chain = &stats["chain"];
    assert_eq!(on_chain["status"], "available", "{stats}");
    assert_eq!(on_chain["total_supply"], json!(175.0));
    assert_eq!(on_chain["total_minted"], json!(185.0));
    assert_eq!(on_chain["total_burned"], json!(10.0));
    assert_eq!(on_chain["circulating_supply"], json!(175.0));
    assert_eq!(on_chain["supply_cap"], json!(1000000000.0));
    assert_eq!(on_chain["matches_database"], false);
    assert!(on_chain["block_number"].as_u64().unwrap() > 0);
    let metrics = app.get_text("/metrics", 200).await;
    assert!(metrics.contains(r#"haven_token_stats_chain_up{service="read-api"} 1"#));

    app.finish_app().await;
    drop(chain);
    deps.cleanup().await;
}

/// With the chain configured, `/health` names it, and turns red when the
/// node goes away (the database still connected).
#[tokio::test]
async fn health_names_the_chain_when_one_is_configured() {
    let deps = TestDeps::new().await;
    let chain = Chain::start(&deps).await;
    let app = spawn(&deps, &chain, &["--reconcile-interval", "0s"]).await;
    app.0.assert_healthy_with(&["database", "blockchain"]).await;
    drop(chain);
    let body = app.0.wait_for_health(503, Duration::from_secs(30)).await;
    assert_eq!(
        body,
        json!({"status": "unhealthy", "database": "connected", "blockchain": "disconnected"})
    );
    app.finish_app().await;
    deps.cleanup().await;
}

/// read-api on `deps` and `chain` with `extra` settings.
async fn spawn(deps: &TestDeps, chain: &Chain, extra: &[&str]) -> App {
    let args = std::iter::once("read-api".to_owned())
        .chain(deps.database_args())
        .chain(chain.args())
        .chain(extra.iter().map(|s| (*s).to_owned()));
    let config = Config::try_parse_from(args).unwrap();
    App(TestApp::spawn(|listener, shutdown| read_api::run(config, listener, shutdown)).await)
}

/// A service sharing the test's dependencies (not owning them, unlike `helpers::Spawned`).
struct App(TestApp<read_api::Error>);

impl App {
    async fn get_json(&self, path: &str) -> (u16, Value) {
        let res = self.0.get(path).await;
        (res.status().as_u16(), res.json().await.unwrap())
    }

    async fn get_text(&self, path: &str, status: u16) -> String {
        let res = self.0.get(path).await;
        assert_eq!(res.status().as_u16(), status, "{path}");
        res.text().await.unwrap()
    }

    async fn finish_app(self) {
        self.0.stop().await;
    }
}

/// One GET on a short-lived service (periodic reconciliation off).
async fn spawned_get(deps: &TestDeps, chain: &Chain, path: &str) -> (u16, Value) {
    let app = spawn(deps, chain, &["--reconcile-interval", "0s"]).await;
    let answer = app.get_json(path).await;
    app.finish_app().await;
    answer
}

/// Polls `/analytics/reconciliation` until the first report is there.
async fn wait_for_report(app: &App) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body) = app.get_json("/analytics/reconciliation").await;
        if status == 200 {
            return body;
        }
        assert_eq!(status, 404, "{body}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no report within 60 s: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
