//! Checks every service runs on its settings: each one has an environment
//! twin, help text and a row in `docs/configuration.md`; a missing or
//! malformed one is reported by name on one line, never with a panic.

use std::process::Command as Process;

use clap::{CommandFactory, FromArgMatches};

use super::workspace::workspace_root;

/// Parses `args` with every environment variable ignored, so a `DATABASE_URL`
/// or `PORT` set in the test environment cannot change the outcome.
pub fn parse_ignoring_env<C: CommandFactory + FromArgMatches>(
    args: &[&str],
) -> Result<C, clap::Error> {
    let command = C::command().mut_args(|arg| arg.env(None));
    let matches = command.try_get_matches_from(args)?;
    C::from_arg_matches(&matches)
}

/// The page that holds the configuration table, relative to the workspace root.
pub const CONFIGURATION_DOC: &str = "docs/configuration.md";

/// Every setting of `C` has an environment variable and help text, and its
/// variable is documented in the configuration table ([`CONFIGURATION_DOC`]).
pub fn assert_every_setting_is_documented<C: CommandFactory>() {
    let page = std::fs::read_to_string(workspace_root().join(CONFIGURATION_DOC))
        .unwrap_or_else(|err| panic!("{CONFIGURATION_DOC} at the workspace root: {err}"));
    let command = C::command();
    for arg in command.get_arguments() {
        let id = arg.get_id().as_str();
        if id == "help" || id == "version" {
            continue;
        }
        let env = arg
            .get_env()
            .unwrap_or_else(|| panic!("--{id} has no environment variable"));
        assert!(arg.get_help().is_some(), "--{id} has no help text");
        let row = format!("| `{}` |", env.to_string_lossy());
        assert!(
            page.contains(&row),
            "{} (--{id}) is not in the configuration table of {CONFIGURATION_DOC} (expected a row starting `{row}`)",
            env.to_string_lossy()
        );
    }
}

/// A missing `DATABASE_URL` is named in a one-line error.
pub fn assert_missing_database_url_is_named<
    C: CommandFactory + FromArgMatches + std::fmt::Debug,
>(
    bin: &str,
) {
    let err = parse_ignoring_env::<C>(&[bin]).expect_err("parsing without DATABASE_URL fails");
    assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);
    let line = crate::telemetry::config_error_line(&err);
    assert!(line.contains("--database-url"), "{line}");
    assert!(line.contains("DATABASE_URL"), "{line}");
    assert!(!line.contains('\n'), "{line}");
}

/// A malformed `--port` is named with the bad value.
pub fn assert_malformed_port_is_named<C: CommandFactory + FromArgMatches + std::fmt::Debug>(
    bin: &str,
) {
    let err = parse_ignoring_env::<C>(&[
        bin,
        "--database-url",
        "postgres://localhost/haven",
        "--port",
        "eighty",
    ])
    .expect_err("a port of `eighty` is refused");
    let line = crate::telemetry::config_error_line(&err);
    assert!(line.contains("--port") && line.contains("eighty"), "{line}");
}

/// The real binary, with an empty environment: one line on stderr naming
/// `DATABASE_URL`, exit status 1, no panic.
pub fn assert_binary_exits_with_one_line(bin_path: &str) {
    let output = Process::new(bin_path)
        .env_clear()
        .output()
        .expect("the service binary runs");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("DATABASE_URL"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// Whether a setting holds a secret, by its environment variable's name:
/// keys, secrets, tokens, mnemonics, passwords, URLs (which may carry
/// credentials), and extended public keys (which link every wallet they
/// derive to their owner).
pub fn holds_secret(env: &str) -> bool {
    [
        "_KEY", "_KEYS", "SECRET", "TOKEN", "MNEMONIC", "PASSWORD", "_URL", "_XPUB",
    ]
    .iter()
    .any(|end| env.ends_with(end))
}

/// Values that make every secret parser of the services fail (a list with a
/// short entry, bad base64 after `whsec_`, not a URL), each carrying a marker
/// that must never appear in the error.
const SECRET_PROBES: [&str; 4] = [
    "MARKER-good-key-123456,x",
    "whsec_MARKER%%%",
    "::MARKER::not a url",
    "MARKER",
];

/// Every secret-bearing setting of `C` hides its environment value in
/// `--help`, and a malformed value is refused by name without the value.
pub fn assert_secret_settings_are_never_printed<C: CommandFactory + FromArgMatches>() {
    let command = C::command();
    let name = command.get_name().to_owned();
    for arg in command.get_arguments() {
        let Some(env) = arg.get_env().map(|env| env.to_string_lossy().into_owned()) else {
            continue;
        };
        if !holds_secret(&env) {
            continue;
        }
        assert!(
            arg.is_hide_env_values_set(),
            "{env} holds a secret: its argument needs hide_env_values = true"
        );
        let flag = format!(
            "--{}",
            arg.get_long().unwrap_or_else(|| arg.get_id().as_str())
        );
        for probe in SECRET_PROBES {
            let Err(err) = parse_ignoring_env::<C>(&[&name, &flag, probe]) else {
                continue;
            };
            let line = crate::telemetry::config_error_line(&err);
            assert!(
                !line.contains("MARKER"),
                "{env}: the configuration error prints the value: {line}"
            );
        }
    }
}

/// The settings checks every service binary passes, as tests: a missing
/// `DATABASE_URL` and a malformed `PORT` are named, every setting has an
/// environment twin, help and a documented row, and the real binary exits
/// with one line when a setting is missing. Expand it in a service's
/// integration tests: `settings_checks!(Config, "read-api", env!("CARGO_BIN_EXE_read-api"));`
#[macro_export]
macro_rules! settings_checks {
    ($config:ty, $name:literal, $binary:expr) => {
        #[test]
        fn a_missing_database_url_is_named() {
            $crate::testing::config::assert_missing_database_url_is_named::<$config>($name);
        }

        #[test]
        fn a_malformed_setting_is_named() {
            $crate::testing::config::assert_malformed_port_is_named::<$config>($name);
        }

        #[test]
        fn every_setting_has_an_environment_variable_help_and_a_documented_row() {
            $crate::testing::config::assert_every_setting_is_documented::<$config>();
        }

        #[test]
        fn secret_settings_are_never_printed() {
            $crate::testing::config::assert_secret_settings_are_never_printed::<$config>();
        }

        /// The real binary, with an empty environment.
        #[test]
        fn the_binary_exits_with_one_line_when_a_setting_is_missing() {
            $crate::testing::config::assert_binary_exits_with_one_line($binary);
        }
    };
}
