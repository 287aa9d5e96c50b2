//! Starting a real service in-process for an integration test.
//!
//! [`TestDeps`] gives one test its own database and broker namespace, each
//! reached through a [`TcpProxy`] the test can cut to simulate an outage while
//! the shared PostgreSQL and RabbitMQ keep serving every other test.
//! [`TestApp`] runs a service's `run(config, listener, shutdown)` on port 0
//! and talks to it over HTTP.

use std::future::Future;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use haven_messages::names;

use super::amqp::TestAmqp;
use super::db::TestDb;
use super::proxy::TcpProxy;

/// A fresh database and broker namespace for one test, both behind proxies
/// (a SQLite database is a file: no proxy).
#[derive(Debug)]
pub struct TestDeps {
    /// The test's own database (dropped with it).
    pub db: TestDb,
    /// The proxy the service reaches a PostgreSQL database through.
    db_proxy: Option<TcpProxy>,
    /// The test's own broker namespace (every work queue of the system).
    pub amqp: TestAmqp,
    /// The proxy the service reaches the broker through.
    pub amqp_proxy: TcpProxy,
}

impl TestDeps {
    /// Creates the database (migrated) and the namespace, and starts both proxies.
    pub async fn new() -> Self {
        let db = TestDb::new().await;
        let db_proxy = TcpProxy::start(db.addr().to_string())
            .await
            .expect("start the database proxy");
        Self::with(db, Some(db_proxy)).await
    }

    /// Like [`TestDeps::new`] on a fresh SQLite file, the default database of
    /// `cargo xtask up`: every service opens the same file, as the local
    /// stack's processes do.
    pub async fn sqlite() -> Self {
        Self::with(TestDb::sqlite().await, None).await
    }

    /// Like [`TestDeps::new`] with the namespace on a cluster of brokers:
    /// `nodes` are the nodes' AMQP URLs (same credentials), the namespace is
    /// made and removed through the first, and the services reach the
    /// cluster through a proxy that connects to the first node that accepts.
    pub async fn on_cluster(nodes: &[String]) -> Self {
        let db = TestDb::new().await;
        let db_proxy = TcpProxy::start(db.addr().to_string())
            .await
            .expect("start the database proxy");
        let targets = nodes
            .iter()
            .map(|url| super::amqp::broker_addr(url))
            .collect();
        let first = nodes.first().cloned().expect("a cluster has nodes");
        let amqp = TestAmqp::on(first, names::ALL_QUEUES);
        let amqp_proxy = TcpProxy::start_any(targets)
            .await
            .expect("start the broker proxy");
        Self {
            db,
            db_proxy: Some(db_proxy),
            amqp,
            amqp_proxy,
        }
    }

    async fn with(db: TestDb, db_proxy: Option<TcpProxy>) -> Self {
        let amqp = TestAmqp::new(names::ALL_QUEUES);
        let amqp_proxy = TcpProxy::start(amqp.broker_addr())
            .await
            .expect("start the broker proxy");
        Self {
            db,
            db_proxy,
            amqp,
            amqp_proxy,
        }
    }

    /// The proxy in front of the database, to cut and restore it.
    ///
    /// # Panics
    /// On SQLite, which has no server to cut off.
    pub fn db_proxy(&self) -> &TcpProxy {
        self.db_proxy
            .as_ref()
            .expect("a SQLite test database has no proxy")
    }

    /// The database URL through the proxy (a SQLite file's own URL).
    pub fn database_url(&self) -> String {
        match &self.db_proxy {
            Some(proxy) => self.db.url_via(proxy.addr()),
            None => self.db.url().to_owned(),
        }
    }

    /// The AMQP URL through the proxy.
    pub fn amqp_url(&self) -> String {
        self.amqp
            .config_via(self.amqp_proxy.addr())
            .amqp_url
            .expose()
            .clone()
    }

    /// Command-line arguments pointing a service at these dependencies:
    /// `--database-url`, `--amqp-url`, `--amqp-namespace`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.database_url(),
            "--amqp-url".into(),
            self.amqp_url(),
            "--amqp-namespace".into(),
            self.amqp.namespace().to_owned(),
        ]
    }

    /// Like [`TestDeps::args`] with the database and the broker reached
    /// directly, not through the proxies: for benchmarks, where the proxies'
    /// copying would be counted as the services' cost. No fault can cut
    /// these.
    pub fn direct_args(&self) -> Vec<String> {
        vec![
            "--database-url".into(),
            self.db.url().to_owned(),
            "--amqp-url".into(),
            self.amqp.config().amqp_url.expose().clone(),
            "--amqp-namespace".into(),
            self.amqp.namespace().to_owned(),
        ]
    }

    /// Like [`TestDeps::args`] without the broker, for services that do not use it.
    pub fn database_args(&self) -> Vec<String> {
        vec!["--database-url".into(), self.database_url()]
    }

    /// Deletes the namespace and keeps the database for a person to look
    /// into; returns its URL.
    pub async fn cleanup_keeping_database(self) -> String {
        let (db, amqp) = self.without_proxies();
        amqp.cleanup().await;
        db.keep()
    }

    /// Stops both proxies and hands back the database and the namespace.
    fn without_proxies(self) -> (TestDb, TestAmqp) {
        let Self {
            db,
            db_proxy,
            amqp,
            amqp_proxy,
        } = self;
        drop((db_proxy, amqp_proxy));
        (db, amqp)
    }

    /// Drops the database and deletes the namespace now. Call it after
    /// [`TestApp::stop`]; a test that panics earlier cleans up on drop.
    pub async fn cleanup(self) {
        let (db, amqp) = self.without_proxies();
        db.cleanup().await;
        amqp.cleanup().await;
    }
}

