//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use haven_common::testing::config as checks;
use read_api::Config;

haven_common::settings_checks!(Config, "read-api", env!("CARGO_BIN_EXE_read-api"));

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config =
        checks::parse_ignoring_env(&["read-api", "--database-url", "postgres://localhost/haven"])
            .unwrap();
    assert_eq!(config.listen_addr().port(), read_api::config::DEFAULT_PORT);
}
