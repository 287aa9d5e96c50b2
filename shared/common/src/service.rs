//! The one service skeleton: what every HAVEN binary does around its own
//! wiring.
//!
//! A service's `run` builds a [`Service`], asks it for the database pool and
//! the broker client (each gets its `/health` probe and its place in the
//! teardown), spawns its workers and publishers as plain tasks, and hands
//! its API router to [`Service::serve`]. `serve` answers HTTP until the
//! shutdown token is cancelled, then tears down in one fixed order:
//!
//! 1. stop accepting connections and let the requests in flight finish
//!    (bounded by the grace period);
//! 2. stop the workers (consumers drain their handlers, periodic jobs end);
//! 3. stop the publishers (the outbox relay publishes what steps 1 and 2
//!    committed, then ends);
//! 4. close the broker connection;
//! 5. close the database pool.
//!
//! Each step starts only when the one before it is over, so a request or a
//! handler that commits during the drain is still published by this process.
//! Tasks are taken as futures, not as concrete types, so this crate knows
//! nothing of the outbox or the chain.
//!
//! [`launch`] is the binaries' `main`: settings, logging, listener, signals,
//! `run`, exit status.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use utoipa::openapi::OpenApi;

use crate::amqp::{AmqpClient, AmqpError};
use crate::config::{AmqpConfig, DatabaseConfig, HttpConfig, TelemetryConfig};
use crate::db::{self, DatabaseProbe, DbError};
use crate::health::{Probe, ops_router};
use crate::metrics::{MetricsError, MetricsRegistry, track_http};
use crate::server::{self, Limits};
use crate::shutdown::{self, CancellationToken};
use crate::telemetry::{self, ErrorChain};

