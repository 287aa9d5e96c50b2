//! A three-node RabbitMQ cluster of its own, beside the machine's broker,
//! for the row that loses a node: nodes `haven-chaos<N>@localhost` with
//! AMQP on `127.0.0.1:568<N>` and distribution on `2568<N>`, each with its
//! own data, log and config in a directory the `rabbitmq` user owns (the
//! machine's `/etc/rabbitmq/rabbitmq.conf` names port 5672, so each node
//! gets a config file of its own). The nodes share the machine's Erlang
//! cookie, which is how they may join one another. The services' quorum
//! queues get a member on every node.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use tokio::process::Command;
use tokio::time::Instant;

/// Nodes in the cluster.
pub const NODES: u8 = 3;
/// How long a node may take to boot.
const BOOT_TIMEOUT: Duration = Duration::from_secs(90);
/// The `rabbitmq-server` script that runs a node in the foreground or,
/// with `-detached`, in the background (the `/usr/sbin` wrapper switches
/// to the `rabbitmq` user, which is done here with `su`).
const SERVER: &str = "/usr/lib/rabbitmq/bin/rabbitmq-server";

/// The running cluster; [`RabbitCluster::stop`] stops every node and
/// removes its files.
#[derive(Debug)]
pub struct RabbitCluster {
    dir: PathBuf,
}

impl RabbitCluster {
    /// Whether this machine can run one: RabbitMQ's server script and a
    /// `rabbitmq` user, and root to become it.
    pub fn available() -> bool {
        Path::new(SERVER).exists()
            && nix::unistd::User::from_name("rabbitmq")
                .ok()
                .flatten()
                .is_some()
            && nix::unistd::geteuid().is_root()
    }

    /// Starts the three nodes under `dir` (removed first) and joins the
    /// second and third to the first.
    pub async fn start(dir: &Path) -> anyhow::Result<Self> {
        let cluster = Self {
            dir: dir.to_owned(),
        };
        // Nodes of an earlier run that was killed.
        for n in 1..=NODES {
            let _ = ctl(n, &["stop"]).await;
        }
        let _ = std::fs::remove_dir_all(dir);
        for n in 1..=NODES {
            cluster.boot(n).await?;
        }
        for n in 2..=NODES {
            ctl(n, &["stop_app"]).await?;
            ctl(n, &["join_cluster", &node_name(1)]).await?;
            ctl(n, &["start_app"]).await?;
        }
        Ok(cluster)
    }

    /// The AMQP URLs of the nodes, first node first.
    pub fn urls(&self) -> Vec<String> {
        (1..=NODES)
            .map(|n| format!("amqp://guest:guest@127.0.0.1:{}/%2f", amqp_port(n)))
            .collect()
    }

    /// Stops node `n`'s broker application (the Erlang node stays up, as
    /// when RabbitMQ itself fails); [`RabbitCluster::start_node`] brings it back.
    pub async fn stop_node(&self, n: u8) -> anyhow::Result<()> {
        ctl(n, &["stop_app"]).await
    }

    /// Starts node `n`'s broker application again; it rejoins the cluster.
    pub async fn start_node(&self, n: u8) -> anyhow::Result<()> {
        ctl(n, &["start_app"]).await?;
        ctl(n, &["await_startup"]).await
    }

    /// Stops every node and removes their files.
    pub async fn stop(self) {
        for n in 1..=NODES {
            if let Err(err) = ctl(n, &["stop"]).await {
                tracing::warn!(node = %node_name(n), error = %err, "could not stop a cluster node");
            }
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }

    async fn boot(&self, n: u8) -> anyhow::Result<()> {
        let dir = self.dir.join(format!("node{n}"));
        std::fs::create_dir_all(dir.join("mnesia"))?;
        std::fs::create_dir_all(dir.join("log"))?;
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!(
                "listeners.tcp.1 = 127.0.0.1:{}\nloopback_users.guest = true\n",
                amqp_port(n)
            ),
        )?;
        std::fs::write(dir.join("enabled_plugins"), "[].\n")?;
        std::fs::write(
            dir.join("rabbitmq-env.conf"),
            "ERL_EPMD_ADDRESS=127.0.0.1\n",
        )?;
        // The rabbitmq user must reach and own its directory.
        let mut parent = Some(self.dir.as_path());
        while let Some(p) = parent {
            use std::os::unix::fs::PermissionsExt as _;
            if let Ok(meta) = std::fs::metadata(p) {
                let mut perms = meta.permissions();
                perms.set_mode(perms.mode() | 0o011);
                let _ = std::fs::set_permissions(p, perms);
            }
            parent = p.parent();
        }
        run(Command::new("chown")
            .args(["-R", "rabbitmq:rabbitmq"])
            .arg(&self.dir))
        .await?;

        let d = dir.display();
        let env = [
            ("RABBITMQ_NODENAME", node_name(n)),
            ("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1".to_owned()),
            ("RABBITMQ_NODE_PORT", amqp_port(n).to_string()),
            ("RABBITMQ_DIST_PORT", (25680 + u16::from(n)).to_string()),
            ("RABBITMQ_MNESIA_BASE", format!("{d}/mnesia")),
            ("RABBITMQ_LOG_BASE", format!("{d}/log")),
            ("RABBITMQ_CONFIG_FILE", format!("{d}/rabbitmq.conf")),
            (
                "RABBITMQ_ADVANCED_CONFIG_FILE",
                format!("{d}/advanced.config"),
            ),
            (
                "RABBITMQ_ENABLED_PLUGINS_FILE",
                format!("{d}/enabled_plugins"),
            ),
            ("RABBITMQ_CONF_ENV_FILE", format!("{d}/rabbitmq-env.conf")),
            (
                "ERL_FLAGS",
                "-kernel inet_dist_use_interface {127,0,0,1}".to_owned(),
            ),
            ("ERL_CRASH_DUMP", format!("{d}/erl_crash.dump")),
        ];
        let mut start = Command::new("su");
        start
            .args(["rabbitmq", "-s", "/bin/sh", "-c"])
            .arg(format!("cd {d} && {SERVER} -detached"))
            .envs(env);
        run(&mut start).await?;
        // `await_startup` fails at once until the node is registered.
        let started = Instant::now();
        loop {
            if ctl(n, &["await_startup", "--timeout", "60"]).await.is_ok() {
                return Ok(());
            }
            if started.elapsed() > BOOT_TIMEOUT {
                bail!(
                    "{} did not boot within {BOOT_TIMEOUT:?} (logs in {d}/log)",
                    node_name(n)
                );
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

fn node_name(n: u8) -> String {
    format!("haven-chaos{n}@localhost")
}

fn amqp_port(n: u8) -> u16 {
    5680 + u16::from(n)
}

async fn ctl(n: u8, args: &[&str]) -> anyhow::Result<()> {
    run(Command::new("rabbitmqctl")
        .args(["-q", "-n", &node_name(n)])
        .args(args))
    .await
}

/// Runs a command, its stderr in the error when it fails.
pub(super) async fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command
        .output()
        .await
        .with_context(|| format!("run {:?}", command.as_std().get_program()))?;
    if !output.status.success() {
        bail!(
            "{:?} {:?} failed ({}): {}",
            command.as_std().get_program(),
            command.as_std().get_args().collect::<Vec<_>>(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
