//! What a benchmark run cost, per process, in figures that do not move with
//! the machine's other work: CPU seconds of each process from `/proc`, SQL
//! statements and rows from PostgreSQL's own statistics, and AMQP messages
//! from the services' counters. [`Meter::snapshot`] before and after the
//! run; [`Cost::between`] turns two snapshots into figures per 1,000 mints.
//!
//! - CPU: `utime + stime` of each watched process. A group named by its
//!   command (`postgres`, RabbitMQ's `beam.smp`) sums every live process of
//!   that name plus what the group's eldest process has reaped from exited
//!   children (a PostgreSQL backend that closed mid-run still counts).
//! - SQL: `pg_stat_statements` calls and rows in the run's own database
//!   (`BEGIN` and `COMMIT` included: each is a round trip), when the library
//!   is preloaded (`cargo xtask bench` preloads it); transactions from
//!   `pg_stat_database` and rows written per table (inserted + updated +
//!   deleted) from `pg_stat_user_tables` always.
//! - AMQP: `haven_amqp_published_total{result="ok"}` and
//!   `haven_amqp_consumed_total` scraped from every service's `/metrics`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::Context as _;
use sea_orm::{ConnectionTrait, DatabaseConnection, Statement};
use serde::Serialize;

/// Clock ticks per second of `/proc/<pid>/stat` (Linux's `USER_HZ`, 100 on
/// every architecture it exposes to user space).
const TICKS_PER_S: f64 = 100.0;

/// How many of the most-run statements [`Cost`] lists.
pub const TOP_STATEMENTS: usize = 30;

/// PostgreSQL sends a backend's table statistics at most once a second:
/// the last snapshot waits this long for them.
pub const STATS_SETTLE: Duration = Duration::from_millis(1500);

/// Which processes one CPU figure sums.
#[derive(Debug, Clone)]
pub enum Processes {
    /// One process.
    Pid(u32),
    /// Every process with this command name (`/proc/<pid>/comm`).
    Named(&'static str),
    /// The process running the benchmark (the load generator).
    This,
}

/// A service whose `/metrics` the meter scrapes.
#[derive(Debug, Clone)]
pub struct Scraped {
    /// Its name in the tables.
    pub name: String,
    /// Its base URL.
    pub url: String,
}

/// Takes [`Snapshot`]s of the watched processes, the database and the
/// services' counters.
#[derive(Debug)]
pub struct Meter {
    processes: Vec<(String, Processes)>,
    services: Vec<Scraped>,
    db: DatabaseConnection,
    client: reqwest::Client,
    statements: bool,
}

/// Counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    cpu_s: BTreeMap<String, f64>,
    statements: Option<(i64, i64)>,
    calls_by_query: BTreeMap<String, i64>,
    transactions: i64,
    rows_written: BTreeMap<String, i64>,
    published: BTreeMap<String, f64>,
    delivered: BTreeMap<String, f64>,
}

/// A run's cost per 1,000 mints (CPU) or per mint (the rest).
#[derive(Debug, Clone, Serialize)]
pub struct Cost {
    /// Mints the run confirmed (the divisor).
    pub mints: u64,
    /// CPU seconds per 1,000 mints, by process (or process group).
    pub cpu_s_per_1000_mints: BTreeMap<String, f64>,
    /// The services' CPU seconds per 1,000 mints, summed.
    pub services_cpu_s_per_1000_mints: f64,
    /// Every watched process's CPU seconds per 1,000 mints, summed.
    pub total_cpu_s_per_1000_mints: f64,
    /// SQL statements per mint (`pg_stat_statements`; `None` when the
    /// library is not preloaded).
    pub statements_per_mint: Option<f64>,
    /// Rows the statements returned or changed, per mint.
    pub statement_rows_per_mint: Option<f64>,
    /// The statements run most, per mint (normalized text, at most
    /// [`TOP_STATEMENTS`]): where to look first.
    pub top_statements_per_mint: Vec<(String, f64)>,
    /// Committed and rolled back transactions per mint.
    pub transactions_per_mint: f64,
    /// Rows inserted, updated and deleted per mint, all tables.
    pub rows_written_per_mint: f64,
    /// The same by table (tables with none left out).
    pub rows_written_per_mint_by_table: BTreeMap<String, f64>,
    /// AMQP messages published with a confirm, per mint.
    pub amqp_published_per_mint: f64,
    /// AMQP messages handled by a consumer (acked, retried or dead-lettered), per mint.
    pub amqp_delivered_per_mint: f64,
}

