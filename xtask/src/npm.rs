//! The Node tools the stack and the contract tests use (anvil, solc,
//! OpenZeppelin), installed into the repository's `node_modules/` from the
//! committed `package.json` + `package-lock.json`, so every machine gets the
//! same versions.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::SystemTime;

use anyhow::{Context, bail};

use crate::console::Console;

/// Installed Node tools.
#[derive(Debug, Clone)]
pub struct NodeTools {
    modules: PathBuf,
}

impl NodeTools {
    /// The anvil binary. `@foundry-rs/anvil` ships the real binary in a
    /// per-platform optional package; running it directly (rather than the
    /// `.bin/anvil` node wrapper) lets signals reach anvil itself.
    pub fn anvil(&self) -> PathBuf {
        let platform = self
            .modules
            .join("@foundry-rs")
            .join(format!("anvil-{}", platform_suffix()))
            .join("bin")
            .join("anvil");
        if platform.is_file() {
            platform
        } else {
            self.modules.join(".bin").join("anvil")
        }
    }
}

/// `@foundry-rs/<tool>-<os>-<arch>` suffix of this machine.
fn platform_suffix() -> String {
    let os = match std::env::consts::OS {
        "macos" => "darwin",
        "windows" => "win32",
        other => other,
    };
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    format!("{os}-{arch}")
}

/// Installs the npm packages when `node_modules/` is missing or older than
/// the lockfile, then checks that anvil runs.
pub fn ensure(root: &Path, console: Console) -> anyhow::Result<NodeTools> {
    let lockfile = root.join("package-lock.json");
    if !lockfile.is_file() {
        bail!(
            "{} is missing: it pins the npm tools (anvil, solc)",
            lockfile.display()
        );
    }
    let modules = root.join("node_modules");
    let tools = NodeTools {
        modules: modules.clone(),
    };
    // npm writes node_modules/.package-lock.json on every install: when it is
    // at least as new as the lockfile, the tree matches the lockfile.
    let installed = modified(&modules.join(".package-lock.json"));
    let wanted = modified(&lockfile);
    let up_to_date = matches!((installed, wanted), (Some(i), Some(w)) if i >= w);
    if up_to_date && tools.anvil().is_file() {
        console.info("npm packages: up to date");
    } else {
        console.info("npm packages: installing from package-lock.json (npm ci)");
        let status = Command::new("npm")
            // Install scripts are not needed (anvil's binary comes in its
            // platform package) and not run: nothing downloads outside npm.
            .args(["ci", "--no-audit", "--no-fund", "--ignore-scripts"])
            .current_dir(root)
            .stdin(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => bail!("`npm ci` failed ({status})"),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
                "npm is not installed: install Node.js 20 or newer with npm \
                 (`apt-get install nodejs npm`) and run again"
            ),
            Err(err) => return Err(err).context("running `npm ci`"),
        }
    }
    check_anvil(&tools.anvil())?;
    Ok(tools)
}

/// Runs `anvil --version`, so a broken install fails here rather than later.
pub fn check_anvil(anvil: &Path) -> anyhow::Result<()> {
    let output = Command::new(anvil)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", anvil.display()))?;
    if !output.status.success() {
        bail!(
            "{} --version failed ({}): {}",
            anvil.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

fn modified(path: &Path) -> Option<SystemTime> {
    fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anvil_falls_back_to_the_node_wrapper_without_a_platform_package() {
        let tools = NodeTools {
            modules: PathBuf::from("/nonexistent/node_modules"),
        };
        assert_eq!(
            tools.anvil(),
            PathBuf::from("/nonexistent/node_modules/.bin/anvil")
        );
    }

    #[test]
    fn platform_suffix_matches_foundry_package_names() {
        let suffix = platform_suffix();
        if cfg!(all(target_os = "linux", target_arch = "x86_64")) {
            assert_eq!(suffix, "linux-amd64");
        }
        assert!(!suffix.contains('_'));
    }
}
