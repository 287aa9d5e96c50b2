//! The local stack's shape, kept free of I/O so it can be unit-tested: which
//! services run on which ports, the environment each one gets, the generated
//! dev secrets and the `stack.json` that tells tools where everything is.

use std::collections::BTreeMap;
use std::fmt;
use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, bail};
use rand::RngCore;
use serde::{Deserialize, Serialize};

/// Default broker: the local RabbitMQ with its stock dev account.
pub const DEFAULT_AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

/// Version of the `stack.json` layout; bumped when a field changes meaning.
pub const STACK_FILE_VERSION: u32 = 1;

/// What a service needs besides the database, the broker and its listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceSpec {
    /// Binary and package name.
    pub name: &'static str,
    /// Port of its HTTP listener when none is configured.
    pub default_port: u16,
    /// Verifies partner webhooks (gets the partner secrets).
    pub partner_secrets: bool,
    /// Serves the API-key commands (gets `API_KEYS`).
    pub api_keys: bool,
    /// Talks to the chain (gets `RPC_URL` and the contract address).
    pub chain: bool,
}

/// The five services, in start order.
pub const SERVICES: [ServiceSpec; 5] = [
    ServiceSpec {
        name: "webhook-ingress",
        default_port: 8080,
        partner_secrets: true,
        api_keys: true,
        chain: false,
    },
    ServiceSpec {
        name: "read-api",
        default_port: 8081,
        partner_secrets: false,
        api_keys: false,
        chain: true,
    },
    ServiceSpec {
        name: "reward-calculator",
        default_port: 8082,
        partner_secrets: false,
        api_keys: false,
        // Reads the contract's monthly mint target for the emission budget.
        chain: true,
    },
    ServiceSpec {
        name: "chain-minter",
        default_port: 8083,
        partner_secrets: false,
        api_keys: false,
        chain: true,
    },
    ServiceSpec {
        name: "redemption-payout",
        default_port: 8084,
        partner_secrets: false,
        api_keys: false,
        chain: true,
    },
];

/// The local stand-in payout provider (a binary of the redemption-payout
/// package) that redemption-payout pays through in the local stack.
pub const PAYOUT_STAND_IN: &str = "haven-payout-stand-in";

/// Port of [`PAYOUT_STAND_IN`] on 127.0.0.1.
pub const PAYOUT_STAND_IN_PORT: u16 = 8090;

/// The bearer token redemption-payout and the stand-in share for this
/// run of xtask: random per run (both are started by it), never persisted.
fn payout_stand_in_token() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| format!("haven_dev_payout_{}", random_hex::<32>()))
}

/// Secrets generated for the local stack: random, never a production default.
///
/// Persisted in `target/haven-dev/secrets.json` so scripts and tools keep
/// working across restarts of the stack.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevSecrets {
    /// The one API key accepted by the token command endpoints.
    pub api_key: String,
    /// HMAC secret of Aurora's webhooks.
    pub aurora_webhook_secret: String,
    /// HMAC secret of Tribe's webhooks.
    pub tribe_webhook_secret: String,
    /// BIP-39 mnemonic of the custodial user wallets. No service gets it:
    /// reward-calculator gets its extended public key (`CUSTODY_XPUB`,
    /// [`DevSecrets::custody_xpub`]). Random, never anvil's well-known phrase, so
    /// no user wallet is a funded dev account or a signer. Empty in files
    /// written before it existed; filled in on the next load.
    #[serde(default)]
    pub custody_mnemonic: String,
}

// Secrets never reach logs through Debug.
impl fmt::Debug for DevSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevSecrets").finish_non_exhaustive()
    }
}

impl DevSecrets {
    /// Fresh random secrets (256 bits each, from the thread CSPRNG).
    pub fn generate() -> Self {
        Self {
            // The prefix makes a leaked dev key recognisable as one.
            api_key: format!("haven_dev_{}", random_hex::<32>()),
            aurora_webhook_secret: random_hex::<32>(),
            tribe_webhook_secret: random_hex::<32>(),
            custody_mnemonic: random_mnemonic(),
        }
    }

