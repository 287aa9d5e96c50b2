//! Runs the stack's long-lived processes: prefixes their output, keeps their
//! last lines for error reports, notices one that dies, and stops them all
//! gracefully (SIGTERM, a grace period, then SIGKILL).

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use anyhow::Context;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

use crate::console::{Color, Console};

/// How many output lines of each process are kept for error reports.
const TAIL_LINES: usize = 30;

/// What woke [`Supervisor::wait`] up.
#[derive(Debug)]
pub enum Wake {
    /// Ctrl-C or SIGTERM.
    Signal,
    /// A process exited on its own.
    Exited {
        name: String,
        /// How it ended.
        status: ExitStatus,
    },
    /// The timeout passed with nothing to report.
    Timeout,
}

struct Managed {
    name: String,
    /// Processes stop in descending stage order: services before the chain
    /// they may still be sending transactions to.
    stage: u8,
    child: Child,
    tail: Arc<Mutex<VecDeque<String>>>,
    readers: Vec<JoinHandle<()>>,
    exited: Option<ExitStatus>,
}

/// The processes of one `cargo xtask up`.
pub struct Supervisor {
    console: Console,
    signals: Receiver<()>,
    children: Vec<Managed>,
    next_color: usize,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.children.iter().map(|c| c.name.as_str()).collect();
        f.debug_struct("Supervisor")
            .field("children", &names)
            .finish_non_exhaustive()
    }
}

impl Supervisor {
    /// `signals` receives one `()` per Ctrl-C / SIGTERM.
    pub fn new(console: Console, signals: Receiver<()>) -> Self {
        Self {
            console,
            signals,
            children: Vec::new(),
            next_color: 0,
        }
    }

    /// Starts a long-lived process in its own process group, so a terminal
    /// Ctrl-C reaches only xtask, which then stops everything in order.
    /// Returns its pid.
    pub fn spawn(
        &mut self,
        name: &str,
        stage: u8,
        color: Option<Color>,
        echo: bool,
        mut command: Command,
    ) -> anyhow::Result<u32> {
        let color = color.unwrap_or_else(|| {
            let color = Color::PALETTE[self.next_color % Color::PALETTE.len()];
            self.next_color += 1;
            color
        });
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let mut readers = Vec::new();
        let sink = || Sink {
            console: self.console,
            name: name.to_owned(),
            color,
            echo,
            tail: Arc::clone(&tail),
            collect: None,
        };
        if let Some(stdout) = child.stdout.take() {
            readers.push(sink().spawn(stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            readers.push(sink().spawn(stderr));
        }
        let pid = child.id();
        self.children.push(Managed {
            name: name.to_owned(),
            stage,
            child,
            tail,
            readers,
            exited: None,
        });
        Ok(pid)
    }

    /// The last output lines of a process, oldest first.
    pub fn tail(&self, name: &str) -> Vec<String> {
        self.children
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.tail.lock().ok().map(|t| t.iter().cloned().collect()))
            .unwrap_or_default()
    }

    /// A report of a process's last lines, indented, for error messages.
    pub fn tail_report(&self, name: &str) -> String {
        let lines = self.tail(name);
        if lines.is_empty() {
            return format!("{name} printed nothing");
        }
        let mut report = format!("last {} lines of {name}:", lines.len());
        for line in lines {
            report.push_str("\n    ");
            report.push_str(&line);
        }
        report
    }

    /// Waits until a stop is requested, a process exits, or `timeout` passes.
    pub fn wait(&mut self, timeout: Duration) -> Wake {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((name, status)) = self.reap() {
                return Wake::Exited { name, status };
            }
            let now = Instant::now();
            if now >= deadline {
                return Wake::Timeout;
            }
            let slice = (deadline - now).min(Duration::from_millis(100));
            match self.signals.recv_timeout(slice) {
                Ok(()) => return Wake::Signal,
                Err(RecvTimeoutError::Timeout) => {}
                // No handler any more: recv_timeout returns at once, so pace the loop.
                Err(RecvTimeoutError::Disconnected) => thread::sleep(slice),
            }
        }
    }

    /// The first process found to have exited since the last call.
    fn reap(&mut self) -> Option<(String, ExitStatus)> {
        for managed in &mut self.children {
            if managed.exited.is_some() {
                continue;
            }
            if let Ok(Some(status)) = managed.child.try_wait() {
                managed.exited = Some(status);
                join_readers(&mut managed.readers, Duration::from_secs(1));
                return Some((managed.name.clone(), status));
            }
        }
        None
    }

