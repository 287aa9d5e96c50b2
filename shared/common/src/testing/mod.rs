//! Test helpers (feature `test-util`): every integration test gets its own
//! database and broker namespace, and a TCP proxy it can cut to simulate outages.

pub mod amqp;
pub mod app;
pub mod config;
pub mod db;
pub mod proxy;

use std::path::{Path, PathBuf};

/// The folder holding the workspace's Cargo.toml (README, contracts/, node_modules/).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| {
            std::fs::read_to_string(dir.join("Cargo.toml"))
                .is_ok_and(|text| text.contains("[workspace]"))
        })
        .expect("a workspace Cargo.toml above haven-common")
        .to_path_buf()
}
