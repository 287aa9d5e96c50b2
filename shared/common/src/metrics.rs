//! Prometheus metrics without global state.
//!
//! Each service creates one [`MetricsRegistry`] in `run` and registers its
//! instruments on it, so several services (or several copies of one) can run
//! in one test process without their metrics colliding. Every metric carries a
//! constant `service` label. Names and labels are constants here (shared
//! metrics) or in each service's `metrics.rs`, and listed in `docs/metrics.md`.
//!
//! Process metrics (CPU, RSS, open fds) are not exported: the `prometheus`
//! crate's `process` feature pulls in `procfs`, and node exporters or the
//! container runtime report them already.

use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};

/// Constant label on every metric: the service name (`webhook-ingress`, ...).
pub const LABEL_SERVICE: &str = "service";
/// Label naming a dependency (`database`, `amqp`, `blockchain`).
pub const LABEL_DEPENDENCY: &str = "dependency";

/// Gauge, 1 when the last `/health` check of a dependency passed, 0 when not.
pub const DEPENDENCY_UP: &str = "haven_dependency_up";
/// Histogram of how long each `/health` probe took, by dependency, in seconds.
pub const DEPENDENCY_CHECK_SECONDS: &str = "haven_dependency_check_duration_seconds";

/// Gauge, always 1, whose `version` label is the version of the running
/// binary (the workspace version): `count by (version) (haven_build_info)`
/// shows a rollout in progress, and a dashboard can join on it.
pub const BUILD_INFO: &str = "haven_build_info";
/// Label: the version of the running binary.
pub const LABEL_VERSION: &str = "version";

/// Gauge of the database pool's connections, by `state`: `in_use`
/// (handed out to a query or transaction) and `idle`. Read at every scrape.
pub const DB_POOL_CONNECTIONS: &str = "haven_db_pool_connections";
/// Gauge: the most connections the pool opens (`DATABASE_MAX_CONNECTIONS`;
/// 1 on SQLite). When `in_use` sits at it, queries wait for a connection.
pub const DB_POOL_MAX_CONNECTIONS: &str = "haven_db_pool_max_connections";
/// Label: `in_use` or `idle`.
pub const LABEL_STATE: &str = "state";

/// Counter of HTTP requests answered, by method, route template and status code.
pub const HTTP_REQUESTS_TOTAL: &str = "haven_http_requests_total";
/// Histogram of HTTP request durations in seconds, by method and route template.
pub const HTTP_REQUEST_SECONDS: &str = "haven_http_request_duration_seconds";
/// Label: HTTP method.
pub const LABEL_METHOD: &str = "method";
/// Label: the matched route template (`/token/balance/{user_id}`), or
/// [`UNMATCHED_ROUTE`]; never the raw path, which would explode cardinality.
pub const LABEL_ROUTE: &str = "route";
/// Label: HTTP status code.
pub const LABEL_STATUS: &str = "status";
/// Route label of requests no route matched (404s).
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Buckets for latencies in seconds, from 1 ms to 10 s.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Why a metric could not be registered or encoded (a programming error in
/// practice: a duplicate or malformed name).
#[derive(Debug, thiserror::Error)]
#[error("metrics error")]
pub struct MetricsError(#[from] prometheus::Error);

/// One service's Prometheus registry; cheap to clone (shared inside).
#[derive(Clone, Debug)]
pub struct MetricsRegistry {
    registry: Registry,
}

impl MetricsRegistry {
    /// A fresh registry whose metrics all carry `service="<service>"`.
    pub fn new(service: &str) -> Result<Self, MetricsError> {
        let labels = [(LABEL_SERVICE.to_owned(), service.to_owned())].into();
        let registry = Registry::new_custom(None, Some(labels))?;
        Ok(Self { registry })
    }

    /// The underlying registry, for instruments built elsewhere.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Registers a counter without labels.
    pub fn int_counter(&self, name: &str, help: &str) -> Result<IntCounter, MetricsError> {
        let counter = IntCounter::new(name, help)?;
        self.registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    }

    /// Registers a counter with the given label names.
    pub fn int_counter_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntCounterVec, MetricsError> {
        let counter = IntCounterVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(counter.clone()))?;
        Ok(counter)
    }

    /// Registers a gauge without labels.
    pub fn int_gauge(&self, name: &str, help: &str) -> Result<IntGauge, MetricsError> {
        let gauge = IntGauge::new(name, help)?;
        self.registry.register(Box::new(gauge.clone()))?;
        Ok(gauge)
    }

    /// Registers a gauge with the given label names.
    pub fn int_gauge_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
    ) -> Result<IntGaugeVec, MetricsError> {
        let gauge = IntGaugeVec::new(Opts::new(name, help), labels)?;
        self.registry.register(Box::new(gauge.clone()))?;
        Ok(gauge)
    }

    /// Registers a histogram with the given label names and buckets
    /// (e.g. [`LATENCY_BUCKETS`]).
    pub fn histogram_vec(
        &self,
        name: &str,
        help: &str,
        labels: &[&str],
        buckets: &[f64],
    ) -> Result<HistogramVec, MetricsError> {
        let opts = HistogramOpts::new(name, help).buckets(buckets.to_vec());
        let histogram = HistogramVec::new(opts, labels)?;
        self.registry.register(Box::new(histogram.clone()))?;
        Ok(histogram)
    }

    /// Registers [`BUILD_INFO`] with this binary's version, set to 1.
    pub fn build_info(&self) -> Result<(), MetricsError> {
        let info = self.int_gauge_vec(
            BUILD_INFO,
            "Always 1; the version label is the version of the running binary.",
            &[LABEL_VERSION],
        )?;
        info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        Ok(())
    }

    /// Registers a collector read at every scrape (a pool's live figures).
    pub fn register_collector(
        &self,
        collector: impl prometheus::core::Collector + 'static,
    ) -> Result<(), MetricsError> {
        self.registry.register(Box::new(collector))?;
        Ok(())
    }

    /// Every registered metric in the Prometheus text exposition format.
    pub fn encode(&self) -> Result<String, MetricsError> {
        let mut buffer = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buffer)?;
        // The text encoder only writes UTF-8 (names are validated ASCII,
        // label values and help are Rust strings).
        String::from_utf8(buffer).map_err(|e| MetricsError(prometheus::Error::Msg(e.to_string())))
    }
}

