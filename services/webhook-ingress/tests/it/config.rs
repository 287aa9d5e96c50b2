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

/// The report: a good key beside a short one was printed whole.
#[test]
fn a_bad_api_key_list_is_refused_without_printing_any_key() {
    let good = "a-good-and-long-operator-key";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-ingress"))
        .env_clear()
        .env(
            "DATABASE_URL",
            "postgres://haven:db-password@127.0.0.1/haven",
        )
        .env("AURORA_WEBHOOK_SECRET", "aurora-partner-secret")
        .env("TRIBE_WEBHOOK_SECRET", "whsec_not*base64")
        .env("API_KEYS", format!("{good},short"))
        .output()
        .expect("the service binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for secret in [
        good,
        "short",
        "db-password",
        "aurora-partner-secret",
        "not*base64",
    ] {
        assert!(!stderr.contains(secret), "{secret} printed: {stderr}");
    }
    // Named, with the reason: whichever secret setting clap checked first.
    assert!(
        stderr.contains("TRIBE_WEBHOOK_SECRET") || stderr.contains("API_KEYS"),
        "{stderr}"
    );
    assert!(stderr.contains("not shown"), "{stderr}");
}

/// A malformed `name:key` entry: the service refuses to start, names the
/// entry by position and prints neither the key nor the text before `:`.
#[test]
fn a_malformed_named_api_key_is_a_config_error_without_the_key() {
    let good = "a-good-and-long-operator-key";
    let bad = "Bad Name:another-long-operator-key";
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_webhook-ingress"))
        .env_clear()
        .env("DATABASE_URL", "postgres://haven@127.0.0.1/haven")
        .env("AURORA_WEBHOOK_SECRET", "aurora-partner-secret")
        .env("TRIBE_WEBHOOK_SECRET", "tribe-partner-secret")
        .env("API_KEYS", format!("ops:{good},{bad}"))
        .output()
        .expect("the service binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    for secret in [good, "another-long-operator-key", "Bad Name"] {
        assert!(!stderr.contains(secret), "{secret} printed: {stderr}");
    }
    assert!(stderr.contains("API_KEYS"), "{stderr}");
    assert!(stderr.contains("API key #2"), "{stderr}");
    assert!(stderr.contains("name:key"), "{stderr}");
}