    /// Reads the secrets persisted at `path`, or generates and persists new
    /// ones when there are none or `regenerate` is set.
    ///
    /// The custody mnemonic survives `regenerate`: the dev database's user
    /// wallets are derived from it. Delete the file to change it too.
    pub fn load_or_generate(path: &Path, regenerate: bool) -> anyhow::Result<Self> {
        let existing = if path.exists() {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let secrets: Self = serde_json::from_str(&text).with_context(|| {
                format!(
                    "reading {} (delete it or pass --new-secrets)",
                    path.display()
                )
            })?;
            Some(secrets)
        } else {
            None
        };
        if let Some(mut secrets) = existing.clone().filter(|_| !regenerate) {
            if secrets.custody_mnemonic.is_empty() {
                secrets.custody_mnemonic = random_mnemonic();
                write_private(path, &serde_json::to_vec_pretty(&secrets)?)?;
            }
            secrets.validate()?;
            return Ok(secrets);
        }
        let mut secrets = Self::generate();
        if let Some(kept) = existing
            .map(|old| old.custody_mnemonic)
            .filter(|m| !m.is_empty())
        {
            secrets.custody_mnemonic = kept;
        }
        write_private(path, &serde_json::to_vec_pretty(&secrets)?)?;
        Ok(secrets)
    }

    /// The extended public key (`xpub...`) of `m/44'/60'/0'/0` of the
    /// custody mnemonic: reward-calculator's `CUSTODY_XPUB`.
    pub fn custody_xpub(&self) -> anyhow::Result<String> {
        use coins_bip32::ecdsa::VerifyingKey;
        use coins_bip32::enc::{MainnetEncoder, XKeyEncoder as _};
        use coins_bip32::primitives::{Hint, XKeyInfo};
        use coins_bip32::xkeys::XPub;
        let key =
            coins_bip39::Mnemonic::<coins_bip39::English>::new_from_phrase(&self.custody_mnemonic)
                .and_then(|mnemonic| mnemonic.derive_key("m/44'/60'/0'/0", None))
                .map_err(|_| {
                    anyhow::anyhow!(
                        "dev secret custody_mnemonic does not derive (delete the secrets file)"
                    )
                })?;
        // coins-bip39 hints SegWit (zpub) for a phrase's keys; the services
        // read the plain BIP-32 form (xpub).
        let public = key.verify_key();
        let mut info: XKeyInfo = *AsRef::<XKeyInfo>::as_ref(&public);
        info.hint = Hint::Legacy;
        let public = XPub::new(*AsRef::<VerifyingKey>::as_ref(&public), info);
        MainnetEncoder::xpub_to_base58(&public)
            .map_err(|err| anyhow::anyhow!("encoding the custody xpub: {err}"))
    }

    fn validate(&self) -> anyhow::Result<()> {
        for (name, value) in [
            ("api_key", &self.api_key),
            ("aurora_webhook_secret", &self.aurora_webhook_secret),
            ("tribe_webhook_secret", &self.tribe_webhook_secret),
        ] {
            if value.len() < 32 {
                bail!("dev secret {name} is shorter than 32 characters (pass --new-secrets)");
            }
        }
        if coins_bip39::Mnemonic::<coins_bip39::English>::new_from_phrase(&self.custody_mnemonic)
            .is_err()
        {
            bail!("dev secret custody_mnemonic is not a BIP-39 mnemonic (delete the secrets file)");
        }
        Ok(())
    }
}

/// A fresh 12-word BIP-39 mnemonic (128 bits from the thread CSPRNG).
fn random_mnemonic() -> String {
    let mut entropy = [0u8; 16];
    rand::rng().fill_bytes(&mut entropy);
    coins_bip39::Mnemonic::<coins_bip39::English>::new_from_entropy(entropy.into()).to_phrase()
}

fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Writes a file only its owner can read, replacing it atomically.
pub fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;

    let tmp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))
}

/// A funded dev account of the local chain.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevAccount {
    /// 0x-prefixed address.
    pub address: String,
    /// 0x-prefixed private key.
    pub private_key: String,
}

