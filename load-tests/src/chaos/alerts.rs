//! The production alert rules (`deploy/prometheus/alerts.yml`), evaluated
//! during a row by a real Prometheus scraping the row's services every 2 s,
//! as the deployed one scrapes them (job `haven`). After the row, the alerts
//! that were pending or firing at any moment are read back from its
//! `ALERTS` series, so the table shows which alerts a fault raises, and a
//! fault that should raise one and did not (or a quiet run that raised one)
//! is a problem of its row.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use anyhow::{Context as _, bail};
use serde_json::Value;
use tokio::process::{Child, Command};
use tokio::time::Instant;

use super::process::free_port;

/// Scrape and rule evaluation interval.
const INTERVAL: &str = "2s";

/// A Prometheus evaluating the alert rules against one row's services.
#[derive(Debug)]
pub struct Prometheus {
    child: Child,
    url: String,
    started: Instant,
}

impl Prometheus {
    /// Starts `bin` with `rules`, scraping `targets` (`(service, base URL)`)
    /// as job `haven`, its data and config in `dir`.
    pub async fn start(
        bin: &Path,
        rules: &Path,
        dir: &Path,
        targets: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let data = dir.join("prometheus");
        let _ = std::fs::remove_dir_all(&data);
        std::fs::create_dir_all(&data)?;
        let rules = std::fs::canonicalize(rules)
            .with_context(|| format!("alert rules {}", rules.display()))?;
        let config = data.join("prometheus.yml");
        std::fs::write(&config, config_yaml(&rules, targets))?;
        let port = free_port()?;
        let log = std::fs::File::create(data.join("prometheus.log"))?;
        let child = Command::new(bin)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                data.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("start {}", bin.display()))?;
        let prometheus = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            started: Instant::now(),
        };
        let client = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = client
                .get(format!("{}/-/ready", prometheus.url))
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            if ready {
                return Ok(prometheus);
            }
            if Instant::now() > deadline {
                bail!(
                    "Prometheus was not ready within 30 s (log in {})",
                    data.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// `alertname (state)` of every alert pending or firing at any moment
    /// since the start.
    pub async fn seen(&self) -> anyhow::Result<BTreeSet<String>> {
        let range = self.started.elapsed().as_secs() + 5;
        let query = format!("count by (alertname, alertstate) (max_over_time(ALERTS[{range}s]))");
        let body: Value = reqwest::Client::new()
            .get(format!("{}/api/v1/query", self.url))
            .query(&[("query", query)])
            .send()
            .await
            .context("query Prometheus")?
            .json()
            .await
            .context("Prometheus's answer")?;
        let results = body
            .pointer("/data/result")
            .and_then(Value::as_array)
            .with_context(|| format!("unexpected answer from Prometheus: {body}"))?;
        Ok(results
            .iter()
            .filter_map(|r| {
                let metric = r.get("metric")?;
                Some(format!(
                    "{} ({})",
                    metric.get("alertname")?.as_str()?,
                    metric.get("alertstate")?.as_str()?
                ))
            })
            .collect())
    }

    /// Stops it.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// The scrape configuration: every service under job `haven`, labelled
/// `app` with its name, as `deploy/prometheus/prometheus.yml` does.
fn config_yaml(rules: &Path, targets: &[(String, String)]) -> String {
    let mut out = format!(
        "global:\n  scrape_interval: {INTERVAL}\n  evaluation_interval: {INTERVAL}\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: haven\n    static_configs:\n",
        rules.display()
    );
    for (service, url) in targets {
        let host = url.trim_start_matches("http://");
        let _ = write!(
            out,
            "      - targets: [\"{host}\"]\n        labels:\n          app: {service}\n"
        );
    }
    out
}

/// Where the matrix finds the rules, from the workspace's root.
pub const DEFAULT_RULES: &str = "deploy/prometheus/alerts.yml";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_service_is_scraped_under_job_haven_with_its_name() {
        let yaml = config_yaml(
            Path::new("/r/alerts.yml"),
            &[
                (
                    "webhook-ingress".to_owned(),
                    "http://127.0.0.1:4000".to_owned(),
                ),
                (
                    "chain-minter".to_owned(),
                    "http://127.0.0.1:4001".to_owned(),
                ),
            ],
        );
        assert!(yaml.contains("rule_files:\n  - /r/alerts.yml\n"), "{yaml}");
        assert!(yaml.contains("- job_name: haven\n"), "{yaml}");
        assert!(
            yaml.contains(
                "- targets: [\"127.0.0.1:4001\"]\n        labels:\n          app: chain-minter\n"
            ),
            "{yaml}"
        );
    }
}
