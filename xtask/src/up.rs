//! `cargo xtask up`: the whole system on this machine.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::net::{IpAddr, Ipv4Addr, TcpListener};
use std::ops::ControlFlow;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::builder::FalseyValueParser;

use crate::console::{Color, Console};
use crate::infra::{self, Endpoint};
use crate::npm;
use crate::stack::{
    self, Chain, DEFAULT_AMQP_URL, DevSecrets, LogFormat, Plan, SERVICES, ServicePlan,
};
use crate::supervisor::{Supervisor, Wake};
use crate::workspace::{Workspace, cargo};

/// Package of the `migrate` binary.
const MIGRATIONS_PACKAGE: &str = "haven-migrations";
/// Binary that deploys the token contract (shared/deploy/src/main.rs).
/// It gets `RPC_URL`, `CHAIN_ID` and `DEPLOYER_PRIVATE_KEY` and prints the
/// contract address (0x + 40 hex digits) as the last line of its stdout.
pub const DEPLOY_BIN: &str = "haven-deploy";
/// Shutdown stages: services stop before the chain they may still be using.
const STAGE_CHAIN: u8 = 0;
const STAGE_SERVICES: u8 = 1;

/// Options of `cargo xtask up`. Every flag has an environment twin.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Database of the services. Default: a SQLite file,
    /// `target/haven-dev/haven.db`. A `postgres://` URL uses PostgreSQL
    /// (its database must exist; a local server that is down is started).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// RabbitMQ. When a local broker does not answer and `rabbitmq-server` is
    /// installed, it is started.
    #[arg(long, env = "AMQP_URL", default_value = DEFAULT_AMQP_URL, hide_env_values = true)]
    pub amqp_url: String,

    /// Prefix of every exchange and queue name (to share a broker).
    #[arg(long, env = "AMQP_NAMESPACE", default_value = "")]
    pub amqp_namespace: String,

    /// Address the services listen on.
    #[arg(long, env = "HTTP_HOST", default_value_t = IpAddr::V4(Ipv4Addr::LOCALHOST))]
    pub http_host: IpAddr,

    /// Port of webhook-ingress.
    #[arg(long, env = "HAVEN_WEBHOOK_INGRESS_PORT", default_value_t = SERVICES[0].default_port)]
    pub webhook_ingress_port: u16,

    /// Port of read-api.
    #[arg(long, env = "HAVEN_READ_API_PORT", default_value_t = SERVICES[1].default_port)]
    pub read_api_port: u16,

    /// Port of reward-calculator (health and metrics).
    #[arg(long, env = "HAVEN_REWARD_CALCULATOR_PORT", default_value_t = SERVICES[2].default_port)]
    pub reward_calculator_port: u16,

    /// Port of chain-minter (health and metrics).
    #[arg(long, env = "HAVEN_CHAIN_MINTER_PORT", default_value_t = SERVICES[3].default_port)]
    pub chain_minter_port: u16,

    /// Port of redemption-payout (health and metrics).
    #[arg(long, env = "HAVEN_REDEMPTION_PAYOUT_PORT", default_value_t = SERVICES[4].default_port)]
    pub redemption_payout_port: u16,

    /// JSON-RPC port of anvil (it listens on 127.0.0.1).
    #[arg(long, env = "ANVIL_PORT", default_value_t = 8545)]
    pub anvil_port: u16,

    /// Seconds between anvil blocks; 0 mines a block per transaction instead.
    #[arg(long, env = "ANVIL_BLOCK_TIME", default_value_t = 1)]
    pub block_time: u64,

    /// Chain id of anvil.
    #[arg(long, env = "ANVIL_CHAIN_ID", default_value_t = 31337)]
    pub chain_id: u64,

    /// anvil binary to use instead of the one from npm (e.g. from foundryup).
    #[arg(long, env = "ANVIL_BIN")]
    pub anvil_bin: Option<PathBuf>,

    /// Show anvil's output (one line per RPC call; hidden by default, but
    /// its last lines are still reported if it dies).
    #[arg(long, env = "HAVEN_ANVIL_LOGS", value_parser = FalseyValueParser::new())]
    pub anvil_logs: bool,

    /// Log format of the services.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,

    /// Log filter of the services.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub rust_log: String,

    /// Do not build: use the binaries already in the target directory.
    #[arg(long, env = "HAVEN_NO_BUILD", value_parser = FalseyValueParser::new())]
    pub no_build: bool,

    /// Build and run the release profile.
    #[arg(long, env = "HAVEN_RELEASE", value_parser = FalseyValueParser::new())]
    pub release: bool,

    /// Keep the default SQLite database of the previous run. By default it
    /// starts empty, like the chain (anvil keeps no state between runs), so
    /// the database never refers to transactions of a chain that is gone.
    #[arg(long, env = "HAVEN_KEEP_DB", value_parser = FalseyValueParser::new())]
    pub keep_db: bool,

    /// Generate new dev secrets instead of reusing target/haven-dev/secrets.json.
    #[arg(long, env = "HAVEN_NEW_SECRETS", value_parser = FalseyValueParser::new())]
    pub new_secrets: bool,

    /// Seconds to wait for RabbitMQ, PostgreSQL or anvil to answer after starting them.
    #[arg(long, env = "HAVEN_START_TIMEOUT_SECS", default_value_t = 120)]
    pub start_timeout_secs: u64,

    /// Seconds to wait for every service's /health to answer 200.
    #[arg(long, env = "HAVEN_HEALTH_TIMEOUT_SECS", default_value_t = 60)]
    pub health_timeout_secs: u64,

    /// Seconds each process gets to exit after SIGTERM before it is killed.
    #[arg(long, env = "HAVEN_SHUTDOWN_GRACE_SECS", default_value_t = 15)]
    pub shutdown_grace_secs: u64,
}

