//! Where the workspace is, for helpers that read its files (README,
//! contracts/, node_modules/); its own module so that sibling helpers use it
//! without importing `testing`, which imports them.

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
