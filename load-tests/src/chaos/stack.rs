//! The system under test for one fault: a fresh PostgreSQL database and
//! broker namespace (both behind proxies a fault can cut), anvil with 1-s
//! blocks behind a proxy of its own, the contract deployed, the stand-in
//! payout provider, and the five services as supervised processes started
//! from their binaries with the command lines the end-to-end tests use.
//!
//! The matrix itself (load, checks) reaches the database, the broker and
//! anvil directly, never through the proxies: a cut hides them from the
//! services only.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::{Address, U256};
use anyhow::{Context as _, bail};
use haven_chain::contract::HAVEN;
use haven_chain::rpc::Rpc;
use haven_chain::testing::{AnvilInstance, deploy_for_tests};
use haven_common::testing::app::TestDeps;
use haven_common::testing::proxy::TcpProxy;
use haven_e2e::{PAYOUT_PROVIDER_TOKEN, SIGNER, command_lines};
use haven_entity::chain_store::DbDeployments;
use redemption_payout::provider::stand_in::{self, StandIn};
use sea_orm::DatabaseConnection;

use super::cluster::RabbitCluster;
use super::process::{Supervised, free_port};

/// chain-minter's settings besides the end-to-end tests' ones: finality as
/// in production (a reorganisation is one of the faults), and the
/// stuck-transaction sweep on the matrix's time scale (production waits 30
/// minutes before it calls a transaction stuck; a fault lasts seconds).
const MINTER_SETTINGS: &[&str] = &[
    "--finality-depth",
    "3",
    "--tx-stale-after",
    "20s",
    "--tx-sweep-interval",
    "5s",
];

/// The workers a second replica of is started by [`Stack::add_replicas`].
const WORKERS: &[&str] = &["reward-calculator", "chain-minter", "redemption-payout"];

/// Everything one fault runs against.
#[derive(Debug)]
pub struct Stack {
    /// The database and broker namespace, each behind a proxy.
    pub deps: TestDeps,
    /// The chain (the matrix talks to it directly).
    pub anvil: AnvilInstance,
    /// The proxy every service reaches anvil through.
    pub rpc_proxy: TcpProxy,
    /// The HAVEN contract.
    pub contract: Address,
    /// The stand-in payout provider.
    pub provider: StandIn,
    /// The running services, replicas included.
    pub services: Vec<Supervised>,
    /// The RabbitMQ cluster the row runs on, when not the machine's broker.
    pub cluster: Option<RabbitCluster>,
    bin_dir: PathBuf,
    log_dir: PathBuf,
    /// Stops the readiness prober.
    prober: tokio_util::sync::CancellationToken,
    args: Vec<(String, Vec<String>)>,
    rpc: Rpc,
}

impl Stack {
    /// Starts everything and waits until every service's `/health` is 200.
    /// Binaries come from `bin_dir`, logs go to `log_dir`.
    pub async fn start(bin_dir: &Path, log_dir: &Path) -> anyhow::Result<Self> {
        Self::start_on(TestDeps::new().await, None, bin_dir, log_dir).await
    }

    /// Like [`Stack::start`] with the broker a three-node cluster of its own
    /// (its files under `cluster_dir`).
    pub async fn start_on_cluster(
        bin_dir: &Path,
        log_dir: &Path,
        cluster_dir: &Path,
    ) -> anyhow::Result<Self> {
        let cluster = RabbitCluster::start(cluster_dir).await?;
        let deps = TestDeps::on_cluster(&cluster.urls()).await;
        Self::start_on(deps, Some(cluster), bin_dir, log_dir).await
    }

    async fn start_on(
        deps: TestDeps,
        cluster: Option<RabbitCluster>,
        bin_dir: &Path,
        log_dir: &Path,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("create {}", log_dir.display()))?;
        let anvil = AnvilInstance::spawn_with(&["--block-time", "1"]);
        let contract = deploy_for_tests(
            &anvil,
            &[SIGNER],
            &DbDeployments::new(deps.db.conn().clone()),
        )
        .await;
        let rpc_proxy = TcpProxy::start(format!("127.0.0.1:{}", anvil.port()))
            .await
            .context("start the RPC proxy")?;
        let rpc_url = format!("http://{}", rpc_proxy.addr());
        let provider = StandIn::start(stand_in::Options {
            api_token: Some(PAYOUT_PROVIDER_TOKEN.to_owned()),
            ..stand_in::Options::default()
        })
        .await
        .context("start the stand-in payout provider")?;
        let rpc = Rpc::new(&anvil.rpc_config()).context("RPC client")?;

