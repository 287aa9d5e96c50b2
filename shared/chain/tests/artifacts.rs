//! The committed contract artifacts (which `sol!` and the deploy command use)
//! must be exactly what the Solidity source compiles to.

use std::path::PathBuf;
use std::process::Command;

fn workspace_root() -> PathBuf {
    // shared/chain -> workspace root
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("shared/chain sits two levels below the workspace root")
        .to_path_buf()
}

#[test]
fn committed_artifacts_match_a_fresh_compile() {
    let root = workspace_root();
    assert!(
        root.join("node_modules/solc").is_dir()
            && root.join("node_modules/@openzeppelin/contracts").is_dir(),
        "node_modules is missing solc or @openzeppelin/contracts: run `npm ci` in {}",
        root.display()
    );
    let output = Command::new("node")
        .arg("contracts/compile.mjs")
        .arg("--check")
        .current_dir(&root)
        .output()
        .unwrap_or_else(|e| panic!("cannot run node ({e}): install Node.js and run `npm ci`"));
    assert!(
        output.status.success(),
        "contract artifacts are stale or the compile failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
