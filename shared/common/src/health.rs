//! `/livez`, `/health` and `/metrics`: the operations router every service mounts.
//!
//! A service registers one [`Probe`] per dependency (database, broker, chain
//! RPC); `/health` runs them all concurrently with a short timeout and answers
//! 200 `{"status":"healthy","database":"connected",...}` or 503
//! `{"status":"unhealthy","database":"disconnected",...}` naming what is down.
//! It is the readiness probe: a pod whose database is away takes no traffic.
//!
//! `/livez` checks nothing but that the process answers HTTP: it is the
//! liveness probe. Restarting a pod cannot bring its database back, so an
//! outage of a dependency must not restart every pod (it would only add
//! cold starts and dropped drains to the outage).

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::future::BoxFuture;
use prometheus::{HistogramVec, IntGaugeVec};
use serde_json::{Map, Value, json};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::metrics::{
    DEPENDENCY_CHECK_SECONDS, DEPENDENCY_UP, LABEL_DEPENDENCY, LATENCY_BUCKETS, MetricsError,
    MetricsRegistry,
};
use crate::schemas::{Detail, OPERATIONS_TAG};

/// One dependency whose reachability `/health` reports.
pub trait Probe: Send + Sync + 'static {
    /// Key in the `/health` body, e.g. `"database"`, `"amqp"`, `"blockchain"`.
    fn name(&self) -> &'static str;
    /// `Ok` when the dependency answers now; `Err` says why not (logged, never returned to clients).
    fn check(&self) -> BoxFuture<'_, Result<(), String>>;
}

/// How long one probe may take before it counts as down. Short, so a hung
/// dependency turns `/health` red quickly instead of hanging the orchestrator.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// Value of a dependency's key in the `/health` body when it answers.
pub const CONNECTED: &str = "connected";
/// Value of a dependency's key in the `/health` body when it does not.
pub const DISCONNECTED: &str = "disconnected";

/// The outcome of one `/health` run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthReport {
    /// Each probe's name and whether it passed, in registration order.
    pub dependencies: Vec<(&'static str, bool)>,
}

impl HealthReport {
    /// Whether every dependency passed.
    pub fn healthy(&self) -> bool {
        self.dependencies.iter().all(|(_, up)| *up)
    }

    /// The JSON body: `{"status": "...", "<name>": "connected" | "disconnected", ...}`.
    pub fn body(&self) -> Value {
        let mut body = Map::new();
        let status = if self.healthy() {
            "healthy"
        } else {
            "unhealthy"
        };
        body.insert("status".into(), status.into());
        for (name, up) in &self.dependencies {
            let state = if *up { CONNECTED } else { DISCONNECTED };
            body.insert((*name).into(), state.into());
        }
        Value::Object(body)
    }
}

/// The `/health` body: `status` plus one key per dependency.
#[derive(Debug, Clone, Copy)]
pub struct HealthBody;

impl PartialSchema for HealthBody {
    fn schema() -> RefOr<Schema> {
        let state = ObjectBuilder::new()
            .schema_type(SchemaType::Type(Type::String))
            .enum_values(Some([CONNECTED, DISCONNECTED]));
        ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some(["healthy", "unhealthy"])),
            )
            .required("status")
            .additional_properties(Some(state))
            .description(Some(
                "`status`, then each dependency the service uses (`database`, `amqp`, \
                 `blockchain`) as `connected` or `disconnected`.",
            ))
            .examples([serde_json::json!(
                {"status": "healthy", "database": "connected", "blockchain": "connected"}
            )])
            .into()
    }
}

impl ToSchema for HealthBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("HealthBody")
    }
}

/// Last known state of a probe, so transitions are logged once at warn/info
/// and a long outage does not write a warning on every poll.
const STATE_UNKNOWN: u8 = 0;
const STATE_UP: u8 = 1;
const STATE_DOWN: u8 = 2;

struct Checked {
    probe: Arc<dyn Probe>,
    last_state: AtomicU8,
}

/// Runs probes and records the result in metrics.
pub(crate) struct HealthChecker {
    probes: Vec<Checked>,
    up: IntGaugeVec,
    duration: HistogramVec,
}

impl HealthChecker {
    fn new(registry: &MetricsRegistry, probes: Vec<Arc<dyn Probe>>) -> Result<Self, MetricsError> {
        let up = registry.int_gauge_vec(
            DEPENDENCY_UP,
            "1 when the last /health check of the dependency passed, 0 when not.",
            &[LABEL_DEPENDENCY],
        )?;
        let duration = registry.histogram_vec(
            DEPENDENCY_CHECK_SECONDS,
            "How long each /health dependency check took, in seconds.",
            &[LABEL_DEPENDENCY],
            LATENCY_BUCKETS,
        )?;
        let probes = probes
            .into_iter()
            .map(|probe| Checked {
                probe,
                last_state: AtomicU8::new(STATE_UNKNOWN),
            })
            .collect();
        Ok(Self {
            probes,
            up,
            duration,
        })
    }