impl fmt::Debug for DevAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAccount")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The local chain as the services see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// JSON-RPC endpoint of anvil.
    pub rpc_url: String,
    /// Chain id anvil runs with.
    pub chain_id: u64,
    /// Funded accounts from anvil's random mnemonic; the first one deploys.
    pub accounts: Vec<DevAccount>,
    /// The deployed HAVEN token, once a deploy step exists.
    pub contract_address: Option<String>,
}

/// One service in this run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServicePlan {
    /// What it is.
    pub spec: ServiceSpec,
    /// Port it listens on.
    pub port: u16,
}

/// Log format of the services, passed as `LOG_FORMAT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    fn as_str(self) -> &'static str {
        match self {
            LogFormat::Pretty => "pretty",
            LogFormat::Json => "json",
        }
    }
}

/// Everything needed to start the services and describe the stack.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Services in start order.
    pub services: Vec<ServicePlan>,
    /// Address the services bind.
    pub http_host: IpAddr,
    /// Database every service and the migrations use.
    pub database_url: String,
    /// Broker URL.
    pub amqp_url: String,
    /// Prefix of every exchange and queue name.
    pub amqp_namespace: String,
    /// Services' log format.
    pub log_format: LogFormat,
    /// Services' log filter.
    pub rust_log: String,
    /// Generated secrets.
    pub secrets: DevSecrets,
    /// reward-calculator's `CUSTODY_XPUB`: the extended public key of
    /// `m/44'/60'/0'/0` of the secrets' custody mnemonic (the service gets
    /// no key; the mnemonic stays in `secrets.json`).
    pub custody_xpub: String,
    /// The local chain.
    pub chain: Chain,
}

impl Plan {
    /// Services on the given ports (same order as [`SERVICES`]); refuses a port used twice.
    pub fn services_on(
        ports: [u16; 5],
        reserved: &[(&str, u16)],
    ) -> anyhow::Result<Vec<ServicePlan>> {
        let services: Vec<ServicePlan> = SERVICES
            .iter()
            .zip(ports)
            .map(|(spec, port)| ServicePlan { spec: *spec, port })
            .collect();
        let mut seen: Vec<(&str, u16)> = reserved.to_vec();
        for service in &services {
            if let Some((other, _)) = seen.iter().find(|(_, port)| *port == service.port) {
                bail!(
                    "{} and {other} are both configured on port {}",
                    service.spec.name,
                    service.port
                );
            }
            seen.push((service.spec.name, service.port));
        }
        Ok(services)
    }

    /// Base URL clients use for a service: loopback when it binds every interface.
    pub fn service_url(&self, service: &ServicePlan) -> String {
        let host = match self.http_host {
            IpAddr::V4(ip) if ip.is_unspecified() => "127.0.0.1".to_owned(),
            IpAddr::V6(ip) if ip.is_unspecified() => "[::1]".to_owned(),
            IpAddr::V4(ip) => ip.to_string(),
            IpAddr::V6(ip) => format!("[{ip}]"),
        };
        format!("http://{host}:{}", service.port)
    }

