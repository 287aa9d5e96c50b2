//! A TCP proxy a test can cut and restore, to simulate a broker or database
//! outage without stopping the shared server other tests use.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Forwards every connection made to [`TcpProxy::addr`] to a target address.
///
/// [`TcpProxy::cut`] drops every live connection and makes new ones fail
/// (they are accepted and closed at once, which a client sees as a reset
/// handshake); [`TcpProxy::restore`] forwards again. The listening port
/// never changes, so clients reconnect to the same address. Dropping the
/// proxy stops it and closes every connection.
#[derive(Debug)]
pub struct TcpProxy {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

#[derive(Debug)]
struct State {
    /// Tried in order for each new connection: the first that accepts wins.
    targets: Vec<String>,
    /// `None` while cut; otherwise the token every live connection watches.
    open: Mutex<Option<CancellationToken>>,
}

impl State {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<CancellationToken>> {
        self.open.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl TcpProxy {
    /// Starts a proxy on `127.0.0.1:0` forwarding to `target` (`host:port`).
    pub async fn start(target: impl Into<String>) -> std::io::Result<Self> {
        Self::start_any(vec![target.into()]).await
    }

    /// Like [`TcpProxy::start`] in front of several servers of one service
    /// (the nodes of a cluster): each new connection goes to the first of
    /// `targets` that accepts it, so clients fail over when a node stops.
    pub async fn start_any(targets: Vec<String>) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            targets,
            open: Mutex::new(Some(CancellationToken::new())),
        });
        let accept = tokio::spawn(accept_loop(listener, state.clone()));
        Ok(Self {
            addr,
            state,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The (first) target connections are forwarded to.
    pub fn target(&self) -> &str {
        self.state.targets.first().map_or("", String::as_str)
    }

    /// Drops every live connection and refuses new ones until [`Self::restore`].
    pub fn cut(&self) {
        if let Some(token) = self.state.lock().take() {
            token.cancel();
        }
    }

    /// Forwards new connections again.
    pub fn restore(&self) {
        let mut open = self.state.lock();
        if open.is_none() {
            *open = Some(CancellationToken::new());
        }
    }

    /// True while connections are forwarded.
    pub fn is_open(&self) -> bool {
        self.state.lock().is_some()
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

async fn accept_loop(listener: TcpListener, state: Arc<State>) {
    loop {
        let (client, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!(error = %e, "proxy accept failed");
                continue;
            }
        };
        let token = state.lock().clone();
        let Some(token) = token else {
            // Cut: close at once.
            drop(client);
            continue;
        };
        let targets = state.targets.clone();
        tokio::spawn(async move {
            let Some(mut upstream) = connect_any(&targets).await else {
                return;
            };
            let mut client = client;
            // Nagle would delay small AMQP frames and heartbeats.
            let _ = client.set_nodelay(true);
            let _ = upstream.set_nodelay(true);
            tokio::select! {
                _ = token.cancelled() => {}
                _ = copy_bidirectional(&mut client, &mut upstream) => {}
            }
            // Both sockets are dropped here, closing the connection on both sides.
        });
    }
}

async fn connect_any(targets: &[String]) -> Option<TcpStream> {
    for target in targets {
        if let Ok(stream) = TcpStream::connect(target).await {
            return Some(stream);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn roundtrip(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        s.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        s.read_exact(&mut buf).await?;
        Ok(buf.to_vec())
    }

    #[tokio::test]
    async fn forwards_cuts_and_restores() {
        let proxy = TcpProxy::start(echo_server().await.to_string())
            .await
            .unwrap();
        let mut live = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut live).await.unwrap(), b"ping");

        proxy.cut();
        assert!(!proxy.is_open());
        // The live connection is closed...
        assert!(roundtrip(&mut live).await.is_err());
        // ...and a new one is closed before anything is forwarded.
        let mut refused = TcpStream::connect(proxy.addr()).await.unwrap();
        assert!(roundtrip(&mut refused).await.is_err());

        proxy.restore();
        let mut again = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut again).await.unwrap(), b"ping");
    }

    #[tokio::test]
    async fn fails_over_to_the_next_target_that_accepts() {
        // A port nothing listens on: bound, then released.
        let closed = TcpListener::bind("127.0.0.1:0")
            .await
            .unwrap()
            .local_addr()
            .unwrap();
        let proxy = TcpProxy::start_any(vec![closed.to_string(), echo_server().await.to_string()])
            .await
            .unwrap();
        assert_eq!(proxy.target(), closed.to_string());
        let mut stream = TcpStream::connect(proxy.addr()).await.unwrap();
        assert_eq!(roundtrip(&mut stream).await.unwrap(), b"ping");
    }
}
