//! read-api: serves balances, statistics and transaction histories from the database.
//!
//! The read side of HAVEN: balances, per-user analytics, token statistics and
//! transaction histories, read from the database (never the broker). With a
//! chain configured it also reports the contract's figures and reconciles the
//! ledger with the chain. Serves /health, /metrics, /openapi.json and /docs on
//! the same port.
//!
//! [`run`] is the whole service; `main.rs` only parses settings, sets up
//! logging and hands it a listener and a shutdown token, so the integration
//! tests start the real thing in-process. [`reconcile_once`] is the
//! `read-api reconcile` command.

pub mod chain;
pub mod config;
pub mod error;
pub mod metrics;
pub mod reconcile;
pub mod routes;
pub mod stats;
pub mod store;

use std::path::Path;
use std::sync::Arc;

use haven_common::auth::KeyGuard;
use haven_common::db;
use haven_common::service::Service;
use haven_common::shutdown::CancellationToken;
use tokio::net::TcpListener;

use crate::chain::ChainReader;
use crate::reconcile::{LastReport, Reconciler, Report};
use crate::routes::{AppState, Inner};
use crate::stats::StatsCache;
use crate::store::Store;
use haven_common::jobs::{JobMetrics, OncePerSystem};
use haven_entity::job_runs::DbJobStore;

pub use config::{Command, Config};
pub use error::Error;
use metrics::Metrics;

/// Runs read-api on `listener` until `shutdown` is cancelled, then lets
/// in-flight requests finish and closes its connections (the order is
/// [`haven_common::service`]'s).
///
/// Never waits for its dependencies: the database pool connects and
/// reconnects in the background, `/health` reports whether it is up, and the
/// chain is only ever read on demand (token-stats) or by the periodic
/// reconciliation. Fails at once on unusable settings (a malformed URL).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let metrics = Metrics::new()?;
    let mut service = Service::new(metrics::SERVICE, metrics.registry(), &config);
    let db = service.database(&config.database).await?;
    let job_metrics = JobMetrics::new(metrics.registry())?;
    let store = Store::new(
        db.clone(),
        store::batch::workers(config.database.database_max_connections),
    );
    let chain = chain_reader(&config)?;
    // With a chain configured, `/health` names it ("blockchain"): the
    // contract figures and the reconciliation read it.
    if let Some((rpc, contract)) = config.chain() {
        service.probe(
            haven_chain::client::ChainClient::reader(&rpc, contract)
                .map_err(Error::Chain)?
                .probe(),
        );
    }

    // The periodic reconciliation, when the chain is configured: one
    // replica of the system runs each period, and its report is stored
    // for every replica to serve.
    let reconciliation: Option<LastReport> = chain.as_ref().map(|_| {
        OncePerSystem::new(
            Arc::new(DbJobStore::new(db.clone())),
            job_metrics.clone(),
            metrics::SERVICE,
            reconcile::JOB,
            config.reconcile_interval,
        )
    });
    match (&chain, &reconciliation) {
        (Some(reader), Some(job)) if !config.reconcile_interval.is_zero() => {
            let reconciler = Reconciler::new(
                store.clone(),
                reader.clone(),
                usize::from(config.reconcile_concurrency),
            );
            let (metrics, job) = (metrics.clone(), job.clone());
            service.spawn_worker("periodic reconciliation", |stop| {
                reconcile::periodically(reconciler, config.reconcile_interval, metrics, job, stop)
            });
        }
        (None, _) => tracing::info!(
            "no RPC_URL/CONTRACT_ADDRESS: token-stats serves the database figures alone and reconciliation is off"
        ),
        _ => {}
    }

    let state = AppState::new(Inner {
        stats: StatsCache::new(
            config.stats_cache_ttl,
            store.clone(),
            chain,
            metrics.clone(),
        ),
        store,
        reconciliation,
        metrics,
    });
    let access = match &config.read_api_keys {
        Some(keys) => {
            keys.warn_unnamed("READ_API_KEYS");
            Some(routes::access::Access {
                guard: KeyGuard::new(
                    keys.clone(),
                    config.throttle.throttle(),
                    config.throttle.trusted_proxies.clone(),
                ),
                metrics: state.metrics.clone(),
            })
        }
        None => {
            tracing::warn!(
                "READ_API_KEYS is not set: every read, emails and KYC status included, is open to anyone who reaches this port (the development default; set it in production)"
            );
            None
        }
    };
    let (api, api_doc) = routes::router(state, access);
    Ok(service.serve(listener, api, api_doc, shutdown).await?)
}

/// `read-api reconcile`: one reconciliation, its JSON report written to
/// `output` (standard output when `None`) and logged. Returns the report;
/// [`Report::matched`] decides the exit status.
pub async fn reconcile_once(config: &Config, output: Option<&Path>) -> Result<Report, Error> {
    let reader = chain_reader(config)?.ok_or(Error::ChainNotConfigured)?;
    let metrics = Metrics::new()?;
    let db = db::connect(&config.database).await?;
    let reconciler = Reconciler::new(
        // No balance reads here: no batching workers.
        Store::new(db.clone(), 0),
        reader,
        usize::from(config.reconcile_concurrency),
    );
    let report = reconciler.run().await;
    let _ = db.close().await;
    let report = report?;
    report.record(&metrics);
    report.log();
    let json = serde_json::to_string_pretty(&report).unwrap_or_default() + "\n";
    match output {
        Some(path) => std::fs::write(path, json).map_err(Error::Report)?,
        None => {
            use std::io::Write as _;
            std::io::stdout()
                .write_all(json.as_bytes())
                .map_err(Error::Report)?;
        }
    }
    Ok(report)
}

/// The contract reader, when RPC_URL and CONTRACT_ADDRESS are both set.
fn chain_reader(config: &Config) -> Result<Option<ChainReader>, Error> {
    config
        .chain()
        .map(|(rpc, contract)| ChainReader::new(&rpc, contract).map_err(Error::Chain))
        .transpose()
}