impl UpArgs {
    fn ports(&self) -> [u16; 5] {
        [
            self.webhook_ingress_port,
            self.read_api_port,
            self.reward_calculator_port,
            self.chain_minter_port,
            self.redemption_payout_port,
        ]
    }

    fn start_timeout(&self) -> Duration {
        Duration::from_secs(self.start_timeout_secs)
    }

    fn anvil_options(&self, ws: &Workspace) -> AnvilOptions {
        AnvilOptions {
            port: self.anvil_port,
            chain_id: self.chain_id,
            block_time: self.block_time,
            start_timeout: self.start_timeout(),
            logs: self.anvil_logs,
            config_out: ws.dev_dir().join("anvil.json"),
        }
    }
}

/// How [`start_anvil`] runs anvil (`cargo xtask up`'s flags, or the image
/// check's free port).
#[derive(Debug, Clone)]
pub(crate) struct AnvilOptions {
    /// JSON-RPC port on 127.0.0.1.
    pub port: u16,
    /// Chain id.
    pub chain_id: u64,
    /// Seconds between blocks; 0 mines a block per transaction.
    pub block_time: u64,
    /// How long to wait for it to answer.
    pub start_timeout: Duration,
    /// Echo its output.
    pub logs: bool,
    /// Where it writes its accounts (`--config-out`, private keys: owner-only).
    pub config_out: PathBuf,
}

/// How a run ended when it did not fail outright.
pub(crate) enum Outcome {
    /// Ctrl-C or SIGTERM: a clean stop.
    Stopped,
    /// Something did not come up or died; the message says what.
    Failed(String),
}

/// Unwraps a step's value, or ends the run with the step's outcome.
macro_rules! proceed {
    ($step:expr) => {
        match $step {
            ControlFlow::Continue(value) => value,
            ControlFlow::Break(outcome) => return Ok(outcome),
        }
    };
}

