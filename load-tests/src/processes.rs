//! The minting pipeline as operating-system processes, for the benchmarks
//! that report what each process costs (`pipeline-bench`, `soak`): a fresh
//! PostgreSQL database and broker namespace reached directly (no proxies: a
//! proxy's copying would be counted as the load generator's), anvil with
//! blocks every `block_time`, the contract deployed, and webhook-ingress,
//! reward-calculator and chain-minter started from their release binaries
//! with the command lines the end-to-end tests use. redemption-payout is
//! not started: these runs redeem nothing.

use std::path::{Path, PathBuf};
use std::time::Duration;

use alloy::primitives::Address;
use anyhow::{Context as _, bail};
use haven_chain::testing::{AnvilInstance, deploy_for_tests};
use haven_common::testing::app::TestDeps;
use haven_e2e::{AURORA_SECRET, SIGNER, command_lines};
use haven_entity::chain_store::DbDeployments;
use sea_orm::DatabaseConnection;
use webhook_ingress::signature::sender;

use crate::chaos::process::{Supervised, free_port};
use crate::cost::{Meter, Processes, Scraped, sum_samples};

/// The services started, in order.
const SERVICES: &[&str] = &["webhook-ingress", "reward-calculator", "chain-minter"];

/// The running pipeline.
#[derive(Debug)]
pub struct ServicePipeline {
    /// The database and broker namespace.
    pub deps: TestDeps,
    /// The chain.
    pub anvil: AnvilInstance,
    /// The HAVEN contract.
    pub contract: Address,
    services: Vec<Supervised>,
    client: reqwest::Client,
}

impl ServicePipeline {
    /// Starts everything and waits until every service's `/health` is 200.
    /// `bin_dir` holds the service binaries, their logs go to `log_dir`;
    /// `minter_settings` are added to chain-minter's command line.
    pub async fn start(
        block_time: Duration,
        bin_dir: &Path,
        log_dir: &Path,
        minter_settings: &[&str],
    ) -> anyhow::Result<Self> {
        for name in SERVICES {
            let program = bin_dir.join(name);
            if !program.is_file() {
                bail!(
                    "{} is missing: build the services first (`cargo build --release -p {name}`; `cargo xtask bench` does)",
                    program.display()
                );
            }
        }
        std::fs::create_dir_all(log_dir)
            .with_context(|| format!("create {}", log_dir.display()))?;
        let deps = TestDeps::new().await;
        let block_time = format!("{}", block_time.as_secs_f64());
        let anvil = AnvilInstance::spawn_with(&["--block-time", &block_time]);
        let contract = deploy_for_tests(
            &anvil,
            &[SIGNER],
            &DbDeployments::new(deps.db.conn().clone()),
        )
        .await;
        let broker = deps.direct_args();
        let rpc_url = anvil.endpoint();
        let lines = [
            command_lines::webhook_ingress(&broker),
            command_lines::reward_calculator(&broker),
            command_lines::chain_minter(&broker, &rpc_url, contract, minter_settings),
        ];
        let mut services = Vec::new();
        for args in lines {
            let name = args[0].clone();
            let log = log_dir.join(format!("{name}.log"));
            let _ = std::fs::remove_file(&log);
            services.push(Supervised::start(&bin_dir.join(&name), args, free_port()?, log).await?);
        }
        let pipeline = Self {
            deps,
            anvil,
            contract,
            services,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
        };
        pipeline.wait_healthy(Duration::from_secs(60)).await?;
        Ok(pipeline)
    }

    /// Where the binaries are when none is named: next to this program
    /// (`target/release` for `cargo run --release`).
    pub fn default_bin_dir() -> anyhow::Result<PathBuf> {
        let exe = std::env::current_exe().context("this program's path")?;
        Ok(exe.parent().context("this program's folder")?.to_path_buf())
    }

    async fn wait_healthy(&self, within: Duration) -> anyhow::Result<()> {
        let deadline = tokio::time::Instant::now() + within;
        for service in &self.services {
            loop {
                let ok = self
                    .client
                    .get(format!("{}/health", service.url()))
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success());
                if ok {
                    break;
                }
                if tokio::time::Instant::now() > deadline {
                    bail!(
                        "{} is not healthy after {within:?}; see its log",
                        service.name()
                    );
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Ok(())
    }

    fn service(&self, name: &str) -> &Supervised {
        #[allow(clippy::expect_used)]
        self.services
            .iter()
            .find(|s| s.name() == name)
            .expect("a started service")
    }

    /// webhook-ingress's base URL.
    pub fn ingress_url(&self) -> &str {
        self.service("webhook-ingress").url()
    }

    /// The database (the benchmark's own connection).
    pub fn db(&self) -> &DatabaseConnection {
        self.deps.db.conn()
    }

    /// The services' (name, pid), for memory samples.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.services
            .iter()
            .map(|s| (s.name().to_owned(), s.pid()))
            .collect()
    }

    /// Body and hex HMAC-SHA256 signature of an Aurora webhook.
    pub fn sign_aurora(body: &[u8]) -> anyhow::Result<String> {
        sender::hex_signature(AURORA_SECRET, body).context("sign with the Aurora secret")
    }

    /// Mints chain-minter has confirmed, from its own counter (no query in
    /// the database being measured).
    pub async fn confirmed_mints(&self) -> anyhow::Result<u64> {
        let text = self
            .client
            .get(format!("{}/metrics", self.service("chain-minter").url()))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("scrape chain-minter")?
            .text()
            .await?;
        let n = sum_samples(
            &text,
            "haven_chain_transactions_total",
            Some("kind=\"mint\",status=\"confirmed\""),
        );
        Ok(n as u64)
    }

    /// A meter of every process the run uses: each service, PostgreSQL,
    /// RabbitMQ, anvil and this program (the load generator).
    pub async fn meter(&self) -> anyhow::Result<Meter> {
        let mut processes: Vec<(String, Processes)> = self
            .services
            .iter()
            .map(|s| (s.name().to_owned(), Processes::Pid(s.pid())))
            .collect();
        processes.extend([
            ("postgresql".to_owned(), Processes::Named("postgres")),
            ("rabbitmq".to_owned(), Processes::Named("beam.smp")),
            ("anvil".to_owned(), Processes::Pid(self.anvil.pid())),
            ("load generator".to_owned(), Processes::This),
        ]);
        let scraped = self
            .services
            .iter()
            .map(|s| Scraped {
                name: s.name().to_owned(),
                url: s.url().to_owned(),
            })
            .collect();
        Meter::new(processes, scraped, self.db().clone()).await
    }

    /// Stops the services (SIGTERM, then their grace) and drops the
    /// database and the namespace.
    pub async fn stop(self) {
        for service in self.services {
            service.stop().await;
        }
        drop(self.anvil);
        self.deps.cleanup().await;
    }
}