/// What the skeleton itself can fail at; every service's error wraps it.
#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    /// The health or HTTP metrics could not be registered.
    #[error("could not register the HTTP and health metrics")]
    Metrics(#[from] MetricsError),
    /// The database settings are unusable (a malformed URL).
    #[error("could not set up the database pool")]
    Database(#[from] DbError),
    /// The broker settings are unusable (a malformed URL).
    #[error("could not set up the broker connection")]
    Broker(#[from] AmqpError),
    /// The HTTP server stopped with an I/O error.
    #[error("the HTTP server failed")]
    Serve(#[source] std::io::Error),
}

/// The settings [`launch`] needs from a service's configuration.
pub trait ServiceConfig: clap::Parser + Send + 'static {
    /// Logging format and filter.
    fn telemetry(&self) -> &TelemetryConfig;
    /// Where to listen for HTTP.
    fn listen_addr(&self) -> SocketAddr;
    /// The HTTP server's limits.
    fn http(&self) -> &HttpConfig;
    /// How long each drain step of the shutdown may take.
    fn shutdown_grace_period(&self) -> Duration;
}

/// Implements [`ServiceConfig`] for a service's clap struct that has the
/// usual fields: `telemetry: TelemetryConfig`, `http: HttpConfig`,
/// `shutdown_grace_period: Duration` and a `listen_addr()` method.
#[macro_export]
macro_rules! service_config {
    ($config:ty) => {
        impl $crate::service::ServiceConfig for $config {
            fn telemetry(&self) -> &$crate::config::TelemetryConfig {
                &self.telemetry
            }
            fn listen_addr(&self) -> ::std::net::SocketAddr {
                <$config>::listen_addr(self)
            }
            fn http(&self) -> &$crate::config::HttpConfig {
                &self.http
            }
            fn shutdown_grace_period(&self) -> ::std::time::Duration {
                self.shutdown_grace_period
            }
        }
    };
}

/// How a task's result is reported when the skeleton joins it.
pub trait TaskOutcome: Send + 'static {
    /// Logs the result of the task `name`, if there is anything to say.
    fn report(self, name: &'static str);
}

impl TaskOutcome for () {
    fn report(self, _name: &'static str) {}
}

impl<E> TaskOutcome for Result<(), E>
where
    E: std::error::Error + Send + 'static,
{
    fn report(self, name: &'static str) {
        if let Err(err) = self {
            tracing::error!(task = name, error = %ErrorChain(&err), "task stopped with an error");
        }
    }
}

/// A spawned task and the name it is logged under.
struct Task {
    name: &'static str,
    handle: JoinHandle<()>,
}

impl Task {
    async fn join(self) {
        if let Err(err) = self.handle.await {
            tracing::error!(task = self.name, error = %ErrorChain(&err), "task ended abnormally");
        }
    }
}

/// One service being assembled, then served and torn down; see the module docs.
#[must_use = "a service does nothing until `serve` is awaited"]
pub struct Service {
    name: &'static str,
    registry: MetricsRegistry,
    grace: Duration,
    limits: Limits,
    probes: Vec<Arc<dyn Probe>>,
    database: Option<DatabaseConnection>,
    broker: Option<AmqpClient>,
    workers: Vec<Task>,
    publishers: Vec<Task>,
    work: CancellationToken,
    publishing: CancellationToken,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("name", &self.name)
            .field("grace", &self.grace)
            .field("probes", &self.probes.len())
            .field(
                "workers",
                &self.workers.iter().map(|t| t.name).collect::<Vec<_>>(),
            )
            .field(
                "publishers",
                &self.publishers.iter().map(|t| t.name).collect::<Vec<_>>(),
            )
            .finish_non_exhaustive()
    }
}

impl Service {
    /// A service named `name` (its `service` metric label and broker
    /// connection name) whose metrics live on `registry`, serving HTTP with
    /// the limits of `config` and draining each step of its shutdown within
    /// its grace period.
    pub fn new(
        name: &'static str,
        registry: &MetricsRegistry,
        config: &impl ServiceConfig,
    ) -> Self {
        Self::with_limits(
            name,
            registry,
            Limits::from_config(config.http()),
            config.shutdown_grace_period(),
        )
    }

    /// [`Self::new`] with the HTTP limits and grace period given directly.
    pub fn with_limits(
        name: &'static str,
        registry: &MetricsRegistry,
        limits: Limits,
        grace: Duration,
    ) -> Self {
        Self {
            name,
            registry: registry.clone(),
            grace,
            limits,
            probes: Vec::new(),
            database: None,
            broker: None,
            workers: Vec::new(),
            publishers: Vec::new(),
            work: CancellationToken::new(),
            publishing: CancellationToken::new(),
        }
    }

    /// The grace period of each drain step (HTTP requests, then workers).
    pub fn grace(&self) -> Duration {
        self.grace
    }

    /// The database pool: connects lazily (never waits for the database),
    /// is probed by `/health`, measured on `/metrics` ([`db::PoolMetrics`])
    /// and closed last.
    pub async fn database(
        &mut self,
        config: &DatabaseConfig,
    ) -> Result<DatabaseConnection, ServiceError> {
        let db = db::connect(config).await?;
        self.registry
            .register_collector(db::PoolMetrics::new(&db)?)?;
        self.probe(DatabaseProbe::new(db.clone()));
        self.database = Some(db.clone());
        Ok(db)
    }

    /// The broker client: connects and reconnects in the background,
    /// declaring the whole topology each time (so `/health` reports the
    /// broker for real before anything is consumed); probed by `/health`,
    /// closed after the publishers have stopped.
    pub fn broker(&mut self, config: &AmqpConfig) -> Result<AmqpClient, AmqpError> {
        let amqp = AmqpClient::builder(config)
            .connection_name(self.name)
            .registry(self.registry.registry())
            .start()?;
        self.probe(amqp.probe());
        self.broker = Some(amqp.clone());
        Ok(amqp)
    }

    /// [`Self::database`] and [`Self::broker`], for the services that use both.
    pub async fn connect(
        &mut self,
        database: &DatabaseConfig,
        broker: &AmqpConfig,
    ) -> Result<(DatabaseConnection, AmqpClient), ServiceError> {
        let db = self.database(database).await?;
        let amqp = self.broker(broker)?;
        Ok((db, amqp))
    }

    /// Adds a dependency to `/health`.
    pub fn probe(&mut self, probe: impl Probe) {
        self.probes.push(Arc::new(probe));
    }

    /// The token workers stop on: cancelled once the HTTP requests have
    /// drained. For components built before their task is spawned.
    pub fn work_token(&self) -> CancellationToken {
        self.work.clone()
    }

    /// Spawns a worker (a consumer, a periodic job): `task` gets the token
    /// cancelled after the HTTP drain, and is awaited before the publishers
    /// stop.
    pub fn spawn_worker<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutcome,
    {
        let task = spawn(name, task(self.work.clone()));
        self.workers.push(task);
    }

    /// Spawns a publisher (the outbox relay): `task` gets a token cancelled
    /// only after every worker has finished, so it publishes what the last
    /// requests and handlers committed; awaited before the broker closes.
    pub fn spawn_publisher<F, Fut>(&mut self, name: &'static str, task: F)
    where
        F: FnOnce(CancellationToken) -> Fut,
        Fut: Future + Send + 'static,
        Fut::Output: TaskOutcome,
    {
        let task = spawn(name, task(self.publishing.clone()));
        self.publishers.push(task);
    }

    /// Serves `api` (the service's own routes, stateless by now) with
    /// `/health`, `/metrics`, `/openapi.json` (`api_doc` merged into the
    /// shared document) and `/docs` on `listener` until `shutdown` is
    /// cancelled, then tears down in the order the module docs give.
    pub async fn serve(
        self,
        listener: TcpListener,
        api: Router,
        api_doc: OpenApi,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceError> {
        let served = self.serve_http(listener, api, api_doc, shutdown).await;
        self.stop().await;
        served
    }

    /// [`Self::serve`] for a worker: no API of its own, only the routes
    /// every service serves.
    pub async fn serve_ops(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceError> {
        self.serve(listener, Router::new(), OpenApi::default(), shutdown)
            .await
    }

    async fn serve_http(
        &self,
        listener: TcpListener,
        api: Router,
        api_doc: OpenApi,
        shutdown: CancellationToken,
    ) -> Result<(), ServiceError> {
        let mut doc = crate::openapi::document(self.name);
        doc.merge(api_doc);
        // The guarded API first, then the ops router (which owns the JSON
        // 404 fallback) outside the concurrency cap, all before
        // `track_http` so every route is measured.
        let router = server::guard_api(api, self.limits)
            .merge(ops_router(self.registry.clone(), self.probes.clone())?)
            .merge(crate::openapi::docs_router(doc))
            .method_not_allowed_fallback(crate::health::method_not_allowed);
        let router = track_http(router, &self.registry)?;
        // Outermost: the request id and the request span cover everything,
        // the metrics and the guards included.
        let router = crate::http_trace::trace_requests(router);
        tracing::info!(service = self.name, addr = ?listener.local_addr().ok(), "listening");
        server::serve(listener, router, shutdown, self.grace, self.limits)
            .await
            .map_err(ServiceError::Serve)
    }

    /// Steps 2 to 5 of the teardown.
    async fn stop(self) {
        self.work.cancel();
        for task in self.workers {
            task.join().await;
        }
        self.publishing.cancel();
        for task in self.publishers {
            task.join().await;
        }
        if let Some(amqp) = self.broker {
            amqp.close().await;
        }
        if let Some(db) = self.database
            && let Err(err) = db.close().await
        {
            tracing::warn!(error = %ErrorChain(&err), "could not close the database pool cleanly");
        }
        tracing::info!(service = self.name, "stopped");
    }
}

fn spawn<Fut>(name: &'static str, future: Fut) -> Task
where
    Fut: Future + Send + 'static,
    Fut::Output: TaskOutcome,
{
    let handle = tokio::spawn(async move { future.await.report(name) });
    Task { name, handle }
}

/// Sets up logging (and span export, when configured) from `config`, or
/// prints why it cannot to stderr. Keep the guard and hand it to
/// [`flush_telemetry`] at exit.
pub fn init_telemetry(
    name: &str,
    config: &TelemetryConfig,
) -> Result<telemetry::TelemetryGuard, ExitCode> {
    telemetry::init(name, config).map_err(|err| {
        eprintln!("{name}: {}", ErrorChain(&err));
        ExitCode::FAILURE
    })
}

/// Sends the last spans to the collector (bounded by
/// [`telemetry::FLUSH_TIMEOUT`]) off the async workers.
pub async fn flush_telemetry(guard: telemetry::TelemetryGuard) {
    if guard.exporting() {
        let _ = tokio::task::spawn_blocking(move || guard.shutdown()).await;
    }
}

/// A binary's whole `main`: parses `C` from flags and environment (a bad
/// setting exits with one line naming it), sets up logging, binds the
/// listener, installs the SIGINT/SIGTERM handlers and calls `run` until it
/// returns. Exits 0 on a clean stop, 1 on any failure (logged with its cause
/// chain).
pub async fn launch<C, F, Fut, E>(run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let config: C = telemetry::parse_config_or_exit();
    launch_with(config, run).await
}

/// [`launch`] for a configuration already parsed (a binary with subcommands).
pub async fn launch_with<C, F, Fut, E>(config: C, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let name = C::command().get_name().to_owned();
    let guard = match init_telemetry(&name, config.telemetry()) {
        Ok(guard) => guard,
        Err(code) => return code,
    };
    let code = serve_until_stopped(&name, config, run).await;
    flush_telemetry(guard).await;
    code
}

async fn serve_until_stopped<C, F, Fut, E>(name: &str, config: C, run: F) -> ExitCode
where
    C: ServiceConfig,
    F: FnOnce(C, TcpListener, CancellationToken) -> Fut,
    Fut: Future<Output = Result<(), E>>,
    E: std::error::Error + 'static,
{
    let addr = config.listen_addr();
    let listener = match TcpListener::bind(addr).await {
        Ok(listener) => listener,
        Err(err) => {
            tracing::error!(%addr, error = %ErrorChain(&err), "could not listen");
            return ExitCode::FAILURE;
        }
    };
    let shutdown = match shutdown::signal_token() {
        Ok(token) => token,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "could not install signal handlers");
            return ExitCode::FAILURE;
        }
    };
    match run(config, listener, shutdown).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(service = %name, error = %ErrorChain(&err), "stopped with an error");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Records the order in which the teardown reached each task.
    #[derive(Clone, Default)]
    struct Journal(Arc<Mutex<Vec<&'static str>>>);

    impl Journal {
        fn note(&self, what: &'static str) {
            self.0.lock().unwrap().push(what);
        }
        fn entries(&self) -> Vec<&'static str> {
            self.0.lock().unwrap().clone()
        }
    }

    fn test_http() -> HttpConfig {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Args {
            #[command(flatten)]
            http: HttpConfig,
        }
        Args::parse_from(["test"]).http
    }

    #[tokio::test]
    async fn teardown_drains_requests_then_workers_then_publishers() {
        let registry = MetricsRegistry::new("skeleton-test").unwrap();
        let mut service = Service::with_limits(
            "skeleton-test",
            &registry,
            Limits::from_config(&test_http()),
            Duration::from_secs(5),
        );
        let journal = Journal::default();

        let (release, released) = tokio::sync::oneshot::channel::<()>();
        let released = Arc::new(tokio::sync::Mutex::new(Some(released)));
        let api = {
            let journal = journal.clone();
            Router::new().route(
                "/slow",
                axum::routing::get(move || {
                    let journal = journal.clone();
                    let released = Arc::clone(&released);
                    async move {
                        if let Some(rx) = released.lock().await.take() {
                            let _ = rx.await;
                        }
                        journal.note("request");
                        "done"
                    }
                }),
            )
        };
        let journal_worker = journal.clone();
        service.spawn_worker("worker", move |stop| async move {
            stop.cancelled().await;
            journal_worker.note("worker");
        });
        let journal_publisher = journal.clone();
        service.spawn_publisher("publisher", move |stop| async move {
            stop.cancelled().await;
            journal_publisher.note("publisher");
            Ok::<(), std::io::Error>(())
        });

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let shutdown = CancellationToken::new();
        let served =
            tokio::spawn(service.serve(listener, api, OpenApi::default(), shutdown.clone()));
        let request = tokio::spawn(async move {
            reqwest::get(format!("http://{addr}/slow"))
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
        });
        // The request is in its handler before shutdown starts.
        tokio::time::sleep(Duration::from_millis(200)).await;
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            journal.entries().is_empty(),
            "nothing stops while a request is in flight: {:?}",
            journal.entries()
        );
        release.send(()).unwrap();
        assert_eq!(request.await.unwrap(), "done");
        served.await.unwrap().unwrap();
        assert_eq!(journal.entries(), ["request", "worker", "publisher"]);
    }

    #[tokio::test]
    async fn a_failed_task_is_reported_and_the_teardown_goes_on() {
        let registry = MetricsRegistry::new("skeleton-test").unwrap();
        let mut service = Service::with_limits(
            "skeleton-test",
            &registry,
            Limits::from_config(&test_http()),
            Duration::from_secs(5),
        );
        service.spawn_worker("fails", |_stop| async {
            Err::<(), _>(std::io::Error::other("boom"))
        });
        service.spawn_worker("panics", |_stop| async {
            assert!(std::hint::black_box(false), "boom");
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        service
            .serve(listener, Router::new(), OpenApi::default(), shutdown)
            .await
            .unwrap();
    }
}