/// Runs the stack until Ctrl-C / SIGTERM (exit 0) or a failure (exit 1).
pub fn run(args: UpArgs, ws: &Workspace, console: Console) -> anyhow::Result<ExitCode> {
    let dev_dir = ws.dev_dir();
    fs::create_dir_all(&dev_dir).with_context(|| format!("creating {}", dev_dir.display()))?;
    let stack_path = dev_dir.join("stack.json");
    // A stack.json left by a killed run describes nothing that runs.
    let _ = fs::remove_file(&stack_path);

    // Until something long-lived runs, Ctrl-C's default action is right: it
    // ends xtask and the build it waits for. From here on xtask handles it.
    let Some(prepared) = prepare(&args, ws, console)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let (tx, rx) = mpsc::channel();
    ctrlc::set_handler(move || {
        // A full channel cannot happen (unbounded); a closed one means xtask is exiting.
        let _ = tx.send(());
    })
    .context("installing the Ctrl-C / SIGTERM handler")?;
    let mut supervisor = Supervisor::new(console, rx);

    let outcome = start_and_watch(&args, ws, console, &mut supervisor, prepared, &stack_path);
    let code = match &outcome {
        Ok(Outcome::Stopped) => {
            console.info("stop requested: stopping the stack");
            ExitCode::SUCCESS
        }
        Ok(Outcome::Failed(why)) => {
            console.error(why);
            console.error("stopping the stack");
            ExitCode::FAILURE
        }
        Err(err) => {
            console.error(&format!("{err:#}"));
            console.error("stopping the stack");
            ExitCode::FAILURE
        }
    };
    supervisor.shutdown(Duration::from_secs(args.shutdown_grace_secs));
    let _ = fs::remove_file(&stack_path);
    console.info("stopped");
    Ok(code)
}

/// What the steps before anything long-lived runs produce.
struct Prepared {
    bin_dir: PathBuf,
    anvil: PathBuf,
    deploy: Option<PathBuf>,
    plan: Plan,
}

/// Build, tools, secrets, database and broker: nothing long-lived yet.
fn prepare(args: &UpArgs, ws: &Workspace, console: Console) -> anyhow::Result<Option<Prepared>> {
    let dev_dir = ws.dev_dir();
    let services = Plan::services_on(args.ports(), &[("anvil", args.anvil_port)])?;
    let secrets = DevSecrets::load_or_generate(&dev_dir.join("secrets.json"), args.new_secrets)?;

    let deploy_package = ws.package_of_bin(DEPLOY_BIN).map(str::to_owned);
    let bin_dir = ws.bin_dir(args.release);
    if args.no_build {
        console.info("build: skipped (--no-build)");
    } else if !build(args, ws, deploy_package.as_deref(), console)? {
        return Ok(None);
    }
    for name in SERVICES
        .iter()
        .map(|s| s.name)
        .chain(["migrate", stack::PAYOUT_STAND_IN])
    {
        let path = bin_dir.join(name);
        if !path.is_file() {
            bail!(
                "{} is missing: build it (`cargo build --bins`) or run without --no-build",
                path.display()
            );
        }
    }
    let deploy = deploy_package.map(|_| bin_dir.join(DEPLOY_BIN));

    let anvil = match &args.anvil_bin {
        Some(anvil) => {
            npm::check_anvil(anvil)?;
            anvil.clone()
        }
        None => npm::ensure(&ws.root, console)?.anvil(),
    };

    let database_url = match &args.database_url {
        Some(url) => {
            if url.starts_with("postgres") {
                let endpoint = Endpoint::from_url(url).context("DATABASE_URL")?;
                if endpoint.is_local() {
                    infra::ensure_postgres(&endpoint, &dev_dir, args.start_timeout(), console)?;
                }
            }
            url.clone()
        }
        None => {
            let file = dev_dir.join("haven.db");
            if !args.keep_db {
                remove_sqlite(&file)?;
            }
            console.info(&format!("database: SQLite at {}", file.display()));
            stack::sqlite_url(&file)
        }
    };
    infra::ensure_rabbitmq(&args.amqp_url, &dev_dir, args.start_timeout(), console)?;
    check_ports_free(args, &services)?;

    let plan = Plan {
        services,
        http_host: args.http_host,
        database_url,
        amqp_url: args.amqp_url.clone(),
        amqp_namespace: args.amqp_namespace.clone(),
        log_format: args.log_format,
        rust_log: args.rust_log.clone(),
        custody_xpub: secrets.custody_xpub()?,
        secrets,
        chain: Chain {
            rpc_url: format!("http://127.0.0.1:{}", args.anvil_port),
            chain_id: args.chain_id,
            accounts: Vec::new(),
            contract_address: None,
        },
    };
    Ok(Some(Prepared {
        bin_dir,
        anvil,
        deploy,
        plan,
    }))
}

