//! The faults of the matrix, each made on the running stack as an outage
//! would make it: the machine's own broker and database stopped and
//! started, connections cut by the proxies between the services and what
//! they use, `kill -9` of a process, the chain reorganised or its fees
//! spiked, a second replica of every worker, the payout provider failing.

use std::time::Duration;

use anyhow::{Context as _, bail};
use clap::ValueEnum;
use redemption_payout::provider::stand_in::Reply;
use serde::Serialize;
use serde_json::json;
use tokio::process::Command;
use tokio::time::Instant;

use super::cluster::run;
use super::stack::Stack;

/// One row of the matrix.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fault {
    /// No fault: the same load and checks, the baseline of the other rows.
    None,
    /// The machine's RabbitMQ stopped (`rabbitmqctl stop_app`) and started again.
    BrokerRestart,
    /// Every service's broker connection cut through the proxy, then restored.
    BrokerCut,
    /// The machine's PostgreSQL restarted (`pg_ctlcluster ... restart -m fast`).
    DatabaseRestart,
    /// Every service's database connections cut through the proxy for 30 s.
    DatabaseCut,
    /// `kill -9` of webhook-ingress at a random moment (the supervisor restarts it).
    KillWebhookIngress,
    /// `kill -9` of reward-calculator.
    KillRewardCalculator,
    /// `kill -9` of chain-minter.
    KillChainMinter,
    /// `kill -9` of redemption-payout.
    KillRedemptionPayout,
    /// `kill -9` of read-api.
    KillReadApi,
    /// The chain RPC cut between the services and anvil for 60 s.
    RpcCut,
    /// anvil reorganises its last 3 blocks (`anvil_reorg`), twice, after
    /// mints were recorded confirmed: their transactions are gone.
    Reorg,
    /// Mining stops for 15 s (transactions wait in the mempool), then the
    /// base fee jumps to 1,000 gwei for 10 s (anvil drops what pays less),
    /// then falls back to 1 gwei.
    StuckTransactions,
    /// A second process of every worker shares the queues; one of each
    /// pair is killed mid-load.
    Replicas,
    /// The payout provider answers 503 for 20 s, then loses the answers of
    /// its next three creations (the payouts are made), then is healthy.
    PayoutFailing,
    /// On a three-node RabbitMQ cluster of the matrix's own (quorum queues
    /// on every node), the node the services first connect to stops its
    /// broker for 20 s and comes back.
    BrokerNodeLost,
}

impl Fault {
    /// Every row, in the table's order.
    pub fn all() -> Vec<Self> {
        Self::value_variants().to_vec()
    }

    /// The row's name (its `--only` value).
    pub fn name(self) -> String {
        self.to_possible_value()
            .map(|v| v.get_name().to_owned())
            .unwrap_or_default()
    }

