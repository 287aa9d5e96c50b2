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
pub mod failure;
pub mod handlers;
pub mod jobs;
pub mod metrics;
pub mod provider;
pub mod saga;
pub mod store;

use std::sync::Arc;

use haven_common::amqp::{AmqpClient, AmqpError, ConsumerOptions, consume, handler_fn};
use haven_common::db::{self, DatabaseProbe};
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::track_http;
use haven_common::retry::RetryPolicy;
use haven_common::shutdown::{self, CancellationToken};
use haven_common::telemetry::ErrorChain;
use haven_messages::{ChainEvent, RedemptionCommand};
use haven_outbox::{Relay, RelayMetrics};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

pub use config::Config;
pub use error::Error;

use metrics::Metrics;
use provider::{FiatTerms, PayoutClient};
use saga::{InFlight, Saga};

/// Runs redemption-payout on `listener` until `shutdown` is cancelled, then
/// stops consuming, lets in-flight redemptions finish their step, publishes
/// what they committed and closes its connections.
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
    let db = db::connect(&config.database).await?;
    let mut probes: Vec<Arc<dyn Probe>> = vec![Arc::new(DatabaseProbe::new(db.clone()))];

    // Declares the whole topology on every (re)connect, so `/health` reports
    // the broker for real even before this service consumes anything.
    let amqp = AmqpClient::builder(&config.amqp)
        .connection_name(metrics::SERVICE)
        .registry(metrics.registry().registry())
        .start()?;
    probes.push(Arc::new(amqp.probe()));

    let relay = Relay::new(
        db.clone(),
        amqp.publisher(),
        RelayMetrics::new(metrics.registry().registry()).map_err(Error::Outbox)?,
        config.outbox.settings(),
    );
    let saga = Arc::new(Saga {
        db: db.clone(),
        outbox: relay.notifier(),
        provider,
        terms: FiatTerms {
            currency: config.provider.payout_currency.clone(),
            hnv_value: config.provider.hnv_reference_value,
        },
        kyc_threshold: config.kyc_threshold,
        metrics: metrics.clone(),
        in_flight: InFlight::default(),
    });

    // The relay outlives the workers so it publishes what they commit while
    // draining; it is stopped last.
    let relay_stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let workers = shutdown.child_token();
    // Patient: the provider or the chain may be away for a while, and the
    // sweep resumes a redemption whose message ends dead-lettered anyway.
    let options = ConsumerOptions {
        retry: RetryPolicy::PATIENT,
        drain_timeout: config.shutdown_grace_period,
        ..ConsumerOptions::default()
    };
    let requests_task: JoinHandle<Result<(), AmqpError>> = {
        let saga = Arc::clone(&saga);
        let amqp = amqp.clone();
        let stop = workers.clone();
        let options = options.clone();
        tokio::spawn(async move {
            let handler = handler_fn(move |envelope, delivery| {
                handlers::redemption_request::handle(Arc::clone(&saga), envelope, delivery)
            });
            consume::<RedemptionCommand, _>(&amqp, handler, options, stop).await
        })
    };
    let events_task: JoinHandle<Result<(), AmqpError>> = {
        let saga = Arc::clone(&saga);
        let amqp = amqp.clone();
        let stop = workers.clone();
        tokio::spawn(async move {
            let handler = handler_fn(move |envelope, delivery| {
                handlers::chain_event::handle(Arc::clone(&saga), envelope, delivery)
            });
            consume::<ChainEvent, _>(&amqp, handler, options, stop).await
        })
    };
    let sweep_task = tokio::spawn(jobs::run(
        Arc::clone(&saga),
        config.redemption_sweep_interval,
        config.redemption_stale_after,
        workers.clone(),
    ));

    let served = async {
        let router = ops_router(metrics.registry().clone(), probes)?.merge(
            haven_common::openapi::docs_router(haven_common::openapi::document(metrics::SERVICE)),
        );
        let router = track_http(router, metrics.registry())?;
        tracing::info!(addr = ?listener.local_addr().ok(), "redemption-payout listening");
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

    // Stop taking work, let in-flight steps finish, then publish what they
    // committed before closing the broker connection.
    workers.cancel();
    for (queue, task) in [
        ("redemption request", requests_task),
        ("chain event", events_task),
    ] {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                tracing::error!(error = %ErrorChain(&err), "the {queue} consumer failed")
            }
            Err(err) => {
                tracing::error!(error = %ErrorChain(&err), "the {queue} consumer ended abnormally")
            }
        }
    }
    jobs::log_join(sweep_task.await);
    relay_stop.cancel();
    if let Err(err) = relay_task.await {
        tracing::warn!(error = %ErrorChain(&err), "the outbox relay ended abnormally");
    }
    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("redemption-payout stopped");
    served
}