/// Deletes a SQLite database with its WAL and shared-memory files.
fn remove_sqlite(file: &Path) -> anyhow::Result<()> {
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("haven.db");
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let path = file.with_file_name(format!("{name}{suffix}"));
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).with_context(|| format!("removing {}", path.display())),
        }
    }
    Ok(())
}

/// `cargo build --bins` of the services, the migrations and the deployer.
/// Returns false when the build was interrupted by a signal.
fn build(
    args: &UpArgs,
    ws: &Workspace,
    deploy_package: Option<&str>,
    console: Console,
) -> anyhow::Result<bool> {
    let packages = stack_packages(deploy_package);
    let mut command = stack_build(ws, &packages, args.release);
    console.info(&format!(
        "build: cargo build --bins{} of {}",
        if args.release { " --release" } else { "" },
        packages.iter().copied().collect::<Vec<_>>().join(", ")
    ));
    let started = Instant::now();
    let status = command
        .stdin(Stdio::null())
        .status()
        .context("running cargo build")?;
    if !status.success() {
        if interrupted(status) {
            return Ok(false);
        }
        bail!("cargo build failed ({status})");
    }
    console.info(&format!(
        "build: done in {:.1}s",
        started.elapsed().as_secs_f64()
    ));
    Ok(true)
}

/// The packages of the stack: the services, the migrations, the deployer.
pub fn stack_packages(deploy_package: Option<&str>) -> BTreeSet<&str> {
    SERVICES
        .iter()
        .map(|s| s.name)
        .chain([MIGRATIONS_PACKAGE])
        .chain(deploy_package)
        .collect()
}

/// `cargo build --bins` of `packages`, as `cargo xtask up` builds them (the
/// same packages in one build, so the same features: a second build of the
/// stack, by the fault matrix, compiles nothing again).
pub fn stack_build(ws: &Workspace, packages: &BTreeSet<&str>, release: bool) -> Command {
    let mut command = Command::new(cargo());
    command.args(["build", "--bins"]).current_dir(&ws.root);
    if release {
        command.arg("--release");
    }
    for package in packages {
        command.args(["--package", package]);
    }
    command
}

/// Whether a command ended because of Ctrl-C or SIGTERM.
fn interrupted(status: ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    matches!(status.signal(), Some(2 | 15)) || status.code() == Some(130)
}

/// A port already taken fails here with its owner's name, not later as a
/// service crash.
fn check_ports_free(args: &UpArgs, services: &[ServicePlan]) -> anyhow::Result<()> {
    let wanted = services
        .iter()
        .map(|s| (args.http_host, s.port, s.spec.name))
        .chain([(IpAddr::V4(Ipv4Addr::LOCALHOST), args.anvil_port, "anvil")]);
    for (host, port, name) in wanted {
        if let Err(err) = TcpListener::bind((host, port)) {
            bail!(
                "port {port} for {name} is not free on {host} ({err}): is another \
                 `cargo xtask up` running? Stop it or pass --{name}-port"
            );
        }
    }
    Ok(())
}

