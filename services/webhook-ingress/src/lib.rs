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

pub mod auth;
pub mod config;
pub mod error;
pub mod metrics;
pub mod payloads;
pub mod routes;
pub mod signature;
pub mod state;
pub mod store;

use std::sync::Arc;

use haven_common::amqp::AmqpClient;
use haven_common::db::{self, DatabaseProbe};
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::track_http;
use haven_common::shutdown::{self, CancellationToken};
use haven_common::telemetry::ErrorChain;
use haven_outbox::{Relay, RelayMetrics};
use tokio::net::TcpListener;

use crate::auth::RateLimit;
use crate::state::{AppState, Inner};

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

    // The relay publishes what the handlers commit; it keeps running (and
    // retrying) while the broker is away, so requests never wait on it.
    let relay = Relay::new(
        db.clone(),
        amqp.publisher(),
        RelayMetrics::new(metrics.registry().registry()).map_err(Error::Outbox)?,
        config.outbox.settings(),
    );
    let rate_limit = RateLimit::per_minute(config.rate_limit_per_minute);
    let state = AppState::new(Inner {
        db: db.clone(),
        outbox: relay.notifier(),
        aurora_secrets: config.aurora_webhook_secret.clone(),
        tribe_secrets: config.tribe_webhook_secret.clone(),
        api_keys: config.api_keys.clone(),
        rate_limit: rate_limit.clone(),
        max_body_size: config.max_body_size,
        kyc_threshold: config.kyc_threshold,
        metrics: metrics.clone(),
    });
    let relay_stop = shutdown.child_token();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let housekeeping = tokio::spawn(housekeeping(rate_limit, shutdown.clone()));

    let served = async {
        let router = routes::router(state).merge(ops_router(metrics.registry().clone(), probes)?);
        let router = track_http(router, metrics.registry())?;
        tracing::info!(addr = ?listener.local_addr().ok(), "webhook-ingress listening");
        shutdown::serve(
            listener,
            router,
            shutdown.clone(),
            config.shutdown_grace_period,
        )
        .await
        .map_err(Error::Serve)
    }
    .await;

    // Requests are done: let the relay publish what they committed, then stop.
    relay_stop.cancel();
    if let Err(err) = relay_task.await {
        tracing::warn!(error = %ErrorChain(&err), "the outbox relay ended abnormally");
    }
    housekeeping.abort();
    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("webhook-ingress stopped");
    served
}

/// Periodic upkeep: forgets idle rate-limit keys.
async fn housekeeping(rate_limit: RateLimit, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => rate_limit.shrink(),
        }
    }
}
