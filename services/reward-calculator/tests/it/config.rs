//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use haven_common::testing::config as checks;
use reward_calculator::Config;

haven_common::settings_checks!(
    Config,
    "reward-calculator",
    env!("CARGO_BIN_EXE_reward-calculator")
);

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config = checks::parse_ignoring_env(&[
        "reward-calculator",
        "--database-url",
        "postgres://localhost/haven",
        "--custody-xpub",
        &crate::helpers::test_xpub(),
    ])
    .unwrap();
    assert_eq!(
        config.listen_addr().port(),
        reward_calculator::config::DEFAULT_PORT
    );
}