impl Meter {
    /// A meter of `processes` (name, which), the `services`' counters and
    /// the run's database `db` (PostgreSQL). Creates the
    /// `pg_stat_statements` extension in it when the library is loaded.
    pub async fn new(
        processes: Vec<(String, Processes)>,
        services: Vec<Scraped>,
        db: DatabaseConnection,
    ) -> anyhow::Result<Self> {
        let statements = db
            .execute_unprepared("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            .await
            .is_ok()
            && db
                .execute_unprepared("SELECT 1 FROM pg_stat_statements LIMIT 1")
                .await
                .is_ok();
        if !statements {
            eprintln!(
                "pg_stat_statements is not loaded (shared_preload_libraries): SQL statements are not counted; `cargo xtask bench` loads it"
            );
        }
        Ok(Self {
            processes,
            services,
            db,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()?,
            statements,
        })
    }

    /// The counters now.
    pub async fn snapshot(&self) -> anyhow::Result<Snapshot> {
        let mut cpu_s = BTreeMap::new();
        for (name, which) in &self.processes {
            cpu_s.insert(name.clone(), cpu_seconds(which));
        }
        let mut published = BTreeMap::new();
        let mut delivered = BTreeMap::new();
        for service in &self.services {
            let text = self
                .client
                .get(format!("{}/metrics", service.url))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .with_context(|| format!("scrape {}", service.name))?
                .text()
                .await?;
            published.insert(
                service.name.clone(),
                sum_samples(&text, "haven_amqp_published_total", Some("result=\"ok\"")),
            );
            delivered.insert(
                service.name.clone(),
                sum_samples(&text, "haven_amqp_consumed_total", None),
            );
        }
        // One read gives both the totals and the most-run statements.
        let mut calls_by_query = BTreeMap::new();
        let mut statements = None;
        if self.statements {
            let (mut calls, mut rows) = (0i64, 0i64);
            for row in self
                .db
                .query_all_raw(Statement::from_string(
                    self.db.get_database_backend(),
                    "SELECT query, sum(calls)::int8 AS calls, sum(rows)::int8 AS rows \
                     FROM pg_stat_statements \
                     WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) \
                     GROUP BY query",
                ))
                .await?
            {
                let query: String = row.try_get("", "query")?;
                let called: i64 = row.try_get("", "calls")?;
                calls += called;
                rows += row.try_get::<i64>("", "rows")?;
                let one_line = query.split_whitespace().collect::<Vec<_>>().join(" ");
                *calls_by_query.entry(one_line).or_insert(0) += called;
            }
            statements = Some((calls, rows));
        }
        let row = self
            .db
            .query_one_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT (xact_commit + xact_rollback)::int8 AS n FROM pg_stat_database \
                 WHERE datname = current_database()",
            ))
            .await?
            .context("pg_stat_database answered no row")?;
        let transactions: i64 = row.try_get("", "n")?;
        let mut rows_written = BTreeMap::new();
        for row in self
            .db
            .query_all_raw(Statement::from_string(
                self.db.get_database_backend(),
                "SELECT relname::text AS t, (n_tup_ins + n_tup_upd + n_tup_del)::int8 AS n \
                 FROM pg_stat_user_tables",
            ))
            .await?
        {
            rows_written.insert(row.try_get::<String>("", "t")?, row.try_get("", "n")?);
        }
        Ok(Snapshot {
            cpu_s,
            statements,
            calls_by_query,
            transactions,
            rows_written,
            published,
            delivered,
        })
    }

    /// The services' names (the processes named like a scraped service).
    fn is_service(&self, process: &str) -> bool {
        self.services.iter().any(|s| s.name == process)
    }

    /// The cost of what happened between `before` and `after`, for `mints`
    /// confirmed mints.
    pub fn between(&self, before: &Snapshot, after: &Snapshot, mints: u64) -> Cost {
        let per_mint = |n: f64| n / mints.max(1) as f64;
        let cpu_s_per_1000_mints: BTreeMap<String, f64> = after
            .cpu_s
            .iter()
            .map(|(name, end)| {
                let start = before.cpu_s.get(name).copied().unwrap_or(0.0);
                (name.clone(), per_mint(end - start) * 1000.0)
            })
            .collect();
        let services_cpu_s_per_1000_mints = cpu_s_per_1000_mints
            .iter()
            .filter(|(name, _)| self.is_service(name))
            .map(|(_, s)| s)
            .sum();
        let total_cpu_s_per_1000_mints = cpu_s_per_1000_mints.values().sum();
        let (statements_per_mint, statement_rows_per_mint) =
            match (before.statements, after.statements) {
                (Some((c0, r0)), Some((c1, r1))) => (
                    Some(per_mint((c1 - c0) as f64)),
                    Some(per_mint((r1 - r0) as f64)),
                ),
                _ => (None, None),
            };
        let mut top: Vec<(String, f64)> = after
            .calls_by_query
            .iter()
            .filter_map(|(query, end)| {
                let n = end - before.calls_by_query.get(query).copied().unwrap_or(0);
                (n > 0).then(|| (query.clone(), per_mint(n as f64)))
            })
            .collect();
        top.sort_by(|a, b| b.1.total_cmp(&a.1));
        top.truncate(TOP_STATEMENTS);
        let rows_written_per_mint_by_table: BTreeMap<String, f64> = after
            .rows_written
            .iter()
            .filter_map(|(table, end)| {
                let n = end - before.rows_written.get(table).copied().unwrap_or(0);
                (n > 0).then(|| (table.clone(), per_mint(n as f64)))
            })
            .collect();
        let delta = |a: &BTreeMap<String, f64>, b: &BTreeMap<String, f64>| {
            per_mint(
                b.iter()
                    .map(|(k, v)| v - a.get(k).copied().unwrap_or(0.0))
                    .sum(),
            )
        };
        Cost {
            mints,
            cpu_s_per_1000_mints,
            services_cpu_s_per_1000_mints,
            total_cpu_s_per_1000_mints,
            statements_per_mint,
            statement_rows_per_mint,
            top_statements_per_mint: top,
            transactions_per_mint: per_mint((after.transactions - before.transactions) as f64),
            rows_written_per_mint: rows_written_per_mint_by_table.values().sum(),
            rows_written_per_mint_by_table,
            amqp_published_per_mint: delta(&before.published, &after.published),
            amqp_delivered_per_mint: delta(&before.delivered, &after.delivered),
        }
    }
}

