//! How a service reports: tracing setup (pretty or JSON lines, and spans to
//! an OpenTelemetry collector when one is configured), the W3C trace
//! context that carries one trace across HTTP, the outbox and the queues,
//! errors with their whole cause chain, and the one-line message a bad
//! setting produces.
//!
//! # One trace per event
//!
//! With `OTEL_EXPORTER_OTLP_ENDPOINT` set, every `tracing` span at `info`
//! or above is also an OpenTelemetry span, exported in batches over
//! OTLP/HTTP. The context travels as [`TraceHeaders`] (`traceparent`,
//! `tracestate`): from a caller's request into the request span, from the
//! span that writes an outbox row into the row, from the row (or a direct
//! publish) into the AMQP message headers, and from the message into the
//! consumer's span, whose children (the handler, the chain transaction)
//! join the same trace.
//!
//! The exporter can never slow a request or a consume: spans are handed
//! to the batch processor's own thread through a bounded queue
//! (`OTEL_BSP_MAX_QUEUE_SIZE`, 2048 by default) and dropped when it is
//! full; an unreachable collector only costs that thread its export
//! timeout.

use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

/// Which spans become OpenTelemetry spans: ours at `info` and above, none
/// of the HTTP client and runtime plumbing under the exporter (which would
/// trace its own exports), nor the per-statement noise of the drivers, nor
/// the outbox relay's polls (a trace a second of nothing; the messages it
/// publishes carry their own rows' context).
pub const TRACE_FILTER: &str = "info,h2=off,hyper=off,hyper_util=off,reqwest=off,tower=off,\
     opentelemetry=off,opentelemetry_sdk=off,opentelemetry_otlp=off,opentelemetry_http=off,\
     lapin=off,sqlx=off,sea_orm=off,alloy_transport_http=off,alloy_rpc_client=off,\
     haven_outbox::relay=off";

/// How long shutdown waits for the last spans to reach the collector.
pub const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

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
    /// The OTLP exporter could not be built from the settings.
    #[error("could not set up the OTLP span exporter")]
    Exporter(#[source] opentelemetry_otlp::ExporterBuildError),
}

/// Keeps the span exporter of [`init`] and sends its last spans on
/// [`TelemetryGuard::shutdown`]. Without an endpoint it holds nothing.
#[must_use = "dropping the guard does not flush the spans; call `shutdown` at exit"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl fmt::Debug for TelemetryGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TelemetryGuard")
            .field("exporting", &self.provider.is_some())
            .finish()
    }
}

impl TelemetryGuard {
    /// Whether spans are exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports the spans ended so far now, instead of at the next batch.
    /// Blocks (up to the exporter's timeout): call it off the async
    /// workers, e.g. in `spawn_blocking`.
    pub fn flush(&self) {
        if let Some(provider) = &self.provider
            && let Err(err) = provider.force_flush()
        {
            tracing::warn!(error = %err, "could not flush spans to the collector");
        }
    }

    /// Exports what is left and stops the exporter, waiting at most
    /// [`FLUSH_TIMEOUT`]. Blocks: [`crate::service::launch`] calls it in
    /// `spawn_blocking` after the service stopped.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown_with_timeout(FLUSH_TIMEOUT)
        {
            tracing::warn!(error = %err, "could not flush the last spans to the collector");
        }
    }
}

/// Installs the process-wide tracing subscriber: human-readable or JSON
/// lines on stdout filtered by the config's log filter and, when
/// [`TelemetryConfig::otlp_endpoint`] is set, spans to that collector
/// (filtered by [`TRACE_FILTER`], independently of the log filter) under
/// `service.name` = `OTEL_SERVICE_NAME` or `service_name`. Returns an error
/// instead of panicking when a subscriber is already installed.
pub fn init(
    service_name: &str,
    config: &TelemetryConfig,
) -> Result<TelemetryGuard, TelemetryError> {
    let filter =
        EnvFilter::try_new(&config.log_filter).map_err(|source| TelemetryError::InvalidFilter {
            filter: config.log_filter.clone(),
            source,
        })?;
    let lines = match config.log_format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer().boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
    };
    let provider = match config.otlp_endpoint.as_deref() {
        Some(endpoint) => Some(tracer_provider(
            config.otel_service_name.as_deref().unwrap_or(service_name),
            endpoint,
        )?),
        None => None,
    };
    // `Option<Layer>` is itself a layer: nothing is traced without an endpoint.
    let spans = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("haven"))
            .with_filter(EnvFilter::new(TRACE_FILTER))
    });
    tracing_subscriber::registry()
        .with(lines.with_filter(filter))
        .with(spans)
        .try_init()
        .map_err(TelemetryError::AlreadyInitialized)?;
    Ok(TelemetryGuard { provider })
}

