//! reward-calculator: turns partner events into rewards and mint requests.
//!
//! Consumes partner events, applies the reward rules, creates HAVEN users and
//! their custodial wallets on first sight, and publishes mint requests. A worker:
//! its HTTP port serves only /health and /metrics.
//!
//! - [`rules`] prices an event (pure, exact arithmetic in [`exact`]);
//! - [`handlers::partner_event`] consumes `names::PARTNER_EVENTS`: one reward
//!   per rewarded fact, cancellations and reversals of booking rewards,
//!   stakes recorded;
//! - [`store`] writes a reward, its token transaction, the emission budget
//!   and the outbox message in the caller's transaction (and documents the
//!   status contract with chain-minter);
//! - [`jobs`] pays staking interest and releases held rewards periodically;
//! - [`emission`] is the budget per period (setting or contract).
//!
//! [`run`] is the whole service; `main.rs` only parses settings, sets up
//! logging and hands it a listener and a shutdown token, so the integration
//! tests start the real thing in-process.

pub mod config;
pub mod context;
pub mod emission;
pub mod error;
pub mod exact;
pub mod failure;
pub mod handlers;
pub mod jobs;
pub mod metrics;
pub mod rules;
pub mod store;

use std::sync::Arc;

use haven_chain::signer::CustodyWallets;
use haven_common::amqp::{AmqpClient, ConsumerOptions, consume, handler_fn};
use haven_common::db::{self, DatabaseProbe};
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::track_http;
use haven_common::retry::RetryPolicy;
use haven_common::shutdown::{self, CancellationToken};
use haven_common::telemetry::ErrorChain;
use haven_messages::PartnerEvent;
use haven_outbox::{Relay, RelayMetrics};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

use context::Context;
use emission::Emission;
use metrics::Metrics;
use rules::Rules;

/// Runs reward-calculator on `listener` until `shutdown` is cancelled, then
/// stops consuming, lets in-flight events finish, publishes what they
/// committed and closes its connections.
///
/// Never waits for its dependencies: the database pool and the broker client
/// connect and reconnect in the background, and `/health` reports whether they
/// are up. Fails at once on unusable settings (a malformed URL, a bad rules
/// file, a mnemonic that is not BIP-39).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let rules = Rules::load(config.reward_rules_file.as_deref())?;
    tracing::info!(version = rules.version(), file = ?config.reward_rules_file, "reward rules loaded");
    let wallets =
        CustodyWallets::from_mnemonic(&config.custody_mnemonic).map_err(Error::Custody)?;
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

    let relay = Relay::new(
        db.clone(),
        amqp.publisher(),
        RelayMetrics::new(metrics.registry().registry()).map_err(Error::Outbox)?,
        config.outbox.settings(),
    );
    let ctx = Arc::new(Context {
        db: db.clone(),
        rules,
        wallets,
        outbox: relay.notifier(),
        metrics: metrics.clone(),
        emission: Arc::new(Emission::new(
            config.emission_period,
            config.monthly_emission_target_hnv,
        )),
        staking_period: config.staking_accrual_period,
    });

    // The relay outlives the workers so it publishes what they commit while
    // draining; it is stopped last.
    let relay_stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let workers = shutdown.child_token();
    let consumer_task = {
        let ctx = Arc::clone(&ctx);
        let amqp = amqp.clone();
        let stop = workers.clone();
        tokio::spawn(async move {
            let handler = handler_fn(move |envelope, delivery| {
                handlers::partner_event::handle(Arc::clone(&ctx), envelope, delivery)
            });
            // Patient: a cancellation may wait on a mint in flight, and a
            // database outage must not dead-letter events.
            let options = ConsumerOptions {
                retry: RetryPolicy::PATIENT,
                drain_timeout: config.shutdown_grace_period,
                ..ConsumerOptions::default()
            };
            consume::<PartnerEvent, _>(&amqp, handler, options, stop).await
        })
    };
    let jobs_task = tokio::spawn(jobs::run(
        Arc::clone(&ctx),
        config.reward_jobs_interval,
        workers.clone(),
    ));
    let target_task = match config.emission_contract() {
        Some((rpc_url, contract)) => {
            tracing::info!(%contract, "emission budget: the contract's monthlyMintTarget(), when set");
            Some(tokio::spawn(emission::refresh_contract_target(
                Arc::clone(&ctx.emission),
                rpc_url.clone(),
                contract,
                config.emission_target_refresh,
                workers.clone(),
            )))
        }
        None => {
            tracing::info!(budget_wei = ?ctx.emission.budget().map(|b| b.to_string()), "emission budget: MONTHLY_EMISSION_TARGET_HNV (no contract configured)");
            None
        }
    };

    let served = async {
        let router = ops_router(metrics.registry().clone(), probes)?.merge(
            haven_common::openapi::docs_router(haven_common::openapi::document(metrics::SERVICE)),
        );
        let router = track_http(router, metrics.registry())?;
        tracing::info!(addr = ?listener.local_addr().ok(), "reward-calculator listening");
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

    // Stop taking work, let in-flight events finish, then publish what they
    // committed before closing the broker connection.
    workers.cancel();
    match consumer_task.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::error!(error = %ErrorChain(&err), "the partner event consumer failed")
        }
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "the partner event consumer ended abnormally")
        }
    }
    if let Err(err) = jobs_task.await {
        tracing::warn!(error = %ErrorChain(&err), "the periodic job ended abnormally");
    }
    if let Some(task) = target_task
        && let Err(err) = task.await
    {
        tracing::warn!(error = %ErrorChain(&err), "the monthly target refresh ended abnormally");
    }
    relay_stop.cancel();
    if let Err(err) = relay_task.await {
        tracing::warn!(error = %ErrorChain(&err), "the outbox relay ended abnormally");
    }
    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("reward-calculator stopped");
    served
}
