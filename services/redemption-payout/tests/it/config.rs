//! Settings: each one has an environment twin, help and a row in
//! `docs/configuration.md`; a missing or malformed one is reported by name,
//! never a panic.

use std::time::Duration;

use haven_common::testing::config as checks;
use redemption_payout::Config;

haven_common::settings_checks!(
    Config,
    "redemption-payout",
    env!("CARGO_BIN_EXE_redemption-payout")
);

#[test]
fn the_default_port_is_used_without_port() {
    let config: Config = checks::parse_ignoring_env(&[
        "redemption-payout",
        "--database-url",
        "postgres://localhost/haven",
        "--payout-provider-url",
        "http://127.0.0.1:8090",
    ])
    .unwrap();
    assert_eq!(
        config.listen_addr().port(),
        redemption_payout::config::DEFAULT_PORT
    );
}

#[test]
fn the_provider_settings_have_safe_defaults_and_secrets_stay_out_of_debug() {
    let config: Config = checks::parse_ignoring_env(&[
        "redemption-payout",
        "--database-url",
        "postgres://localhost/haven",
        "--payout-provider-url",
        "https://payouts.example.com/v1",
        "--payout-provider-token",
        "tok_supersecret",
    ])
    .unwrap();
    let provider = &config.provider;
    assert_eq!(provider.payout_provider_timeout, Duration::from_secs(10));
    assert_eq!(provider.payout_provider_retries, 3);
    assert_eq!(provider.payout_currency, "CAD");
    assert_eq!(provider.hnv_reference_value.to_string(), "0.1");
    assert_eq!(config.kyc_threshold.to_string(), "10000.0");
    let debug = format!("{config:?}");
    assert!(!debug.contains("tok_supersecret"), "{debug}");
    assert!(!debug.contains("payouts.example.com"), "{debug}");
}

#[test]
fn a_missing_provider_url_is_named() {
    let err = checks::parse_ignoring_env::<Config>(&[
        "redemption-payout",
        "--database-url",
        "postgres://localhost/haven",
    ])
    .expect_err("the provider URL is required");
    let line = haven_common::telemetry::config_error_line(&err);
    assert!(line.contains("PAYOUT_PROVIDER_URL"), "{line}");
}

#[test]
fn a_malformed_provider_setting_is_named() {
    for (flag, value) in [
        ("--payout-provider-url", "ftp://example.com"),
        ("--payout-currency", "dollars"),
        ("--hnv-reference-value", "0"),
        ("--payout-provider-timeout", "0s"),
    ] {
        let mut args = vec![
            "redemption-payout",
            "--database-url",
            "postgres://localhost/haven",
        ];
        if flag != "--payout-provider-url" {
            args.extend(["--payout-provider-url", "http://127.0.0.1:8090"]);
        }
        args.extend([flag, value]);
        let err = checks::parse_ignoring_env::<Config>(&args).expect_err(flag);
        let line = haven_common::telemetry::config_error_line(&err);
        assert!(line.contains(flag), "{line}");
    }
}
