//! The headless browser the `/docs` rendering test opens the page in
//! (`haven_common::testing::browser`): `CHROMIUM_BIN`, else a Chromium on
//! `PATH`, else Debian's `chromium` package, installed with apt-get. The
//! test suite gets its path as `CHROMIUM_BIN`, so the test runs rather than
//! skips.
//!
//! Installed, not unpacked like promtool and caddy (see `ops`): Chromium
//! loads some forty shared libraries of other packages, which only apt
//! resolves. Installing needs root, as CI's containers have; elsewhere the
//! message says what to install.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::console::Console;

/// Names a Chromium is installed under (Debian, Ubuntu's snap, Google's);
/// the same list the test helper searches.
const NAMES: [&str; 4] = [
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
];
/// Debian's package.
const PACKAGE: &str = "chromium";

/// The browser's path, installed first when there is none.
pub fn ensure(console: Console) -> anyhow::Result<PathBuf> {
    if let Some(bin) = std::env::var_os("CHROMIUM_BIN") {
        let bin = PathBuf::from(bin);
        check(&bin, console).context("CHROMIUM_BIN")?;
        return Ok(bin);
    }
    if let Some(bin) = on_path() {
        check(&bin, console)?;
        return Ok(bin);
    }
    console.info(&format!(
        "browser: no Chromium found; installing Debian's `{PACKAGE}` package (the /docs test renders the page in it)"
    ));
    let install = || {
        Command::new("apt-get")
            .args(["install", "-y", "-qq", "--no-install-recommends", PACKAGE])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if !install() {
        console.info("browser: apt-get update (the package lists may be empty or stale)");
        let updated = Command::new("apt-get")
            .args(["update", "-qq"])
            .stdin(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !updated || !install() {
            bail!(
                "could not install Chromium with `apt-get install {PACKAGE}` (it needs root): \
                 install a Chromium or Chrome, or set CHROMIUM_BIN to one"
            );
        }
    }
    let bin = on_path().with_context(|| {
        format!("`apt-get install {PACKAGE}` succeeded but no {NAMES:?} is on PATH")
    })?;
    check(&bin, console)?;
    Ok(bin)
}

/// The first Chromium on `PATH`.
fn on_path() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    find_in(std::env::split_paths(&path))
}

/// The first of [`NAMES`] in `dirs`, in order.
fn find_in(dirs: impl IntoIterator<Item = PathBuf>) -> Option<PathBuf> {
    dirs.into_iter()
        .flat_map(|dir| NAMES.map(|name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// Runs `<bin> --version`, so a broken browser fails here rather than in the test.
fn check(bin: &Path, console: Console) -> anyhow::Result<()> {
    let output = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {} --version", bin.display()))?;
    if !output.status.success() {
        bail!(
            "{} --version failed ({}): {}",
            bin.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    console.info(&format!(
        "browser: {} ({})",
        String::from_utf8_lossy(&output.stdout).trim(),
        bin.display()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_directory_holding_a_known_name_wins() {
        let base = std::env::temp_dir().join(format!("xtask-browser-{}", std::process::id()));
        let (empty, snap, debian) = (base.join("empty"), base.join("snap"), base.join("debian"));
        for dir in [&empty, &snap, &debian] {
            std::fs::create_dir_all(dir).expect("temp dir");
        }
        std::fs::write(snap.join("chromium-browser"), b"").expect("write");
        std::fs::write(debian.join("chromium"), b"").expect("write");
        assert_eq!(
            find_in([empty.clone(), snap.clone(), debian.clone()]),
            Some(snap.join("chromium-browser"))
        );
        assert_eq!(
            find_in([debian.clone(), snap]),
            Some(debian.join("chromium"))
        );
        assert_eq!(find_in([empty]), None);
        std::fs::remove_dir_all(&base).expect("cleanup");
    }
}
