//! The committed contract artifacts (which `sol!` and the deploy command use)
//! must be exactly what the Solidity source compiles to.

use std::process::Command;

use haven_common::testing::workspace_root;

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
