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
pub mod handlers;
pub mod jobs;
pub mod metrics;
pub mod rules;
pub mod store;

use std::sync::Arc;

use haven_common::amqp::{ConsumerOptions, consume, handler_fn};
use haven_common::jobs::{JobMetrics, OncePerSystem};
use haven_common::retry::RetryPolicy;
use haven_common::service::Service;
use haven_common::shutdown::CancellationToken;
use haven_entity::job_runs::DbJobStore;
use haven_messages::PartnerEvent;
use haven_outbox::Relay;
use tokio::net::TcpListener;

pub use config::Config;
pub use error::Error;

use context::Context;
use emission::Emission;
use metrics::Metrics;
use rules::Rules;

/// Runs reward-calculator on `listener` until `shutdown` is cancelled, then
/// stops consuming, lets in-flight events finish, publishes what they
/// committed and closes its connections (the order is
/// [`haven_common::service`]'s).
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
    let wallets = config.custody_xpub.clone();
    let metrics = Metrics::new()?;
    let mut service = Service::new(metrics::SERVICE, metrics.registry(), &config);
    let (db, amqp) = service.connect(&config.database, &config.amqp).await?;

    let relay = Relay::from_config(
        db.clone(),
        amqp.publisher(),
        metrics.registry().registry(),
        &config.outbox,
    )
    .map_err(Error::Outbox)?;
    let ctx = Arc::new(Context {
        db,
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
    service.spawn_publisher("outbox relay", |stop| relay.run(stop));

    // Patient: a cancellation may wait on a mint in flight, and a database
    // outage must not dead-letter events.
    let options = ConsumerOptions {
        retry: RetryPolicy::PATIENT,
        drain_timeout: service.grace(),
        ..ConsumerOptions::default()
    };
    let handler = {
        let ctx = Arc::clone(&ctx);
        handler_fn(move |envelope, delivery| {
            handlers::partner_event::handle(Arc::clone(&ctx), envelope, delivery)
        })
    };
    service.spawn_worker("partner event consumer", |stop| async move {
        consume::<PartnerEvent, _>(&amqp, handler, options, stop).await
    });
    let reward_job = OncePerSystem::new(
        Arc::new(DbJobStore::new(ctx.db.clone())),
        JobMetrics::new(metrics.registry())?,
        metrics::SERVICE,
        jobs::JOB,
        config.reward_jobs_interval,
    );
    service.spawn_worker("reward jobs", |stop| {
        jobs::run(
            Arc::clone(&ctx),
            reward_job,
            config.reward_jobs_interval,
            stop,
        )
    });
    match config.emission_contract() {
        Some((rpc_url, contract)) => {
            // `/health` names the chain it reads the budget from.
            service.probe(
                haven_chain::client::ChainClient::reader(
                    &emission::rpc_config(rpc_url.clone()),
                    contract,
                )
                .map_err(Error::Chain)?
                .probe(),
            );
            tracing::info!(%contract, "emission budget: the contract's monthlyMintTarget(), when set");
            service.spawn_worker("monthly target refresh", |stop| {
                emission::refresh_contract_target(
                    Arc::clone(&ctx.emission),
                    rpc_url.clone(),
                    contract,
                    config.emission_target_refresh,
                    stop,
                )
            });
        }
        None => {
            tracing::info!(budget_wei = ?ctx.emission.budget().map(|b| b.to_string()), "emission budget: MONTHLY_EMISSION_TARGET_HNV (no contract configured)");
        }
    }

    Ok(service.serve_ops(listener, shutdown).await?)
}
