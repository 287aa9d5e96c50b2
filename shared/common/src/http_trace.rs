//! Every HTTP request gets an id and a span.
//!
//! - `x-request-id`: a caller's own id is kept, passed to the handler and
//!   echoed on the response; without one (or with one that is not 1 to
//!   [`MAX_REQUEST_ID_BYTES`] bytes of visible ASCII, which is replaced
//!   rather than echoed) a UUID is made up. The id is a span field and a
//!   log field, never a metric label.
//! - The request span (`<METHOD> <route>`, a server span) carries the
//!   method, the matched route (never the raw path), the request id and
//!   the response status. It continues the caller's W3C `traceparent`
//!   when one is sent (see [`TraceHeaders`]), so everything the request
//!   causes, through the outbox and the queues, is one trace.

use std::time::Duration;

use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderName, Response};
use tower::ServiceBuilder;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing::Span;

use crate::metrics::{UNMATCHED_ROUTE, method_label};
use crate::telemetry::TraceHeaders;

/// The request id header.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Routes asked every few seconds by probes and scrapers: their spans are
/// at debug level, so they are neither logged nor traced by default.
pub const QUIET_ROUTES: &[&str] = &["/health", "/livez", "/metrics"];

/// Longest request id a caller may send for it to be kept.
pub const MAX_REQUEST_ID_BYTES: usize = 128;

/// Wraps every route of `router` (add them all first) with the request id
/// and the request span of the module docs.
pub fn trace_requests(router: Router) -> Router {
    router.layer(
        ServiceBuilder::new()
            .map_request(drop_unusable_request_id)
            .layer(SetRequestIdLayer::new(REQUEST_ID_HEADER, MakeRequestUuid))
            .layer(PropagateRequestIdLayer::new(REQUEST_ID_HEADER))
            .layer(
                TraceLayer::new_for_http()
                    .make_span_with(request_span)
                    .on_response(record_status)
                    // A 5xx is logged where it is made, with its cause.
                    .on_failure(()),
            ),
    )
}

/// Whether a caller's request id may be kept and echoed.
pub fn usable_request_id(id: &[u8]) -> bool {
    !id.is_empty() && id.len() <= MAX_REQUEST_ID_BYTES && id.iter().all(u8::is_ascii_graphic)
}

/// Removes a request id that must not be echoed (too long, not visible
/// ASCII, or sent twice), so that a fresh one is made.
fn drop_unusable_request_id(mut request: Request) -> Request {
    let mut ids = request.headers().get_all(&REQUEST_ID_HEADER).iter();
    let usable = match (ids.next(), ids.next()) {
        (None, _) => true,
        (Some(id), None) => usable_request_id(id.as_bytes()),
        (Some(_), Some(_)) => false,
    };
    if !usable {
        request.headers_mut().remove(&REQUEST_ID_HEADER);
    }
    request
}

fn request_span<B>(request: &axum::http::Request<B>) -> Span {
    let method = method_label(request.method());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or(UNMATCHED_ROUTE, MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(|id| id.to_str().ok())
        .unwrap_or_default();
    // Probes and scrapes at debug: below the trace filter, so they are not
    // a trace every few seconds.
    let span = if QUIET_ROUTES.contains(&route) {
        tracing::debug_span!(
            "request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            request_id,
            http.response.status_code = tracing::field::Empty,
        )
    } else {
        tracing::info_span!(
            "request",
            otel.name = %format_args!("{method} {route}"),
            otel.kind = "server",
            http.request.method = method,
            http.route = route,
            request_id,
            http.response.status_code = tracing::field::Empty,
        )
    };
    TraceHeaders::from_lookup(|name| request.headers().get(name).and_then(|v| v.to_str().ok()))
        .set_parent_of(&span);
    span
}

fn record_status<B>(response: &Response<B>, _latency: Duration, span: &Span) {
    span.record("http.response.status_code", response.status().as_u16());
}

#[cfg(test)]
mod tests {
    use axum::body::Body;
    use axum::http::{HeaderMap, HeaderValue, StatusCode};
    use axum::routing::get;
    use tower::ServiceExt as _;

    use super::*;

    /// A router whose handler answers the request id it was given.
    fn app() -> Router {
        trace_requests(Router::new().route(
            "/echo",
            get(|headers: HeaderMap| async move {
                headers
                    .get(&REQUEST_ID_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("none")
                    .to_owned()
            }),
        ))
    }

    /// The id the handler saw and the one the response carries.
    async fn ids(sent: &[&[u8]]) -> (String, String) {
        let mut request = axum::http::Request::get("/echo");
        for id in sent {
            request = request.header(&REQUEST_ID_HEADER, HeaderValue::from_bytes(id).unwrap());
        }
        let response = app()
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        let echoed = response.headers()[&REQUEST_ID_HEADER]
            .to_str()
            .unwrap()
            .to_owned();
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        (String::from_utf8(body.to_vec()).unwrap(), echoed)
    }

    fn is_uuid(id: &str) -> bool {
        uuid::Uuid::parse_str(id).is_ok()
    }

    #[tokio::test]
    async fn a_callers_request_id_is_kept_and_echoed() {
        let (seen, echoed) = ids(&[b"partner-7f3a.request_42"]).await;
        assert_eq!(seen, "partner-7f3a.request_42");
        assert_eq!(echoed, "partner-7f3a.request_42");
    }

    #[tokio::test]
    async fn a_request_without_an_id_gets_a_fresh_uuid() {
        let (seen, echoed) = ids(&[]).await;
        assert!(is_uuid(&echoed), "{echoed}");
        assert_eq!(seen, echoed);
        let (_, other) = ids(&[]).await;
        assert_ne!(echoed, other);
    }

    #[tokio::test]
    async fn an_unusable_request_id_is_replaced_not_echoed() {
        let long = "a".repeat(MAX_REQUEST_ID_BYTES + 1);
        let kept = "b".repeat(MAX_REQUEST_ID_BYTES);
        let cases: [&[&[u8]]; 4] = [
            &[long.as_bytes()],
            &[b"has space"],
            &[b"caf\xc3\xa9"],
            &[b"first", b"second"],
        ];
        for sent in cases {
            let (seen, echoed) = ids(sent).await;
            assert!(is_uuid(&echoed), "{sent:?} -> {echoed}");
            assert_eq!(seen, echoed);
        }
        let (_, echoed) = ids(&[kept.as_bytes()]).await;
        assert_eq!(echoed, kept, "the longest allowed id is kept");
    }
}
