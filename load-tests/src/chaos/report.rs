//! The matrix's table: `latest.md` for people, `latest.json` for tools.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use hdrhistogram::Histogram;
use serde::Serialize;

use super::faults::Fault;
use super::traffic::{Outcome, Sent};
use super::verify::Verdict;

/// The times of one row.
#[derive(Debug)]
pub struct Timing {
    /// From the fault's end until healthy and every event accepted before it settled.
    pub recovery: Option<Duration>,
    /// From the load's end until every accepted event settled.
    pub drained: Option<Duration>,
    /// Accepted -> mint confirmed, ms, of the events accepted during the fault.
    pub during: Option<Histogram<u64>>,
    /// The same over the whole run.
    pub all: Option<Histogram<u64>>,
}

/// One row of the table.
#[derive(Debug, Clone, Serialize)]
pub struct Row {
    /// `--only` value.
    pub fault: String,
    /// How it was made.
    pub how: String,
    /// Events sent.
    pub sent: u64,
    /// Answered 2xx.
    pub accepted: u64,
    /// Refused, by status and detail.
    pub refused: BTreeMap<String, u64>,
    /// No answer within the senders' retry time, by last error.
    pub unanswered: BTreeMap<String, u64>,
    /// Requests sent in all (retries included).
    pub requests: u64,
    /// Events whose effect is on chain (and at the provider) exactly once.
    pub confirmed: u64,
    /// Accepted events with no effect.
    pub lost: u64,
    /// Effects that happened twice.
    pub duplicated: u64,
    /// Seconds from the fault's end until recovered.
    pub recovery_s: Option<f64>,
    /// Seconds from the load's end until drained (None: not within the timeout).
    pub drain_s: Option<f64>,
    /// Accepted -> confirmed during the fault, p50 and p99, seconds.
    pub fault_latency_s: Option<(f64, f64)>,
    /// Accepted -> confirmed over the run, p50 and p99, seconds.
    pub latency_s: Option<(f64, f64)>,
    /// Service processes that died and were started again.
    pub restarts: u32,
    /// Balance reads answered 200, and not.
    pub reads: (u64, u64),
    /// The chain's totals and the ledger's.
    pub totals: Option<Totals>,
    /// Alerts of `deploy/prometheus/alerts.yml` raised during the row
    /// (`name (pending|firing)`); `None` when no Prometheus ran.
    pub alerts: Option<Vec<String>>,
    /// What went wrong, in words.
    pub problems: Vec<String>,
    /// Nothing lost, nothing doubled, drained.
    pub passed: bool,
    /// Not run: the machine cannot make the fault.
    pub skipped: bool,
}

/// `totalMinted` / `totalBurned` on chain and in the ledger, wei.
#[derive(Debug, Clone, Serialize)]
pub struct Totals {
    /// Chain, ledger.
    pub minted: (String, String),
    /// Chain, ledger.
    pub burned: (String, String),
}

fn quantiles(h: Option<&Histogram<u64>>) -> Option<(f64, f64)> {
    h.map(|h| {
        (
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
        )
    })
}

impl Row {
    /// The row of a run that finished.
    pub fn new(
        fault: Fault,
        sent: &[Sent],
        verdict: Verdict,
        timing: Timing,
        restarts: u32,
        reads: (u64, u64),
    ) -> Self {
        let mut refused = BTreeMap::new();
        let mut unanswered = BTreeMap::new();
        let mut accepted = 0;
        for s in sent {
            match &s.outcome {
                Outcome::Accepted => accepted += 1,
                Outcome::Refused(why) => *refused.entry(why.clone()).or_default() += 1,
                Outcome::Unanswered(why) => *unanswered.entry(why.clone()).or_default() += 1,
            }
        }
        let mut problems = verdict.problems;
        if timing.drained.is_none() {
            problems.insert(0, "the backlog did not drain within the timeout".to_owned());
        }
        let passed = verdict.lost == 0 && verdict.duplicated == 0 && timing.drained.is_some();
        Self {
            fault: fault.name(),
            how: fault.how().to_owned(),
            sent: sent.len() as u64,
            accepted,
            refused,
            unanswered,
            requests: sent.iter().map(|s| u64::from(s.attempts)).sum(),
            confirmed: verdict.confirmed,
            lost: verdict.lost,
            duplicated: verdict.duplicated,
            recovery_s: timing.recovery.map(|d| d.as_secs_f64()),
            drain_s: timing.drained.map(|d| d.as_secs_f64()),
            fault_latency_s: quantiles(timing.during.as_ref()),
            latency_s: quantiles(timing.all.as_ref()),
            restarts,
            reads,
            totals: Some(Totals {
                minted: verdict.total_minted,
                burned: verdict.total_burned,
            }),
            alerts: None,
            problems,
            passed,
            skipped: false,
        }
    }