    /// How the fault is made, for the table.
    pub fn how(self) -> &'static str {
        match self {
            Fault::None => "nothing broken",
            Fault::BrokerRestart => "rabbitmqctl stop_app, 10 s, start_app",
            Fault::BrokerCut => "broker proxy cut 20 s",
            Fault::DatabaseRestart => "pg_ctlcluster restart -m fast",
            Fault::DatabaseCut => "database proxy cut 30 s",
            Fault::KillWebhookIngress => "kill -9 webhook-ingress",
            Fault::KillRewardCalculator => "kill -9 reward-calculator",
            Fault::KillChainMinter => "kill -9 chain-minter",
            Fault::KillRedemptionPayout => "kill -9 redemption-payout",
            Fault::KillReadApi => "kill -9 read-api",
            Fault::RpcCut => "RPC proxy cut 60 s",
            Fault::Reorg => "anvil_reorg depth 3, twice",
            Fault::StuckTransactions => "mining paused 15 s, base fee 1000 gwei 10 s",
            Fault::Replicas => "2 of each worker, kill -9 one of each",
            Fault::PayoutFailing => "provider 503 for 20 s, 3 answers lost",
            Fault::BrokerNodeLost => "3-node cluster, 1 node stopped 20 s",
        }
    }

    /// Whether the row needs the stack started with a second replica of
    /// every worker.
    pub fn needs_replicas(self) -> bool {
        self == Fault::Replicas
    }

    /// The alerts of `deploy/prometheus/alerts.yml` the fault must raise
    /// (pending or firing) while it lasts. The `none` row must raise none.
    pub fn expected_alerts(self) -> &'static [&'static str] {
        match self {
            Fault::BrokerRestart | Fault::BrokerCut | Fault::DatabaseCut | Fault::RpcCut => {
                &["HavenDependencyDown"]
            }
            Fault::Reorg => &["HavenChainReorganisation"],
            Fault::PayoutFailing => &["HavenPayoutFailures"],
            _ => &[],
        }
    }

    /// Whether the row runs on a RabbitMQ cluster of its own.
    pub fn needs_cluster(self) -> bool {
        self == Fault::BrokerNodeLost
    }

    /// Makes the fault on `stack`, returning once it is over (the cut
    /// restored, the process started again, the broker back).
    pub async fn inject(self, stack: &Stack) -> anyhow::Result<()> {
        match self {
            Fault::None => Ok(()),
            Fault::BrokerRestart => {
                rabbitmqctl("stop_app").await?;
                tokio::time::sleep(Duration::from_secs(10)).await;
                rabbitmqctl("start_app").await?;
                rabbitmqctl("await_startup").await
            }
            Fault::BrokerCut => {
                cut(&stack.deps.amqp_proxy, Duration::from_secs(20)).await;
                Ok(())
            }
            Fault::DatabaseRestart => restart_postgres().await,
            Fault::DatabaseCut => {
                cut(stack.deps.db_proxy(), Duration::from_secs(30)).await;
                Ok(())
            }
            Fault::KillWebhookIngress => kill(stack, "webhook-ingress").await,
            Fault::KillRewardCalculator => kill(stack, "reward-calculator").await,
            Fault::KillChainMinter => kill(stack, "chain-minter").await,
            Fault::KillRedemptionPayout => kill(stack, "redemption-payout").await,
            Fault::KillReadApi => kill(stack, "read-api").await,
            Fault::RpcCut => {
                cut(&stack.rpc_proxy, Duration::from_secs(60)).await;
                Ok(())
            }
            Fault::Reorg => {
                for _ in 0..2 {
                    stack.anvil_call("anvil_reorg", json!([3, []])).await?;
                    tokio::time::sleep(Duration::from_secs(10)).await;
                }
                Ok(())
            }
            Fault::StuckTransactions => stuck_transactions(stack).await,
            Fault::Replicas => {
                for worker in ["reward-calculator", "chain-minter", "redemption-payout"] {
                    if !stack.service(worker)?.kill9() {
                        bail!("{worker} was not running");
                    }
                }
                Ok(())
            }
            Fault::PayoutFailing => {
                stack.provider.script([], Reply::Fail(503));
                tokio::time::sleep(Duration::from_secs(20)).await;
                stack
                    .provider
                    .script(std::iter::repeat_n(Reply::AcceptThenHang, 3), Reply::Accept);
                Ok(())
            }
            Fault::BrokerNodeLost => {
                let cluster = stack
                    .cluster
                    .as_ref()
                    .context("the row runs on a cluster")?;
                cluster.stop_node(1).await?;
                tokio::time::sleep(Duration::from_secs(20)).await;
                cluster.start_node(1).await
            }
        }
    }
}

async fn cut(proxy: &haven_common::testing::proxy::TcpProxy, hold: Duration) {
    proxy.cut();
    tokio::time::sleep(hold).await;
    proxy.restore();
}

async fn kill(stack: &Stack, name: &str) -> anyhow::Result<()> {
    let service = stack.service(name)?;
    if !service.kill9() {
        bail!("{name} was not running");
    }
    // Over once it is back.
    let started = Instant::now();
    while service.restarts() == 0 {
        if started.elapsed() > Duration::from_secs(30) {
            bail!("{name} was not started again");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn stuck_transactions(stack: &Stack) -> anyhow::Result<()> {
    const HIGH: &str = "0xe8d4a51000"; // 1,000 gwei
    const LOW: &str = "0x3b9aca00"; // 1 gwei
    stack
        .anvil_call("anvil_setIntervalMining", json!([0]))
        .await?;
    tokio::time::sleep(Duration::from_secs(15)).await;
    stack
        .anvil_call("anvil_setNextBlockBaseFeePerGas", json!([HIGH]))
        .await?;
    stack
        .anvil_call("anvil_setIntervalMining", json!([1]))
        .await?;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        stack
            .anvil_call("anvil_setNextBlockBaseFeePerGas", json!([HIGH]))
            .await?;
    }
    stack
        .anvil_call("anvil_setNextBlockBaseFeePerGas", json!([LOW]))
        .await?;
    Ok(())
}

async fn rabbitmqctl(action: &str) -> anyhow::Result<()> {
    run(Command::new("rabbitmqctl").arg(action)).await
}

async fn restart_postgres() -> anyhow::Result<()> {
    let version = std::fs::read_dir("/etc/postgresql")
        .context("list /etc/postgresql (a local Debian PostgreSQL cluster is restarted)")?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().into_string().ok())
        .max()
        .context("no cluster under /etc/postgresql")?;
    run(Command::new("pg_ctlcluster").args([
        "--skip-systemctl-redirect",
        &version,
        "main",
        "restart",
        "-m",
        "fast",
    ]))
    .await
}
