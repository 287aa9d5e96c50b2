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

use haven_common::auth::KeyGuard;
use haven_common::service::Service;
use haven_common::shutdown::CancellationToken;
use haven_entity::redemptions::KycRule;
use haven_outbox::Relay;
use tokio::net::TcpListener;

use crate::auth::RateLimit;
use crate::state::{AppState, Inner};

pub use config::Config;
pub use error::Error;
use metrics::Metrics;

/// Runs webhook-ingress on `listener` until `shutdown` is cancelled, then
/// lets in-flight requests finish, publishes what they committed and closes
/// its connections (the order is [`haven_common::service`]'s).
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
    let mut service = Service::new(metrics::SERVICE, metrics.registry(), &config);
    let (db, amqp) = service.connect(&config.database, &config.amqp).await?;

    // The relay publishes what the handlers commit; it keeps running (and
    // retrying) while the broker is away, so requests never wait on it.
    let relay = Relay::from_config(
        db.clone(),
        amqp.publisher(),
        metrics.registry().registry(),
        &config.outbox,
    )
    .map_err(Error::Outbox)?;
    config.api_keys.warn_unnamed("API_KEYS");
    let rate_limit = RateLimit::per_minute(config.rate_limit_per_minute);
    let state = AppState::new(Inner {
        db,
        outbox: relay.notifier(),
        aurora_secrets: config.aurora_webhook_secret.clone(),
        tribe_secrets: config.tribe_webhook_secret.clone(),
        keys: KeyGuard::new(
            config.api_keys.clone(),
            config.throttle.throttle(),
            config.throttle.trusted_proxies.clone(),
        ),
        rate_limit: rate_limit.clone(),
        max_body_size: config.max_body_size,
        kyc: KycRule {
            threshold: config.kyc_threshold,
            window: config.kyc_window,
        },
        metrics: metrics.clone(),
    });
    service.spawn_publisher("outbox relay", |stop| relay.run(stop));
    service.spawn_worker("rate-limit housekeeping", |stop| {
        housekeeping(rate_limit, stop)
    });

    let (api, api_doc) = routes::router(state);
    Ok(service.serve(listener, api, api_doc, shutdown).await?)
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