fn start_and_watch(
    args: &UpArgs,
    ws: &Workspace,
    console: Console,
    supervisor: &mut Supervisor,
    prepared: Prepared,
    stack_path: &Path,
) -> anyhow::Result<Outcome> {
    let Prepared {
        bin_dir,
        anvil,
        deploy,
        mut plan,
    } = prepared;

    plan.chain.accounts = proceed!(start_anvil(&args.anvil_options(ws), supervisor, &anvil)?);
    console.info(&format!(
        "anvil: chain {} at {} ({} funded dev accounts)",
        plan.chain.chain_id,
        plan.chain.rpc_url,
        plan.chain.accounts.len()
    ));

    plan.chain.contract_address = proceed!(deploy_contract(
        deploy.as_deref(),
        &ws.dev_dir().join("deployment.json"),
        &plan,
        supervisor,
        console,
        |command| command,
    )?);

    proceed!(migrate(
        &bin_dir.join("migrate"),
        &plan,
        supervisor,
        console,
        |command| command
    )?);

    // The local payout provider redemption-payout pays through; stopped
    // with the chain, after the services that call it.
    let mut command = Command::new(bin_dir.join(stack::PAYOUT_STAND_IN));
    command.envs(plan.payout_stand_in_env());
    if !console.colored() {
        command.env("NO_COLOR", "1");
    }
    supervisor.spawn(
        stack::PAYOUT_STAND_IN,
        STAGE_CHAIN,
        Some(Color::Grey),
        true,
        command,
    )?;

    let mut pids = BTreeMap::new();
    for service in &plan.services {
        let mut command = Command::new(bin_dir.join(service.spec.name));
        command.envs(plan.service_env(service));
        if !console.colored() {
            // Escape codes in a log file or a CI log are noise; tracing honours NO_COLOR.
            command.env("NO_COLOR", "1");
        }
        let pid = supervisor.spawn(service.spec.name, STAGE_SERVICES, None, true, command)?;
        pids.insert(service.spec.name.to_owned(), pid);
    }
    console.info(&format!(
        "started {} services; waiting for every /health to answer 200",
        plan.services.len()
    ));
    proceed!(wait_healthy(
        &plan,
        supervisor,
        Duration::from_secs(args.health_timeout_secs)
    )?);

    let stack_file = plan.stack_file(&pids);
    stack::write_private(stack_path, &serde_json::to_vec_pretty(&stack_file)?)?;
    let urls: Vec<String> = plan
        .services
        .iter()
        .map(|s| format!("{} {}", s.spec.name, plan.service_url(s)))
        .collect();
    console.info(&format!(
        "HAVEN is up: {}, rpc {}; stack file {} (Ctrl-C to stop)",
        urls.join(", "),
        plan.chain.rpc_url,
        stack_path.display()
    ));

    loop {
        match supervisor.wait(Duration::from_secs(3600)) {
            Wake::Signal => return Ok(Outcome::Stopped),
            Wake::Exited { name, status } => {
                return Ok(Outcome::Failed(format!(
                    "{name} exited unexpectedly ({status}); {}",
                    supervisor.tail_report(&name)
                )));
            }
            Wake::Timeout => {}
        }
    }
}

pub(crate) type Step<T> = ControlFlow<Outcome, T>;

