//! Checks that the operations documentation matches the code.
//!
//! The table of `docs/metrics.md` ([`METRICS_DOC`]) promises every metric
//! the services export, with its type, labels and meaning. [`compare`] holds that table
//! against two sources of truth:
//! - what running services export at `/metrics` ([`parse_exposition`]):
//!   name, type and label names of every family that has a sample;
//! - every metric name constant in the code ([`declared_metrics`]), so a
//!   labelled metric that saw no traffic in the test (and so exports no
//!   sample yet) still needs its row, and a row needs a metric behind it.
//!
//! The integration test `tests/metrics_table.rs` starts the five services
//! against the real database, broker and chain, drives some traffic and
//! calls [`compare`]; each problem names the exact row to add, fix or drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// The page that holds the metrics table, relative to the workspace root.
pub const METRICS_DOC: &str = "docs/metrics.md";

/// Constant label every metric carries; not listed in the table.
pub const SERVICE_LABEL: &str = "service";

/// A Prometheus metric type, as the metrics table and `# TYPE` lines spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum MetricType {
    /// `counter`
    Counter,
    /// `gauge`
    Gauge,
    /// `histogram`
    Histogram,
    /// `summary`
    Summary,
}

impl MetricType {
    fn parse(text: &str) -> Option<Self> {
        match text {
            "counter" => Some(Self::Counter),
            "gauge" => Some(Self::Gauge),
            "histogram" => Some(Self::Histogram),
            "summary" => Some(Self::Summary),
            _ => None,
        }
    }
}

impl fmt::Display for MetricType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
            Self::Summary => "summary",
        })
    }
}

/// One row of the metrics table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row {
    /// Metric name.
    pub name: String,
    /// Its type.
    pub kind: MetricType,
    /// Label names besides `service`.
    pub labels: BTreeSet<String>,
    /// 1-based line in [`METRICS_DOC`].
    pub line: usize,
}

/// Reads the first table under the `Metrics` heading (`# Metrics`, the
/// page's title, or `## Metrics`) of the metrics page. A malformed row is an
/// error naming its line.
pub fn metrics_rows(page: &str) -> Result<Vec<Row>, Vec<String>> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    let mut in_section = false;
    let mut seen_table = false;
    let mut header_done = false;
    for (index, line) in page.lines().enumerate() {
        let number = index + 1;
        if let Some(title) = heading(line) {
            if in_section {
                break;
            }
            in_section = title == "Metrics";
            continue;
        }
        if !in_section {
            continue;
        }
        let trimmed = line.trim();
        if !trimmed.starts_with('|') {
            if seen_table {
                break;
            }
            continue;
        }
        seen_table = true;
        let cells: Vec<&str> = trimmed
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        if !header_done {
            if cells.first() != Some(&"metric") {
                errors.push(format!(
                    "{METRICS_DOC}:{number}: the metrics table must start with `| metric | type | labels | meaning |`"
                ));
            }
            header_done = true;
            continue;
        }
        if cells
            .iter()
            .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
        {
            continue;
        }
        if cells.len() != 4 {
            errors.push(format!(
                "{METRICS_DOC}:{number}: a metrics row has 4 cells (metric | type | labels | meaning), this one has {}",
                cells.len()
            ));
            continue;
        }
        let Some(name) = backticked(cells[0]) else {
            errors.push(format!(
                "{METRICS_DOC}:{number}: write the metric name in backticks, e.g. `haven_x_total`"
            ));
            continue;
        };
        let Some(kind) = MetricType::parse(cells[1]) else {
            errors.push(format!(
                "{METRICS_DOC}:{number}: `{name}`: type `{}` is not counter, gauge, histogram or summary",
                cells[1]
            ));
            continue;
        };
        let mut labels = BTreeSet::new();
        for label in cells[2].split(',').map(str::trim).filter(|l| !l.is_empty()) {
            match backticked(label) {
                Some(label) => {
                    labels.insert(label.to_owned());
                }
                None => errors.push(format!(
                    "{METRICS_DOC}:{number}: `{name}`: write each label in backticks, comma-separated"
                )),
            }
        }
        if cells[3].is_empty() {
            errors.push(format!(
                "{METRICS_DOC}:{number}: `{name}`: say what it means"
            ));
        }
        if let Some(first) = rows.iter().find(|r: &&Row| r.name == name) {
            errors.push(format!(
                "{METRICS_DOC}:{number}: `{name}` has a row already at line {}",
                first.line
            ));
            continue;
        }
        rows.push(Row {
            name: name.to_owned(),
            kind,
            labels,
            line: number,
        });
    }
    if !seen_table {
        errors.push(format!("{METRICS_DOC} has no table under `# Metrics`"));
    }
    if errors.is_empty() {
        Ok(rows)
    } else {
        Err(errors)
    }
}