impl Cost {
    /// The figures as a Markdown table.
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "| cost ({} confirmed mints) | value |\n|---|---:|\n",
            self.mints
        );
        for (name, s) in &self.cpu_s_per_1000_mints {
            out += &format!("| CPU s per 1,000 mints: {name} | {s:.2} |\n");
        }
        out += &format!(
            "| CPU s per 1,000 mints: the services | {:.2} |\n| CPU s per 1,000 mints: everything watched | {:.2} |\n",
            self.services_cpu_s_per_1000_mints, self.total_cpu_s_per_1000_mints
        );
        match self.statements_per_mint {
            Some(n) => out += &format!("| SQL statements per mint | {n:.2} |\n"),
            None => out += "| SQL statements per mint | n/a (pg_stat_statements not loaded) |\n",
        }
        out += &format!(
            "| SQL transactions per mint | {:.2} |\n| rows written per mint | {:.2} ({}) |\n| AMQP messages published per mint | {:.2} |\n| AMQP messages delivered per mint | {:.2} |\n",
            self.transactions_per_mint,
            self.rows_written_per_mint,
            self.rows_written_per_mint_by_table
                .iter()
                .map(|(t, n)| format!("{t} {n:.2}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.amqp_published_per_mint,
            self.amqp_delivered_per_mint,
        );
        if !self.top_statements_per_mint.is_empty() {
            out += "\n| most-run SQL statements | per mint |\n|---|---:|\n";
            for (query, n) in &self.top_statements_per_mint {
                let shown: String = query.chars().take(140).collect();
                out += &format!("| `{}` | {n:.2} |\n", shown.replace('|', "\\|"));
            }
        }
        out
    }
}