/// Starts anvil with a random mnemonic and waits until it serves JSON-RPC.
pub(crate) fn start_anvil(
    args: &AnvilOptions,
    supervisor: &mut Supervisor,
    anvil: &Path,
) -> anyhow::Result<Step<Vec<stack::DevAccount>>> {
    let config_out = &args.config_out;
    let _ = fs::remove_file(config_out);
    let mut command = Command::new(anvil);
    command
        .args(["--host", "127.0.0.1"])
        .args(["--port", &args.port.to_string()])
        .args(["--chain-id", &args.chain_id.to_string()])
        // Fresh keys every run: no well-known dev key ever signs anything here.
        .arg("--mnemonic-random")
        .args(["--accounts", "10"])
        .arg("--config-out")
        .arg(config_out);
    if args.block_time > 0 {
        command.args(["--block-time", &args.block_time.to_string()]);
    }
    supervisor.spawn("anvil", STAGE_CHAIN, Some(Color::Grey), args.logs, command)?;

    let rpc_url = format!("http://127.0.0.1:{}", args.port);
    let client = http_client()?;
    let deadline = Instant::now() + args.start_timeout;
    loop {
        if let Some(chain_id) = rpc_chain_id(&client, &rpc_url) {
            if chain_id != args.chain_id {
                bail!(
                    "anvil at {rpc_url} reports chain id {chain_id}, expected {}",
                    args.chain_id
                );
            }
            // anvil writes --config-out before it serves, but read defensively.
            if let Ok(text) = fs::read_to_string(config_out) {
                // It holds private keys: owner-only, like secrets.json.
                fs::set_permissions(config_out, fs::Permissions::from_mode(0o600))
                    .with_context(|| format!("restricting {}", config_out.display()))?;
                return Ok(ControlFlow::Continue(stack::parse_anvil_accounts(&text)?));
            }
        }
        if Instant::now() >= deadline {
            return Ok(ControlFlow::Break(Outcome::Failed(format!(
                "anvil did not answer at {rpc_url} within {}s; {}",
                args.start_timeout.as_secs(),
                supervisor.tail_report("anvil")
            ))));
        }
        match supervisor.wait(Duration::from_millis(250)) {
            Wake::Signal => return Ok(ControlFlow::Break(Outcome::Stopped)),
            Wake::Exited { name, status } => {
                return Ok(ControlFlow::Break(Outcome::Failed(format!(
                    "{name} exited while starting ({status}); {}",
                    supervisor.tail_report(&name)
                ))));
            }
            Wake::Timeout => {}
        }
    }
}

/// `eth_chainId` of the node, or `None` when it does not answer (yet).
fn rpc_chain_id(client: &reqwest::blocking::Client, rpc_url: &str) -> Option<u64> {
    let request = serde_json::json!({
        "jsonrpc": "2.0",
        "id": 1,
        "method": "eth_chainId",
        "params": [],
    });
    let response: serde_json::Value = client
        .post(rpc_url)
        .json(&request)
        .send()
        .ok()?
        .json()
        .ok()?;
    let hex_id = response.get("result")?.as_str()?.strip_prefix("0x")?;
    u64::from_str_radix(hex_id, 16).ok()
}

fn http_client() -> anyhow::Result<reqwest::blocking::Client> {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .context("building the HTTP client")
}

/// Deploys the token contract with the `haven-deploy` binary (skipped, with
/// a log line, in a workspace without it). `wrap` turns the command into
/// the one that runs (the image check runs it in a container).
pub(crate) fn deploy_contract(
    deploy: Option<&Path>,
    record: &Path,
    plan: &Plan,
    supervisor: &mut Supervisor,
    console: Console,
    wrap: impl FnOnce(Command) -> Command,
) -> anyhow::Result<Step<Option<String>>> {
    let Some(deploy) = deploy else {
        console.info(&format!(
            "deploy contract: skipped (no `{DEPLOY_BIN}` binary in the workspace yet); \
             contract_address stays null"
        ));
        return Ok(ControlFlow::Continue(None));
    };
    let deployer = plan
        .chain
        .accounts
        .first()
        .context("anvil reported no dev account to deploy with")?;
    let mut command = Command::new(deploy);
    command
        .env("RPC_URL", &plan.chain.rpc_url)
        .env("CHAIN_ID", plan.chain.chain_id.to_string())
        .env("DEPLOYER_PRIVATE_KEY", &deployer.private_key)
        // The record lives beside stack.json: a fresh anvil makes it stale,
        // and haven-deploy then deploys again instead of reusing it.
        .env("DEPLOYMENT_FILE", record)
        .env_remove("DATABASE_URL")
        .env_remove("SIGNER_MNEMONIC")
        .env("RUST_LOG", &plan.rust_log);
    // The second dev account is the minting signer: it gets MINTER and BURNER.
    if let Some(signer) = plan.chain.accounts.get(1) {
        command.env("SIGNER_PRIVATE_KEYS", &signer.private_key);
    }
    let Some(finished) = supervisor.run_to_completion(DEPLOY_BIN, Color::Grey, wrap(command))?
    else {
        return Ok(ControlFlow::Break(Outcome::Stopped));
    };
    if !finished.status.success() {
        return Ok(ControlFlow::Break(Outcome::Failed(format!(
            "{DEPLOY_BIN} failed ({})",
            finished.status
        ))));
    }
    let address = stack::parse_contract_address(&finished.stdout.join("\n"))?;
    console.info(&format!("deploy contract: HAVEN token at {address}"));
    Ok(ControlFlow::Continue(Some(address)))
}

