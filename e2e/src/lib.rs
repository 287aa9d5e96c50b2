//! The HAVEN pipeline in one process, for end-to-end tests and benchmarks:
//! a throw-away anvil with the contract deployed, a fresh database and
//! broker namespace, and webhook-ingress, reward-calculator, chain-minter
//! and redemption-payout (paying through an in-process stand-in payout
//! provider) running in-process against them, as `cargo xtask up` runs
//! them as processes; read-api on demand ([`Pipeline::start_read_api`]).
#![allow(clippy::expect_used)] // a failed expect is a broken test environment, said as such

pub mod command_lines;
pub mod otlp;

use std::time::Duration;

use alloy::primitives::{Address, U256};
use clap::Parser as _;
use haven_chain::contract::HAVEN;

use haven_chain::rpc::Rpc;
use haven_chain::testing::{AnvilInstance, deploy_for_tests};
use haven_common::testing::app::{TestApp, TestDeps};
use haven_common::testing::gateway::HttpGateway;
use haven_entity::chain_store::DbDeployments;
use redemption_payout::provider::stand_in::{self, StandIn};
use sea_orm::DatabaseConnection;
use webhook_ingress::signature::sender;

/// Aurora's webhook secret in the pipeline.
pub const AURORA_SECRET: &str = "e2e_aurora_secret";
/// Tribe's webhook secret.
pub const TRIBE_SECRET: &str = "e2e_tribe_secret";
/// The operators' API key.
pub const API_KEY: &str = "e2e_api_key";
/// Custody mnemonic of the users' wallets (anvil's well-known one: tests only).
pub const CUSTODY_MNEMONIC: &str = haven_chain::testing::DEV_MNEMONIC;
/// Dev account of the minting signer.
pub const SIGNER: u32 = 1;
/// The bearer token of the stand-in payout provider.
pub const PAYOUT_PROVIDER_TOKEN: &str = "e2e_payout_token";

/// The running pipeline.
#[derive(Debug)]
pub struct Pipeline {
    /// Fresh database and broker namespace.
    pub deps: TestDeps,
    /// The chain.
    pub anvil: AnvilInstance,
    /// The HAVEN contract.
    pub contract: Address,
    /// webhook-ingress.
    pub ingress: TestApp<webhook_ingress::Error>,
    /// reward-calculator.
    pub calculator: TestApp<reward_calculator::Error>,
    /// chain-minter.
    pub minter: TestApp<chain_minter::Error>,
    /// redemption-payout.
    pub payout: TestApp<redemption_payout::Error>,
    /// The stand-in payout provider redemption-payout pays through; script
    /// its failures with [`StandIn::script`].
    pub provider: StandIn,
    /// The gateway chain-minter reaches the chain through, when started
    /// with [`Pipeline::start_behind_gateway`]: close it to take the chain
    /// away from chain-minter alone.
    pub gateway: Option<HttpGateway>,
}

impl Pipeline {
    /// Starts everything; `anvil_args` e.g. `["--block-time", "1"]`.
    pub async fn start(anvil_args: &[&str], minter_args: &[&str]) -> Self {
        Self::start_on(TestDeps::new().await, anvil_args, minter_args, false).await
    }

    /// Starts everything with chain-minter reaching the chain through an
    /// [`HttpGateway`] ([`Pipeline::gateway`]); the other services and the
    /// test reach anvil directly.
    pub async fn start_behind_gateway(minter_args: &[&str]) -> Self {
        Self::start_on(TestDeps::new().await, &[], minter_args, true).await
    }

    /// Starts everything on one SQLite file, as `cargo xtask up` does by
    /// default: five pools (one per service) share it, as five processes do.
    pub async fn start_sqlite() -> Self {
        Self::start_on(TestDeps::sqlite().await, &[], &[], false).await
    }