/// The text of a Markdown heading line (`# Title`, `## Title`, ...).
fn heading(line: &str) -> Option<&str> {
    let text = line.trim_start_matches('#');
    (text.len() < line.len() && text.starts_with(' ')).then(|| text.trim())
}

fn backticked(cell: &str) -> Option<&str> {
    let inner = cell.strip_prefix('`')?.strip_suffix('`')?;
    (!inner.is_empty() && !inner.contains('`')).then_some(inner)
}

/// One exported metric family, merged over the services that export it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// Type from its `# TYPE` line.
    pub kind: MetricType,
    /// Label names on its samples, besides `service` (and `le`/`quantile`).
    pub labels: BTreeSet<String>,
    /// Services exporting it (their `service` label).
    pub services: BTreeSet<String>,
}

/// Families of one `/metrics` body (Prometheus text format 0.0.4), keyed
/// by name. Only families with at least one sample appear. Every sample
/// must carry `service="<service>"`.
pub fn parse_exposition(service: &str, text: &str) -> Result<BTreeMap<String, Family>, String> {
    let mut types: BTreeMap<String, MetricType> = BTreeMap::new();
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(rest) = line.strip_prefix('#') {
            let mut words = rest.split_whitespace();
            if words.next() == Some("TYPE") {
                let (Some(name), Some(kind)) = (words.next(), words.next()) else {
                    return Err(format!("{service} /metrics:{number}: malformed TYPE line"));
                };
                let kind = MetricType::parse(kind)
                    .ok_or_else(|| format!("{service} /metrics:{number}: unknown type {kind}"))?;
                types.insert(name.to_owned(), kind);
            }
            continue;
        }
        let (name, labels) = parse_sample(line)
            .map_err(|why| format!("{service} /metrics:{number}: {why}: {line}"))?;
        let (family, kind) = family_of(&name, &types)
            .ok_or_else(|| format!("{service} /metrics:{number}: {name} has no TYPE line"))?;
        let mut names = BTreeSet::new();
        let mut service_value = None;
        for (label, value) in labels {
            if label == SERVICE_LABEL {
                service_value = Some(value);
            } else if !is_bucket_label(kind, &label) {
                names.insert(label);
            }
        }
        if service_value.as_deref() != Some(service) {
            return Err(format!(
                "{service} /metrics:{number}: {name} does not carry service=\"{service}\""
            ));
        }
        let entry = families.entry(family).or_insert_with(|| Family {
            kind,
            labels: BTreeSet::new(),
            services: BTreeSet::new(),
        });
        entry.labels.extend(names);
        entry.services.insert(service.to_owned());
    }
    Ok(families)
}

/// `le` of a histogram and `quantile` of a summary belong to the sample
/// format, not to the family's labels.
fn is_bucket_label(kind: MetricType, label: &str) -> bool {
    matches!(
        (kind, label),
        (MetricType::Histogram, "le") | (MetricType::Summary, "quantile")
    )
}

/// The family a sample belongs to: its own name, or a histogram/summary
/// base name for `_bucket`, `_sum` and `_count`.
fn family_of(name: &str, types: &BTreeMap<String, MetricType>) -> Option<(String, MetricType)> {
    if let Some(kind) = types.get(name) {
        return Some((name.to_owned(), *kind));
    }
    ["_bucket", "_sum", "_count"].iter().find_map(|suffix| {
        let base = name.strip_suffix(suffix)?;
        match types.get(base) {
            Some(kind @ (MetricType::Histogram | MetricType::Summary)) => {
                Some((base.to_owned(), *kind))
            }
            _ => None,
        }
    })
}

