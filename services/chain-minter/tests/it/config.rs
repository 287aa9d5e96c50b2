//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use chain_minter::Config;
use haven_common::testing::config as checks;

#[test]
fn a_missing_database_url_is_named() {
    checks::assert_missing_database_url_is_named::<Config>("chain-minter");
}

#[test]
fn a_malformed_setting_is_named() {
    checks::assert_malformed_port_is_named::<Config>("chain-minter");
}

#[test]
fn every_setting_has_an_environment_variable_help_and_a_documented_row() {
    checks::assert_every_setting_is_documented::<Config>();
}

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

/// The real binary, with an empty environment.
#[test]
fn the_binary_exits_with_one_line_when_a_setting_is_missing() {
    checks::assert_binary_exits_with_one_line(env!("CARGO_BIN_EXE_chain-minter"));
}
