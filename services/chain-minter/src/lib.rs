//! chain-minter: sends mint and burn transactions to the chain and confirms them.
//!
//! Consumes chain requests, signs and sends mint and burn transactions with a
//! unique on-chain reference each (so a retry can never mint twice), and records
//! their confirmation. A worker: its HTTP port serves only /health and /metrics.
//!
//! [`run`] is the whole service; `main.rs` only parses settings, sets up
//! logging and hands it a listener and a shutdown token, so the integration
//! tests start the real thing in-process.

pub mod config;
pub mod error;
pub mod metrics;

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

/// Runs chain-minter on `listener` until `shutdown` is cancelled, then lets
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
        tracing::info!(addr = ?listener.local_addr().ok(), "chain-minter listening");
        shutdown::serve(listener, router, shutdown, config.shutdown_grace_period)
            .await
            .map_err(Error::Serve)
    }
    .await;

    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("chain-minter stopped");
    served
}
