//! redemption-payout: burns and pays out redemptions.
//!
//! webhook-ingress reserves a redemption (state `reserved`, the tokens moved
//! to the user's reserved account) and announces it; from there this
//! service runs the saga: has chain-minter burn the whole amount, pays out
//! 98% through the payout provider, and on failure gives the tokens back
//! (the reservation released when the burn cannot happen, a refund mint
//! when the payout is refused after the burn). A worker: its HTTP port
//! serves only /health and /metrics.
//!
//! - [`saga`] takes a redemption from its recorded state as far as it can;
//! - [`store`] is each step's transaction (conditional state change, ledger
//!   movement, chain request in the outbox);
//! - [`handlers`] consume redemption requests and chain events and call the saga;
//! - [`jobs`] is the recovery sweep (stale redemptions, pending payouts, gauges);
//! - [`provider`] is the payout provider's contract, its client and a local
//!   stand-in (`haven-payout-stand-in`).
//!
//! [`run`] is the whole service; `main.rs` only parses settings, sets up
//! logging and hands it a listener and a shutdown token, so the integration
//! tests start the real thing in-process.

pub mod config;
pub mod error;
pub mod handlers;
pub mod jobs;
pub mod metrics;
pub mod provider;
pub mod saga;
pub mod store;

use std::sync::Arc;

use haven_common::amqp::{ConsumerOptions, consume, handler_fn};
use haven_common::jobs::{JobMetrics, OncePerSystem};
use haven_common::retry::RetryPolicy;
use haven_common::service::Service;
use haven_common::shutdown::CancellationToken;
use haven_entity::job_runs::DbJobStore;
use haven_entity::redemptions::KycRule;
use haven_messages::{ChainEvent, RedemptionCommand};
use haven_outbox::Relay;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

use metrics::Metrics;
use provider::{FiatTerms, PayoutClient};
use saga::{InFlight, Saga};

/// Runs redemption-payout on `listener` until `shutdown` is cancelled, then
/// stops consuming, lets in-flight redemptions finish their step, publishes
/// what they committed and closes its connections (the order is
/// [`haven_common::service`]'s).
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
    let provider = PayoutClient::new(&config.provider, metrics.clone()).map_err(Error::Provider)?;
    let mut service = Service::new(metrics::SERVICE, metrics.registry(), &config);
    let (db, amqp) = service.connect(&config.database, &config.amqp).await?;

    let relay = Relay::from_config(
        db.clone(),
        amqp.publisher(),
        metrics.registry().registry(),
        &config.outbox,
    )
    .map_err(Error::Outbox)?;
    let saga = Arc::new(Saga {
        db,
        outbox: relay.notifier(),
        provider,
        terms: FiatTerms {
            currency: config.provider.payout_currency.clone(),
            hnv_value: config.provider.hnv_reference_value,
        },
        kyc: KycRule {
            threshold: config.kyc_threshold,
            window: config.kyc_window,
        },
        metrics: metrics.clone(),
        in_flight: InFlight::default(),
    });
    service.spawn_publisher("outbox relay", |stop| relay.run(stop));

    // Patient: the provider or the chain may be away for a while, and the
    // sweep resumes a redemption whose message ends dead-lettered anyway.
    let options = ConsumerOptions {
        retry: RetryPolicy::PATIENT,
        drain_timeout: service.grace(),
        ..ConsumerOptions::default()
    };
    let requests = {
        let saga = Arc::clone(&saga);
        handler_fn(move |envelope, delivery| {
            handlers::redemption_request::handle(Arc::clone(&saga), envelope, delivery)
        })
    };
    let events = {
        let saga = Arc::clone(&saga);
        handler_fn(move |envelope, delivery| {
            handlers::chain_event::handle(Arc::clone(&saga), envelope, delivery)
        })
    };
    {
        let amqp = amqp.clone();
        let options = options.clone();
        service.spawn_worker("redemption request consumer", |stop| async move {
            consume::<RedemptionCommand, _>(&amqp, requests, options, stop).await
        });
    }
    service.spawn_worker("chain event consumer", |stop| async move {
        consume::<ChainEvent, _>(&amqp, events, options, stop).await
    });
    let sweep_job = OncePerSystem::new(
        Arc::new(DbJobStore::new(saga.db.clone())),
        JobMetrics::new(metrics.registry())?,
        metrics::SERVICE,
        jobs::JOB,
        config.redemption_sweep_interval,
    );
    service.spawn_worker("redemption sweep", |stop| {
        jobs::run(
            saga,
            sweep_job,
            config.redemption_sweep_interval,
            config.redemption_stale_after,
            stop,
        )
    });

    Ok(service.serve_ops(listener, shutdown).await?)
}
