//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use chain_minter::Config;
use haven_common::testing::config as checks;

haven_common::settings_checks!(Config, "chain-minter", env!("CARGO_BIN_EXE_chain-minter"));

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config = checks::parse_ignoring_env(&[
        "chain-minter",
        "--database-url",
        "postgres://localhost/haven",
        "--rpc-url",
        "http://127.0.0.1:8545",
        "--contract-address",
        "0x5FbDB2315678afecb367f032d93F642f64180aa3",
        "--signer-private-keys",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ])
    .unwrap();
    assert_eq!(
        config.listen_addr().port(),
        chain_minter::config::DEFAULT_PORT
    );
}
