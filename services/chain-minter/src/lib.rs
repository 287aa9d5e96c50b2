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
pub mod finality;
pub mod gas;
pub mod handlers;
pub mod metrics;
pub mod minter;
pub mod sweep;
#[cfg(feature = "test-util")]
pub mod testing;

use std::sync::Arc;

use haven_chain::client::{ChainClient, Role};
use haven_chain::nonce::{SignerLeases, unique_holder};
use haven_chain::signer::SignerPool;
use haven_common::amqp::{ConsumerOptions, consume, handler_fn};
use haven_common::jobs::{JobMetrics, OncePerSystem};
use haven_common::retry::RetryPolicy;
use haven_common::service::Service;
use haven_common::shutdown::CancellationToken;
use haven_entity::chain_store::DbLeaseStore;
use haven_entity::job_runs::DbJobStore;
use haven_messages::ChainRequest;
use haven_outbox::Relay;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::minter::Minter;

pub use config::Config;
pub use error::Error;
use metrics::Metrics;

/// Runs chain-minter on `listener` until `shutdown` is cancelled, then stops
/// consuming, lets the batches in flight finish, publishes what their
/// confirmations queued and closes its connections (the order is
/// [`haven_common::service`]'s).
///
/// Never waits for its dependencies: the database pool, the broker client
/// and the chain client connect and reconnect in the background, and
/// `/health` reports whether they are up. Fails at once on unusable settings
/// (a malformed URL, a bad signer key).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let metrics = Metrics::new()?;
    let mut service = Service::new(metrics::SERVICE, metrics.registry(), &config);
    let (db, amqp) = service.connect(&config.database, &config.amqp).await?;
    // Checked in the background (`/health` says "blockchain"), never waited
    // for at start.
    let chain = ChainClient::unchecked(&config.chain, &[Role::Minter, Role::Burner])?;
    service.probe(chain.probe());
    let pool = SignerPool::from_config(&config.chain.signers)?;
    let gas = gas::GasWatch {
        rpc: chain.rpc().clone(),
        signers: pool.addresses(),
        min_balance: config.gas.signer_min_balance_eth,
        interval: config.gas.signer_balance_check_interval,
        metrics: metrics.clone(),
    };
    service.spawn_worker("signer balances", |stop| gas.run(stop));
    let leases = SignerLeases::new(
        Arc::new(DbLeaseStore::new(db.clone())),
        chain.rpc().clone(),
        pool,
        config.chain.rpc.chain_id,
        config.chain.tx.lease_ttl,
        unique_holder(metrics::SERVICE),
    )?;

    let relay = Relay::from_config(
        db.clone(),
        amqp.publisher(),
        metrics.registry().registry(),
        &config.outbox,
    )
    .map_err(Error::Outbox)?;
    let notifier = relay.notifier();
    let (sender_slot, sender) = watch::channel(None);
    let minter = Arc::new(
        Minter::new(
            db.clone(),
            config.chain.contract_address,
            sender.clone(),
            config.minting.max_in_flight as usize,
            metrics.clone(),
            relay.notifier(),
            service.work_token(),
        )
        .with_finality_depth(config.finality.finality_depth),
    );
    service.spawn_publisher("outbox relay", |stop| relay.run(stop));
    service.spawn_worker("signer lease", |stop| {
        minter::lease::hold(
            leases,
            chain.rpc().clone(),
            config.chain.rpc.chain_id,
            config.chain.tx.clone(),
            sender_slot,
            metrics.clone(),
            stop,
        )
    });
    let (batches, batcher) = minter::batcher::start(
        Arc::clone(&minter),
        usize::from(config.minting.batch_size),
        config.minting.batch_max_wait,
        service.work_token(),
    );
    service.spawn_worker("batcher", |_stop| batcher);
    {
        let minter = Arc::clone(&minter);
        let rpc = chain.rpc().clone();
        service.spawn_worker("start-up reconciliation", |stop| async move {
            minter::reconcile::until_done(&minter, &rpc, stop).await
        });
    }
    let sweep = sweep::Sweep {
        db: db.clone(),
        outbox: notifier.clone(),
        handling: minter.handling().clone(),
        metrics: metrics.clone(),
        config: config.sweep.clone(),
    };
    let sweep_job = OncePerSystem::new(
        Arc::new(DbJobStore::new(db.clone())),
        JobMetrics::new(metrics.registry())?,
        metrics::SERVICE,
        sweep::JOB,
        config.sweep.tx_sweep_interval,
    );
    service.spawn_worker("stuck-transaction sweep", |stop| sweep.run(sweep_job, stop));
    let finality = finality::Finality {
        db: db.clone(),
        rpc: chain.rpc().clone(),
        contract: config.chain.contract_address,
        outbox: notifier.clone(),
        metrics: metrics.clone(),
        config: config.finality.clone(),
        minter: Arc::clone(&minter),
    };
    service.spawn_worker("finality watcher", |stop| finality.run(stop));
    // Only a replica that holds a signer lease takes requests: another
    // would keep its prefetched requests waiting for a lease it may never
    // get (the matrix's `replicas` row: minutes), while the holder idles.
    let (lease_held, leased) = watch::channel(false);
    let mut lease = sender.clone();
    service.spawn_worker("request gate", |stop| async move {
        loop {
            lease_held.send_replace(lease.borrow_and_update().is_some());
            tokio::select! {
                () = stop.cancelled() => return,
                changed = lease.changed() => if changed.is_err() { return },
            }
        }
    });
    let options = ConsumerOptions {
        prefetch: Some(config.minting.request_prefetch),
        concurrency: Some(usize::from(config.minting.request_prefetch)),
        retry: RetryPolicy {
            max_attempts: config.minting.request_max_attempts,
            ..RetryPolicy::PATIENT
        },
        drain_timeout: service.grace(),
        gate: Some(leased),
    };
    let handler = handler_fn(move |envelope, ctx| {
        handlers::chain_request::handle(Arc::clone(&minter), batches.clone(), envelope, ctx)
    });
    service.spawn_worker("chain request consumer", |stop| async move {
        consume::<ChainRequest, _>(&amqp, handler, options, stop).await
    });

    Ok(service.serve_ops(listener, shutdown).await?)
}
