//! `job_runs::DbJobStore` under `haven_common::jobs::OncePerSystem`: two
//! runners (two replicas) on one database run a job once per period, never
//! two runs at once, and report the same last result, on PostgreSQL and
//! SQLite.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use chrono::Utc;
use haven_common::jobs::{JobMetrics, OncePerSystem, Outcome, period_end};
use haven_common::metrics::MetricsRegistry;
use haven_common::testing::db::TestDb;
use haven_entity::job_runs::DbJobStore;
use sea_orm::DatabaseConnection;

const JOB: &str = "test-job";

/// A replica's runner and its metrics.
struct Replica {
    name: &'static str,
    runner: OncePerSystem,
    registry: MetricsRegistry,
}

fn replica(db: &DatabaseConnection, name: &'static str, period: Duration) -> Replica {
    let registry = MetricsRegistry::new(name).unwrap();
    let metrics = JobMetrics::new(&registry).unwrap();
    let runner = OncePerSystem::new(
        Arc::new(DbJobStore::new(db.clone())),
        metrics,
        name,
        JOB,
        period,
    );
    Replica {
        name,
        runner,
        registry,
    }
}

impl Replica {
    /// One tick whose job counts itself in `runs`, takes `busy`, and
    /// reports who ran it.
    async fn tick(&self, runs: &AtomicU32, busy: Duration) -> bool {
        let holder = self.runner.holder().to_owned();
        self.runner
            .tick(|| async move {
                runs.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(busy).await;
                Outcome::ok(&serde_json::json!({ "ran_by": holder }))
            })
            .await
            .unwrap()
            .is_some()
    }

    /// The `haven_job_*` lines of this replica's `/metrics`, without the
    /// `service` label (which differs per replica).
    fn job_metrics(&self) -> Vec<String> {
        let text = self.registry.encode().unwrap();
        let service = format!(",service=\"{}\"", self.name);
        text.lines()
            .filter(|l| l.starts_with("haven_job_last_"))
            .map(|l| l.replace(&service, ""))
            .collect()
    }
}

/// Waits for the start of the next period, plus a little.
async fn next_period(period: Duration) {
    let now = Utc::now();
    let wait = (period_end(now, period) - now).to_std().unwrap();
    tokio::time::sleep(wait + Duration::from_millis(20)).await;
}

async fn once_per_period_and_one_shared_result(db: TestDb) {
    let period = Duration::from_secs(2);
    let a = replica(db.conn(), "replicaa", period);
    let b = replica(db.conn(), "replicab", period);
    let runs = AtomicU32::new(0);

    // Both replicas tick in the same period, at the same moment: one runs.
    next_period(period).await;
    let (ran_a, ran_b) = tokio::join!(
        a.tick(&runs, Duration::from_millis(200)),
        b.tick(&runs, Duration::from_millis(200))
    );
    assert_eq!(runs.load(Ordering::SeqCst), 1);
    assert!(ran_a ^ ran_b, "exactly one ran: a {ran_a}, b {ran_b}");
    // Ticking again in the same period runs nothing, on either replica.
    assert!(!a.tick(&runs, Duration::ZERO).await);
    assert!(!b.tick(&runs, Duration::ZERO).await);
    assert_eq!(runs.load(Ordering::SeqCst), 1);

    // Both report the same last result: the winner's, stored verbatim.
    let last_a = a.runner.last().await.unwrap().unwrap();
    let last_b = b.runner.last().await.unwrap().unwrap();
    assert_eq!(last_a, last_b);
    let winner = if ran_a { &a } else { &b };
    assert_eq!(last_a.holder, winner.runner.holder());
    assert!(last_a.ok);
    assert_eq!(last_a.runs, 1);
    assert_eq!(
        last_a.result.unwrap(),
        format!(r#"{{"ran_by":"{}"}}"#, winner.runner.holder())
    );
    let metrics_a = a.job_metrics();
    assert_eq!(metrics_a, b.job_metrics());
    assert!(
        metrics_a.contains(&format!("haven_job_last_ok{{job=\"{JOB}\"}} 1")),
        "{metrics_a:?}"
    );
    assert!(
        metrics_a.iter().any(|l| l.starts_with(&format!(
            "haven_job_last_finished_timestamp_seconds{{job=\"{JOB}\"}} "
        ))),
        "{metrics_a:?}"
    );

    // The next period runs once again.
    next_period(period).await;
    let (ran_a, ran_b) = tokio::join!(a.tick(&runs, Duration::ZERO), b.tick(&runs, Duration::ZERO));
    assert!(ran_a ^ ran_b, "exactly one ran: a {ran_a}, b {ran_b}");
    assert_eq!(runs.load(Ordering::SeqCst), 2);
    assert_eq!(a.runner.last().await.unwrap().unwrap().runs, 2);

    // A run longer than its period holds the job: the other replica does
    // not start a second run in the next period while it lasts.
    next_period(period).await;
    let long = async { a.tick(&runs, period + Duration::from_millis(500)).await };
    let other = async {
        next_period(period).await;
        b.tick(&runs, Duration::ZERO).await
    };
    let (ran_long, ran_other) = tokio::join!(long, other);
    assert!(ran_long);
    assert!(
        !ran_other,
        "a second run started while the first held the job"
    );
    assert_eq!(runs.load(Ordering::SeqCst), 3);
    db.cleanup().await;
}

#[tokio::test]
async fn postgres_two_replicas_run_a_job_once_per_period_and_share_its_result() {
    once_per_period_and_one_shared_result(TestDb::new().await).await;
}

#[tokio::test]
async fn sqlite_two_replicas_run_a_job_once_per_period_and_share_its_result() {
    once_per_period_and_one_shared_result(TestDb::sqlite().await).await;
}
