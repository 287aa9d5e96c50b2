//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use haven_common::testing::config as checks;
use read_api::Config;

#[test]
fn a_missing_database_url_is_named() {
    checks::assert_missing_database_url_is_named::<Config>("read-api");
}

#[test]
fn a_malformed_setting_is_named() {
    checks::assert_malformed_port_is_named::<Config>("read-api");
}

#[test]
fn every_setting_has_an_environment_variable_help_and_a_documented_row() {
    checks::assert_every_setting_is_documented::<Config>();
}

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config =
        checks::parse_ignoring_env(&["read-api", "--database-url", "postgres://localhost/haven"])
            .unwrap();
    assert_eq!(config.listen_addr().port(), read_api::config::DEFAULT_PORT);
}

/// The real binary, with an empty environment.
#[test]
fn the_binary_exits_with_one_line_when_a_setting_is_missing() {
    checks::assert_binary_exits_with_one_line(env!("CARGO_BIN_EXE_read-api"));
}
