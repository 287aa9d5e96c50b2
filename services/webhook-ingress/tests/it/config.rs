//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use haven_common::testing::config as checks;
use webhook_ingress::Config;

haven_common::settings_checks!(
    Config,
    "webhook-ingress",
    env!("CARGO_BIN_EXE_webhook-ingress")
);

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config = checks::parse_ignoring_env(&[
        "webhook-ingress",
        "--database-url",
        "postgres://localhost/haven",
        "--aurora-webhook-secret",
        "a",
        "--tribe-webhook-secret",
        "t",
        "--api-keys",
        "key-12345678",
    ])
    .unwrap();
    assert_eq!(
        config.listen_addr().port(),
        webhook_ingress::config::DEFAULT_PORT
    );
}