    /// Records the alerts raised during the row; an expected alert that was
    /// not raised, or any alert in the quiet `none` row, fails it.
    pub fn check_alerts(&mut self, fault: Fault, seen: BTreeSet<String>) {
        for expected in fault.expected_alerts() {
            if !seen.iter().any(|a| a.starts_with(&format!("{expected} ("))) {
                self.problems.push(format!(
                    "alert {expected} was neither pending nor firing during the fault"
                ));
                self.passed = false;
            }
        }
        if fault == Fault::None && !seen.is_empty() {
            self.problems.push(format!(
                "a run with nothing broken raised alerts: {}",
                seen.iter().cloned().collect::<Vec<_>>().join(", ")
            ));
            self.passed = false;
        }
        self.alerts = Some(seen.into_iter().collect());
    }

    /// The row of a fault this machine cannot make: not run, not failed.
    pub fn skipped(fault: Fault, why: &str) -> Self {
        let mut row = Self::failed(fault, String::new());
        row.problems = vec![format!("skipped: {why}")];
        row.passed = true;
        row.skipped = true;
        row
    }

    /// The row of a run that could not finish.
    pub fn failed(fault: Fault, error: String) -> Self {
        Self {
            fault: fault.name(),
            how: fault.how().to_owned(),
            sent: 0,
            accepted: 0,
            refused: BTreeMap::new(),
            unanswered: BTreeMap::new(),
            requests: 0,
            confirmed: 0,
            lost: 0,
            duplicated: 0,
            recovery_s: None,
            drain_s: None,
            fault_latency_s: None,
            latency_s: None,
            restarts: 0,
            reads: (0, 0),
            totals: None,
            alerts: None,
            problems: vec![format!("the row could not run: {error}")],
            passed: false,
            skipped: false,
        }
    }
}

fn secs(v: Option<f64>) -> String {
    v.map_or("—".to_owned(), |s| format!("{s:.1}"))
}

fn pair(v: Option<(f64, f64)>) -> String {
    v.map_or("—".to_owned(), |(a, b)| format!("{a:.1} / {b:.1}"))
}

fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "0".to_owned();
    }
    let total: u64 = m.values().sum();
    let kinds: Vec<String> = m.iter().map(|(k, v)| format!("{v} {k}")).collect();
    format!("{total} ({})", kinds.join("; "))
}

/// The table in Markdown.
pub fn markdown(rows: &[Row], events: u64, rate: u32) -> String {
    let mut out = format!(
        "# Fault matrix\n\n{events} events per row at {rate}/s; lost and duplicated are checked on chain \
         (`balanceOf`, `refUsed`, `totalMinted`, `totalBurned`) and at the payout provider.\n\n\
         | fault | how | sent | accepted | refused | unanswered | confirmed | **lost** | **duplicated** | recovery s | drain s | accepted→confirmed p50/p99 s during fault | over run | restarts | alerts raised | result |\n\
         |---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    );
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | **{}** | **{}** | {} | {} | {} | {} | {} | {} | {} |",
            r.fault,
            r.how,
            r.sent,
            r.accepted,
            counts(&r.refused),
            counts(&r.unanswered),
            r.confirmed,
            r.lost,
            r.duplicated,
            secs(r.recovery_s),
            secs(r.drain_s),
            pair(r.fault_latency_s),
            pair(r.latency_s),
            r.restarts,
            r.alerts
                .as_ref()
                .map_or("not checked".to_owned(), |a| if a.is_empty() {
                    "none".to_owned()
                } else {
                    a.join(", ")
                }),
            match (r.skipped, r.passed) {
                (true, _) => "skipped",
                (false, true) => "pass",
                (false, false) => "FAIL",
            },
        );
    }
    let troubled: Vec<&Row> = rows.iter().filter(|r| !r.problems.is_empty()).collect();
    if !troubled.is_empty() {
        out.push_str("\n## Problems\n");
        for r in troubled {
            let _ = writeln!(out, "\n### {}\n", r.fault);
            for p in &r.problems {
                let _ = writeln!(out, "- {p}");
            }
        }
    }
    out
}