/// A sample's metric name and its `(label, value)` pairs.
type Sample = (String, Vec<(String, String)>);

/// Splits `name{a="x",b="y"} value` into the name and its labels; label
/// values may hold any character, escaped as the text format says.
fn parse_sample(line: &str) -> Result<Sample, &'static str> {
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .ok_or("no value")?;
    let name = &line[..name_end];
    if name.is_empty() {
        return Err("no metric name");
    }
    let mut labels = Vec::new();
    let rest = &line[name_end..];
    let Some(inner) = rest.strip_prefix('{') else {
        return Ok((name.to_owned(), labels));
    };
    let mut chars = inner.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| *c == ',' || c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            Some('}') => break,
            None => return Err("unterminated labels"),
            _ => {}
        }
        let mut label = String::new();
        for c in chars.by_ref() {
            if c == '=' {
                break;
            }
            label.push(c);
        }
        if chars.next() != Some('"') {
            return Err("label value not quoted");
        }
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('n') => value.push('\n'),
                    Some(c) => value.push(c),
                    None => return Err("unterminated label value"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => return Err("unterminated label value"),
            }
        }
        labels.push((label.trim().to_owned(), value));
    }
    Ok((name.to_owned(), labels))
}

/// Merges the families of several services.
pub fn merge(
    into: &mut BTreeMap<String, Family>,
    from: BTreeMap<String, Family>,
) -> Result<(), String> {
    for (name, family) in from {
        match into.get_mut(&name) {
            None => {
                into.insert(name, family);
            }
            Some(existing) => {
                if existing.kind != family.kind {
                    return Err(format!(
                        "{name} is a {} in {:?} but a {} in {:?}",
                        existing.kind, existing.services, family.kind, family.services
                    ));
                }
                existing.labels.extend(family.labels);
                existing.services.extend(family.services);
            }
        }
    }
    Ok(())
}

/// Every metric name constant in the product code of the shared crates and
/// services: `const NAME: &str = "haven_...";`, outside test helpers
/// (`src/testing/`) and `tests/`. Name -> the file declaring it.
pub fn declared_metrics(root: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut found = BTreeMap::new();
    for top in ["shared", "services"] {
        let dir = root.join(top);
        if !dir.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&dir)? {
            let src = entry?.path().join("src");
            if src.is_dir() {
                scan(&src, root, &mut found)?;
            }
        }
    }
    Ok(found)
}

fn scan(dir: &Path, root: &Path, found: &mut BTreeMap<String, PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n == "testing") {
                continue;
            }
            scan(&path, root, found)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path)?;
            for name in metric_constants(&text) {
                let relative = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                found.entry(name).or_insert(relative);
            }
        }
    }
    Ok(())
}

/// `haven_*` values of `const X: &str = "...";` items in Rust source.
pub fn metric_constants(source: &str) -> Vec<String> {
    let mut names = Vec::new();
    for line in source.lines() {
        let line = line.trim();
        let Some(rest) = line
            .strip_prefix("pub const ")
            .or_else(|| line.strip_prefix("pub(crate) const "))
            .or_else(|| line.strip_prefix("const "))
        else {
            continue;
        };
        let Some((_, value)) = rest.split_once(": &str = \"") else {
            continue;
        };
        let Some(value) = value.strip_suffix("\";") else {
            continue;
        };
        let is_metric = value.starts_with("haven_")
            && value.len() > "haven_".len()
            && !value.ends_with('_')
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if is_metric {
            names.push(value.to_owned());
        }
    }
    names
}

/// What [`compare`] found.
#[derive(Debug, Default)]
pub struct Report {
    /// Each a full sentence naming the row to add, fix or remove.
    pub problems: Vec<String>,
    /// Rows checked against a live sample: type and labels.
    pub verified: Vec<String>,
    /// Rows whose metric had no sample in this run: name checked only.
    pub name_only: Vec<String>,
}

