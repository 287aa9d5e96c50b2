//! `cargo xtask test --step fuzz`: schemathesis against every service's
//! `/openapi.json`, on the stack `cargo xtask up` starts (the same processes,
//! settings and ports the black-box checks use).
//!
//! Each service's document is fuzzed with the dev API key: no answer may be
//! a 5xx, break its documented schema, status code, content type or headers,
//! or take longer than the request timeout. Partner webhooks are signed with
//! the stack's secrets (three cases in four, `xtask/fuzz/hooks.py`), so the
//! bodies reach the parser and the handlers. schemathesis is installed into
//! `target/fuzz/venv` from the pinned `xtask/fuzz/requirements.txt`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::console::Console;
use crate::stack::StackFile;
use crate::step::{StepError, StepResult, run_command};
use crate::workspace::Workspace;

/// The pinned schemathesis and its hypothesis.
const REQUIREMENTS: &str = "xtask/fuzz/requirements.txt";
/// Where `hooks.py` is (it signs the partners' webhooks).
const HOOKS_DIR: &str = "xtask/fuzz";
/// Test cases per operation and phase: enough to walk every documented
/// answer of every route, small enough for CI (about a minute a service).
const MAX_EXAMPLES: &str = "60";
/// An answer slower than this is a hang.
const REQUEST_TIMEOUT_SECS: &str = "10";
/// How long the stack may take to build and come up.
const STACK_TIMEOUT: Duration = Duration::from_secs(900);
/// What every answer is checked against.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance";

/// Runs the step.
pub(crate) fn step(ws: &Workspace, console: Console) -> StepResult {
    let st = install(ws, console)?;
    let stack_path = ws.dev_dir().join("stack.json");
    // A stack file left by another run must not be mistaken for ours.
    let _ = std::fs::remove_file(&stack_path);
    let log = ws.target_dir.join("fuzz").join("stack.log");
    let mut stack = Stack::start(ws, &log)?;
    let result = stack
        .wait_ready(&stack_path)
        .map_err(StepError::from)
        .and_then(|file| fuzz_all(&st, &file, &stack_path, ws, console));
    stack.stop(console);
    result
}

/// `target/fuzz/venv/bin/st`, installed from the pinned requirements when
/// they changed since the last install.
fn install(ws: &Workspace, console: Console) -> Result<PathBuf, StepError> {
    let venv = ws.target_dir.join("fuzz").join("venv");
    let st = venv.join("bin").join("st");
    let requirements = ws.root.join(REQUIREMENTS);
    let wanted = std::fs::read_to_string(&requirements)
        .with_context(|| format!("reading {REQUIREMENTS}"))?;
    let stamp = venv.join("installed-requirements.txt");
    if st.is_file() && std::fs::read_to_string(&stamp).is_ok_and(|done| done == wanted) {
        return Ok(st);
    }
    console.info(&format!("installing schemathesis into {}", venv.display()));
    let mut command = Command::new("python3");
    command.args(["-m", "venv"]).arg(&venv);
    run_command(command)?;
    let mut command = Command::new(venv.join("bin").join("pip"));
    command
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements);
    run_command(command)?;
    std::fs::write(&stamp, wanted).context("recording the installed requirements")?;
    Ok(st)
}

/// `cargo xtask up` as a child process.
struct Stack(Child);

impl Stack {
    /// Starts it with its output (every service's log lines) in `log`, the
    /// place to look when schemathesis reports a failure.
    fn start(ws: &Workspace, log: &Path) -> anyhow::Result<Self> {
        let xtask = std::env::current_exe().context("locating the xtask binary")?;
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone().context("sharing the stack log")?;
        let child = Command::new(xtask)
            .args(["up", "--no-color", "--new-secrets"])
            .current_dir(&ws.root)
            // The stack's own database: a fresh SQLite file, as `up` makes.
            .env_remove("DATABASE_URL")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("starting cargo xtask up")?;
        Ok(Self(child))
    }

    /// The stack file, once every service answers `/health`.
    fn wait_ready(&mut self, path: &Path) -> anyhow::Result<StackFile> {
        let started = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait()? {
                bail!("cargo xtask up exited before the stack was ready ({status})");
            }
            if let Ok(text) = std::fs::read_to_string(path)
                && let Ok(file) = serde_json::from_str::<StackFile>(&text)
            {
                return Ok(file);
            }
            if started.elapsed() > STACK_TIMEOUT {
                bail!("the stack was not ready within {STACK_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// SIGTERM, as Ctrl-C would: `up` stops every process gracefully.
    fn stop(&mut self, console: Console) {
        let pid = self.0.id().to_string();
        let signalled = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .is_ok_and(|s| s.success());
        if !signalled {
            let _ = self.0.kill();
        }
        if let Err(err) = self.0.wait() {
            console.error(&format!("waiting for cargo xtask up to stop: {err}"));
        }
    }
}

fn fuzz_all(
    st: &Path,
    stack: &StackFile,
    stack_path: &Path,
    ws: &Workspace,
    console: Console,
) -> StepResult {
    let reports = ws.target_dir.join("fuzz").join("reports");
    let mut failed = Vec::new();
    for (name, service) in &stack.services {
        console.info(&format!(
            "schemathesis: {name} ({}/openapi.json)",
            service.url
        ));
        let mut command = Command::new(st);
        command
            // hooks.py signs the partners' webhooks with the stack's secrets.
            .env("PYTHONPATH", ws.root.join(HOOKS_DIR))
            .env("SCHEMATHESIS_HOOKS", "hooks")
            .env("HAVEN_STACK_FILE", stack_path)
            // Its caches go under target/, not into the work tree.
            .current_dir(ws.target_dir.join("fuzz"))
            .arg("run")
            .arg(format!("{}/openapi.json", service.url))
            .args(["--checks", CHECKS])
            .args(["--max-examples", MAX_EXAMPLES])
            .args(["--request-timeout", REQUEST_TIMEOUT_SECS])
            .args(["--phases", "examples,coverage,fuzzing"])
            .args(["--generation-database", "none"])
            .args(["--seed", "20261203"])
            .args(["--workers", "2", "--no-color", "--warnings", "off"])
            .arg("--header")
            .arg(format!("X-API-Key: {}", stack.api_key))
            .args(["--report", "junit", "--report-dir"])
            .arg(reports.join(name));
        if run_command(command).is_err() {
            failed.push(name.clone());
        }
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(StepError::Failed(format!(
            "schemathesis found failures in: {} (reports under target/fuzz/reports, the services' logs in target/fuzz/stack.log)",
            failed.join(", ")
        )))
    }
}
