//! [`TestDb`]: a fresh, migrated database per test, dropped afterwards.
//!
//! PostgreSQL databases are created on the server named by
//! `TEST_DATABASE_ADMIN_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`)
//! under a name that carries their creation time, `haven_test_<unix secs>_<random>`.
//! A test drops its database when the [`TestDb`] is dropped (or earlier with
//! [`TestDb::cleanup`]); a run that crashed before that leaves its databases
//! behind, and the first [`TestDb`] of every later run sweeps away any test
//! database older than an hour.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use haven_migrations::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

use crate::config::{DatabaseConfig, Redacted};

/// Admin URL used when `TEST_DATABASE_ADMIN_URL` is not set.
pub const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";
/// Prefix of every test database name.
const PREFIX: &str = "haven_test_";
/// Test databases older than this are assumed abandoned by a crashed run.
const STALE_AFTER: Duration = Duration::from_secs(3600);

static SWEPT: AtomicBool = AtomicBool::new(false);

/// A database for one test: its URL, a pool on it, and its removal.
#[derive(Debug)]
pub struct TestDb {
    url: String,
    conn: DatabaseConnection,
    kind: Kind,
    cleaned: bool,
}

#[derive(Debug, Clone)]
enum Kind {
    Postgres { name: String, admin: PgUrl },
    Sqlite { path: PathBuf },
}

impl TestDb {
    /// A fresh PostgreSQL database with every migration applied.
    pub async fn new() -> Self {
        let db = Self::postgres_empty().await;
        db.migrate().await;
        db
    }

    /// A fresh PostgreSQL database with no schema at all (for migration tests).
    pub async fn postgres_empty() -> Self {
        let admin_url = std::env::var("TEST_DATABASE_ADMIN_URL")
            .unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned());
        let admin =
            PgUrl::parse(&admin_url).unwrap_or_else(|err| panic!("TEST_DATABASE_ADMIN_URL: {err}"));
        let admin_conn = Database::connect(admin.to_string())
            .await
            .expect("connect to the PostgreSQL admin database (is PostgreSQL running?)");

        if !SWEPT.swap(true, Ordering::SeqCst) {
            sweep_stale(&admin_conn).await;
        }

