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
pub mod handlers;
pub mod metrics;
pub mod minter;

use std::sync::Arc;

use haven_chain::client::{ChainClient, Role};
use haven_chain::nonce::{SignerLeases, unique_holder};
use haven_chain::signer::SignerPool;
use haven_common::amqp::AmqpClient;
use haven_common::amqp::{ConsumerOptions, consume, handler_fn};
use haven_common::db::{self, DatabaseProbe};
use haven_common::health::{Probe, ops_router};
use haven_common::metrics::track_http;
use haven_common::retry::RetryPolicy;
use haven_common::shutdown::{self, CancellationToken};
use haven_common::telemetry::ErrorChain;
use haven_entity::chain_store::DbLeaseStore;
use haven_messages::ChainRequest;
use haven_outbox::{Relay, RelayMetrics};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::minter::Minter;

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

    // The chain: checked in the background (`/health` says "blockchain"),
    // never waited for at start.
    let chain = ChainClient::unchecked(&config.chain, &[Role::Minter, Role::Burner])?;
    probes.push(Arc::new(chain.probe()));
    let pool = SignerPool::from_config(&config.chain.signers)?;
    let leases = SignerLeases::new(
        Arc::new(DbLeaseStore::new(db.clone())),
        chain.rpc().clone(),
        pool,
        config.chain.rpc.chain_id,
        config.chain.tx.lease_ttl,
        unique_holder(metrics::SERVICE),
    )?;

    let relay = Relay::new(
        db.clone(),
        amqp.publisher(),
        RelayMetrics::new(metrics.registry().registry())?,
        config.outbox.settings(),
    );
    let (sender_slot, sender) = watch::channel(None);
    // Work stops before the HTTP server: the consumer drains, then the
    // relay publishes what the last confirmations queued.
    let work = shutdown.child_token();
    let minter = Arc::new(Minter::new(
        db.clone(),
        config.chain.contract_address,
        sender,
        config.minting.max_in_flight as usize,
        metrics.clone(),
        relay.notifier(),
        work.clone(),
    ));
    let lease_task = tokio::spawn(minter::lease::hold(
        leases,
        chain.rpc().clone(),
        config.chain.rpc.chain_id,
        config.chain.tx.clone(),
        sender_slot,
        metrics.clone(),
        work.clone(),
    ));
    let relay_stop = CancellationToken::new();
    let relay_task = tokio::spawn(relay.run(relay_stop.clone()));
    let (batches, batcher) = minter::batcher::start(
        minter.clone(),
        usize::from(config.minting.batch_size),
        config.minting.batch_max_wait,
        work.clone(),
    );
    let reconcile = {
        let minter = minter.clone();
        let rpc = chain.rpc().clone();
        let stop = work.clone();
        tokio::spawn(async move {
            loop {
                match minter::reconcile::run(&minter, &rpc).await {
                    Ok(found) => {
                        tracing::info!(
                            finished = found.finished,
                            left = found.left,
                            "start-up reconciliation done"
                        );
                        return;
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "start-up reconciliation failed; retrying")
                    }
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(std::time::Duration::from_secs(2)) => {}
                }
            }
        })
    };
    let consumer = {
        let minter = minter.clone();
        let options = ConsumerOptions {
            prefetch: Some(config.minting.request_prefetch),
            concurrency: Some(usize::from(config.minting.request_prefetch)),
            retry: RetryPolicy::PATIENT,
            drain_timeout: config.shutdown_grace_period,
        };
        let handler = handler_fn(move |envelope, ctx| {
            handlers::chain_request::handle(minter.clone(), batches.clone(), envelope, ctx)
        });
        let amqp = amqp.clone();
        let stop = work.clone();
        tokio::spawn(async move { consume::<ChainRequest, _>(&amqp, handler, options, stop).await })
    };

    let served = async {
        let router = ops_router(metrics.registry().clone(), probes)?.merge(
            haven_common::openapi::docs_router(haven_common::openapi::document(metrics::SERVICE)),
        );
        let router = track_http(router, metrics.registry())?;
        tracing::info!(addr = ?listener.local_addr().ok(), "chain-minter listening");
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

    work.cancel();
    match consumer.await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => {
            tracing::error!(error = %ErrorChain(&err), "the consumer stopped with an error")
        }
        Err(err) => tracing::error!(error = %ErrorChain(&err), "the consumer ended abnormally"),
    }
    let _ = batcher.await;
    let _ = reconcile.await;
    let _ = lease_task.await;
    relay_stop.cancel();
    let _ = relay_task.await;
    amqp.close().await;
    if let Err(err) = db.close().await {
        tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
    }
    tracing::info!("chain-minter stopped");
    served
}