/// Writes `latest.md` and `latest.json` into `dir`.
pub fn write(dir: &Path, rows: &[Row], events: u64, rate: u32) -> anyhow::Result<()> {
    let md = dir.join("latest.md");
    std::fs::write(&md, markdown(rows, events, rate))
        .with_context(|| format!("write {}", md.display()))?;
    let json = dir.join("latest.json");
    let body = serde_json::json!({ "events": events, "rate": rate, "rows": rows });
    std::fs::write(&json, serde_json::to_vec_pretty(&body)?)
        .with_context(|| format!("write {}", json.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn timing(drained: Option<Duration>) -> Timing {
        Timing {
            recovery: drained,
            drained,
            during: None,
            all: None,
        }
    }

    #[test]
    fn a_row_with_a_loss_fails_and_says_why() {
        let verdict = Verdict {
            confirmed: 9,
            lost: 1,
            problems: vec!["aurora:booking:b-1: no reward".to_owned()],
            ..Verdict::default()
        };
        let row = Row::new(
            Fault::KillChainMinter,
            &[],
            verdict,
            timing(Some(Duration::from_secs(2))),
            1,
            (0, 0),
        );
        assert!(!row.passed);
        let md = markdown(&[row], 10, 5);
        assert!(
            md.contains("| kill-chain-minter | kill -9 chain-minter |"),
            "{md}"
        );
        assert!(md.contains("| **1** | **0** |"), "{md}");
        assert!(md.contains("| not checked | FAIL |"), "{md}");
        assert!(md.contains("FAIL"), "{md}");
        assert!(md.contains("- aurora:booking:b-1: no reward"), "{md}");
    }

    #[test]
    fn a_row_that_never_drained_fails_even_with_nothing_missing() {
        let row = Row::new(
            Fault::RpcCut,
            &[],
            Verdict::default(),
            timing(None),
            0,
            (0, 0),
        );
        assert!(!row.passed);
        assert_eq!(
            row.problems[0],
            "the backlog did not drain within the timeout"
        );
        let mut quiet = Row::new(
            Fault::None,
            &[],
            Verdict::default(),
            timing(Some(Duration::ZERO)),
            0,
            (0, 0),
        );
        assert!(quiet.passed);
        quiet.check_alerts(
            Fault::None,
            BTreeSet::from(["HavenServiceDown (pending)".to_owned()]),
        );
        assert!(!quiet.passed, "a quiet run must raise no alert");
        let mut cut = Row::new(
            Fault::BrokerCut,
            &[],
            Verdict::default(),
            timing(Some(Duration::ZERO)),
            0,
            (0, 0),
        );
        cut.check_alerts(
            Fault::BrokerCut,
            BTreeSet::from(["HavenDependencyDown (pending)".to_owned()]),
        );
        assert!(cut.passed, "{:?}", cut.problems);
        cut.check_alerts(Fault::BrokerCut, BTreeSet::new());
        assert!(!cut.passed);
        let skipped = Row::skipped(Fault::BrokerNodeLost, "no cluster here");
        assert!(skipped.passed && skipped.skipped);
        assert!(markdown(&[skipped], 10, 5).contains("| skipped |"));
    }
}