    /// Runs a short-lived command to completion, its output prefixed like the
    /// others'. Returns `None` when a stop was requested meanwhile (the
    /// command is then sent SIGTERM and awaited).
    pub fn run_to_completion(
        &mut self,
        name: &str,
        color: Color,
        mut command: Command,
    ) -> anyhow::Result<Option<Finished>> {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {name} ({:?})", command.get_program()))?;
        let tail = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL_LINES)));
        let stdout_lines = Arc::new(Mutex::new(Vec::new()));
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let sink = Sink {
                console: self.console,
                name: name.to_owned(),
                color,
                echo: true,
                tail: Arc::clone(&tail),
                collect: Some(Arc::clone(&stdout_lines)),
            };
            readers.push(sink.spawn(stdout));
        }
        if let Some(stderr) = child.stderr.take() {
            let sink = Sink {
                console: self.console,
                name: name.to_owned(),
                color,
                echo: true,
                tail: Arc::clone(&tail),
                collect: None,
            };
            readers.push(sink.spawn(stderr));
        }
        let status = loop {
            if let Some(status) = child
                .try_wait()
                .with_context(|| format!("waiting for {name}"))?
            {
                break status;
            }
            match self.signals.recv_timeout(Duration::from_millis(100)) {
                Ok(()) => {
                    signal_group(&child, Signal::SIGTERM);
                    let _ = child.wait();
                    join_readers(&mut readers, Duration::from_secs(1));
                    return Ok(None);
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => thread::sleep(Duration::from_millis(100)),
            }
        };
        join_readers(&mut readers, Duration::from_secs(5));
        let take = |lines: &Mutex<Vec<String>>| lines.lock().map(|l| l.clone()).unwrap_or_default();
        Ok(Some(Finished {
            status,
            stdout: take(&stdout_lines),
        }))
    }

    /// Stops every running process: SIGTERM to the highest stage first, up
    /// to `grace` for it to exit, then SIGKILL; then the next stage. A second
    /// Ctrl-C skips the grace period.
    pub fn shutdown(&mut self, grace: Duration) {
        let mut stages: Vec<u8> = self.children.iter().map(|c| c.stage).collect();
        stages.sort_unstable();
        stages.dedup();
        let mut hurry = false;
        for stage in stages.into_iter().rev() {
            let running: Vec<usize> = (0..self.children.len())
                .filter(|&i| self.children[i].stage == stage && self.still_running(i))
                .collect();
            if running.is_empty() {
                continue;
            }
            let names: Vec<&str> = running
                .iter()
                .map(|&i| self.children[i].name.as_str())
                .collect();
            self.console.info(&format!("stopping {}", names.join(", ")));
            for &i in &running {
                signal_group(&self.children[i].child, Signal::SIGTERM);
            }
            let deadline = Instant::now() + grace;
            while !hurry
                && Instant::now() < deadline
                && running.iter().any(|&i| self.still_running(i))
            {
                if let Ok(()) = self.signals.recv_timeout(Duration::from_millis(50)) {
                    self.console.info("second stop request: killing now");
                    hurry = true;
                }
            }
            for &i in &running {
                if self.still_running(i) {
                    let managed = &mut self.children[i];
                    if !hurry {
                        self.console.error(&format!(
                            "{} did not stop within {:.1}s: killing it",
                            managed.name,
                            grace.as_secs_f64()
                        ));
                    }
                    signal_group(&managed.child, Signal::SIGKILL);
                    let _ = managed.child.kill();
                    managed.exited = managed.child.wait().ok();
                }
                join_readers(&mut self.children[i].readers, Duration::from_secs(1));
            }
        }
    }

    fn still_running(&mut self, index: usize) -> bool {
        let managed = &mut self.children[index];
        if managed.exited.is_some() {
            return false;
        }
        match managed.child.try_wait() {
            Ok(Some(status)) => {
                managed.exited = Some(status);
                false
            }
            Ok(None) => true,
            // The child cannot be waited for: nothing more we can do with it.
            Err(_) => false,
        }
    }
}

impl Drop for Supervisor {
    /// A panic or an early return must not leave the stack running in the
    /// background: whatever [`Supervisor::shutdown`] did not stop is killed.
    fn drop(&mut self) {
        for index in 0..self.children.len() {
            if self.still_running(index) {
                let managed = &mut self.children[index];
                signal_group(&managed.child, Signal::SIGKILL);
                let _ = managed.child.wait();
            }
        }
    }
}

/// A command run by [`Supervisor::run_to_completion`].
#[derive(Debug)]
pub struct Finished {
    /// How it ended.
    pub status: ExitStatus,
    /// Every line it printed on stdout.
    pub stdout: Vec<String>,
}

/// Where a reader thread sends a process's lines.
struct Sink {
    console: Console,
    name: String,
    color: Color,
    echo: bool,
    tail: Arc<Mutex<VecDeque<String>>>,
    collect: Option<Arc<Mutex<Vec<String>>>>,
}

impl Sink {
    fn spawn(self, stream: impl Read + Send + 'static) -> JoinHandle<()> {
        thread::spawn(move || {
            // Split on bytes: a child's non-UTF-8 output must not stop the reader.
            for line in BufReader::new(stream).split(b'\n') {
                let Ok(line) = line else { break };
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches('\r');
                if self.echo {
                    self.console.line(&self.name, self.color, text);
                }
                if let Ok(mut tail) = self.tail.lock() {
                    if tail.len() == TAIL_LINES {
                        tail.pop_front();
                    }
                    tail.push_back(text.to_owned());
                }
                if let Some(all) = &self.collect
                    && let Ok(mut all) = all.lock()
                {
                    all.push(text.to_owned());
                }
            }
        })
    }
}

