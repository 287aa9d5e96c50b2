//! An HTTP gateway a test can close and open, to make a JSON-RPC node (or
//! any HTTP upstream) answer as a load balancer does when its backend is
//! gone: a plain `404` for every request, which a client reads as a
//! refusal, not as a network blip to wait out.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Forwards every request's body, as a `POST`, to an upstream URL while
/// open; answers `404 no backend` while closed. Dropping it stops it.
#[derive(Debug)]
pub struct HttpGateway {
    addr: SocketAddr,
    state: Arc<Gateway>,
    task: JoinHandle<()>,
}

#[derive(Debug)]
struct Gateway {
    upstream: String,
    client: reqwest::Client,
    open: AtomicBool,
    refused: AtomicU64,
}

impl HttpGateway {
    /// Starts an open gateway on `127.0.0.1:0` to `upstream` (a URL).
    pub async fn start(upstream: impl Into<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(Gateway {
            upstream: upstream.into(),
            client: reqwest::Client::new(),
            open: AtomicBool::new(true),
            refused: AtomicU64::new(0),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&state));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { addr, state, task })
    }

    /// The gateway's URL, what the client under test is given.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on every request gets a `404`.
    pub fn close(&self) {
        self.state.open.store(false, Ordering::SeqCst);
    }

    /// From now on requests are forwarded again.
    pub fn open(&self) {
        self.state.open.store(true, Ordering::SeqCst);
    }

    /// Requests answered `404` while closed.
    pub fn refused(&self) -> u64 {
        self.state.refused.load(Ordering::SeqCst)
    }
}

impl Drop for HttpGateway {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(State(gateway): State<Arc<Gateway>>, headers: HeaderMap, body: Bytes) -> Response {
    if !gateway.open.load(Ordering::SeqCst) {
        gateway.refused.fetch_add(1, Ordering::SeqCst);
        return (StatusCode::NOT_FOUND, "no backend").into_response();
    }
    let mut request = gateway.client.post(&gateway.upstream).body(body);
    if let Some(content_type) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, content_type);
    }
    match request.send().await {
        Ok(answer) => {
            let status =
                StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
            let body = answer.bytes().await.unwrap_or_default();
            (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
        }
        Err(_) => StatusCode::BAD_GATEWAY.into_response(),
    }
}
