//! The external services the stack and the tests need: RabbitMQ and
//! PostgreSQL. xtask starts a local one when it is installed but down, and
//! otherwise says how to get one.

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use reqwest::Url;

use crate::console::Console;

/// Host and port of a URL, with the scheme's default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Host name or IP, without brackets.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl Endpoint {
    /// Parses `amqp://`, `amqps://` and `postgres://` URLs.
    pub fn from_url(url: &str) -> anyhow::Result<Self> {
        let parsed = Url::parse(url).context("not a valid URL")?;
        let default_port = match parsed.scheme() {
            "amqp" => 5672,
            "amqps" => 5671,
            "postgres" | "postgresql" => 5432,
            other => bail!("unsupported URL scheme {other:?}"),
        };
        let host = parsed
            .host_str()
            .filter(|h| !h.is_empty())
            .unwrap_or("localhost")
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        Ok(Self {
            host,
            port: parsed.port().unwrap_or(default_port),
        })
    }

    /// Only a broker or database on this machine is ours to start.
    pub fn is_local(&self) -> bool {
        matches!(self.host.as_str(), "localhost" | "127.0.0.1" | "::1")
            || self.host.starts_with("127.")
    }

    fn addrs(&self) -> Vec<SocketAddr> {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .map(Iterator::collect)
            .unwrap_or_default()
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// Whether an AMQP 0-9-1 broker answers: it replies to the protocol header
/// with a method frame (Connection.Start). An open port alone is not enough:
/// RabbitMQ accepts TCP before it is ready to serve.
pub fn amqp_answers(endpoint: &Endpoint) -> bool {
    endpoint.addrs().iter().any(|addr| {
        let Ok(mut stream) = TcpStream::connect_timeout(addr, Duration::from_secs(2)) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
        let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
        if stream.write_all(b"AMQP\x00\x00\x09\x01").is_err() {
            return false;
        }
        let mut frame_type = [0u8; 1];
        // Frame type 1 is a method frame.
        stream.read_exact(&mut frame_type).is_ok() && frame_type[0] == 1
    })
}

/// The PostgreSQL and RabbitMQ the tests, the benchmarks and the fault
/// matrix use (the test helpers read the same variables).
#[derive(Debug, Clone, clap::Args)]
pub struct Servers {
    /// PostgreSQL (same variable as the test helpers); started when local,
    /// installed and down.
    #[arg(
        long,
        env = "TEST_DATABASE_ADMIN_URL",
        default_value = "postgres://postgres@127.0.0.1:5432/postgres",
        hide_env_values = true
    )]
    pub postgres_url: String,

    /// RabbitMQ (same variable as the test helpers); started when local,
    /// installed and down.
    #[arg(
        long,
        env = "AMQP_URL",
        default_value = crate::stack::DEFAULT_AMQP_URL,
        hide_env_values = true
    )]
    pub amqp_url: String,

    /// How long to wait for PostgreSQL or RabbitMQ to answer after starting them.
    #[arg(long, env = "HAVEN_SERVICE_START_TIMEOUT_SECS", default_value_t = 120)]
    pub service_start_timeout_secs: u64,
}

impl Servers {
    /// Points a test-helper process (a benchmark, the fault matrix) at
    /// these servers and at `anvil`.
    pub fn env_of(&self, command: &mut std::process::Command, anvil: &Path) {
        command
            .env("ANVIL_BIN", anvil)
            .env("AMQP_URL", &self.amqp_url)
            .env("TEST_DATABASE_ADMIN_URL", &self.postgres_url);
    }

    /// Starts whichever of the two is local, installed and down, and waits
    /// until both answer; their logs go to `logs`.
    pub fn ensure(&self, logs: &Path, console: Console) -> anyhow::Result<()> {
        let timeout = Duration::from_secs(self.service_start_timeout_secs);
        std::fs::create_dir_all(logs).with_context(|| format!("create {}", logs.display()))?;
        let postgres = Endpoint::from_url(&self.postgres_url)
            .context("--postgres-url / TEST_DATABASE_ADMIN_URL")?;
        ensure_postgres(&postgres, logs, timeout, console)?;
        ensure_rabbitmq(&self.amqp_url, logs, timeout, console)
    }
}

