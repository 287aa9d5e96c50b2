//! The database pool every service uses, and its `/health` probe.
//!
//! [`connect`] never waits for the database: it checks the URL, builds a
//! lazy pool and returns. Connections are opened on first use and replaced
//! when they break, so a service starts while the database is down and
//! recovers by itself when it comes back; [`DatabaseProbe`] reports which
//! of the two it is right now.

use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{IntGauge, IntGaugeVec, Opts};
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::config::DatabaseConfig;
use crate::health::Probe;
use crate::metrics::{DB_POOL_CONNECTIONS, DB_POOL_MAX_CONNECTIONS, LABEL_STATE, MetricsError};

/// How long SQLite waits for a lock held by another process (the
/// `migrate` binary, a `sqlite3` shell) before failing a statement.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the database pool could not be set up. Connection failures after
/// start are not here: they surface per query and on `/health`.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The URL names a database this system does not run on. The URL
    /// itself is not printed: it may hold a password.
    #[error("DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got `{scheme}:`)")]
    UnsupportedScheme {
        /// The scheme found, or the whole prefix before `:` if any.
        scheme: String,
    },
    /// The URL has a supported scheme but cannot be parsed.
    #[error("DATABASE_URL is malformed: {0}")]
    InvalidUrl(String),
    /// The pool could not be built (for SQLite: the file cannot be opened).
    #[error("cannot open the database")]
    Connect(#[source] DbErr),
}

/// Which backend a URL names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Backend {
    Postgres,
    Sqlite,
}

/// Checks the URL without any I/O, so a typo fails the service at start
/// with one clear line.
fn backend_of(url: &str) -> Result<Backend, DbError> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        url.parse::<sea_orm::sqlx::postgres::PgConnectOptions>()
            .map_err(|err| DbError::InvalidUrl(err.to_string()))?;
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        url.parse::<sea_orm::sqlx::sqlite::SqliteConnectOptions>()
            .map_err(|err| DbError::InvalidUrl(err.to_string()))?;
        Ok(Backend::Sqlite)
    } else {
        let scheme = url.split_once(':').map_or("", |(scheme, _)| scheme);
        // A URL without a scheme could be a bare password-bearing string;
        // show at most a short, scheme-like prefix.
        let scheme = if scheme.len() <= 16 && scheme.chars().all(|c| c.is_ascii_alphanumeric()) {
            scheme.to_owned()
        } else {
            "?".to_owned()
        };
        Err(DbError::UnsupportedScheme { scheme })
    }
}

/// A pooled connection idle this long is pinged before it is handed out.
pub const PING_IF_IDLE_FOR: Duration = Duration::from_secs(1);

/// Builds the connection pool described by `cfg` without connecting.
///
/// PostgreSQL: up to `database_max_connections` connections. sqlx pings
/// every connection when it is returned; a connection that has sat idle
/// for [`PING_IF_IDLE_FOR`] is pinged again before it is handed out, so
/// connections broken by a database restart are replaced instead of
/// failing a request, while busy connections skip that extra round trip.
///
/// SQLite: WAL journal (readers do not block the writer), a busy timeout,
/// foreign keys enforced, and exactly one connection. One, because with
/// several connections two transactions that both read and then write
/// deadlock on the lock upgrade: SQLite answers SQLITE_BUSY at once
/// (busy_timeout does not apply to upgrades), so the ledger's retries would
/// fail. One connection serializes every transaction, which is what SQLite
/// does internally anyway. It is also never closed for idleness, so an
/// in-memory database lives as long as the pool.
pub async fn connect(cfg: &DatabaseConfig) -> Result<DatabaseConnection, DbError> {
    let url = cfg.database_url.expose();
    let backend = backend_of(url)?;

    let mut options = ConnectOptions::new(url.as_str());
    options
        .connect_lazy(true)
        .acquire_timeout(cfg.database_acquire_timeout)
        .connect_timeout(cfg.database_acquire_timeout)
        .test_before_acquire_if_idle_for(PING_IF_IDLE_FOR)
        // Statement logging belongs to tracing spans, not to every query at INFO.
        .sqlx_logging(false);
    match backend {
        Backend::Postgres => {
            options
                .max_connections(cfg.database_max_connections.max(1))
                .min_connections(0);
        }
        Backend::Sqlite => {
            options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None)
                .map_sqlx_sqlite_opts(|opts| {
                    opts.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        // FULL fsyncs the WAL on every commit: a committed
                        // ledger posting survives a power cut. NORMAL could
                        // lose the last commits, which money cannot afford.
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(SQLITE_BUSY_TIMEOUT)
                        .foreign_keys(true)
                });
        }
    }
    Database::connect(options).await.map_err(DbError::Connect)
}

