//! The HTTP server every service runs: the accept loop and the guards in
//! front of the API, so that a hostile or broken client costs little.
//!
//! - A client must send its request headers within
//!   [`HttpConfig::http_header_read_timeout`] (hyper's own timer; `axum::serve`
//!   offers none), and its whole body within
//!   [`HttpConfig::http_body_read_timeout`], however steadily it trickles.
//! - An API request is answered within [`HttpConfig::http_request_timeout`]
//!   or gets a JSON 503.
//! - At most [`HttpConfig::http_max_concurrent_requests`] API requests run
//!   at once; beyond that a request is refused at once with 503 and
//!   `Retry-After` instead of queueing (load shedding).
//! - A handler that panics answers a JSON 500 instead of dropping the
//!   connection.
//!
//! The operations routes (`/health`, `/metrics`, `/docs`) are served beside
//! the guarded API, outside the concurrency cap, so probes answer while the
//! API sheds load. Every request carries its peer address as
//! [`axum::extract::ConnectInfo`].

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::error_handling::HandleErrorLayer;
use axum::extract::{ConnectInfo, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower::{BoxError, ServiceBuilder, ServiceExt as _};
use tower_http::catch_panic::CatchPanicLayer;

use crate::config::HttpConfig;

/// Seconds a client refused for load is told to wait (`Retry-After`).
const RETRY_AFTER_SECONDS: &str = "1";

/// The guards of the module docs, as settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest wait for a request's headers.
    pub header_read_timeout: Duration,
    /// Longest wait for a whole request body.
    pub body_read_timeout: Duration,
    /// Longest an API request may take.
    pub request_timeout: Duration,
    /// API requests handled at once.
    pub max_concurrent_requests: usize,
}

impl Limits {
    /// The limits set by `config`.
    pub fn from_config(config: &HttpConfig) -> Self {
        Self {
            header_read_timeout: config.http_header_read_timeout,
            body_read_timeout: config.http_body_read_timeout,
            request_timeout: config.http_request_timeout,
            max_concurrent_requests: usize::try_from(config.http_max_concurrent_requests)
                .unwrap_or(usize::MAX),
        }
    }
}

/// `api` behind the body deadline, the request timeout, the concurrency cap
/// with load shedding and the panic catcher (in that order from the inside).
/// Apply it to the API routes only, before merging the operations routes.
pub fn guard_api(api: Router, limits: Limits) -> Router {
    let body_deadline = limits.body_read_timeout;
    api.layer(
        ServiceBuilder::new()
            .layer(CatchPanicLayer::custom(panic_response))
            .layer(HandleErrorLayer::new(overload_response))
            .load_shed()
            .layer(GlobalConcurrencyLimitLayer::new(
                limits.max_concurrent_requests.max(1),
            ))
            .timeout(limits.request_timeout)
            .map_request(move |request: Request| {
                request.map(|body| Body::new(DeadlineBody::new(body, body_deadline)))
            }),
    )
}

/// Every HAVEN error body is `{"detail": ...}`.
fn detail(status: StatusCode, detail: &str) -> Response {
    (status, axum::Json(json!({ "detail": detail }))).into_response()
}

fn panic_response(_panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    // The payload may quote internal state: it is never sent, and logged
    // only as the fact of a panic.
    tracing::error!("a request handler panicked");
    detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
}

async fn overload_response(err: BoxError) -> Response {
    if err.is::<tower::load_shed::error::Overloaded>() {
        let mut response = detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "Too many requests in progress; retry later",
        );
        response.headers_mut().insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
        response
    } else if err.is::<tower::timeout::error::Elapsed>() {
        detail(
            StatusCode::SERVICE_UNAVAILABLE,
            "The request took too long; retry later",
        )
    } else {
        tracing::error!(error = %err, "request failed in the server's middleware");
        detail(StatusCode::INTERNAL_SERVER_ERROR, "Internal server error")
    }
}

/// The request body stopped at a deadline for the whole body (tower-http's
/// body timeout restarts at every frame, so a byte a second never trips it).
struct DeadlineBody {
    inner: Body,
    deadline: Pin<Box<Sleep>>,
}

impl DeadlineBody {
    fn new(inner: Body, within: Duration) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(within)),
        }
    }
}

/// The body was not received before [`Limits::body_read_timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the request body was not received in time")]
pub struct BodyDeadlineExceeded;

impl HttpBody for DeadlineBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, BoxError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(Box::new(BodyDeadlineExceeded))));
        }
        Pin::new(&mut self.inner)
            .poll_frame(cx)
            .map_err(|err| Box::new(err) as BoxError)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// Serves `router` on `listener` until `shutdown` is cancelled, then stops