/// `migrate up` against the stack's database (`wrap` as in [`deploy_contract`]).
pub(crate) fn migrate(
    migrate: &Path,
    plan: &Plan,
    supervisor: &mut Supervisor,
    console: Console,
    wrap: impl FnOnce(Command) -> Command,
) -> anyhow::Result<Step<()>> {
    console.info("migrations: migrate up");
    let mut command = Command::new(migrate);
    command
        .arg("up")
        .env("DATABASE_URL", &plan.database_url)
        .env("RUST_LOG", &plan.rust_log);
    let Some(finished) = supervisor.run_to_completion("migrate", Color::Grey, wrap(command))?
    else {
        return Ok(ControlFlow::Break(Outcome::Stopped));
    };
    if !finished.status.success() {
        return Ok(ControlFlow::Break(Outcome::Failed(format!(
            "migrations failed ({}) on {}",
            finished.status,
            redact(&plan.database_url)
        ))));
    }
    Ok(ControlFlow::Continue(()))
}

/// A URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// Polls every service's `/health` until all answer 200, one dies, a stop
/// is requested or `timeout` passes.
pub(crate) fn wait_healthy(
    plan: &Plan,
    supervisor: &mut Supervisor,
    timeout: Duration,
) -> anyhow::Result<Step<()>> {
    let client = http_client()?;
    let deadline = Instant::now() + timeout;
    let mut pending: Vec<(&str, String, String)> = plan
        .services
        .iter()
        .map(|s| {
            let url = format!("{}/health", plan.service_url(s));
            (s.spec.name, url, "no answer yet".to_owned())
        })
        .collect();
    loop {
        for (_, url, last) in &mut pending {
            *last = match client.get(url.as_str()).send() {
                Ok(response) if response.status().is_success() => String::new(),
                Ok(response) => {
                    let status = response.status();
                    let body = response.text().unwrap_or_default();
                    format!("{status} {}", body.chars().take(300).collect::<String>())
                }
                Err(err) => without_url(&err),
            };
        }
        pending.retain(|(_, _, last)| !last.is_empty());
        if pending.is_empty() {
            return Ok(ControlFlow::Continue(()));
        }
        if Instant::now() >= deadline {
            let (name, url, last) = &pending[0];
            let mut why = format!(
                "{name} did not become healthy within {}s: GET {url} -> {last}; {}",
                timeout.as_secs(),
                supervisor.tail_report(name)
            );
            for (other, _, _) in pending.iter().skip(1) {
                why.push_str(&format!("\n{other} was not healthy either"));
            }
            return Ok(ControlFlow::Break(Outcome::Failed(why)));
        }
        match supervisor.wait(Duration::from_millis(500)) {
            Wake::Signal => return Ok(ControlFlow::Break(Outcome::Stopped)),
            Wake::Exited { name, status } => {
                return Ok(ControlFlow::Break(Outcome::Failed(format!(
                    "{name} exited while starting ({status}); {}",
                    supervisor.tail_report(&name)
                ))));
            }
            Wake::Timeout => {}
        }
    }
}