/// CPU seconds (user + system) `which` has used so far.
fn cpu_seconds(which: &Processes) -> f64 {
    let ticks = match which {
        Processes::Pid(pid) => stat_ticks(&pid.to_string()).map_or(0, |t| t.own),
        Processes::This => stat_ticks("self").map_or(0, |t| t.own),
        Processes::Named(comm) => named_ticks(comm),
    };
    ticks as f64 / TICKS_PER_S
}

/// A process's own CPU ticks and those of its reaped children.
#[derive(Debug, Clone, Copy)]
struct Ticks {
    own: u64,
    reaped: u64,
    parent: u32,
}

/// Parses `/proc/<pid>/stat`: the fields after the command's closing
/// parenthesis (the command may hold spaces and parentheses).
fn parse_stat(text: &str) -> Option<Ticks> {
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // fields[0] is the state (field 3 of proc(5)); utime is field 14.
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Ticks {
        own: field(14)? + field(15)?,
        reaped: field(16)? + field(17)?,
        parent: u32::try_from(field(4)?).ok()?,
    })
}

fn stat_ticks(pid: &str) -> Option<Ticks> {
    parse_stat(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// Every live process named `comm`, plus what the group's roots (those
/// whose parent is not of the group) reaped from exited children.
fn named_ticks(comm: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let group: BTreeMap<u32, Ticks> = dir
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim_end() == comm)
        })
        .filter_map(|pid| Some((pid, stat_ticks(&pid.to_string())?)))
        .collect();
    group
        .values()
        .map(|t| {
            if group.contains_key(&t.parent) {
                t.own
            } else {
                t.own + t.reaped
            }
        })
        .sum()
}

/// The sum of the samples of `metric` in Prometheus text (optionally only
/// those whose labels contain `label`).
pub fn sum_samples(text: &str, metric: &str, label: Option<&str>) -> f64 {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let rest = line.strip_prefix(metric)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => {
                    let end = rest.find('}')?;
                    (&rest[..end], rest[end + 1..].trim())
                }
                None if rest.starts_with(' ') => ("", rest.trim()),
                None => return None,
            };
            if label.is_some_and(|l| !labels.contains(l)) {
                return None;
            }
            value.split_whitespace().next()?.parse::<f64>().ok()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stat_line_with_spaces_and_parentheses_in_the_command_parses() {
        let line = "4242 (tokio (rt) 1) S 17 4242 4242 0 -1 4194560 100 0 0 0 250 75 12 3 20 0 9 0 100 0 0";
        let t = parse_stat(line).unwrap();
        assert_eq!(t.own, 325);
        assert_eq!(t.reaped, 15);
        assert_eq!(t.parent, 17);
    }

    #[test]
    fn this_process_has_used_some_cpu() {
        let spin: u64 = (0..20_000_000u64).fold(0, |a, b| a.wrapping_add(b * b));
        assert!(spin > 0);
        assert!(cpu_seconds(&Processes::This) > 0.0);
    }

    #[test]
    fn samples_are_summed_by_name_and_label() {
        let text = "# HELP haven_amqp_published_total x\n\
            haven_amqp_published_total{result=\"ok\",service=\"a\"} 10\n\
            haven_amqp_published_total{result=\"nacked\",service=\"a\"} 2\n\
            haven_amqp_published_totally 99\n\
            haven_amqp_consumed_total{queue=\"q\",outcome=\"ack\"} 4\n\
            haven_amqp_consumed_total{queue=\"r\",outcome=\"retry\"} 1\n";
        assert_eq!(
            sum_samples(text, "haven_amqp_published_total", Some("result=\"ok\"")),
            10.0
        );
        assert_eq!(sum_samples(text, "haven_amqp_published_total", None), 12.0);
        assert_eq!(sum_samples(text, "haven_amqp_consumed_total", None), 5.0);
    }
}
