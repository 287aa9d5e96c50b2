//! How a service reports: tracing setup (pretty or JSON lines), errors with
//! their whole cause chain, and the one-line message a bad setting produces.

use std::error::Error as StdError;
use std::fmt;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

/// Why telemetry could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// `--log-filter` / `RUST_LOG` is not valid EnvFilter syntax.
    #[error("invalid log filter `{filter}`")]
    InvalidFilter {
        filter: String,
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// A global subscriber is already installed (`init` called twice, or by a test harness).
    #[error("a global tracing subscriber is already installed")]
    AlreadyInitialized(#[source] tracing_subscriber::util::TryInitError),
}

/// Installs the process-wide tracing subscriber: `EnvFilter` from the config,
/// then human-readable or JSON lines on stdout. Returns an error instead of
/// panicking when a subscriber is already installed.
pub fn init(config: &TelemetryConfig) -> Result<(), TelemetryError> {
    let filter =
        EnvFilter::try_new(&config.log_filter).map_err(|source| TelemetryError::InvalidFilter {
            filter: config.log_filter.clone(),
            source,
        })?;
    // `Option<Layer>` is itself a layer, so exactly one of the two formats is
    // active without boxing or two subscriber types.
    let (pretty, json) = match config.log_format {
        LogFormat::Pretty => (Some(tracing_subscriber::fmt::layer()), None),
        LogFormat::Json => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    .with_span_list(false),
            ),
        ),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(pretty)
        .with(json)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialized)
}

/// Displays an error followed by every `source()` in its chain, separated by
/// `": "`, so a log line says why all the way down:
/// `tracing::error!(error = %ErrorChain(&err), "...")`.
#[derive(Clone, Copy)]
pub struct ErrorChain<'a>(pub &'a (dyn StdError + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            write!(f, ": {cause}")?;
            source = cause.source();
        }
        Ok(())
    }
}

impl fmt::Debug for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A clap error as one line (clap's own rendering spans several, with usage
/// and tips), e.g. `error: the following required arguments were not
/// provided: --database-url <DATABASE_URL>`.
pub fn config_error_line(err: &clap::Error) -> String {
    let rendered = err.render().to_string();
    // Usage and "For more information" follow the first blank line.
    let message = rendered.split("\n\n").next().unwrap_or_default();
    message.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parses the command line and environment into `C`. `--help` and
/// `--version` print and exit 0; a missing or malformed setting prints one
/// line naming it to stderr and exits 1, before anything else starts.
///
/// `--help` never shows environment values: they may hold secrets
/// (`DATABASE_URL` with a password).
pub fn parse_config_or_exit<C: clap::Parser>() -> C {
    let command = C::command().mut_args(|arg| arg.hide_env_values(true));
    let name = command.get_name().to_owned();
    let parsed = command
        .try_get_matches()
        .and_then(|matches| C::from_arg_matches(&matches));
    match parsed {
        Ok(config) => config,
        Err(err) if !err.use_stderr() => err.exit(),
        Err(err) => {
            eprintln!("{name}: {}", config_error_line(&err));
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Middle);
    #[derive(Debug, thiserror::Error)]
    #[error("middle")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn error_chain_prints_every_cause() {
        let err = Outer(Middle(std::io::Error::other("inner")));
        assert_eq!(ErrorChain(&err).to_string(), "outer: middle: inner");
    }

    #[test]
    fn init_rejects_a_bad_filter_and_a_second_call() {
        let bad = TelemetryConfig {
            log_format: LogFormat::Json,
            log_filter: "info,=[".into(),
        };
        assert!(matches!(
            init(&bad),
            Err(TelemetryError::InvalidFilter { .. })
        ));
        let good = TelemetryConfig {
            log_format: LogFormat::Json,
            log_filter: "info".into(),
        };
        // The first successful call wins; whether it is this one depends on
        // other tests in the binary, but the second one must fail cleanly.
        let _ = init(&good);
        assert!(matches!(
            init(&good),
            Err(TelemetryError::AlreadyInitialized(_))
        ));
    }

    #[derive(clap::Parser, Debug)]
    #[command(name = "demo")]
    struct Demo {
        #[arg(long)]
        needed: String,
        /// A number.
        #[arg(long, default_value_t = 1)]
        count: u32,
    }

    #[test]
    fn config_errors_render_as_one_line_naming_the_setting() {
        let err = Demo::try_parse_from(["demo"]).unwrap_err();
        let line = config_error_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--needed"), "{line}");

        let err = Demo::try_parse_from(["demo", "--needed", "x", "--count", "many"]).unwrap_err();
        let line = config_error_line(&err);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.contains("--count") && line.contains("many"), "{line}");
    }
}