        let name = format!(
            "{PREFIX}{}_{}",
            unix_now(),
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        );
        admin_conn
            .execute_unprepared(&format!(r#"CREATE DATABASE "{name}""#))
            .await
            .unwrap_or_else(|err| panic!("CREATE DATABASE {name}: {err}"));
        let _ = admin_conn.close().await;

        let url = admin.with_database(&name).to_string();
        let conn = connect(&url).await;
        Self {
            url,
            conn,
            kind: Kind::Postgres { name, admin },
            cleaned: false,
        }
    }

    /// A fresh SQLite database in a temporary file, every migration applied.
    pub async fn sqlite() -> Self {
        let db = Self::sqlite_empty().await;
        db.migrate().await;
        db
    }

    /// A fresh, empty SQLite database in a temporary file.
    pub async fn sqlite_empty() -> Self {
        let path = std::env::temp_dir().join(format!("haven-test-{}.db", uuid::Uuid::new_v4()));
        let url = format!("sqlite://{}?mode=rwc", path.display());
        let conn = connect(&url).await;
        Self {
            url,
            conn,
            kind: Kind::Sqlite { path },
            cleaned: false,
        }
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) {
        Migrator::up(&self.conn, None)
            .await
            .expect("migrations apply to a fresh database");
    }

    /// The database URL, to hand to the code under test.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// A pool on the database (built by [`crate::db::connect`]).
    pub fn conn(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Another handle on [`Self::conn`]'s pool that records the SQL of every
    /// statement run through it (transactions begun on it included; their
    /// `BEGIN` and `COMMIT` are not statements here), for tests that count
    /// what an operation costs.
    pub fn recording(&self) -> (DatabaseConnection, StatementLog) {
        let log = StatementLog::default();
        let mut conn = self.conn.clone();
        let sink = Arc::clone(&log.0);
        conn.set_metric_callback(move |info| {
            sink.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(info.statement.sql.clone());
        });
        (conn, log)
    }

    /// Whether this is a PostgreSQL database (as opposed to SQLite).
    pub fn is_postgres(&self) -> bool {
        matches!(self.kind, Kind::Postgres { .. })
    }

    /// The PostgreSQL server's socket address, for a proxy in front of it.
    ///
    /// # Panics
    /// On a SQLite database, which has no server.
    pub fn addr(&self) -> SocketAddr {
        match &self.kind {
            Kind::Postgres { admin, .. } => admin.socket_addr(),
            Kind::Sqlite { .. } => panic!("a SQLite test database has no server address"),
        }
    }

    /// The database URL with the server replaced by `addr` (a proxy).
    ///
    /// # Panics
    /// On a SQLite database.
    pub fn url_via(&self, addr: SocketAddr) -> String {
        match &self.kind {
            Kind::Postgres { name, admin } => admin.with_database(name).with_addr(addr).to_string(),
            Kind::Sqlite { .. } => panic!("a SQLite test database cannot be proxied"),
        }
    }

    /// Keeps the database for a person to look into (it is not removed on
    /// drop) and returns its URL.
    pub fn keep(mut self) -> String {
        self.cleaned = true;
        self.url.clone()
    }

    /// Closes the pool and removes the database now.
    pub async fn cleanup(mut self) {
        self.cleaned = true;
        let _ = self.conn.clone().close().await;
        match &self.kind {
            Kind::Postgres { name, admin } => drop_database(admin, name).await,
            Kind::Sqlite { path } => remove_sqlite_files(path),
        }
    }
}

/// The statements run through a [`TestDb::recording`] handle, in order.
#[derive(Debug, Clone, Default)]
pub struct StatementLog(Arc<Mutex<Vec<String>>>);

impl StatementLog {
    /// The SQL recorded since the last call, leaving the log empty.
    pub fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        match &self.kind {
            Kind::Sqlite { path } => remove_sqlite_files(path),
            Kind::Postgres { name, admin } => {
                // Drop cannot await, and may run inside a runtime that must
                // not be blocked on, so the DROP runs on its own thread with
                // its own runtime. WITH (FORCE) ends the sessions this test's
                // pools still hold.
                let (name, admin) = (name.clone(), admin.clone());
                let handle =
                    std::thread::spawn(move || match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime.block_on(drop_database(&admin, &name)),
                        Err(err) => eprintln!("TestDb: cannot drop {name}: {err}"),
                    });
                let _ = handle.join();
            }
        }
    }
}

/// A pool on `url` built the way services build theirs.
async fn connect(url: &str) -> DatabaseConnection {
    crate::db::connect(&DatabaseConfig {
        database_url: Redacted::new(url.to_owned()),
        database_max_connections: 10,
        database_acquire_timeout: Duration::from_secs(30),
    })
    .await
    .expect("test database URL is valid")
}

async fn drop_database(admin: &PgUrl, name: &str) {
    match Database::connect(admin.to_string()).await {
        Ok(conn) => {
            if let Err(err) = conn
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .await
            {
                eprintln!("TestDb: cannot drop {name}: {err}");
            }
            let _ = conn.close().await;
        }
        Err(err) => eprintln!("TestDb: cannot drop {name}: {err}"),
    }
}

