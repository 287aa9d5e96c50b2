//! Spans recorded in memory, as OpenTelemetry sees them: for tests of the
//! trace context's journey (HTTP, outbox row, AMQP headers, consumer).
//!
//! [`record_spans`] installs a subscriber with the OpenTelemetry layer as
//! the *thread's* default, so use it in a current-thread runtime
//! (`#[tokio::test]`), where every task runs on the test's thread.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use opentelemetry::trace::{SpanId, TracerProvider as _};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

/// One ended span.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedSpan {
    /// The span's name (`otel.name` when set).
    pub name: String,
    /// Trace id, hex.
    pub trace_id: String,
    /// Span id, hex.
    pub span_id: String,
    /// Parent span id, hex; empty for a root span.
    pub parent_span_id: String,
    /// Whether the parent came from a carrier (another process's context).
    pub parent_is_remote: bool,
    /// `Server`, `Consumer`, `Producer`, `Internal`...
    pub kind: String,
    /// Attributes, values as text.
    pub attributes: BTreeMap<String, String>,
}

impl RecordedSpan {
    /// The attribute `key` as text.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes.get(key).map(String::as_str)
    }
}

/// The spans ended on this thread while it lives.
#[derive(Debug)]
pub struct RecordedSpans {
    spans: Arc<Mutex<Vec<RecordedSpan>>>,
    _default: DefaultGuard,
}

impl RecordedSpans {
    /// Every span ended so far.
    pub fn spans(&self) -> Vec<RecordedSpan> {
        self.spans
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Records every span of this thread (at any level) until the result is dropped.
pub fn record_spans() -> RecordedSpans {
    let spans = Arc::new(Mutex::new(Vec::new()));
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(Recorder(Arc::clone(&spans)))
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    RecordedSpans {
        spans,
        _default: tracing::subscriber::set_default(subscriber),
    }
}

#[derive(Debug)]
struct Recorder(Arc<Mutex<Vec<RecordedSpan>>>);

impl SpanExporter for Recorder {
    fn export(
        &self,
        batch: Vec<SpanData>,
    ) -> impl std::future::Future<Output = OTelSdkResult> + Send {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .extend(batch.into_iter().map(recorded));
        std::future::ready(Ok(()))
    }
}

fn recorded(span: SpanData) -> RecordedSpan {
    RecordedSpan {
        name: span.name.into_owned(),
        trace_id: span.span_context.trace_id().to_string(),
        span_id: span.span_context.span_id().to_string(),
        parent_span_id: if span.parent_span_id == SpanId::INVALID {
            String::new()
        } else {
            span.parent_span_id.to_string()
        },
        parent_is_remote: span.parent_span_is_remote,
        kind: format!("{:?}", span.span_kind),
        attributes: span
            .attributes
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}