    /// The environment a service process gets. Secrets go only to the
    /// services that use them.
    pub fn service_env(&self, service: &ServicePlan) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("DATABASE_URL", self.database_url.clone()),
            ("AMQP_URL", self.amqp_url.clone()),
            ("AMQP_NAMESPACE", self.amqp_namespace.clone()),
            ("HTTP_HOST", self.http_host.to_string()),
            ("PORT", service.port.to_string()),
            ("LOG_FORMAT", self.log_format.as_str().to_owned()),
            ("RUST_LOG", self.rust_log.clone()),
        ];
        if service.spec.partner_secrets {
            env.push((
                "AURORA_WEBHOOK_SECRET",
                self.secrets.aurora_webhook_secret.clone(),
            ));
            env.push((
                "TRIBE_WEBHOOK_SECRET",
                self.secrets.tribe_webhook_secret.clone(),
            ));
        }
        if service.spec.api_keys {
            // Named: the stack's commands are recorded as asked by `dev`.
            env.push(("API_KEYS", format!("dev:{}", self.secrets.api_key)));
        }
        if service.spec.chain {
            env.push(("RPC_URL", self.chain.rpc_url.clone()));
            // An empty CONTRACT_ADDRESS would be a malformed setting: leave it
            // out until the contract is deployed.
            if let Some(address) = &self.chain.contract_address {
                env.push(("CONTRACT_ADDRESS", address.clone()));
            }
        }
        // Custodial user wallets' addresses are derived by reward-calculator,
        // from the public key alone.
        if service.spec.name == "reward-calculator" {
            env.push(("CUSTODY_XPUB", self.custody_xpub.clone()));
        }
        // Payouts go to the local stand-in provider.
        if service.spec.name == "redemption-payout" {
            env.push(("PAYOUT_PROVIDER_URL", self.payout_provider_url()));
            env.push(("PAYOUT_PROVIDER_TOKEN", payout_stand_in_token().to_owned()));
        }
        // The signer haven-deploy granted MINTER and BURNER to (dev account 1).
        if service.spec.name == "chain-minter"
            && let Some(signer) = self.chain.accounts.get(1)
        {
            env.push(("SIGNER_PRIVATE_KEYS", signer.private_key.clone()));
        }
        env
    }

    /// Base URL of the local stand-in payout provider ([`PAYOUT_STAND_IN`]).
    pub fn payout_provider_url(&self) -> String {
        format!("http://127.0.0.1:{PAYOUT_STAND_IN_PORT}")
    }

    /// The environment of the [`PAYOUT_STAND_IN`] process.
    pub fn payout_stand_in_env(&self) -> Vec<(&'static str, String)> {
        vec![
            (
                "PAYOUT_STAND_IN_LISTEN",
                format!("127.0.0.1:{PAYOUT_STAND_IN_PORT}"),
            ),
            ("PAYOUT_PROVIDER_TOKEN", payout_stand_in_token().to_owned()),
            ("LOG_FORMAT", self.log_format.as_str().to_owned()),
            ("RUST_LOG", self.rust_log.clone()),
        ]
    }

    /// The content of `stack.json`.
    pub fn stack_file(&self, pids: &BTreeMap<String, u32>) -> StackFile {
        let services = self
            .services
            .iter()
            .map(|service| {
                let url = self.service_url(service);
                let entry = ServiceEntry {
                    health_url: format!("{url}/health"),
                    metrics_url: format!("{url}/metrics"),
                    url,
                    port: service.port,
                    pid: pids.get(service.spec.name).copied(),
                };
                (service.spec.name.to_owned(), entry)
            })
            .collect();
        StackFile {
            version: STACK_FILE_VERSION,
            services,
            api_key: self.secrets.api_key.clone(),
            partner_secrets: PartnerSecrets {
                aurora: self.secrets.aurora_webhook_secret.clone(),
                tribe: self.secrets.tribe_webhook_secret.clone(),
            },
            rpc_url: self.chain.rpc_url.clone(),
            chain_id: self.chain.chain_id,
            contract_address: self.chain.contract_address.clone(),
            dev_accounts: self.chain.accounts.clone(),
            database_url: self.database_url.clone(),
            amqp_url: self.amqp_url.clone(),
            amqp_namespace: self.amqp_namespace.clone(),
            payout_provider_url: Some(self.payout_provider_url()),
        }
    }
}

/// `target/haven-dev/stack.json`: where everything of a running stack is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackFile {
    /// Layout version ([`STACK_FILE_VERSION`]).
    pub version: u32,
    /// Per service name: its URLs, port and process id.
    pub services: BTreeMap<String, ServiceEntry>,
    /// API key for `X-API-Key`.
    pub api_key: String,
    /// Webhook HMAC secrets per partner.
    pub partner_secrets: PartnerSecrets,
    /// anvil's JSON-RPC URL.
    pub rpc_url: String,
    /// Chain id of the local chain.
    pub chain_id: u64,
    /// The HAVEN token contract; null until a deploy step exists.
    pub contract_address: Option<String>,
    /// Funded dev accounts; the first one deploys the contract.
    pub dev_accounts: Vec<DevAccount>,
    /// Database URL of the services.
    pub database_url: String,
    /// Broker URL of the services.
    pub amqp_url: String,
    /// Exchange/queue name prefix of the services.
    pub amqp_namespace: String,
    /// The local stand-in payout provider redemption-payout pays through.
    #[serde(default)]
    pub payout_provider_url: Option<String>,
}