    async fn start_on(
        deps: TestDeps,
        anvil_args: &[&str],
        minter_args: &[&str],
        behind_gateway: bool,
    ) -> Self {
        let anvil = AnvilInstance::spawn_with(anvil_args);
        let contract = deploy_for_tests(
            &anvil,
            &[SIGNER],
            &DbDeployments::new(deps.db.conn().clone()),
        )
        .await;
        let deps_args = deps.args();
        let rpc_url = anvil.endpoint();

        let args = command_lines::webhook_ingress(&deps_args);
        let config = webhook_ingress::Config::try_parse_from(args).expect("ingress settings");
        let ingress = TestApp::spawn(|l, s| webhook_ingress::run(config, l, s)).await;

        let args = command_lines::reward_calculator(&deps_args);
        let config = reward_calculator::Config::try_parse_from(args).expect("calculator settings");
        let calculator = TestApp::spawn(|l, s| reward_calculator::run(config, l, s)).await;

        let gateway = if behind_gateway {
            Some(
                HttpGateway::start(rpc_url.clone())
                    .await
                    .expect("start the RPC gateway"),
            )
        } else {
            None
        };
        let minter_rpc = gateway
            .as_ref()
            .map_or_else(|| rpc_url.clone(), HttpGateway::url);
        let args = command_lines::chain_minter(&deps_args, &minter_rpc, contract, minter_args);
        let config = chain_minter::Config::try_parse_from(args).expect("minter settings");
        let minter = TestApp::spawn(|l, s| chain_minter::run(config, l, s)).await;

        let provider = StandIn::start(stand_in::Options {
            api_token: Some(PAYOUT_PROVIDER_TOKEN.to_owned()),
            ..stand_in::Options::default()
        })
        .await
        .expect("start the stand-in payout provider");
        let args = command_lines::redemption_payout(&deps_args, &provider.url());
        let config = redemption_payout::Config::try_parse_from(args).expect("payout settings");
        let payout = TestApp::spawn(|l, s| redemption_payout::run(config, l, s)).await;

        for app in [
            &ingress.address,
            &calculator.address,
            &minter.address,
            &payout.address,
        ] {
            wait_healthy(&ingress.client, app).await;
        }
        Self {
            deps,
            anvil,
            contract,
            ingress,
            calculator,
            minter,
            payout,
            provider,
            gateway,
        }
    }

    /// Starts read-api on the pipeline's database and chain (the pipeline
    /// itself does not need it); `extra_args` e.g. `["--reconcile-interval",
    /// "1s"]`. Stop it before [`Pipeline::stop`].
    pub async fn start_read_api(&self, extra_args: &[&str]) -> TestApp<read_api::Error> {
        let args = command_lines::read_api(
            &self.deps.database_args(),
            &self.anvil.endpoint(),
            self.contract,
            extra_args,
        );
        let config = read_api::Config::try_parse_from(args).expect("read-api settings");
        let app = TestApp::spawn(|l, s| read_api::run(config, l, s)).await;
        wait_healthy(&app.client, &app.address).await;
        app
    }

    /// The database.
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// `balanceOf` on chain, in wei.
    pub async fn balance_of(&self, wallet: Address) -> u128 {
        let rpc = Rpc::new(&self.anvil.rpc_config()).expect("rpc client");
        let balance: U256 = rpc
            .view(self.contract, &HAVEN::balanceOfCall { account: wallet })
            .await
            .expect("balanceOf answers");
        balance.to::<u128>()
    }

    /// Waits until redemption `request_id` is in `state` (panics after
    /// `deadline` naming the state it is in).
    pub async fn wait_redemption(
        &self,
        request_id: uuid::Uuid,
        state: haven_entity::redemptions::RedemptionState,
        deadline: Duration,
    ) -> haven_entity::redemptions::Model {
        use sea_orm::EntityTrait as _;
        let started = tokio::time::Instant::now();
        loop {
            let row = haven_entity::redemptions::Entity::find_by_id(request_id)
                .one(self.db())
                .await
                .expect("read the redemption")
                .expect("the redemption exists");
            if row.state == state {
                return row;
            }
            assert!(
                started.elapsed() < deadline,
                "redemption {request_id} is {:?} ({:?}), not {state:?}, after {deadline:?}",
                row.state,
                row.failure_reason
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// POSTs a partner webhook with the raw-body hex signature; returns status and body.
    pub async fn webhook(
        &self,
        path: &str,
        payload: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::to_vec(payload).expect("json");
        let (secret, header) = if path.contains("/aurora/") {
            (AURORA_SECRET, "X-Aurora-Signature")
        } else {
            (TRIBE_SECRET, "X-Tribe-Signature")
        };
        let signature = sender::hex_signature(secret, &body).expect("a raw secret signs");
        self.post(path, body, &[(header, signature)]).await
    }

    /// POSTs a token command with the API key.
    pub async fn command(
        &self,
        path: &str,
        payload: &serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let body = serde_json::to_vec(payload).expect("json");
        self.post(path, body, &[("X-API-Key", API_KEY.to_owned())])
            .await
    }

    async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
        headers: &[(&str, String)],
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .ingress
            .client
            .post(format!("{}{path}", self.ingress.address))
            .header("content-type", "application/json")
            .body(body);
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().await.expect("webhook-ingress answers");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Stops the services and drops the dependencies.
    pub async fn stop(self) {
        self.ingress.stop().await;
        self.calculator.stop().await;
        self.minter.stop().await;
        self.payout.stop().await;
        self.provider.stop().await;
        self.deps.cleanup().await;
    }
}

async fn wait_healthy(client: &reqwest::Client, address: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(r) = client.get(format!("{address}/health")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{address} never became healthy"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