/// Drops test databases created more than [`STALE_AFTER`] ago. Errors are
/// ignored: another run may be sweeping the same ones.
async fn sweep_stale(admin_conn: &DatabaseConnection) {
    let Ok(rows) = admin_conn
        .query_all_raw(sea_orm::Statement::from_string(
            admin_conn.get_database_backend(),
            format!("SELECT datname FROM pg_database WHERE datname LIKE '{PREFIX}%'"),
        ))
        .await
    else {
        return;
    };
    let cutoff = unix_now().saturating_sub(STALE_AFTER.as_secs());
    for row in rows {
        let Ok(name) = row.try_get::<String>("", "datname") else {
            continue;
        };
        if created_at(&name).is_some_and(|created| created < cutoff) {
            let _ = admin_conn
                .execute_unprepared(&format!(r#"DROP DATABASE IF EXISTS "{name}" WITH (FORCE)"#))
                .await;
        }
    }
}

/// Creation time encoded in a test database name.
fn created_at(name: &str) -> Option<u64> {
    name.strip_prefix(PREFIX)?.split('_').next()?.parse().ok()
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn remove_sqlite_files(path: &std::path::Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut file = path.as_os_str().to_owned();
        file.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(file));
    }
}

/// Just enough of a PostgreSQL URL to swap its database or its server.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PgUrl {
    scheme: String,
    userinfo: Option<String>,
    host: String,
    port: u16,
    database: String,
    query: Option<String>,
}

impl PgUrl {
    fn parse(url: &str) -> Result<Self, String> {
        let (scheme, rest) = url
            .split_once("://")
            .filter(|(scheme, _)| *scheme == "postgres" || *scheme == "postgresql")
            .ok_or("expected postgres://")?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query.to_owned())),
            None => (rest, None),
        };
        let (authority, database) = rest.split_once('/').unwrap_or((rest, "postgres"));
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo.to_owned()), hostport),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or("unclosed [ in host")?;
            (host.to_owned(), after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), Some(port)),
                None => (hostport.to_owned(), None),
            }
        };
        let port = port
            .map(|p| p.parse().map_err(|_| format!("bad port `{p}`")))
            .transpose()?
            .unwrap_or(5432);
        Ok(Self {
            scheme: scheme.to_owned(),
            userinfo,
            host: if host.is_empty() {
                "localhost".into()
            } else {
                host
            },
            port,
            database: database.to_owned(),
            query,
        })
    }

    fn with_database(&self, database: &str) -> Self {
        Self {
            database: database.to_owned(),
            ..self.clone()
        }
    }

    fn with_addr(&self, addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
            ..self.clone()
        }
    }

    fn socket_addr(&self) -> SocketAddr {
        (self.host.as_str(), self.port)
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .unwrap_or_else(|| panic!("cannot resolve {}:{}", self.host, self.port))
    }
}

impl std::fmt::Display for PgUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://", self.scheme)?;
        if let Some(userinfo) = &self.userinfo {
            write!(f, "{userinfo}@")?;
        }
        if self.host.contains(':') {
            write!(f, "[{}]", self.host)?;
        } else {
            write!(f, "{}", self.host)?;
        }
        write!(f, ":{}/{}", self.port, self.database)?;
        if let Some(query) = &self.query {
            write!(f, "?{query}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_swap_database_and_server() {
        let url = PgUrl::parse("postgres://u:p@127.0.0.1:5432/postgres?sslmode=disable").unwrap();
        assert_eq!(
            url.with_database("x").to_string(),
            "postgres://u:p@127.0.0.1:5432/x?sslmode=disable"
        );
        let proxy: SocketAddr = "127.0.0.1:40000".parse().unwrap();
        assert_eq!(
            url.with_database("x").with_addr(proxy).to_string(),
            "postgres://u:p@127.0.0.1:40000/x?sslmode=disable"
        );
        let bare = PgUrl::parse("postgresql://localhost").unwrap();
        assert_eq!(bare.to_string(), "postgresql://localhost:5432/postgres");
        let v6 = PgUrl::parse("postgres://[::1]:6000/db").unwrap();
        assert_eq!(v6.to_string(), "postgres://[::1]:6000/db");
        assert!(PgUrl::parse("mysql://h/db").is_err());
    }

    #[test]
    fn names_carry_their_creation_time() {
        assert_eq!(
            created_at("haven_test_1700000000_abcdef012345"),
            Some(1_700_000_000)
        );
        assert_eq!(created_at("haven_prod"), None);
        assert_eq!(created_at("haven_test_x_y"), None);
    }
}