/// accepting connections and lets in-flight requests finish for at most
/// `grace` (a client holding a keep-alive connection open must not stall a
/// deploy forever). HTTP/1.1 and HTTP/2 (prior knowledge); headers must
/// arrive within `limits.header_read_timeout`.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    shutdown: CancellationToken,
    grace: Duration,
    limits: Limits,
) -> std::io::Result<()> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    // Out of file descriptors or a connection reset before
                    // accept: wait a little instead of spinning.
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let _ = stream.set_nodelay(true);
        let service =
            router
                .clone()
                .map_request(move |mut request: Request<hyper::body::Incoming>| {
                    request.extensions_mut().insert(ConnectInfo(peer));
                    request
                });
        let service = TowerToHyperService::new(service);
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let connection = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
            if let Err(err) = watcher.watch(connection).await {
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => {}
        () = tokio::time::sleep(grace) => {
            tracing::warn!(?grace, "HTTP requests still open after the shutdown grace period; closing them");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;
    use std::time::Instant;

    use axum::routing::{get, post};
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio::net::TcpStream;

    use super::*;

    const LIMITS: Limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        request_timeout: Duration::from_secs(5),
        max_concurrent_requests: 1,
    };

    /// Serves `api` (guarded) and an unguarded `/health` on a local port.
    async fn start(api: Router) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let router = guard_api(api, LIMITS).route("/health", get(|| async { "ok" }));
        let token = CancellationToken::new();
        let server = tokio::spawn({
            let token = token.clone();
            async move {
                serve(listener, router, token, Duration::from_secs(5), LIMITS)
                    .await
                    .unwrap()
            }
        });
        (addr, token, server)
    }

    /// Reads until the server closes the connection; what it sent.
    async fn read_until_closed(stream: &mut TcpStream) -> String {
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer))
            .await
            .expect("the server closes the connection")
            .ok();
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn serve_stops_when_the_token_is_cancelled() {
        let (addr, token, server) = start(Router::new()).await;
        let body = reqwest::get(format!("http://{addr}/health"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "ok");
        token.cancel();
        server.await.unwrap();
        assert!(TcpStream::connect(addr).await.is_err());
    }

    #[tokio::test]
    async fn a_client_trickling_its_headers_is_cut_off() {
        let (addr, token, server) = start(Router::new()).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n")
            .await
            .unwrap();
        let started = Instant::now();
        read_until_closed(&mut stream).await;
        assert!(started.elapsed() < Duration::from_secs(4));
        token.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_body_trickled_past_its_deadline_is_refused_and_the_connection_closed() {
        let api = Router::new().route(
            "/echo",
            post(|body: Bytes| async move { body.len().to_string() }),
        );
        let (addr, token, server) = start(api).await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
            .await
            .unwrap();
        let (mut reader, mut writer) = stream.into_split();
        let trickle = tokio::spawn(async move {
            // A byte every 100 ms never trips a per-frame idle timeout.
            for _ in 0..100 {
                if writer.write_all(b"x").await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let started = Instant::now();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), reader.read_to_end(&mut answer))
            .await
            .expect("the server answers and closes before the body is done")
            .ok();
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with("HTTP/1.1 4"), "{answer}");
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "{:?}",
            started.elapsed()
        );
        trickle.abort();
        token.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn beyond_the_concurrency_cap_requests_are_shed_with_retry_after_and_probes_answer() {
        let (release, released) = tokio::sync::watch::channel(false);
        let api = Router::new().route(
            "/slow",
            get(move || {
                let mut released = released.clone();
                async move {
                    let _ = released.wait_for(|done| *done).await;
                    "done"
                }
            }),
        );
        let (addr, token, server) = start(api).await;
        let client = reqwest::Client::new();
        let first = tokio::spawn({
            let client = client.clone();
            async move { client.get(format!("http://{addr}/slow")).send().await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let shed = client
            .get(format!("http://{addr}/slow"))
            .send()
            .await
            .unwrap();
        assert_eq!(shed.status(), 503);
        assert_eq!(shed.headers()[header::RETRY_AFTER], "1");
        let body: serde_json::Value = shed.json().await.unwrap();
        assert!(body["detail"].as_str().unwrap().contains("retry"), "{body}");
        let health = client
            .get(format!("http://{addr}/health"))
            .send()
            .await
            .unwrap();
        assert_eq!(health.status(), 200);
        release.send(true).unwrap();
        assert_eq!(first.await.unwrap().unwrap().status(), 200);
        token.cancel();
        server.await.unwrap();
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_a_json_500() {
        let api = Router::new().route(
            "/boom",
            get(|| async {
                assert!(std::hint::black_box(false), "internal state");
                "unreachable"
            }),
        );
        let (addr, token, server) = start(api).await;
        let response = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(response.status(), 500);
        let body: serde_json::Value = response.json().await.unwrap();
        assert_eq!(body, json!({"detail": "Internal server error"}));
        token.cancel();
        server.await.unwrap();
    }
}