impl Servers {
    /// Makes sure PostgreSQL loads `pg_stat_statements` (the benchmarks
    /// count SQL statements with it): when it is not in
    /// `shared_preload_libraries` and the server is a local Debian cluster,
    /// adds it (`ALTER SYSTEM`) and restarts the cluster. Returns whether it
    /// is loaded; anything in the way is printed, not an error (the
    /// benchmarks then report statements as n/a).
    pub fn preload_pg_stat_statements(&self, console: Console) -> bool {
        const LIBRARY: &str = "pg_stat_statements";
        let Some(psql) = find_program("psql") else {
            console.info(
                "pg_stat_statements: no psql to check it with; SQL statements will not be counted",
            );
            return false;
        };
        let query = |sql: &str| -> Option<String> {
            let out = Command::new(&psql)
                .args(["-X", "-At", "-d", &self.postgres_url, "-c", sql])
                .stdin(std::process::Stdio::null())
                .output()
                .ok()?;
            out.status
                .success()
                .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        };
        let Some(loaded) = query("SHOW shared_preload_libraries") else {
            console.info("pg_stat_statements: cannot read shared_preload_libraries; SQL statements will not be counted");
            return false;
        };
        if loaded.split(',').any(|l| l.trim() == LIBRARY) {
            return true;
        }
        let local = Endpoint::from_url(&self.postgres_url).is_ok_and(|e| e.is_local());
        let versions = installed_postgres_versions();
        let (true, Some(pg_ctlcluster), [version]) =
            (local, find_program("pg_ctlcluster"), versions.as_slice())
        else {
            console.info("pg_stat_statements: not preloaded and the server is not one local cluster this can restart; SQL statements will not be counted");
            return false;
        };
        let libraries = if loaded.is_empty() {
            LIBRARY.to_owned()
        } else {
            format!("{loaded},{LIBRARY}")
        };
        console.info(&format!(
            "pg_stat_statements: adding it to shared_preload_libraries and restarting PostgreSQL {version}/main"
        ));
        let set = format!("ALTER SYSTEM SET shared_preload_libraries = '{libraries}'");
        let restarted = query(&set).is_some()
            && Command::new(&pg_ctlcluster)
                .args([
                    "--skip-systemctl-redirect",
                    version,
                    "main",
                    "restart",
                    "-m",
                    "fast",
                ])
                .stdin(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
        let endpoint = Endpoint::from_url(&self.postgres_url);
        let answers = endpoint
            .is_ok_and(|e| wait_until(Duration::from_secs(60), || postgres_answers(&e)).is_ok());
        let now = restarted
            && answers
            && query("SHOW shared_preload_libraries").is_some_and(|l| l.contains(LIBRARY));
        if !now {
            console.info(
                "pg_stat_statements: could not preload it; SQL statements will not be counted",
            );
        }
        now
    }
}

/// Makes sure the broker at `amqp_url` answers, starting the local
/// `rabbitmq-server` when it is installed and the URL points at this machine.
pub fn ensure_rabbitmq(
    amqp_url: &str,
    log_dir: &Path,
    timeout: Duration,
    console: Console,
) -> anyhow::Result<()> {
    let endpoint = Endpoint::from_url(amqp_url).context("AMQP_URL")?;
    if amqp_answers(&endpoint) {
        console.info(&format!("RabbitMQ: answering at {endpoint}"));
        return Ok(());
    }
    let how_to_get_one = "install it (`apt-get install rabbitmq-server`), start one \
        (`rabbitmq-server -detached`, or `docker run -p 5672:5672 rabbitmq:3`), \
        or point AMQP_URL / --amqp-url at a running broker";
    // The installed server listens on the standard port: starting it cannot
    // help a URL that points elsewhere.
    if !endpoint.is_local() || endpoint.port != 5672 {
        bail!("RabbitMQ does not answer at {endpoint}; {how_to_get_one}");
    }
    let Some(server) = find_program("rabbitmq-server") else {
        bail!(
            "RabbitMQ does not answer at {endpoint} and rabbitmq-server is not installed; {how_to_get_one}"
        );
    };
    console.info(&format!(
        "RabbitMQ: nothing answers at {endpoint}; starting {} -detached",
        server.display()
    ));
    let log = log_dir.join("rabbitmq-start.log");
    let mut command = Command::new(&server);
    command.arg("-detached");
    run_daemon_start(command, &log)?;
    wait_until(timeout, || amqp_answers(&endpoint)).with_context(|| {
        format!(
            "started rabbitmq-server but nothing answers at {endpoint} after {}s \
             (see {} and /var/log/rabbitmq/)",
            timeout.as_secs(),
            log.display()
        )
    })?;
    console.info(&format!("RabbitMQ: answering at {endpoint}"));
    Ok(())
}

/// Whether PostgreSQL accepts connections (`pg_isready`, else a TCP connect).
pub fn postgres_answers(endpoint: &Endpoint) -> bool {
    if let Some(pg_isready) = find_program("pg_isready") {
        return Command::new(pg_isready)
            .args(["-q", "-h", &endpoint.host, "-p", &endpoint.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    }
    endpoint
        .addrs()
        .iter()
        .any(|addr| TcpStream::connect_timeout(addr, Duration::from_secs(2)).is_ok())
}

/// Makes sure PostgreSQL answers at `endpoint`, starting the local clusters
/// (`pg_ctlcluster`, Debian's layout) when they are installed but down.
pub fn ensure_postgres(
    endpoint: &Endpoint,
    log_dir: &Path,
    timeout: Duration,
    console: Console,
) -> anyhow::Result<()> {
    if postgres_answers(endpoint) {
        console.info(&format!("PostgreSQL: answering at {endpoint}"));
        return Ok(());
    }
    let how_to_get_one = "install it (`apt-get install postgresql`) or start one \
        (`pg_ctlcluster --skip-systemctl-redirect <version> main start`)";
    if !endpoint.is_local() {
        bail!("PostgreSQL does not answer at {endpoint}; start it");
    }
    let versions = installed_postgres_versions();
    let (Some(pg_ctlcluster), false) = (find_program("pg_ctlcluster"), versions.is_empty()) else {
        bail!(
            "PostgreSQL does not answer at {endpoint} and no local cluster is installed; {how_to_get_one}"
        );
    };
    for version in &versions {
        console.info(&format!(
            "PostgreSQL: nothing answers at {endpoint}; starting cluster {version}/main"
        ));
        let log = log_dir.join(format!("postgresql-{version}-start.log"));
        let mut command = Command::new(&pg_ctlcluster);
        command.args(["--skip-systemctl-redirect", version, "main", "start"]);
        // A cluster that is already running makes pg_ctlcluster fail; only
        // whether the database answers in the end matters.
        if let Err(err) = run_daemon_start(command, &log) {
            console.info(&format!("PostgreSQL {version}: {err:#}"));
        }
    }
    wait_until(timeout, || postgres_answers(endpoint)).with_context(|| {
        format!(
            "started PostgreSQL but nothing answers at {endpoint} after {}s \
             (see {} and /var/log/postgresql/)",
            timeout.as_secs(),
            log_dir.display()
        )
    })?;
    console.info(&format!("PostgreSQL: answering at {endpoint}"));
    Ok(())
}

/// Versions with a cluster directory under `/etc/postgresql/`.
fn installed_postgres_versions() -> Vec<String> {
    let mut versions: Vec<String> = fs::read_dir("/etc/postgresql")
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| e.path().join("main").is_dir())
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    versions.sort();
    versions
}

/// Runs a command that starts a daemon and returns. It gets its own process
/// group (a Ctrl-C of xtask must not reach the daemon) and a log file for
/// stdio (a daemon holding xtask's stdout open would keep a CI log open).
fn run_daemon_start(mut command: Command, log: &Path) -> anyhow::Result<()> {
    if let Some(dir) = log.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let out = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let err = out.try_clone().context("duplicating log file handle")?;
    let status = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .status()
        .with_context(|| format!("running {:?}", command.get_program()))?;
    if !status.success() {
        let text = fs::read_to_string(log).unwrap_or_default();
        bail!(
            "{:?} failed ({status}): {}",
            command.get_program(),
            text.trim()
        );
    }
    Ok(())
}

/// Polls `check` every 500 ms until it is true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("timed out after {}s", timeout.as_secs());
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// Finds a program on PATH or in the system directories root's PATH has
/// but a user's may lack (`rabbitmq-server` lives in /usr/sbin).
pub fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/local/sbin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn endpoints_use_the_scheme_default_port() {
        let amqp = Endpoint::from_url("amqp://guest:guest@127.0.0.1:5672/%2f").expect("url");
        assert_eq!(amqp.to_string(), "127.0.0.1:5672");
        assert!(amqp.is_local());
        assert_eq!(
            Endpoint::from_url("amqps://u:p@broker.example/vh").expect("url"),
            Endpoint {
                host: "broker.example".to_owned(),
                port: 5671
            }
        );
        let pg = Endpoint::from_url("postgres://postgres@localhost/haven").expect("url");
        assert_eq!(pg.port, 5432);
        assert!(pg.is_local());
        let v6 = Endpoint::from_url("amqp://[::1]:5673").expect("url");
        assert_eq!(v6.to_string(), "[::1]:5673");
        assert!(v6.is_local());
        assert!(
            !Endpoint::from_url("amqp://10.0.0.5")
                .expect("url")
                .is_local()
        );
        assert!(Endpoint::from_url("http://127.0.0.1").is_err());
        assert!(Endpoint::from_url("not a url").is_err());
    }

    #[test]
    fn an_open_port_that_does_not_speak_amqp_is_not_a_broker() {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = listener.local_addr().expect("addr").port();
        // Accepts, reads the header, answers with garbage.
        let server = thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut header = [0u8; 8];
            conn.read_exact(&mut header).expect("header");
            assert_eq!(&header, b"AMQP\x00\x00\x09\x01");
            conn.write_all(b"HTTP/1.1 400\r\n").expect("write");
        });
        let endpoint = Endpoint {
            host: "127.0.0.1".to_owned(),
            port,
        };
        assert!(!amqp_answers(&endpoint));
        server.join().expect("server thread");
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let endpoint = Endpoint {
            host: "127.0.0.1".to_owned(),
            port,
        };
        assert!(!amqp_answers(&endpoint));
    }

    #[test]
    fn daemon_starts_log_to_a_file_and_report_failures_with_it() {
        let dir = std::env::temp_dir().join(format!("xtask-daemon-{}", std::process::id()));
        let log = dir.join("start.log");
        let mut ok = Command::new("sh");
        ok.args(["-c", "echo started"]);
        run_daemon_start(ok, &log).expect("succeeds");
        assert_eq!(fs::read_to_string(&log).expect("log"), "started\n");

        let mut failing = Command::new("sh");
        failing.args(["-c", "echo 'node already running' >&2; exit 2"]);
        let err = run_daemon_start(failing, &log).expect_err("fails");
        assert!(err.to_string().contains("node already running"), "{err}");
        fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn wait_until_gives_up_after_the_timeout() {
        assert!(wait_until(Duration::ZERO, || false).is_err());
        let mut calls = 0;
        wait_until(Duration::from_secs(30), || {
            calls += 1;
            calls == 2
        })
        .expect("second call succeeds");
        assert_eq!(calls, 2);
    }
}