/// Signals the process group a spawned process leads (its pgid is its pid),
/// so helpers it started (a node wrapper's real binary, a shell's children)
/// get the signal too. A group that is already gone is not an error.
fn signal_group(child: &Child, signal: Signal) {
    if let Ok(pid) = i32::try_from(child.id()) {
        let _ = killpg(Pid::from_raw(pid), signal);
    }
}

/// Waits a little for the output readers so a process's last lines are
/// printed before xtask's own messages; a grandchild holding the pipe open
/// must not hang xtask, hence the bound.
fn join_readers(readers: &mut Vec<JoinHandle<()>>, bound: Duration) {
    let deadline = Instant::now() + bound;
    while readers.iter().any(|r| !r.is_finished()) && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(10));
    }
    for reader in std::mem::take(readers) {
        if reader.is_finished() {
            let _ = reader.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn supervisor() -> (Supervisor, mpsc::Sender<()>) {
        let (tx, rx) = mpsc::channel();
        (Supervisor::new(Console::detect(true), rx), tx)
    }

    fn sh(script: &str) -> Command {
        let mut command = Command::new("sh");
        command.args(["-c", script]);
        command
    }

    #[test]
    fn a_process_that_exits_is_reported_with_its_last_lines() {
        let (mut sup, _tx) = supervisor();
        sup.spawn("dies", 1, None, false, sh("echo one; echo two >&2; exit 3"))
            .expect("spawned");
        let Wake::Exited { name, status } = sup.wait(Duration::from_secs(30)) else {
            panic!("expected an exit");
        };
        assert_eq!(name, "dies");
        assert_eq!(status.code(), Some(3));
        let mut tail = sup.tail("dies");
        tail.sort();
        assert_eq!(tail, ["one", "two"]);
        assert!(sup.tail_report("dies").starts_with("last 2 lines of dies:"));
    }

    #[test]
    fn a_stop_request_wakes_the_wait() {
        let (mut sup, tx) = supervisor();
        sup.spawn("sleeper", 1, None, false, sh("sleep 30"))
            .expect("spawned");
        tx.send(()).expect("send");
        assert!(matches!(sup.wait(Duration::from_secs(30)), Wake::Signal));
        sup.shutdown(Duration::from_secs(5));
        assert!(!sup.still_running(0));
    }

    #[test]
    fn shutdown_sends_sigterm_then_kills_what_ignores_it() {
        let (mut sup, _tx) = supervisor();
        // Reports SIGTERM on its output, then exits.
        sup.spawn(
            "polite",
            0,
            None,
            false,
            sh("trap 'echo got-term; exit 0' TERM; while :; do sleep 0.1; done"),
        )
        .expect("spawned");
        // Ignores SIGTERM: must be killed after the grace period.
        sup.spawn(
            "stubborn",
            1,
            None,
            false,
            sh("trap '' TERM; echo ready; while :; do sleep 0.1; done"),
        )
        .expect("spawned");
        // Give the shells time to install their traps.
        let deadline = Instant::now() + Duration::from_secs(30);
        while sup.tail("stubborn").is_empty() && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
        }
        thread::sleep(Duration::from_millis(200));

        sup.shutdown(Duration::from_millis(500));
        assert!(!sup.still_running(0));
        assert!(!sup.still_running(1));
        // The shell's `sleep` got the group's SIGTERM too, hence other lines.
        assert!(sup.tail("polite").contains(&"got-term".to_owned()));
        let stubborn = sup.children[1].exited.expect("reaped");
        assert!(!stubborn.success(), "killed, not exited: {stubborn:?}");
    }

    #[test]
    fn dropping_the_supervisor_kills_what_still_runs() {
        let (mut sup, _tx) = supervisor();
        let pid = sup
            .spawn("orphan", 1, None, false, sh("sleep 30"))
            .expect("spawned");
        drop(sup);
        let pid = Pid::from_raw(i32::try_from(pid).expect("pid fits"));
        // Reaped by the drop: the pid no longer names a process of ours.
        assert!(nix::sys::signal::kill(pid, None).is_err());
    }

    #[test]
    fn commands_run_to_completion_report_status_and_stdout() {
        let (mut sup, _tx) = supervisor();
        let finished = sup
            .run_to_completion(
                "deploy",
                Color::Grey,
                sh("echo noise >&2; echo a; echo b; exit 7"),
            )
            .expect("ran")
            .expect("not interrupted");
        assert_eq!(finished.status.code(), Some(7));
        assert_eq!(finished.stdout, ["a", "b"]);
        // Not a supervised process: its exit is not reported later.
        assert!(matches!(sup.wait(Duration::from_millis(10)), Wake::Timeout));
    }

    #[test]
    fn a_stop_request_interrupts_a_command_run_to_completion() {
        let (mut sup, tx) = supervisor();
        tx.send(()).expect("send");
        let finished = sup
            .run_to_completion("slow", Color::Grey, sh("sleep 30"))
            .expect("ran");
        assert!(finished.is_none());
    }
}