    /// Runs every probe concurrently, each bounded by [`PROBE_TIMEOUT`].
    /// Failure reasons are logged, never returned.
    async fn run(&self) -> HealthReport {
        let checks = self.probes.iter().map(|checked| async move {
            let name = checked.probe.name();
            let started = Instant::now();
            let outcome = match tokio::time::timeout(PROBE_TIMEOUT, checked.probe.check()).await {
                Ok(result) => result,
                Err(_) => Err(format!("no answer within {PROBE_TIMEOUT:?}")),
            };
            self.duration
                .with_label_values(&[name])
                .observe(started.elapsed().as_secs_f64());
            self.up
                .with_label_values(&[name])
                .set(i64::from(outcome.is_ok()));
            let new_state = if outcome.is_ok() {
                STATE_UP
            } else {
                STATE_DOWN
            };
            let old_state = checked.last_state.swap(new_state, Ordering::Relaxed);
            match (&outcome, old_state == new_state) {
                (Err(reason), false) => {
                    tracing::warn!(dependency = name, %reason, "dependency is down")
                }
                (Err(reason), true) => {
                    tracing::debug!(dependency = name, %reason, "dependency is still down")
                }
                (Ok(()), false) if old_state != STATE_UNKNOWN => {
                    tracing::info!(dependency = name, "dependency is back")
                }
                (Ok(()), _) => {}
            }
            (name, outcome.is_ok())
        });
        HealthReport {
            dependencies: futures::future::join_all(checks).await,
        }
    }
}

/// Where the liveness answer is served.
pub const LIVEZ_PATH: &str = "/livez";

/// `GET /livez`, `GET /health` and `GET /metrics`, with a JSON 404 for every
/// other path. Also registers `haven_build_info` (see [`crate::metrics::BUILD_INFO`]).
///
/// Services merge their API routers into this one (`ops_router(..)?.merge(api)`);
/// it owns the fallback, so merged routers must not set their own.
/// Fails only if the health metrics are already registered on `registry`
/// (`ops_router` called twice with the same registry).
pub fn ops_router(
    registry: MetricsRegistry,
    probes: Vec<Arc<dyn Probe>>,
) -> Result<Router, MetricsError> {
    let checker = Arc::new(HealthChecker::new(&registry, probes)?);
    registry.build_info()?;
    Ok(Router::new()
        .route(LIVEZ_PATH, get(livez))
        .route(
            "/health",
            get(move || {
                let checker = Arc::clone(&checker);
                async move { health(&checker).await }
            }),
        )
        .route("/metrics", get(move || metrics(registry.clone())))
        .fallback(not_found))
}

/// `GET /livez`: the process answers. No dependency is checked (its
/// annotation is listed in [`crate::openapi::document`]).
#[utoipa::path(
    get,
    path = "/livez",
    tag = OPERATIONS_TAG,
    summary = "Whether the process answers (the liveness probe; no dependency is checked)",
    responses(
        (status = 200, description = "The process answers HTTP", body = LivezBody),
    )
)]
pub(crate) async fn livez() -> Response {
    axum::Json(json!({"status": "alive"})).into_response()
}

/// The `/livez` body: `{"status": "alive"}`.
#[derive(Debug, Clone, Copy)]
pub struct LivezBody;

impl PartialSchema for LivezBody {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .property(
                "status",
                ObjectBuilder::new()
                    .schema_type(SchemaType::Type(Type::String))
                    .enum_values(Some(["alive"])),
            )
            .required("status")
            .into()
    }
}

impl ToSchema for LivezBody {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("LivezBody")
    }
}

/// `GET /health`: every dependency probed concurrently (its annotation is
/// listed in [`crate::openapi::document`]).
#[utoipa::path(
    get,
    path = "/health",
    tag = OPERATIONS_TAG,
    summary = "Whether the service and each of its dependencies are up",
    responses(
        (status = 200, description = "Every dependency answers", body = HealthBody),
        (status = 503, description = "A dependency is down; it is named `disconnected`", body = HealthBody),
    )
)]
pub(crate) async fn health(checker: &HealthChecker) -> Response {
    let report = checker.run().await;
    let status = if report.healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, axum::Json(report.body())).into_response()
}