/// The tracer provider exporting to `<endpoint>/v1/traces` through the
/// batch span processor (its own thread, bounded queue, drop on overflow).
fn tracer_provider(
    service_name: &str,
    endpoint: &str,
) -> Result<SdkTracerProvider, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        // Programmatic endpoints are used as given: add the signal's path
        // as the standard OTEL_EXPORTER_OTLP_ENDPOINT semantics ask.
        .with_endpoint(format!("{}/v1/traces", endpoint.trim_end_matches('/')))
        .build()
        .map_err(TelemetryError::Exporter)?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service_name.to_owned())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build())
}

/// Links `span` to `linked`'s trace (OpenTelemetry's model of one piece
/// of work answering several requests: a batch is the child of one and
/// linked to the others). Call it before `span` is first entered; does
/// nothing when tracing is off.
pub fn add_link(span: &tracing::Span, linked: &tracing::Span) {
    use opentelemetry::trace::TraceContextExt as _;
    let context = linked.context();
    span.add_link(context.span().span_context().clone());
}

/// The names of the W3C trace-context headers carried, and the only ones
/// [`TraceHeaders`] keeps.
pub const TRACE_HEADER_NAMES: [&str; 2] = ["traceparent", "tracestate"];

/// Longest trace-context header value kept (a `traceparent` is 55 bytes;
/// a `tracestate` of the W3C's 32 members fits in 512): a longer one from a
/// caller is dropped rather than stored and forwarded.
pub const MAX_TRACE_HEADER_BYTES: usize = 512;

/// The W3C trace context of a span, as the headers that carry it: what an
/// outbox row stores, an AMQP message carries and a consumer continues
/// from. Holds at most the two [`TRACE_HEADER_NAMES`], each at most
/// [`MAX_TRACE_HEADER_BYTES`] of visible ASCII, whatever a carrier offered.
/// Empty when tracing is off or the span is not traced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceHeaders(BTreeMap<&'static str, String>);

impl TraceHeaders {
    /// The context of `span` (a valid `traceparent` only if it is traced).
    pub fn of(span: &tracing::Span) -> Self {
        let mut headers = Self::default();
        TraceContextPropagator::new().inject_context(&span.context(), &mut headers);
        headers
    }

    /// The context of the current span.
    pub fn current() -> Self {
        Self::of(&tracing::Span::current())
    }

    /// The trace headers among a carrier's, looked up by name with `get`;
    /// anything else the carrier holds is ignored.
    pub fn from_lookup<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Self {
        let mut headers = Self::default();
        for name in TRACE_HEADER_NAMES {
            if let Some(value) = get(name) {
                headers.set(name, value.to_owned());
            }
        }
        headers
    }

    /// The value of one header.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The trace id (32 hex digits) of the carried `traceparent`, if any.
    pub fn trace_id(&self) -> Option<&str> {
        self.get("traceparent")?.split('-').nth(1)
    }

    /// Whether no context is carried.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The headers, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.0.iter().map(|(k, v)| (*k, v.as_str()))
    }

    /// The remote context these headers describe (empty if none or malformed).
    pub fn context(&self) -> opentelemetry::Context {
        TraceContextPropagator::new().extract(self)
    }

    /// Makes `span` a child of the remote context these headers carry.
    /// Call it before the span is first entered; does nothing when tracing
    /// is off or the headers carry no valid context.
    pub fn set_parent_of(&self, span: &tracing::Span) {
        if self.get("traceparent").is_some() {
            // Errors: no OpenTelemetry layer (tracing off) or the span is
            // disabled or already started; it then stays where it is.
            let _ = span.set_parent(self.context());
        }
    }

    /// As a JSON object (the outbox's `headers` column); `None` when empty.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        (!self.is_empty()).then(|| {
            serde_json::Value::Object(
                self.iter()
                    .map(|(k, v)| (k.to_owned(), serde_json::Value::from(v)))
                    .collect(),
            )
        })
    }

    /// From [`Self::to_json`]'s object; anything else reads as empty.
    pub fn from_json(value: &serde_json::Value) -> Self {
        Self::from_lookup(|name| value.get(name).and_then(serde_json::Value::as_str))
    }
}

impl Injector for TraceHeaders {
    fn set(&mut self, key: &str, value: String) {
        let Some(name) = TRACE_HEADER_NAMES
            .iter()
            .find(|name| name.eq_ignore_ascii_case(key))
        else {
            return;
        };
        let printable = value.bytes().all(|b| b.is_ascii_graphic() || b == b' ');
        if !value.is_empty() && value.len() <= MAX_TRACE_HEADER_BYTES && printable {
            self.0.insert(name, value);
        }
    }
}

impl Extractor for TraceHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        TraceHeaders::get(self, key)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().copied().collect()
    }
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
            otlp_endpoint: None,
            otel_service_name: None,
        };
        assert!(matches!(
            init("test", &bad),
            Err(TelemetryError::InvalidFilter { .. })
        ));
        let good = TelemetryConfig {
            log_format: LogFormat::Json,
            log_filter: "info".into(),
            otlp_endpoint: None,
            otel_service_name: None,
        };
        // The first successful call wins; whether it is this one depends on
        // other tests in the binary, but the second one must fail cleanly.
        let _ = init("test", &good);
        assert!(matches!(
            init("test", &good),
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
