//! Line coverage of the test suite with cargo-llvm-cov: the nextest step
//! runs under it (the suite runs once, instrumented), and the coverage step
//! reads the report, prints it per crate and checks the threshold on the
//! shared crates and the services.
//!
//! Tools: `cargo install cargo-llvm-cov --locked` (crates.io) and rustup's
//! `llvm-tools` component (llvm-profdata, llvm-cov), both installed when
//! missing and working offline afterwards.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::Context;
use serde::Deserialize;

use crate::console::Console;
use crate::step::{StepError, StepResult, run_command};
use crate::workspace::{Workspace, cargo};

/// Version installed when cargo-llvm-cov is missing.
const LLVM_COV_VERSION: &str = "0.9.1";

/// Where the step writes `summary.json` (llvm-cov's export) and `summary.md`.
pub fn report_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("coverage")
}

/// Installs cargo-llvm-cov and the LLVM tools when missing.
pub fn ensure_tools(ws: &Workspace, console: Console) -> StepResult {
    let present = Command::new(cargo())
        .args(["llvm-cov", "--version"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !present {
        console.info(&format!(
            "cargo-llvm-cov is missing: cargo install cargo-llvm-cov --locked --version {LLVM_COV_VERSION}"
        ));
        let mut command = Command::new(cargo());
        command
            .args([
                "install",
                "cargo-llvm-cov",
                "--locked",
                "--version",
                LLVM_COV_VERSION,
            ])
            .current_dir(&ws.root);
        run_command(command)?;
    }
    // Idempotent and quick when the component is there; rustup picks the
    // toolchain this workspace builds with.
    let mut command = Command::new("rustup");
    command
        .args(["component", "add", "llvm-tools-preview"])
        .current_dir(&ws.root);
    run_command(command)
}

/// `cargo llvm-cov nextest ...` arguments wrapping the suite's nextest
/// arguments (`nextest run ...` without `cargo`): the run only collects,
/// [`report_step`] reports.
pub fn wrap_nextest(nextest: &[String]) -> Vec<String> {
    let mut args: Vec<String> = vec!["llvm-cov".into(), "nextest".into(), "--no-report".into()];
    // Skip "nextest run": llvm-cov's subcommand is `nextest` and it passes
    // the rest through.
    args.extend(nextest.iter().skip(2).cloned());
    args
}

/// Line counts of one group of files.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Lines {
    /// Executable lines.
    pub count: u64,
    /// Of which ran.
    pub covered: u64,
}

impl Lines {
    fn add(&mut self, other: Lines) {
        self.count += other.count;
        self.covered += other.covered;
    }

    /// Percentage covered (100 for no lines).
    pub fn percent(&self) -> f64 {
        if self.count == 0 {
            100.0
        } else {
            self.covered as f64 * 100.0 / self.count as f64
        }
    }
}

#[derive(Debug, Deserialize)]
struct Export {
    data: Vec<ExportData>,
}

#[derive(Debug, Deserialize)]
struct ExportData {
    files: Vec<ExportFile>,
}

#[derive(Debug, Deserialize)]
struct ExportFile {
    filename: PathBuf,
    summary: ExportSummary,
}

#[derive(Debug, Deserialize)]
struct ExportSummary {
    lines: ExportLines,
}

#[derive(Debug, Deserialize)]
struct ExportLines {
    count: u64,
    covered: u64,
}

/// Coverage by crate directory, and the gated total.
#[derive(Debug, Default)]
pub struct Summary {
    /// `shared/common`, `services/read-api`, ... -> lines.
    pub by_crate: BTreeMap<String, Lines>,
    /// Product code the threshold applies to: `src/` of the shared crates
    /// and the services, without test helpers.
    pub gated: Lines,
    /// Every instrumented workspace file.
    pub workspace: Lines,
}

/// Whether the threshold covers this file (path relative to the root).
fn gated(relative: &str) -> bool {
    (relative.starts_with("shared/") || relative.starts_with("services/"))
        && relative.contains("/src/")
        // Test scaffolding behind the `test-util` feature, not product code.
        && !relative.contains("/src/testing/")
}

/// The crate directory of a workspace file (`shared/common/src/x.rs` ->
/// `shared/common`; `xtask/src/ci.rs` -> `xtask`).
fn crate_of(relative: &str) -> String {
    let parts: Vec<&str> = relative.split('/').collect();
    match parts.as_slice() {
        ["shared" | "services", name, ..] => format!("{}/{name}", parts[0]),
        [first, ..] => (*first).to_owned(),
        [] => String::new(),
    }
}

impl Summary {
    /// Reads llvm-cov's JSON export (`--summary-only`); files outside `root`
    /// (dependencies, the standard library) are left out.
    pub fn from_export(json: &str, root: &Path) -> anyhow::Result<Self> {
        let export: Export =
            serde_json::from_str(json).context("reading llvm-cov's JSON export")?;
        let mut summary = Summary::default();
        for file in export.data.iter().flat_map(|d| &d.files) {
            let Ok(relative) = file.filename.strip_prefix(root) else {
                continue;
            };
            let relative = relative.to_string_lossy().replace('\\', "/");
            let lines = Lines {
                count: file.summary.lines.count,
                covered: file.summary.lines.covered,
            };
            summary.workspace.add(lines);
            summary
                .by_crate
                .entry(crate_of(&relative))
                .or_default()
                .add(lines);
            if gated(&relative) {
                summary.gated.add(lines);
            }
        }
        Ok(summary)
    }

    /// A Markdown table of every crate and the two totals.
    pub fn markdown(&self, min: f64) -> String {
        let mut out = String::from("| crate | lines | covered | % |\n|---|---:|---:|---:|\n");
        for (name, lines) in &self.by_crate {
            out.push_str(&format!(
                "| `{name}` | {} | {} | {:.1} |\n",
                lines.count,
                lines.covered,
                lines.percent()
            ));
        }
        out.push_str(&format!(
            "| **shared crates + services (`src/`, gate {min:.0}%)** | {} | {} | **{:.1}** |\n",
            self.gated.count,
            self.gated.covered,
            self.gated.percent()
        ));
        out.push_str(&format!(
            "| whole workspace | {} | {} | {:.1} |\n",
            self.workspace.count,
            self.workspace.covered,
            self.workspace.percent()
        ));
        out
    }
}

/// Exports the report of the instrumented run, prints it and fails below
/// `min` percent of lines in the shared crates and the services.
pub fn report_step(ws: &Workspace, min: f64, console: Console) -> StepResult {
    let dir = report_dir(ws);
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let json = dir.join("summary.json");
    let mut command = Command::new(cargo());
    command
        .args([
            "llvm-cov",
            "report",
            "--json",
            "--summary-only",
            "--output-path",
        ])
        .arg(&json)
        .current_dir(&ws.root);
    run_command(command)?;
    let text = fs::read_to_string(&json).with_context(|| format!("reading {}", json.display()))?;
    let summary = Summary::from_export(&text, &ws.root)?;
    let table = summary.markdown(min);
    fs::write(dir.join("summary.md"), &table).context("writing summary.md")?;
    for line in table.lines() {
        console.info(line);
    }
    let percent = summary.gated.percent();
    if summary.gated.count == 0 {
        return Err(StepError::Failed(
            "no line of the shared crates or services was instrumented".into(),
        ));
    }
    if percent < min {
        return Err(StepError::Failed(format!(
            "line coverage of the shared crates and services is {percent:.1}%, below the {min:.0}% gate \
             (per crate in {})",
            dir.join("summary.md").display()
        )));
    }
    console.info(&format!(
        "coverage: {percent:.1}% of {} lines in the shared crates and services (gate {min:.0}%); \
         report in {}",
        summary.gated.count,
        dir.display()
    ));
    Ok(())
}

/// Checks a `--coverage-min` value.
pub fn parse_min(value: &str) -> Result<f64, String> {
    let min: f64 = value
        .parse()
        .map_err(|_| format!("`{value}` is not a percentage"))?;
    if !(0.0..=100.0).contains(&min) {
        return Err(format!("{min} is not between 0 and 100"));
    }
    Ok(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXPORT: &str = r#"{"data":[{"files":[
        {"filename":"/w/shared/common/src/money.rs","summary":{"lines":{"count":100,"covered":90,"percent":90.0}}},
        {"filename":"/w/shared/common/src/testing/db.rs","summary":{"lines":{"count":50,"covered":10,"percent":20.0}}},
        {"filename":"/w/services/read-api/src/lib.rs","summary":{"lines":{"count":40,"covered":30,"percent":75.0}}},
        {"filename":"/w/services/read-api/tests/it/main.rs","summary":{"lines":{"count":10,"covered":10,"percent":100.0}}},
        {"filename":"/w/xtask/src/ci.rs","summary":{"lines":{"count":200,"covered":20,"percent":10.0}}},
        {"filename":"/home/u/.cargo/registry/src/x/lib.rs","summary":{"lines":{"count":1000,"covered":0,"percent":0.0}}}
    ],"totals":{}}],"type":"llvm.coverage.json.export","version":"2.0.1"}"#;

    #[test]
    fn gate_counts_product_code_of_shared_crates_and_services_only() {
        let summary = Summary::from_export(EXPORT, Path::new("/w")).expect("parsed");
        assert_eq!(
            summary.gated,
            Lines {
                count: 140,
                covered: 120
            }
        );
        assert_eq!(
            summary.workspace,
            Lines {
                count: 400,
                covered: 160
            }
        );
        assert_eq!(summary.by_crate["shared/common"].count, 150);
        assert_eq!(summary.by_crate["services/read-api"].count, 50);
        assert_eq!(summary.by_crate["xtask"].count, 200);
        assert!(!summary.by_crate.keys().any(|k| k.contains("registry")));
        let table = summary.markdown(80.0);
        assert!(table.contains("| **85.7** |"), "{table}");
        assert!(table.contains("| `xtask` | 200 | 20 | 10.0 |"), "{table}");
    }

    #[test]
    fn nextest_arguments_are_passed_through_llvm_cov() {
        let nextest: Vec<String> = ["nextest", "run", "--workspace", "--profile", "ci"]
            .map(str::to_owned)
            .to_vec();
        assert_eq!(
            wrap_nextest(&nextest),
            [
                "llvm-cov",
                "nextest",
                "--no-report",
                "--workspace",
                "--profile",
                "ci"
            ]
        );
    }

    #[test]
    fn coverage_minimum_is_a_percentage() {
        assert_eq!(parse_min("80"), Ok(80.0));
        assert_eq!(parse_min("72.5"), Ok(72.5));
        assert!(parse_min("101").is_err());
        assert!(parse_min("-1").is_err());
        assert!(parse_min("all").is_err());
        assert_eq!(Lines::default().percent(), 100.0);
    }
}