/// `GET /metrics`: the service's registry in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = OPERATIONS_TAG,
    summary = "Prometheus metrics of the service",
    responses(
        (status = 200, description = "Prometheus text exposition format", content_type = "text/plain; version=0.0.4", body = String),
        (status = 500, description = "The metrics could not be encoded", body = Detail),
    )
)]
pub(crate) async fn metrics(registry: MetricsRegistry) -> Response {
    match registry.encode() {
        Ok(text) => ([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response(),
        Err(err) => {
            tracing::error!(error = %crate::telemetry::ErrorChain(&err), "could not encode metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                axum::Json(json!({"detail": "Internal server error"})),
            )
                .into_response()
        }
    }
}

/// The JSON 405 every HAVEN service answers for a known path asked with a
/// method it does not serve.
pub async fn method_not_allowed() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        axum::Json(json!({"detail": "Method not allowed"})),
    )
        .into_response()
}

/// The JSON 404 every HAVEN service answers for an unknown path.
pub async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        axum::Json(json!({"detail": "Not found"})),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicBool;

    /// A probe whose answer the test flips: stands in for a dependency in
    /// tests of the router itself (real outages are tested per service).
    struct Switch {
        name: &'static str,
        up: AtomicBool,
        hang: bool,
    }

    impl Probe for Switch {
        fn name(&self) -> &'static str {
            self.name
        }
        fn check(&self) -> BoxFuture<'_, Result<(), String>> {
            Box::pin(async move {
                if self.hang {
                    futures::future::pending::<()>().await;
                }
                if self.up.load(Ordering::SeqCst) {
                    Ok(())
                } else {
                    Err("secret internal reason".into())
                }
            })
        }
    }

    fn switch(name: &'static str, up: bool, hang: bool) -> Arc<Switch> {
        Arc::new(Switch {
            name,
            up: AtomicBool::new(up),
            hang,
        })
    }

    async fn serve(router: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn health_reports_each_dependency_and_hides_reasons() {
        let db = switch("database", true, false);
        let amqp = switch("amqp", true, false);
        let registry = MetricsRegistry::new("test").unwrap();
        let probes: Vec<Arc<dyn Probe>> = vec![db.clone(), amqp.clone()];
        let base = serve(ops_router(registry, probes).unwrap()).await;
        let client = reqwest::Client::new();

        let res = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(
            body,
            json!({"status": "healthy", "database": "connected", "amqp": "connected"})
        );

        db.up.store(false, Ordering::SeqCst);
        let res = client.get(format!("{base}/health")).send().await.unwrap();
        assert_eq!(res.status(), 503);
        let text = res.text().await.unwrap();
        assert!(!text.contains("secret"), "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            body,
            json!({"status": "unhealthy", "database": "disconnected", "amqp": "connected"})
        );

        // Liveness does not depend on the database: a pod is not restarted
        // for an outage it cannot fix.
        let res = client.get(format!("{base}/livez")).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"status": "alive"}));

        let metrics = client.get(format!("{base}/metrics")).send().await.unwrap();
        assert_eq!(metrics.status(), 200);
        let text = metrics.text().await.unwrap();
        assert!(
            text.contains(&format!(
                r#"haven_build_info{{version="{}",service="test"}} 1"#,
                env!("CARGO_PKG_VERSION")
            )),
            "{text}"
        );
        assert!(
            text.contains(r#"haven_dependency_up{dependency="database",service="test"} 0"#),
            "{text}"
        );
        assert!(
            text.contains(r#"haven_dependency_up{dependency="amqp",service="test"} 1"#),
            "{text}"
        );

        let res = client.get(format!("{base}/nope")).send().await.unwrap();
        assert_eq!(res.status(), 404);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body, json!({"detail": "Not found"}));
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_probe_counts_as_down_after_the_timeout() {
        let probes: Vec<Arc<dyn Probe>> =
            vec![switch("database", true, false), switch("amqp", true, true)];
        let registry = MetricsRegistry::new("test").unwrap();
        let report = HealthChecker::new(&registry, probes).unwrap().run().await;
        assert_eq!(
            report.dependencies,
            vec![("database", true), ("amqp", false)]
        );
        assert!(!report.healthy());
        assert_eq!(report.body()["amqp"], "disconnected");
    }

    #[test]
    fn a_second_router_on_the_same_registry_is_an_error() {
        let registry = MetricsRegistry::new("test").unwrap();
        assert!(ops_router(registry.clone(), vec![]).is_ok());
        assert!(ops_router(registry, vec![]).is_err());
    }
}