/// Begins a transaction that will write. Every write transaction of the
/// services starts here instead of `begin()`.
///
/// On SQLite it takes the write lock at `BEGIN` (`BEGIN IMMEDIATE`). A
/// deferred transaction that reads and then writes must upgrade its lock,
/// and when another process of the stack (they share one file) wrote
/// meanwhile, SQLite fails that upgrade at once with SQLITE_BUSY, whatever
/// the busy timeout. An immediate one waits its turn, up to the busy timeout,
/// at `BEGIN`. PostgreSQL ignores the option. Nested inside a transaction it
/// is a savepoint, as `begin()` is.
pub async fn begin_write<C: TransactionTrait>(db: &C) -> Result<C::Transaction, DbErr> {
    db.begin_with_options(TransactionOptions {
        sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
        ..TransactionOptions::default()
    })
    .await
}

/// The sqlx pool under a sea-orm connection, kept apart so reading its
/// figures never touches the connection's type again.
#[derive(Debug, Clone)]
enum SqlxPool {
    Postgres(sea_orm::sqlx::PgPool),
    Sqlite(sea_orm::sqlx::SqlitePool),
}

/// The database pool's figures as Prometheus gauges
/// ([`DB_POOL_CONNECTIONS`] by state, [`DB_POOL_MAX_CONNECTIONS`]), read from
/// the pool at every scrape, so they are never stale. Register it with
/// [`crate::metrics::MetricsRegistry::register_collector`].
///
/// sqlx counts open and idle connections but not the tasks waiting for
/// one; a pool whose `in_use` sits at its maximum is one where they wait
/// (the `HavenDatabasePoolSaturated` alert).
#[derive(Debug, Clone)]
pub struct PoolMetrics {
    pool: SqlxPool,
    connections: IntGaugeVec,
    max: IntGauge,
}

impl PoolMetrics {
    /// The collector over `db`'s pool.
    pub fn new(db: &DatabaseConnection) -> Result<Self, MetricsError> {
        let pool = match db.get_database_backend() {
            sea_orm::DatabaseBackend::Sqlite => {
                SqlxPool::Sqlite(db.get_sqlite_connection_pool().clone())
            }
            // `connect` builds nothing else: a URL it accepts is PostgreSQL or SQLite.
            _ => SqlxPool::Postgres(db.get_postgres_connection_pool().clone()),
        };
        Ok(Self {
            pool,
            connections: IntGaugeVec::new(
                Opts::new(
                    DB_POOL_CONNECTIONS,
                    "Connections of the database pool, in_use or idle, at the scrape.",
                ),
                &[LABEL_STATE],
            )?,
            max: IntGauge::new(
                DB_POOL_MAX_CONNECTIONS,
                "The most connections the database pool opens.",
            )?,
        })
    }

    /// `(in use, idle, maximum)` now.
    pub fn figures(&self) -> (u32, u32, u32) {
        let (size, idle, max) = match &self.pool {
            SqlxPool::Postgres(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
            SqlxPool::Sqlite(pool) => (
                pool.size(),
                pool.num_idle(),
                pool.options().get_max_connections(),
            ),
        };
        let idle = u32::try_from(idle).unwrap_or(u32::MAX);
        (size.saturating_sub(idle), idle.min(size), max)
    }
}

impl Collector for PoolMetrics {
    fn desc(&self) -> Vec<&Desc> {
        let mut descs = self.connections.desc();
        descs.extend(self.max.desc());
        descs
    }

    fn collect(&self) -> Vec<MetricFamily> {
        let (in_use, idle, max) = self.figures();
        self.connections
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.connections
            .with_label_values(&["idle"])
            .set(i64::from(idle));
        self.max.set(i64::from(max));
        let mut families = self.connections.collect();
        families.extend(self.max.collect());
        families
    }
}

/// `/health` check of the database: `SELECT 1` within a short timeout.
#[derive(Debug, Clone)]
pub struct DatabaseProbe {
    db: DatabaseConnection,
    timeout: Duration,
}

impl DatabaseProbe {
    /// Default time `SELECT 1` may take before the database counts as down.
    pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