fn label_list(labels: &BTreeSet<String>) -> String {
    labels
        .iter()
        .map(|l| format!("`{l}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn services(family: &Family) -> String {
    family
        .services
        .iter()
        .cloned()
        .collect::<Vec<_>>()
        .join(", ")
}

/// Holds the metrics table's rows against what the services exported and what the
/// code declares.
pub fn compare(
    rows: &[Row],
    exported: &BTreeMap<String, Family>,
    declared: &BTreeMap<String, PathBuf>,
) -> Report {
    let mut report = Report::default();
    let by_name: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.name.as_str(), r)).collect();

    for (name, family) in exported {
        if !name.starts_with("haven_") {
            report.problems.push(format!(
                "{name} (exported by {}) does not start with `haven_`: every HAVEN metric does",
                services(family)
            ));
            continue;
        }
        let Some(row) = by_name.get(name.as_str()) else {
            report.problems.push(format!(
                "{METRICS_DOC} has no row for `{name}` (exported by {}). Add:\n      | `{name}` | {} | {} | <what it means> |",
                services(family),
                family.kind,
                label_list(&family.labels)
            ));
            continue;
        };
        let mut ok = true;
        if row.kind != family.kind {
            ok = false;
            report.problems.push(format!(
                "{METRICS_DOC}:{}: `{name}` is listed as a {}, but {} exports a {}. Fix the row:\n      | `{name}` | {} | {} | ... |",
                row.line,
                row.kind,
                services(family),
                family.kind,
                family.kind,
                label_list(&family.labels)
            ));
        }
        if row.labels != family.labels {
            ok = false;
            let extra: BTreeSet<String> = row.labels.difference(&family.labels).cloned().collect();
            let missing: BTreeSet<String> =
                family.labels.difference(&row.labels).cloned().collect();
            let mut why = Vec::new();
            if !missing.is_empty() {
                why.push(format!("exported but not listed: {}", label_list(&missing)));
            }
            if !extra.is_empty() {
                why.push(format!("listed but not exported: {}", label_list(&extra)));
            }
            report.problems.push(format!(
                "{METRICS_DOC}:{}: `{name}` labels differ from what {} exports ({}). Fix the labels cell:\n      | `{name}` | {} | {} | ... |",
                row.line,
                services(family),
                why.join("; "),
                family.kind,
                label_list(&family.labels)
            ));
        }
        if ok {
            report.verified.push(name.clone());
        }
    }

    for (name, file) in declared {
        if exported.contains_key(name) {
            continue;
        }
        if !by_name.contains_key(name.as_str()) {
            report.problems.push(format!(
                "{METRICS_DOC} has no row for `{name}` (declared in {}; no sample in this test run, so check its type and labels there). Add:\n      | `{name}` | <counter, gauge or histogram> | <labels> | <what it means> |",
                file.display()
            ));
        }
    }

    for row in rows {
        if exported.contains_key(&row.name) {
            continue;
        }
        if declared.contains_key(&row.name) {
            report.name_only.push(row.name.clone());
        } else {
            report.problems.push(format!(
                "{METRICS_DOC}:{}: row `{}` names a metric no service declares (no `const ...: &str = \"{}\"` in shared/ or services/): remove the row or fix the name",
                row.line, row.name, row.name
            ));
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "Intro.\n\n# Metrics\n\nText.\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n| `haven_a_total` | counter | `route`, `status` | requests |\n| `haven_b` | gauge | | depth |\n| `haven_c_seconds` | histogram | `queue` | time |\n\nAfter.\n\n## Next\n| `haven_not_in_section` | gauge | | x |\n";

    const EXPOSITION: &str = r#"# HELP haven_a_total Requests.
# TYPE haven_a_total counter
haven_a_total{route="/token/balance/{user_id}",status="200",service="read-api"} 3
haven_a_total{route="a,b=\"c\"",status="404",service="read-api"} 1
# TYPE haven_b gauge
haven_b{service="read-api"} 0
# TYPE haven_c_seconds histogram
haven_c_seconds_bucket{queue="q",le="0.5",service="read-api"} 1
haven_c_seconds_bucket{queue="q",le="+Inf",service="read-api"} 1
haven_c_seconds_sum{queue="q",service="read-api"} 0.2
haven_c_seconds_count{queue="q",service="read-api"} 1
# TYPE haven_empty_total counter
"#;

    fn declared(names: &[&str]) -> BTreeMap<String, PathBuf> {
        names
            .iter()
            .map(|n| ((*n).to_owned(), PathBuf::from("services/x/src/metrics.rs")))
            .collect()
    }

    #[test]
    fn rows_are_read_from_the_metrics_section_only() {
        let rows = metrics_rows(PAGE).expect("well-formed");
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "haven_a_total");
        assert_eq!(rows[0].kind, MetricType::Counter);
        assert_eq!(
            rows[0].labels,
            BTreeSet::from(["route".to_owned(), "status".to_owned()])
        );
        assert_eq!(rows[0].line, 9);
        assert!(rows[1].labels.is_empty());
        assert_eq!(rows[2].kind, MetricType::Histogram);
    }

    #[test]
    fn malformed_rows_are_reported_with_their_line() {
        let bad = "## Metrics\n| metric | type | labels | meaning |\n|---|---|---|---|\n| haven_x | counter | | a |\n| `haven_y` | countr | | b |\n| `haven_z` | gauge | status | c |\n| `haven_w` | gauge | |\n| `haven_v` | gauge | | d |\n| `haven_v` | gauge | | again |\n";
        let errors = metrics_rows(bad).expect_err("malformed");
        assert_eq!(errors.len(), 5, "{errors:#?}");
        assert!(errors[0].starts_with("docs/metrics.md:4:"), "{}", errors[0]);
        assert!(errors[1].contains("`countr`"), "{}", errors[1]);
        assert!(errors[2].contains("backticks"), "{}", errors[2]);
        assert!(errors[3].contains("4 cells"), "{}", errors[3]);
        assert!(errors[4].contains("row already at line 8"), "{}", errors[4]);
        assert!(metrics_rows("# nothing\n").is_err());
    }

    #[test]
    fn exposition_families_carry_types_and_label_names() {
        let families = parse_exposition("read-api", EXPOSITION).expect("parsed");
        assert_eq!(
            families.keys().collect::<Vec<_>>(),
            ["haven_a_total", "haven_b", "haven_c_seconds"],
            "a family without samples is not exported"
        );
        let a = &families["haven_a_total"];
        assert_eq!(a.kind, MetricType::Counter);
        assert_eq!(
            a.labels,
            BTreeSet::from(["route".to_owned(), "status".to_owned()])
        );
        let c = &families["haven_c_seconds"];
        assert_eq!(c.kind, MetricType::Histogram);
        assert_eq!(
            c.labels,
            BTreeSet::from(["queue".to_owned()]),
            "le is not a label of the family"
        );
        assert_eq!(c.services, BTreeSet::from(["read-api".to_owned()]));
    }

    #[test]
    fn samples_without_the_service_label_or_type_are_errors() {
        let missing = "# TYPE haven_a gauge\nhaven_a 1\n";
        assert!(
            parse_exposition("x", missing)
                .unwrap_err()
                .contains("service=\"x\"")
        );
        let wrong = "# TYPE haven_a gauge\nhaven_a{service=\"y\"} 1\n";
        assert!(parse_exposition("x", wrong).is_err());
        let untyped = "haven_a{service=\"x\"} 1\n";
        assert!(
            parse_exposition("x", untyped)
                .unwrap_err()
                .contains("no TYPE")
        );
        let broken = "# TYPE haven_a gauge\nhaven_a{service=\"x} 1\n";
        assert!(parse_exposition("x", broken).is_err());
    }

    #[test]
    fn a_matching_table_passes_and_unsampled_rows_are_checked_by_name() {
        let rows = metrics_rows(PAGE).unwrap();
        let exported = parse_exposition("read-api", EXPOSITION).unwrap();
        let report = compare(
            &rows,
            &exported,
            &declared(&["haven_a_total", "haven_b", "haven_c_seconds"]),
        );
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!(report.verified.len(), 3);

        let mut fewer = exported.clone();
        fewer.remove("haven_c_seconds");
        let report = compare(
            &rows,
            &fewer,
            &declared(&["haven_a_total", "haven_b", "haven_c_seconds"]),
        );
        assert!(report.problems.is_empty(), "{:#?}", report.problems);
        assert_eq!(report.name_only, ["haven_c_seconds"]);
    }

    #[test]
    fn each_mismatch_names_the_row_to_add_or_fix() {
        let rows = metrics_rows(PAGE).unwrap();
        let mut exported = parse_exposition("read-api", EXPOSITION).unwrap();
        exported.get_mut("haven_b").unwrap().kind = MetricType::Counter;
        exported
            .get_mut("haven_a_total")
            .unwrap()
            .labels
            .insert("method".to_owned());
        exported.insert(
            "haven_new_total".to_owned(),
            Family {
                kind: MetricType::Counter,
                labels: BTreeSet::from(["kind".to_owned()]),
                services: BTreeSet::from(["chain-minter".to_owned()]),
            },
        );
        let report = compare(
            &rows,
            &exported,
            &declared(&[
                "haven_a_total",
                "haven_b",
                "haven_c_seconds",
                "haven_new_total",
                "haven_quiet",
            ]),
        );
        let all = report.problems.join("\n");
        assert_eq!(report.problems.len(), 4, "{all}");
        assert!(
            all.contains("| `haven_new_total` | counter | `kind` | <what it means> |"),
            "{all}"
        );
        assert!(all.contains("exported by chain-minter"), "{all}");
        assert!(
            all.contains(
                "docs/metrics.md:10: `haven_b` is listed as a gauge, but read-api exports a counter"
            ),
            "{all}"
        );
        assert!(
            all.contains("docs/metrics.md:9: `haven_a_total` labels differ"),
            "{all}"
        );
        assert!(all.contains("exported but not listed: `method`"), "{all}");
        assert!(
            all.contains("no row for `haven_quiet` (declared in services/x/src/metrics.rs"),
            "{all}"
        );
    }

    #[test]
    fn a_row_without_a_metric_in_the_code_is_reported() {
        let rows = metrics_rows(PAGE).unwrap();
        let exported = parse_exposition("read-api", EXPOSITION).unwrap();
        let mut exported_less = exported.clone();
        exported_less.remove("haven_b");
        let report = compare(
            &rows,
            &exported_less,
            &declared(&["haven_a_total", "haven_c_seconds"]),
        );
        assert_eq!(report.problems.len(), 1, "{:#?}", report.problems);
        assert!(
            report.problems[0]
                .contains("docs/metrics.md:10: row `haven_b` names a metric no service declares")
        );
    }

    #[test]
    fn metric_constants_are_found_in_source() {
        let source = "pub const A: &str = \"haven_a_total\";\nconst B: &str = \"haven_b\";\npub(crate) const C: &str = \"haven_c_seconds\";\npub const LABEL: &str = \"queue\";\npub const PREFIX: &str = \"haven_test_\";\nlet x = \"haven_not_a_const\";\npub const Q: &str = \"haven.events\";\n";
        assert_eq!(
            metric_constants(source),
            ["haven_a_total", "haven_b", "haven_c_seconds"]
        );
    }

    #[test]
    fn families_of_several_services_merge_and_must_agree_on_type() {
        let mut all = parse_exposition("read-api", EXPOSITION).unwrap();
        let other = parse_exposition(
            "chain-minter",
            "# TYPE haven_b gauge\nhaven_b{service=\"chain-minter\",queue=\"q\"} 2\n",
        )
        .unwrap();
        merge(&mut all, other).unwrap();
        assert_eq!(all["haven_b"].services.len(), 2);
        assert_eq!(all["haven_b"].labels, BTreeSet::from(["queue".to_owned()]));
        let clash = parse_exposition(
            "chain-minter",
            "# TYPE haven_b counter\nhaven_b{service=\"chain-minter\"} 2\n",
        )
        .unwrap();
        assert!(merge(&mut all, clash).is_err());
    }
}