/// A service in `stack.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceEntry {
    /// Base URL.
    pub url: String,
    /// `GET` it for the health check.
    pub health_url: String,
    /// `GET` it for Prometheus metrics.
    pub metrics_url: String,
    /// Listener port.
    pub port: u16,
    /// Process id while the stack runs.
    pub pid: Option<u32>,
}

/// Webhook secrets in `stack.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartnerSecrets {
    /// Secret of `X-Aurora-Signature`.
    pub aurora: String,
    /// Secret of `X-Tribe-Signature`.
    pub tribe: String,
}

/// The default embedded database: a SQLite file created on first use.
pub fn sqlite_url(file: &Path) -> String {
    format!("sqlite://{}?mode=rwc", file.display())
}

/// Reads the contract address a deploy command printed: the last non-empty
/// line of its stdout, a 0x-prefixed 20-byte hex address.
pub fn parse_contract_address(stdout: &str) -> anyhow::Result<String> {
    let last = stdout
        .lines()
        .map(str::trim)
        .rfind(|line| !line.is_empty())
        .context("the deploy command printed nothing")?;
    let hex_part = last
        .strip_prefix("0x")
        .with_context(|| format!("the deploy command's last line is not an address: {last:?}"))?;
    if hex_part.len() != 40 || !hex_part.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("the deploy command's last line is not a 20-byte address: {last:?}");
    }
    Ok(last.to_owned())
}

/// anvil's `--config-out` file, as far as the stack needs it.
#[derive(Debug, Deserialize)]
struct AnvilConfigOut {
    available_accounts: Vec<String>,
    private_keys: Vec<String>,
}

