//! Headless Chromium, for tests of what a browser renders (the `/docs` page).
//!
//! The browser is `CHROMIUM_BIN` (`cargo xtask test` installs Debian's
//! `chromium` package when no browser is found and sets it), else a
//! `chromium` on `PATH`. Where there is none, [`Chromium::find`] says so
//! loudly and the test skips, except in CI (`CI` set), where a check that
//! cannot run is a failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

/// Names a Chromium is installed under (Debian, Ubuntu's snap, Google's).
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];

/// How long the page's scripts may run, in the browser's virtual time.
const SCRIPT_BUDGET_MS: u32 = 15_000;
/// The longest a page load may take in real time before the test fails.
const LOAD_TIMEOUT: Duration = Duration::from_secs(120);

/// A headless Chromium.
#[derive(Debug, Clone)]
pub struct Chromium {
    bin: PathBuf,
}

impl Chromium {
    /// The browser of `CHROMIUM_BIN` or `PATH`; `None` (after a message on
    /// stderr) where there is none, so the calling test can skip. Panics in
    /// CI, and when `CHROMIUM_BIN` names a file that is not there.
    pub fn find() -> Option<Self> {
        if let Some(bin) = std::env::var_os("CHROMIUM_BIN") {
            let bin = PathBuf::from(bin);
            assert!(
                bin.is_file(),
                "CHROMIUM_BIN={} is not a file",
                bin.display()
            );
            return Some(Self { bin });
        }
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .flat_map(|dir| NAMES.map(|name| dir.join(name)))
                .find(|candidate| candidate.is_file())
        });
        if let Some(bin) = on_path {
            return Some(Self { bin });
        }
        let why = "no Chromium: set CHROMIUM_BIN or install one \
                   (`apt-get install chromium`; `cargo xtask test` installs it)";
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && v != "false");
        assert!(!in_ci, "{why}");
        eprintln!("\n!!!!! SKIPPED: this browser test did not run: {why} !!!!!\n");
        None
    }

    /// The browser's path.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// Opens `url` (on 127.0.0.1), lets its scripts run, and returns the
    /// DOM they left, serialized. Every host name but 127.0.0.1 fails to
    /// resolve, so a page that needs the internet (a CDN script) does not
    /// render. Panics when the browser fails or takes longer than two minutes.
    pub async fn dump_dom(&self, url: &str) -> String {
        // A profile of its own: parallel tests do not share a browser.
        let profile = std::env::temp_dir().join(format!("haven-chromium-{}", uuid::Uuid::new_v4()));
        let mut command = tokio::process::Command::new(&self.bin);
        command
            .arg("--headless")
            // Chromium's sandbox needs user namespaces, which containers
            // (and root) often lack; the page is the test's own.
            .arg("--no-sandbox")
            .arg("--disable-gpu")
            .arg("--disable-dev-shm-usage")
            .arg("--no-first-run")
            .arg("--no-default-browser-check")
            .arg("--disable-extensions")
            .arg("--disable-background-networking")
            .arg("--disable-component-update")
            .arg("--disable-sync")
            .arg("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg(format!("--virtual-time-budget={SCRIPT_BUDGET_MS}"))
            .arg("--dump-dom")
            .arg(url)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let output = tokio::time::timeout(LOAD_TIMEOUT, command.output()).await;
        let _ = std::fs::remove_dir_all(&profile);
        let output = output
            .unwrap_or_else(|_| {
                panic!("{} took over {LOAD_TIMEOUT:?} on {url}", self.bin.display())
            })
            .unwrap_or_else(|err| panic!("cannot run {}: {err}", self.bin.display()));
        assert!(
            output.status.success(),
            "{} failed on {url} ({}): {}",
            self.bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}
