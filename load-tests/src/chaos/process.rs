//! One service as a supervised operating-system process: started from its
//! binary with its command line, its output appended to a log file, and
//! started again a second after it dies (a `kill -9` by a fault, a crash),
//! as a container orchestrator would, until it is stopped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How long a stopped service gets to finish in-flight work after SIGTERM.
const STOP_GRACE: Duration = Duration::from_secs(15);
/// Pause before a dead service is started again.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// A running, supervised service process.
#[derive(Debug)]
pub struct Supervised {
    name: String,
    /// Base URL of its HTTP listener (`/health`, `/metrics`, its API).
    url: String,
    /// Pid of the current process (0 between a death and the restart).
    pid: Arc<AtomicU32>,
    /// Times it died and was started again.
    restarts: Arc<AtomicU32>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Supervised {
    /// Starts `program` with `args` (`args[0]` is the service's name, as in
    /// `haven_e2e::command_lines`), listening on `127.0.0.1:port`, its output
    /// appended to `log`.
    pub async fn start(
        program: &Path,
        args: Vec<String>,
        port: u16,
        log: PathBuf,
    ) -> anyhow::Result<Self> {
        let name = args.first().cloned().unwrap_or_default();
        let mut argv = args.into_iter().skip(1).collect::<Vec<_>>();
        argv.extend(
            [
                "--http-host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--log-format",
                "json",
            ]
            .map(str::to_owned),
        );
        let pid = Arc::new(AtomicU32::new(0));
        let restarts = Arc::new(AtomicU32::new(0));
        let stop = CancellationToken::new();
        // The first start is checked here, so a missing binary is an error
        // and not a restart loop.
        let child = spawn(program, &argv, &log)
            .with_context(|| format!("start {name} ({})", program.display()))?;
        pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
        let task = tokio::spawn(supervise(Watch {
            name: name.clone(),
            program: program.to_owned(),
            argv,
            log,
            pid: pid.clone(),
            restarts: restarts.clone(),
            stop: stop.clone(),
            child,
        }));
        Ok(Self {
            name,
            url: format!("http://127.0.0.1:{port}"),
            pid,
            restarts,
            stop,
            task,
        })
    }

    /// The service's name (its binary's).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Base URL of its HTTP listener.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Pid of the current process (0 between a death and the restart).
    pub fn pid(&self) -> u32 {
        self.pid.load(Ordering::SeqCst)
    }

    /// How many times it died and was started again.
    pub fn restarts(&self) -> u32 {
        self.restarts.load(Ordering::SeqCst)
    }

    /// `kill -9` of the current process (the supervisor starts it again);
    /// false when no process was running.
    pub fn kill9(&self) -> bool {
        signal(self.pid.load(Ordering::SeqCst), Signal::SIGKILL)
    }

    /// Stops it for good: SIGTERM, [`STOP_GRACE`], then SIGKILL.
    pub async fn stop(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

fn signal(pid: u32, signal: Signal) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    pid > 0 && kill(Pid::from_raw(pid), signal).is_ok()
}

fn spawn(program: &Path, argv: &[String], log: &Path) -> std::io::Result<Child> {
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)?;
    let err = out.try_clone()?;
    Command::new(program)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .kill_on_drop(true)
        .spawn()
}

struct Watch {
    name: String,
    program: PathBuf,
    argv: Vec<String>,
    log: PathBuf,
    pid: Arc<AtomicU32>,
    restarts: Arc<AtomicU32>,
    stop: CancellationToken,
    child: Child,
}

async fn supervise(mut w: Watch) {
    loop {
        tokio::select! {
            status = w.child.wait() => {
                w.pid.store(0, Ordering::SeqCst);
                if w.stop.is_cancelled() {
                    return;
                }
                tracing::warn!(service = %w.name, ?status, "service died; starting it again");
            }
            () = w.stop.cancelled() => {
                let pid = w.pid.load(Ordering::SeqCst);
                signal(pid, Signal::SIGTERM);
                if tokio::time::timeout(STOP_GRACE, w.child.wait()).await.is_err() {
                    tracing::warn!(service = %w.name, "no exit {STOP_GRACE:?} after SIGTERM; killing it");
                    let _ = w.child.kill().await;
                }
                return;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(RESTART_DELAY) => {}
            () = w.stop.cancelled() => return,
        }
        match spawn(&w.program, &w.argv, &w.log) {
            Ok(child) => {
                w.pid.store(child.id().unwrap_or(0), Ordering::SeqCst);
                w.restarts.fetch_add(1, Ordering::SeqCst);
                w.child = child;
            }
            Err(err) => {
                tracing::error!(service = %w.name, error = %err, "cannot start the service again");
                return;
            }
        }
    }
}

/// A free TCP port on 127.0.0.1 (bound, then released for the service).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("find a free port")?;
    Ok(listener.local_addr()?.port())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_killed_process_is_started_again_and_a_stopped_one_is_not() {
        let log = std::env::temp_dir().join(format!("chaos-process-{}.log", uuid::Uuid::new_v4()));
        // The service flags the supervisor appends become the shell's $0...
        let args = ["sh", "-c", "echo started; exec sleep 60"]
            .map(str::to_owned)
            .to_vec();
        let process = Supervised::start(
            Path::new("/bin/sh"),
            args,
            free_port().unwrap(),
            log.clone(),
        )
        .await
        .unwrap();
        assert_eq!(process.name(), "sh");
        assert_eq!(process.restarts(), 0);
        // Wait for the first run's line, so the kill hits a running shell.
        let started = |n: usize| {
            std::fs::read_to_string(&log).is_ok_and(|l| l.matches("started").count() == n)
        };
        haven_common::testing::eventually("the first start", Duration::from_secs(10), || async {
            started(1)
        })
        .await;

        assert!(process.kill9());
        haven_common::testing::eventually("the restart", Duration::from_secs(10), || async {
            process.restarts() == 1 && started(2)
        })
        .await;

        process.stop().await;
        let _ = std::fs::remove_file(&log);
    }

    #[tokio::test]
    async fn a_missing_binary_is_an_error_not_a_restart_loop() {
        let log = std::env::temp_dir().join(format!("chaos-missing-{}.log", uuid::Uuid::new_v4()));
        let err = Supervised::start(
            Path::new("/nonexistent/webhook-ingress"),
            vec!["webhook-ingress".to_owned()],
            free_port().unwrap(),
            log.clone(),
        )
        .await
        .unwrap_err();
        assert!(
            format!("{err:#}").contains("start webhook-ingress"),
            "{err:#}"
        );
        let _ = std::fs::remove_file(&log);
    }
}