/// The funded accounts anvil wrote with `--config-out`.
pub fn parse_anvil_accounts(json: &str) -> anyhow::Result<Vec<DevAccount>> {
    let config: AnvilConfigOut =
        serde_json::from_str(json).context("reading anvil's --config-out file")?;
    if config.available_accounts.len() != config.private_keys.len()
        || config.available_accounts.is_empty()
    {
        bail!(
            "anvil reported {} accounts and {} private keys",
            config.available_accounts.len(),
            config.private_keys.len()
        );
    }
    Ok(config
        .available_accounts
        .into_iter()
        .zip(config.private_keys)
        .map(|(address, private_key)| DevAccount {
            address,
            private_key,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    fn plan() -> Plan {
        Plan {
            services: Plan::services_on([8080, 8081, 8082, 8083, 8084], &[("anvil", 8545)])
                .expect("distinct ports"),
            http_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            database_url: "sqlite:///w/target/haven-dev/haven.db?mode=rwc".to_owned(),
            amqp_url: DEFAULT_AMQP_URL.to_owned(),
            amqp_namespace: String::new(),
            log_format: LogFormat::Pretty,
            rust_log: "info".to_owned(),
            custody_xpub: "xpub-of-the-test".to_owned(),
            secrets: DevSecrets::generate(),
            chain: Chain {
                rpc_url: "http://127.0.0.1:8545".to_owned(),
                chain_id: 31337,
                accounts: vec![DevAccount {
                    address: "0x3900f46d1d45308ba152ac98526f4b864233093a".to_owned(),
                    private_key: "0xfc79".to_owned(),
                }],
                contract_address: None,
            },
        }
    }

    fn env_of<'a>(env: &'a [(&'static str, String)], key: &str) -> Option<&'a str> {
        env.iter().find(|(k, _)| *k == key).map(|(_, v)| v.as_str())
    }

    #[test]
    fn generated_secrets_are_long_random_and_distinct() {
        let a = DevSecrets::generate();
        let b = DevSecrets::generate();
        assert_ne!(a, b);
        assert!(a.api_key.starts_with("haven_dev_"));
        assert_eq!(a.api_key.len(), "haven_dev_".len() + 64);
        for secret in [&a.aurora_webhook_secret, &a.tribe_webhook_secret] {
            assert_eq!(secret.len(), 64);
            assert!(secret.bytes().all(|c| c.is_ascii_hexdigit()));
        }
        assert_ne!(a.aurora_webhook_secret, a.tribe_webhook_secret);
        assert!(!format!("{a:?}").contains(&a.api_key));
        assert_eq!(a.custody_mnemonic.split(' ').count(), 12);
        assert_ne!(a.custody_mnemonic, b.custody_mnemonic);
        assert!(!format!("{a:?}").contains(&a.custody_mnemonic));
        a.validate().expect("a generated mnemonic is valid BIP-39");
    }

    #[test]
    fn secrets_persist_across_runs_until_regenerated() {
        let dir = std::env::temp_dir().join(format!("xtask-secrets-{}", random_hex::<8>()));
        fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("secrets.json");

        let first = DevSecrets::load_or_generate(&path, false).expect("generated");
        let again = DevSecrets::load_or_generate(&path, false).expect("loaded");
        assert_eq!(first, again);
        let mode = {
            use std::os::unix::fs::PermissionsExt;
            fs::metadata(&path).expect("written").permissions().mode() & 0o777
        };
        assert_eq!(mode, 0o600);

        let fresh = DevSecrets::load_or_generate(&path, true).expect("regenerated");
        assert_ne!(first, fresh);
        assert_eq!(
            DevSecrets::load_or_generate(&path, false).expect("loaded"),
            fresh
        );

        // The custody mnemonic survives a regeneration, and is added to old files.
        let again = DevSecrets::load_or_generate(&path, true).expect("regenerated");
        assert_eq!(again.custody_mnemonic, fresh.custody_mnemonic);
        assert_ne!(again.api_key, fresh.api_key);
        let mut old: serde_json::Value =
            serde_json::from_slice(&fs::read(&path).expect("written")).expect("json");
        old.as_object_mut()
            .expect("object")
            .remove("custody_mnemonic");
        fs::write(&path, old.to_string()).expect("overwrite");
        let upgraded = DevSecrets::load_or_generate(&path, false).expect("upgraded");
        assert_eq!(upgraded.custody_mnemonic.split(' ').count(), 12);
        assert_eq!(
            DevSecrets::load_or_generate(&path, false).expect("loaded"),
            upgraded
        );

        fs::write(&path, "{\"api_key\":\"short\"}").expect("overwrite");
        assert!(DevSecrets::load_or_generate(&path, false).is_err());
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn every_service_gets_database_broker_and_listener() {
        let plan = plan();
        for service in &plan.services {
            let env = plan.service_env(service);
            assert_eq!(
                env_of(&env, "DATABASE_URL"),
                Some(plan.database_url.as_str())
            );
            assert_eq!(env_of(&env, "AMQP_URL"), Some(DEFAULT_AMQP_URL));
            assert_eq!(env_of(&env, "AMQP_NAMESPACE"), Some(""));
            assert_eq!(env_of(&env, "HTTP_HOST"), Some("127.0.0.1"));
            assert_eq!(
                env_of(&env, "PORT"),
                Some(service.port.to_string().as_str())
            );
            assert_eq!(env_of(&env, "LOG_FORMAT"), Some("pretty"));
            assert_eq!(env_of(&env, "RUST_LOG"), Some("info"));
        }
        let ports: Vec<u16> = plan.services.iter().map(|s| s.port).collect();
        assert_eq!(ports, [8080, 8081, 8082, 8083, 8084]);
    }

    #[test]
    fn the_custody_xpub_is_the_public_key_of_the_external_chain() {
        let mut secrets = DevSecrets::generate();
        secrets.custody_mnemonic =
            "test test test test test test test test test test test junk".to_owned();
        let xpub = secrets.custody_xpub().expect("derives");
        // What `haven-custody-xpub` prints for this phrase (haven-chain checks
        // that it derives the mnemonic's own wallet addresses).
        assert_eq!(
            xpub,
            "xpub6DyUKdwoLWmUJ4Tn9Bbsdtx7B5Ws18mEN19e5HT52ikE53FiUheSQXrZUNPovqfyKmw4579A1Mm3GXXKM39N64uooBfJ4tNAzFsEbodRTx4"
        );
        assert_ne!(
            DevSecrets::generate().custody_xpub().expect("derives"),
            xpub
        );
        secrets.custody_mnemonic = "not a phrase".to_owned();
        let err = secrets.custody_xpub().expect_err("refused").to_string();
        assert!(!err.contains("phrase"), "{err}");
    }

    #[test]
    fn secrets_go_only_to_the_services_that_use_them() {
        let plan = plan();
        for service in &plan.services {
            let env = plan.service_env(service);
            let is_calculator = service.spec.name == "reward-calculator";
            assert_eq!(
                env_of(&env, "CUSTODY_XPUB"),
                is_calculator.then_some(plan.custody_xpub.as_str())
            );
            // The mnemonic goes to no service.
            assert!(
                env.iter()
                    .all(|(_, value)| *value != plan.secrets.custody_mnemonic)
            );
            let is_ingress = service.spec.name == "webhook-ingress";
            assert_eq!(
                env_of(&env, "API_KEYS"),
                is_ingress
                    .then(|| format!("dev:{}", plan.secrets.api_key))
                    .as_deref()
            );
            assert_eq!(
                env_of(&env, "AURORA_WEBHOOK_SECRET"),
                is_ingress.then_some(plan.secrets.aurora_webhook_secret.as_str())
            );
            assert_eq!(
                env_of(&env, "TRIBE_WEBHOOK_SECRET"),
                is_ingress.then_some(plan.secrets.tribe_webhook_secret.as_str())
            );
        }
    }

    #[test]
    fn chain_settings_go_to_chain_services_and_the_address_only_once_known() {
        let mut plan = plan();
        let minter = plan.services[3].clone();
        assert_eq!(minter.spec.name, "chain-minter");
        let env = plan.service_env(&minter);
        assert_eq!(env_of(&env, "RPC_URL"), Some("http://127.0.0.1:8545"));
        assert_eq!(env_of(&env, "CONTRACT_ADDRESS"), None);

        // reward-calculator reads the monthly mint target.
        let calculator = plan.services[2].clone();
        assert_eq!(
            env_of(&plan.service_env(&calculator), "RPC_URL"),
            Some("http://127.0.0.1:8545")
        );
        let ingress = plan.services[0].clone();
        assert_eq!(env_of(&plan.service_env(&ingress), "RPC_URL"), None);

        plan.chain.contract_address = Some("0x5fbdb2315678afecb367f032d93f642f64180aa3".to_owned());
        assert_eq!(
            env_of(&plan.service_env(&minter), "CONTRACT_ADDRESS"),
            Some("0x5fbdb2315678afecb367f032d93f642f64180aa3")
        );
    }

    #[test]
    fn redemption_payout_pays_through_the_stand_in_with_a_shared_token() {
        let plan = plan();
        let payout = plan
            .services
            .iter()
            .find(|s| s.spec.name == "redemption-payout")
            .expect("redemption-payout is planned");
        let env = plan.service_env(payout);
        assert_eq!(
            env_of(&env, "PAYOUT_PROVIDER_URL"),
            Some("http://127.0.0.1:8090")
        );
        let stand_in = plan.payout_stand_in_env();
        assert_eq!(
            env_of(&stand_in, "PAYOUT_STAND_IN_LISTEN"),
            Some("127.0.0.1:8090")
        );
        let token = env_of(&env, "PAYOUT_PROVIDER_TOKEN").expect("a token");
        assert!(token.starts_with("haven_dev_payout_") && token.len() > 40);
        assert_eq!(env_of(&stand_in, "PAYOUT_PROVIDER_TOKEN"), Some(token));
        for service in plan
            .services
            .iter()
            .filter(|s| s.spec.name != "redemption-payout")
        {
            let env = plan.service_env(service);
            assert_eq!(env_of(&env, "PAYOUT_PROVIDER_TOKEN"), None);
            assert_eq!(env_of(&env, "PAYOUT_PROVIDER_URL"), None);
        }
        let json = serde_json::to_value(plan.stack_file(&BTreeMap::new())).expect("json");
        assert_eq!(json["payout_provider_url"], "http://127.0.0.1:8090");
    }

    #[test]
    fn a_port_used_twice_is_refused_with_both_names() {
        let err =
            Plan::services_on([8080, 8081, 8082, 8083, 8080], &[]).expect_err("duplicate port");
        assert_eq!(
            err.to_string(),
            "redemption-payout and webhook-ingress are both configured on port 8080"
        );
        let err = Plan::services_on([8545, 8081, 8082, 8083, 8084], &[("anvil", 8545)])
            .expect_err("port taken by anvil");
        assert!(err.to_string().contains("anvil"));
    }

    #[test]
    fn stack_json_has_every_url_secret_and_endpoint() {
        let plan = plan();
        let pids = BTreeMap::from([("read-api".to_owned(), 42)]);
        let json = serde_json::to_value(plan.stack_file(&pids)).expect("serializable");

        assert_eq!(json["version"], 1);
        let services = json["services"].as_object().expect("services object");
        assert_eq!(services.len(), 5);
        for spec in SERVICES {
            let entry = &services[spec.name];
            let url = format!("http://127.0.0.1:{}", spec.default_port);
            assert_eq!(entry["url"], url.as_str());
            assert_eq!(entry["health_url"], format!("{url}/health").as_str());
            assert_eq!(entry["metrics_url"], format!("{url}/metrics").as_str());
            assert_eq!(entry["port"], spec.default_port);
        }
        assert_eq!(services["read-api"]["pid"], 42);
        assert!(services["webhook-ingress"]["pid"].is_null());

        assert_eq!(json["api_key"], plan.secrets.api_key.as_str());
        assert_eq!(
            json["partner_secrets"]["aurora"],
            plan.secrets.aurora_webhook_secret.as_str()
        );
        assert_eq!(
            json["partner_secrets"]["tribe"],
            plan.secrets.tribe_webhook_secret.as_str()
        );
        assert_eq!(json["rpc_url"], "http://127.0.0.1:8545");
        assert_eq!(json["chain_id"], 31337);
        assert!(json["contract_address"].is_null());
        assert_eq!(
            json["dev_accounts"][0]["address"],
            "0x3900f46d1d45308ba152ac98526f4b864233093a"
        );
        assert_eq!(json["database_url"], plan.database_url.as_str());
        assert_eq!(json["amqp_url"], DEFAULT_AMQP_URL);
        assert_eq!(json["amqp_namespace"], "");

        // Tools read it back with the same types.
        let back: StackFile = serde_json::from_value(json).expect("round trip");
        assert_eq!(back.services.len(), 5);
    }

    #[test]
    fn services_bound_to_every_interface_are_reached_on_loopback() {
        let mut plan = plan();
        plan.http_host = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        assert_eq!(plan.service_url(&plan.services[0]), "http://127.0.0.1:8080");
        plan.http_host = "::".parse().expect("ipv6");
        assert_eq!(plan.service_url(&plan.services[1]), "http://[::1]:8081");
    }

    #[test]
    fn default_database_is_a_sqlite_file_created_on_first_use() {
        assert_eq!(
            sqlite_url(Path::new("/w/target/haven-dev/haven.db")),
            "sqlite:///w/target/haven-dev/haven.db?mode=rwc"
        );
    }

    #[test]
    fn contract_address_is_the_last_line_of_the_deploy_output() {
        let out = "compiling...\ndeployed\n0x5FbDB2315678afecb367f032d93F642f64180aa3\n\n";
        assert_eq!(
            parse_contract_address(out).expect("address"),
            "0x5FbDB2315678afecb367f032d93F642f64180aa3"
        );
        assert!(parse_contract_address("").is_err());
        assert!(parse_contract_address("done\n").is_err());
        assert!(parse_contract_address("0x1234\n").is_err());
        assert!(parse_contract_address("0xZZbDB2315678afecb367f032d93F642f64180aa3").is_err());
    }

    #[test]
    fn anvil_accounts_are_read_from_its_config_out_file() {
        let json = r#"{"available_accounts":["0xaa","0xbb"],"private_keys":["0x01","0x02"],
            "wallet":{"mnemonic":"m"},"base_fee":"1"}"#;
        let accounts = parse_anvil_accounts(json).expect("accounts");
        assert_eq!(accounts.len(), 2);
        assert_eq!(accounts[1].address, "0xbb");
        assert_eq!(accounts[1].private_key, "0x02");
        assert!(
            parse_anvil_accounts(r#"{"available_accounts":["0xaa"],"private_keys":[]}"#).is_err()
        );
    }
}