        let broker = deps.args();
        let args = vec![
            command_lines::webhook_ingress(&broker),
            command_lines::reward_calculator(&broker),
            command_lines::chain_minter(&broker, &rpc_url, contract, MINTER_SETTINGS),
            command_lines::redemption_payout(&broker, &provider.url()),
            command_lines::read_api(&deps.database_args(), &rpc_url, contract, &[]),
        ];
        let mut stack = Self {
            deps,
            anvil,
            rpc_proxy,
            contract,
            provider,
            services: Vec::new(),
            cluster,
            prober: tokio_util::sync::CancellationToken::new(),
            bin_dir: bin_dir.to_owned(),
            log_dir: log_dir.to_owned(),
            args: args
                .into_iter()
                .map(|a| (a[0].clone(), a))
                .collect::<Vec<_>>(),
            rpc,
        };
        let names: Vec<String> = stack.args.iter().map(|(n, _)| n.clone()).collect();
        for name in &names {
            stack.spawn(name, name).await?;
        }
        stack.wait_healthy(Duration::from_secs(90)).await?;
        stack.probe_readiness();
        Ok(stack)
    }

    /// Calls every service's `/health` every 2 s, as Kubernetes' readiness
    /// probes do (their dependency gauges, which the alerts read, are
    /// refreshed by these calls).
    fn probe_readiness(&self) {
        let urls: Vec<String> = self.services.iter().map(|s| s.url().to_owned()).collect();
        let stop = self.prober.clone();
        tokio::spawn(async move {
            let client = reqwest::Client::new();
            loop {
                for url in &urls {
                    let _ = client
                        .get(format!("{url}/health"))
                        .timeout(Duration::from_secs(2))
                        .send()
                        .await;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(Duration::from_secs(2)) => {}
                }
            }
        });
    }

    /// `(service, base URL)` of every running process, replicas included.
    pub fn targets(&self) -> Vec<(String, String)> {
        self.services
            .iter()
            .map(|s| (s.name().to_owned(), s.url().to_owned()))
            .collect()
    }

    async fn spawn(&mut self, service: &str, instance: &str) -> anyhow::Result<()> {
        let args = self
            .args
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, a)| a.clone())
            .with_context(|| format!("no service {service}"))?;
        let process = Supervised::start(
            &self.bin_dir.join(service),
            args,
            free_port()?,
            self.log_dir.join(format!("{instance}.log")),
        )
        .await?;
        self.services.push(process);
        Ok(())
    }

    /// Starts a second process of every worker, sharing its queues.
    pub async fn add_replicas(&mut self) -> anyhow::Result<()> {
        for worker in WORKERS {
            self.spawn(worker, &format!("{worker}-2")).await?;
        }
        self.wait_healthy(Duration::from_secs(60)).await?;
        // The prober learns the replicas too.
        self.prober.cancel();
        self.prober = tokio_util::sync::CancellationToken::new();
        self.probe_readiness();
        Ok(())
    }

    /// The first process of `name`.
    pub fn service(&self, name: &str) -> anyhow::Result<&Supervised> {
        self.services
            .iter()
            .find(|s| s.name() == name)
            .with_context(|| format!("no service {name}"))
    }

    /// Base URL of webhook-ingress.
    pub fn ingress_url(&self) -> String {
        self.service("webhook-ingress")
            .map(|s| s.url().to_owned())
            .unwrap_or_default()
    }

    /// Base URL of read-api.
    pub fn read_api_url(&self) -> String {
        self.service("read-api")
            .map(|s| s.url().to_owned())
            .unwrap_or_default()
    }

    /// The test database (direct, not through the proxy).
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// The chain (direct).
    pub fn rpc(&self) -> &Rpc {
        &self.rpc
    }

    /// Whether every service's `/health` answers 200 now.
    pub async fn healthy(&self, client: &reqwest::Client) -> bool {
        self.down(client).await.is_empty()
    }

    /// The services whose `/health` does not answer 200 now.
    async fn down(&self, client: &reqwest::Client) -> Vec<&str> {
        let mut down = Vec::new();
        for service in &self.services {
            let ok = client
                .get(format!("{}/health", service.url()))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if !ok {
                down.push(service.name());
            }
        }
        down
    }

    /// Waits until [`Stack::healthy`].
    pub async fn wait_healthy(&self, within: Duration) -> anyhow::Result<()> {
        let client = reqwest::Client::new();
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let down = self.down(&client).await;
            if down.is_empty() {
                return Ok(());
            }
            if tokio::time::Instant::now() > deadline {
                bail!(
                    "not healthy within {within:?}: {} (logs in {})",
                    down.join(", "),
                    self.log_dir.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// A JSON-RPC call to anvil (its `anvil_*` test methods).
    pub async fn anvil_call(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> anyhow::Result<serde_json::Value> {
        use alloy::providers::Provider as _;
        self.rpc
            .provider()
            .raw_request::<_, serde_json::Value>(method.into(), params)
            .await
            .with_context(|| format!("anvil {method}"))
    }

    /// `balanceOf(wallet)`, in wei, read from the chain.
    pub async fn balance_of(&self, wallet: Address) -> anyhow::Result<U256> {
        self.rpc
            .view(self.contract, &HAVEN::balanceOfCall { account: wallet })
            .await
            .context("balanceOf")
    }

    /// How many times the services died and were started again.
    pub fn restarts(&self) -> u32 {
        self.services.iter().map(Supervised::restarts).sum()
    }

    /// Stops the services (gracefully) and the provider, and deletes the
    /// namespace; drops the database, or keeps it with `keep_database` and
    /// returns its URL.
    pub async fn stop(self, keep_database: bool) -> Option<String> {
        let Self {
            deps,
            anvil,
            rpc_proxy,
            provider,
            services,
            cluster,
            prober,
            ..
        } = self;
        prober.cancel();
        for service in services {
            service.stop().await;
        }
        provider.stop().await;
        drop((rpc_proxy, anvil));
        let kept = if keep_database {
            Some(deps.cleanup_keeping_database().await)
        } else {
            deps.cleanup().await;
            None
        };
        if let Some(cluster) = cluster {
            cluster.stop().await;
        }
        kept
    }
}