/// A service running in this process, stopped when dropped.
#[derive(Debug)]
pub struct TestApp<E> {
    /// `http://127.0.0.1:<port>`.
    pub address: String,
    /// A client for requests to the service.
    pub client: reqwest::Client,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<Result<(), E>>>,
}

impl<E: std::error::Error + Send + 'static> TestApp<E> {
    /// Binds 127.0.0.1:0 and spawns `run(listener, shutdown)`.
    pub async fn spawn<F, Fut>(run: F) -> Self
    where
        F: FnOnce(TcpListener, CancellationToken) -> Fut,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a local port");
        let address = format!(
            "http://{}",
            listener
                .local_addr()
                .expect("a bound listener has an address")
        );
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(listener, shutdown.clone()));
        Self {
            address,
            client: reqwest::Client::new(),
            shutdown,
            handle: Some(handle),
        }
    }

    /// `GET <address><path>`.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.address))
            .send()
            .await
            .expect("the service answers HTTP")
    }

    /// Polls `GET /health` until it answers `status`, or panics after
    /// `deadline` with the last answer. Returns the matching body.
    pub async fn wait_for_health(&self, status: u16, deadline: Duration) -> serde_json::Value {
        let started = tokio::time::Instant::now();
        let mut last = None;
        loop {
            if let Ok(res) = self
                .client
                .get(format!("{}/health", self.address))
                .send()
                .await
            {
                let code = res.status().as_u16();
                let body: serde_json::Value = res.json().await.unwrap_or_default();
                if code == status {
                    return body;
                }
                last = Some((code, body));
            }
            assert!(
                started.elapsed() < deadline,
                "/health did not answer {status} within {deadline:?}; last answer: {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits for a healthy `/health` and checks it names exactly `dependencies`,
    /// each `connected`.
    pub async fn assert_healthy_with(&self, dependencies: &[&str]) {
        let body = self.wait_for_health(200, Duration::from_secs(30)).await;
        let mut expected = serde_json::json!({"status": "healthy"});
        for dependency in dependencies {
            expected[*dependency] = "connected".into();
        }
        assert_eq!(body, expected);
    }

    /// `/metrics` is Prometheus text and reports the database as up for `service`.
    pub async fn assert_metrics_report_database_up(&self, service: &str) {
        self.wait_for_health(200, Duration::from_secs(30)).await;
        let res = self.get("/metrics").await;
        assert_eq!(res.status(), 200);
        let content_type = res.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .expect("an ASCII content type")
            .to_owned();
        assert!(content_type.starts_with("text/plain"), "{content_type}");
        let text = res.text().await.expect("a text body");
        let line = format!(r#"haven_dependency_up{{dependency="database",service="{service}"}} 1"#);
        assert!(text.contains(&line), "{line} missing from:\n{text}");
        // Every service says which build it runs and how its pool is used.
        for line in [
            format!(
                r#"haven_build_info{{version="{}",service="{service}"}} 1"#,
                env!("CARGO_PKG_VERSION")
            ),
            format!(r#"haven_db_pool_connections{{state="in_use",service="{service}"}} "#),
            format!(r#"haven_db_pool_max_connections{{service="{service}"}} "#),
        ] {
            assert!(text.contains(&line), "{line} missing from:\n{text}");
        }
    }

    /// An unknown path is a 404 with `{"detail": "Not found"}`.
    pub async fn assert_unknown_path_is_json_404(&self) {
        let res = self.get("/no/such/path").await;
        assert_eq!(res.status(), 404);
        let body: serde_json::Value = res.json().await.expect("a JSON body");
        assert_eq!(body, serde_json::json!({"detail": "Not found"}));
    }

    /// Cancels the shutdown token and waits for `run` to return, which must
    /// be `Ok` (a clean, graceful stop).
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let result = tokio::time::timeout(Duration::from_secs(30), handle)
                .await
                .expect("the service stops within 30 s of shutdown")
                .expect("the service task does not panic");
            if let Err(err) = result {
                panic!("the service stopped with an error: {err}");
            }
        }
    }
}

impl<E> Drop for TestApp<E> {
    fn drop(&mut self) {
        // A test that fails before `stop` must not leave the service running
        // against a database that is about to be dropped.
        self.shutdown.cancel();
    }
}