/// reqwest errors repeat the URL; the message already names it.
fn without_url(err: &reqwest::Error) -> String {
    if err.is_connect() {
        "connection refused".to_owned()
    } else if err.is_timeout() {
        "timed out".to_owned()
    } else {
        err.to_string()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        up: UpArgs,
    }

    #[test]
    fn defaults_match_the_documented_ports_and_broker() {
        let args = Wrapper::try_parse_from(["up"]).expect("defaults parse").up;
        // DATABASE_URL / AMQP_URL may be set in the environment running the tests.
        assert_eq!(args.ports(), [8080, 8081, 8082, 8083, 8084]);
        assert_eq!(args.anvil_port, 8545);
        assert_eq!(args.block_time, 1);
        assert_eq!(args.chain_id, 31337);
    }

    #[test]
    fn flags_override_ports_and_block_time() {
        let args = Wrapper::try_parse_from([
            "up",
            "--read-api-port",
            "9081",
            "--anvil-port",
            "9545",
            "--block-time",
            "0",
            "--log-format",
            "json",
            "--no-build",
        ])
        .expect("parse")
        .up;
        assert_eq!(args.ports()[1], 9081);
        assert_eq!(args.anvil_port, 9545);
        assert_eq!(args.block_time, 0);
        assert_eq!(args.log_format, LogFormat::Json);
        assert!(args.no_build);
    }

    #[test]
    fn a_taken_port_is_reported_with_its_service_and_flag() {
        let listeners: Vec<TcpListener> = (0..6)
            .map(|_| TcpListener::bind("127.0.0.1:0").expect("bind"))
            .collect();
        let ports: Vec<String> = listeners
            .iter()
            .map(|l| l.local_addr().expect("addr").port().to_string())
            .collect();
        let argv = [
            "up",
            "--webhook-ingress-port",
            &ports[0],
            "--read-api-port",
            &ports[1],
            "--reward-calculator-port",
            &ports[2],
            "--chain-minter-port",
            &ports[3],
            "--redemption-payout-port",
            &ports[4],
            "--anvil-port",
            &ports[5],
            "--http-host",
            "127.0.0.1",
        ];
        let args = Wrapper::try_parse_from(argv).expect("parse").up;
        let services =
            Plan::services_on(args.ports(), &[("anvil", args.anvil_port)]).expect("distinct");
        // Keep only read-api's port taken.
        let held = listeners.into_iter().nth(1).expect("read-api listener");
        let err = check_ports_free(&args, &services).expect_err("port taken");
        let message = err.to_string();
        assert!(
            message.contains(&format!("port {} for read-api", ports[1])),
            "{message}"
        );
        assert!(message.contains("--read-api-port"), "{message}");
        drop(held);
        check_ports_free(&args, &services).expect("all free now");
    }

    #[test]
    fn removing_the_sqlite_database_takes_its_wal_files_along() {
        let dir = std::env::temp_dir().join(format!("xtask-db-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        let db = dir.join("haven.db");
        for name in ["haven.db", "haven.db-wal", "haven.db-shm", "other.db"] {
            fs::write(dir.join(name), b"x").expect("write");
        }
        remove_sqlite(&db).expect("removed");
        // Twice is fine: nothing left to remove is not an error.
        remove_sqlite(&db).expect("removed again");
        let mut left: Vec<String> = fs::read_dir(&dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        left.sort();
        assert_eq!(left, ["other.db"]);
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn passwords_are_redacted_from_database_urls() {
        assert_eq!(
            redact("postgres://haven:s3cret@127.0.0.1/haven"),
            "postgres://haven:***@127.0.0.1/haven"
        );
        assert_eq!(
            redact("sqlite:///w/haven.db?mode=rwc"),
            "sqlite:///w/haven.db?mode=rwc"
        );
    }
}
