//! What xtask needs to know about the Cargo workspace, from `cargo metadata`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, bail};
use serde::Deserialize;

/// The workspace root, its target directory and its packages.
#[derive(Debug, Clone)]
pub struct Workspace {
    /// Directory holding the workspace `Cargo.toml`.
    pub root: PathBuf,
    /// Cargo's target directory (honours `CARGO_TARGET_DIR` and config).
    pub target_dir: PathBuf,
    packages: Vec<Package>,
}

#[derive(Debug, Clone, Deserialize)]
struct Metadata {
    workspace_root: PathBuf,
    target_directory: PathBuf,
    packages: Vec<Package>,
}

#[derive(Debug, Clone, Deserialize)]
struct Package {
    name: String,
    targets: Vec<Target>,
}

#[derive(Debug, Clone, Deserialize)]
struct Target {
    name: String,
    kind: Vec<String>,
}

impl Workspace {
    /// Asks cargo (the one running xtask) where the workspace is.
    pub fn discover() -> anyhow::Result<Self> {
        // Running from the manifest dir's parent makes `cargo xtask` work from
        // any subdirectory, as cargo aliases do.
        let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
        let start = manifest_dir.parent().unwrap_or(manifest_dir);
        let output = Command::new(cargo())
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(start)
            .output()
            .context("running `cargo metadata`")?;
        if !output.status.success() {
            bail!(
                "`cargo metadata` failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Self::from_metadata_json(&output.stdout)
    }

    fn from_metadata_json(json: &[u8]) -> anyhow::Result<Self> {
        let metadata: Metadata =
            serde_json::from_slice(json).context("reading `cargo metadata` output")?;
        Ok(Self {
            root: metadata.workspace_root,
            target_dir: metadata.target_directory,
            packages: metadata.packages,
        })
    }

    /// Whether a workspace member of that name exists.
    pub fn has_package(&self, name: &str) -> bool {
        self.packages.iter().any(|p| p.name == name)
    }

    /// The package owning a binary target of that name, if any.
    pub fn package_of_bin(&self, bin: &str) -> Option<&str> {
        self.packages
            .iter()
            .find(|p| {
                p.targets
                    .iter()
                    .any(|t| t.name == bin && t.kind.iter().any(|k| k == "bin"))
            })
            .map(|p| p.name.as_str())
    }

    /// Where `cargo build` puts binaries of that profile.
    pub fn bin_dir(&self, release: bool) -> PathBuf {
        self.target_dir
            .join(if release { "release" } else { "debug" })
    }

    /// `target/haven-dev/`: the local stack's state (SQLite file, secrets, stack.json).
    pub fn dev_dir(&self) -> PathBuf {
        self.target_dir.join("haven-dev")
    }
}

/// The cargo that runs xtask, so a toolchain override applies to sub-builds too.
pub fn cargo() -> PathBuf {
    // Cargo sets CARGO for the programs it runs; fall back to PATH otherwise.
    std::env::var_os("CARGO").map_or_else(|| PathBuf::from("cargo"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const METADATA: &str = r#"{
        "workspace_root": "/w",
        "target_directory": "/w/target",
        "packages": [
            {"name": "haven-migrations", "targets": [
                {"name": "haven_migrations", "kind": ["lib"]},
                {"name": "migrate", "kind": ["bin"]}
            ]},
            {"name": "read-api", "targets": [
                {"name": "read-api", "kind": ["bin"]},
                {"name": "it", "kind": ["test"]}
            ]}
        ],
        "version": 1
    }"#;

    #[test]
    fn finds_packages_and_binaries_in_metadata() {
        let ws = Workspace::from_metadata_json(METADATA.as_bytes()).expect("valid metadata");
        assert_eq!(ws.root, PathBuf::from("/w"));
        assert_eq!(ws.bin_dir(false), PathBuf::from("/w/target/debug"));
        assert_eq!(ws.dev_dir(), PathBuf::from("/w/target/haven-dev"));
        assert!(ws.has_package("read-api"));
        assert!(!ws.has_package("haven-contracts"));
        assert_eq!(ws.package_of_bin("migrate"), Some("haven-migrations"));
        // A test target of that name is not a binary.
        assert_eq!(ws.package_of_bin("it"), None);
        assert_eq!(ws.package_of_bin("deploy-contract"), None);
    }
}