/// The `method` label: one of the standard methods, or `other` for any
/// extension method a client makes up (which would otherwise add a series
/// per request).
pub(crate) fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// Wraps every route of `router` (add them all first: axum layers only cover
/// routes that exist when the layer is applied) with request counting and
/// timing under [`HTTP_REQUESTS_TOTAL`] and [`HTTP_REQUEST_SECONDS`].
pub fn track_http(
    router: axum::Router,
    registry: &MetricsRegistry,
) -> Result<axum::Router, MetricsError> {
    let requests = registry.int_counter_vec(
        HTTP_REQUESTS_TOTAL,
        "HTTP requests answered, by method, route and status.",
        &[LABEL_METHOD, LABEL_ROUTE, LABEL_STATUS],
    )?;
    let seconds = registry.histogram_vec(
        HTTP_REQUEST_SECONDS,
        "HTTP request durations in seconds, by method and route.",
        &[LABEL_METHOD, LABEL_ROUTE],
        LATENCY_BUCKETS,
    )?;
    Ok(router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let requests = requests.clone();
            let seconds = seconds.clone();
            async move {
                let method = method_label(request.method());
                let route = request
                    .extensions()
                    .get::<axum::extract::MatchedPath>()
                    .map_or(UNMATCHED_ROUTE, |path| path.as_str())
                    .to_owned();
                let started = std::time::Instant::now();
                let response = next.run(request).await;
                seconds
                    .with_label_values(&[method, route.as_str()])
                    .observe(started.elapsed().as_secs_f64());
                requests
                    .with_label_values(&[method, route.as_str(), response.status().as_str()])
                    .inc();
                response
            }
        },
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registries_are_independent_and_labelled() {
        let a = MetricsRegistry::new("svc-a").unwrap();
        let b = MetricsRegistry::new("svc-b").unwrap();
        let ca = a
            .int_counter_vec("haven_demo_total", "Demo.", &["kind"])
            .unwrap();
        // Same name on another registry is fine: no global state.
        let cb = b
            .int_counter_vec("haven_demo_total", "Demo.", &["kind"])
            .unwrap();
        ca.with_label_values(&["x"]).inc_by(3);
        cb.with_label_values(&["x"]).inc();
        let text = a.encode().unwrap();
        assert!(
            text.contains(r#"haven_demo_total{kind="x",service="svc-a"} 3"#),
            "{text}"
        );
        // A duplicate on the same registry is an error, not a panic.
        assert!(
            a.int_counter_vec("haven_demo_total", "Demo.", &["kind"])
                .is_err()
        );
        assert!(a.int_counter("not a valid name", "Bad.").is_err());
    }

    #[tokio::test]
    async fn http_requests_are_counted_by_route_template() {
        use axum::routing::get;
        let registry = MetricsRegistry::new("svc").unwrap();
        let router = axum::Router::new().route("/users/{id}", get(|| async { "ok" }));
        let router = track_http(router, &registry).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await });
        for path in ["/users/1", "/users/2", "/nowhere"] {
            reqwest::get(format!("http://{addr}{path}")).await.unwrap();
        }
        let text = registry.encode().unwrap();
        assert!(
            text.contains(
                r#"haven_http_requests_total{method="GET",route="/users/{id}",status="200",service="svc"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"haven_http_requests_total{method="GET",route="unmatched",status="404",service="svc"} 1"#
            ),
            "{text}"
        );
    }

    #[test]
    fn histograms_encode_buckets() {
        let m = MetricsRegistry::new("svc").unwrap();
        let h = m
            .histogram_vec("haven_demo_seconds", "Demo.", &["step"], LATENCY_BUCKETS)
            .unwrap();
        h.with_label_values(&["a"]).observe(0.003);
        let text = m.encode().unwrap();
        assert!(text.contains("haven_demo_seconds_bucket"), "{text}");
        assert!(
            text.contains(r#"haven_demo_seconds_count{step="a",service="svc"} 1"#),
            "{text}"
        );
    }
}
