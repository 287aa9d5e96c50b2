//! webhook-ingress: accepts partner webhooks and token commands and queues them durably.
//!
//! Verifies the HMAC signatures of Aurora and Tribe webhooks, deduplicates
//! events, and publishes them to RabbitMQ through a transactional outbox; also
//! takes the API-key token commands (mint, redeem). Serves /health and /metrics
//! on the same port.
//!
//! [`run`] is the whole service; `main.rs` only parses settings, sets up
//! logging and hands it a listener and a shutdown token, so the integration
//! tests start the real thing in-process.

pub mod config;
pub mod error;
pub mod metrics;
pub mod payloads;
pub mod signature;

use std::sync::Arc;

use haven_common::amqp::AmqpClient;
use haven_common::db::{self, DatabaseProbe};
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::track_http;
use haven_common::shutdown::{self, CancellationToken};
use haven_common::telemetry::ErrorChain;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;
use metrics::Metrics;

/// Runs webhook-ingress on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish and closes its connections.
///
/// Never waits for its dependencies: the database pool and the broker client
/// connect and reconnect in the background, and `/health` reports whether they
/// are up. Fails at once on unusable settings (a malformed URL).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let metrics = Metrics::new()?;
    let db = db::connect(&config.database).await?;
    let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(DatabaseProbe::new(db.clone()))];

    // Declares the whole topology on every (re)connect, so `/health` reports
    // the broker for real even before this service consumes anything.
    let amqp = AmqpClient::builder(&config.amqp)
        .connection_name(metrics::SERVICE)
        .registry(metrics.registry().registry())
        .start()?;
    probes.push(Arc::new(amqp.probe()));

    let served = async {
        // API routes are merged in here by later issues, before `track_http`
        // so they are measured too.
        let router = ops_router(metrics.registry().clone(), probes)?;
        let router = track_http(router, metrics.registry())?;
        tracing::info!(addr = ?listener.local_addr().ok(), "webhook-ingress listening");
        shutdown::serve(listener, router, shutdown, config.shutdown_grace_period)
            .await
            .map_err(Error::Serve)
    }
    .await;

    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("webhook-ingress stopped");
    served
}