    /// A probe over the service's pool.
    pub fn new(db: DatabaseConnection) -> Self {
        Self {
            db,
            timeout: Self::DEFAULT_TIMEOUT,
        }
    }

    /// The same probe with another timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
}

impl Probe for DatabaseProbe {
    fn name(&self) -> &'static str {
        "database"
    }

    fn check(&self) -> BoxFuture<'_, Result<(), String>> {
        async move {
            match tokio::time::timeout(self.timeout, self.db.execute_unprepared("SELECT 1")).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(err)) => Err(err.to_string()),
                Err(_) => Err(format!("no answer to SELECT 1 within {:?}", self.timeout)),
            }
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Redacted;

    fn cfg(url: &str) -> DatabaseConfig {
        DatabaseConfig {
            database_url: Redacted::new(url.to_owned()),
            database_max_connections: 2,
            database_acquire_timeout: Duration::from_millis(500),
        }
    }

    #[test]
    fn url_schemes_are_checked_before_any_io() {
        assert_eq!(
            backend_of("postgres://u:p@h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(
            backend_of("postgresql://h/db").ok(),
            Some(Backend::Postgres)
        );
        assert_eq!(backend_of("sqlite::memory:").ok(), Some(Backend::Sqlite));
        assert_eq!(
            backend_of("sqlite://x.db?mode=rwc").ok(),
            Some(Backend::Sqlite)
        );
        let err = backend_of("mysql://root:hunter2@h/db").unwrap_err();
        assert_eq!(
            err.to_string(),
            "DATABASE_URL must start with postgres://, postgresql:// or sqlite: (got `mysql:`)"
        );
        assert!(!format!("{err:?}").contains("hunter2"));
        assert!(matches!(
            backend_of("hunter2"),
            Err(DbError::UnsupportedScheme { .. })
        ));
        assert!(matches!(
            backend_of("postgres://h:notaport/db"),
            Err(DbError::InvalidUrl(_))
        ));
    }

    #[tokio::test]
    async fn connect_does_not_wait_for_a_database_that_is_down() {
        // Nothing listens on port 1: connect still succeeds, the probe fails.
        let db = connect(&cfg("postgres://postgres@127.0.0.1:1/none"))
            .await
            .expect("a lazy pool never touches the network");
        let probe = DatabaseProbe::new(db).with_timeout(Duration::from_secs(2));
        assert_eq!(probe.name(), "database");
        assert!(probe.check().await.is_err());
    }

    #[tokio::test]
    async fn pool_metrics_count_connections_in_use_at_the_scrape() {
        use sea_orm::TransactionTrait as _;
        let db = connect(&cfg("sqlite::memory:")).await.unwrap();
        let registry = crate::metrics::MetricsRegistry::new("pool-test").unwrap();
        registry
            .register_collector(PoolMetrics::new(&db).unwrap())
            .unwrap();
        let scrape = || {
            let text = registry.encode().unwrap();
            let value = |state: &str| {
                let key =
                    format!(r#"haven_db_pool_connections{{state="{state}",service="pool-test"}} "#);
                text.lines()
                    .find_map(|l| l.strip_prefix(key.as_str()))
                    .map(str::to_owned)
            };
            (value("in_use"), value("idle"), text)
        };
        db.execute_unprepared("SELECT 1").await.unwrap();
        // sqlx returns a connection to the pool in a task of its own: wait
        // for the query's connection to be idle again.
        let mut idle_again = false;
        for _ in 0..40 {
            let (in_use, idle, _) = scrape();
            if in_use.as_deref() == Some("0") && idle.as_deref() == Some("1") {
                idle_again = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let (_, _, text) = scrape();
        assert!(idle_again, "the connection never showed idle: {text}");
        assert!(
            text.contains(r#"haven_db_pool_max_connections{service="pool-test"} 1"#),
            "{text}"
        );
        // A transaction holds the one connection: the next scrape shows it.
        let txn = db.begin().await.unwrap();
        let (in_use, idle, text) = scrape();
        assert_eq!(in_use.as_deref(), Some("1"), "{text}");
        assert_eq!(idle.as_deref(), Some("0"), "{text}");
        txn.rollback().await.unwrap();
    }

    #[tokio::test]
    async fn sqlite_in_memory_answers_the_probe() {
        let db = connect(&cfg("sqlite::memory:"))
            .await
            .expect("sqlite opens");
        assert_eq!(DatabaseProbe::new(db).check().await, Ok(()));
    }
}
