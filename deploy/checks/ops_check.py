#!/usr/bin/env python3
"""Checks of the deployment files (run by `cargo xtask test`, step
"deployment files"; the step installs the tools into target/ops-tools first).

    python deploy/checks/ops_check.py --tools target/ops-tools [CHECK ...]
    python deploy/checks/ops_check.py sync-rules

Checks (all by default):
  dockerfile  hadolint, and the binaries/packages it ships exist in the workspace
  compose     docker-compose.yml through the compose-spec parser, plus
              consistency with the services' settings, ports, .env.example
  k8s         every kustomization under k8s/ rendered with `kubectl kustomize`,
              built-in kinds checked against the bundled Kubernetes schemas
              (kubernetes-validate, strict), custom resources against
              deploy/schemas/, plus probes, drain time, autoscaling on the
              queues of shared/messages/src/names.rs, secrets by reference
  prometheus  promtool check config / check rules / test rules
  grafana     the dashboard: every query parses (promtool), every metric is
              in the metrics table (docs/metrics.md), the required panels exist
  proxy       caddy validate, then the real Caddyfile run against two local
              stand-ins to check which upstream each path reaches

`sync-rules` rewrites k8s/base/prometheus-rule.yaml from
deploy/prometheus/alerts.yml (the k8s check fails when they differ).

Each check prints what it verified; the first failing check is reported
with every problem it found, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import http.server
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]

# The five services: name -> role. Ports come from each config.rs.
SERVICES = {
    "webhook-ingress": "api",
    "read-api": "api",
    "reward-calculator": "worker",
    "chain-minter": "worker",
    "redemption-payout": "worker",
}

# Settings a deployment must give each service (their defaults point at
# localhost or they have none). docs/configuration.md explains each.
# A tuple means "one of these".
MUST_SET = {
    "webhook-ingress": ["DATABASE_URL", "AMQP_URL", "AURORA_WEBHOOK_SECRET", "TRIBE_WEBHOOK_SECRET", "API_KEYS"],
    "read-api": ["DATABASE_URL", "READ_API_KEYS"],
    "reward-calculator": ["DATABASE_URL", "AMQP_URL", "CUSTODY_XPUB"],
    "chain-minter": ["DATABASE_URL", "AMQP_URL", "RPC_URL", "CONTRACT_ADDRESS", ("SIGNER_PRIVATE_KEYS", "SIGNER_MNEMONIC")],
    "redemption-payout": ["DATABASE_URL", "AMQP_URL", "PAYOUT_PROVIDER_URL"],
}


# Settings of the binaries that are not services (haven-deploy, migrate,
# the payout stand-in): allowed in the deployment files, not in
# docs/configuration.md.
TOOL_SETTINGS = {"DEPLOYER_PRIVATE_KEY", "DEPLOYMENT_FILE", "DEPLOY_JSON", "GRANT_MINTER_BURNER_TO",
                 "DATABASE_CONNECT_TIMEOUT_SECS", "MIGRATE_STEPS", "MIGRATE_ALL"}

# Metrics the dashboard and alerts may use besides HAVEN's own.
EXTERNAL_METRICS = {
    "up",
    # The broker's own per-queue figures (rabbitmq_prometheus,
    # /metrics/detailed?family=queue_coarse_metrics&family=queue_consumer_count):
    # the queue alerts read these so they fire with every consumer down.
    "rabbitmq_detailed_queue_messages",
    "rabbitmq_detailed_queue_consumers",
}

# What the dashboard must show (issue 9): metric -> why.
DASHBOARD_MUST_USE = {
    "haven_webhooks_total": "webhooks accepted/rejected by partner and reason",
    "haven_amqp_queue_messages": "queue depths",
    "haven_rewards_total": "rewards by rule",
    "haven_chain_transactions_total": "mints/burns by status",
    "haven_chain_batch_size": "batch sizes",
    "haven_chain_in_flight": "in-flight transactions",
    "haven_mint_since_acceptance_seconds": "webhook-to-confirmed latency",
    "haven_redemptions": "redemptions by state",
    "haven_payout_provider_errors_total": "payout provider errors",
    "haven_reconciliation_mismatches": "reconciliation mismatches",
    "haven_http_requests_total": "error rates per service",
    "haven_amqp_consumed_total": "consumer error rates per service",
}

# Alerts the rules must define (issue 9).
ALERTS_MUST_HAVE = {
    "HavenDeadLetterQueueNotEmpty": "dead-letter queue not empty",
    "HavenMintLatencyOverTarget": "mint latency over target",
    "HavenNonceGap": "nonce gap",
    "HavenReconciliationMismatch": "reconciliation mismatch",
    "HavenPayoutFailures": "payout failures",
    "HavenQueueWithoutConsumers": "messages waiting with every consumer down (issue 19)",
    "HavenSignerBalanceLow": "a signer running out of gas money (issue 19)",
    "HavenDatabasePoolSaturated": "database pool in full use (issue 19)",
    "HavenOutboxStalled": "outbox rows left unpublished (issue 19)",
    "HavenBuildVersionsDiffer": "build info: a rollout stuck half-way (issue 19)",
}

# Alerts that must read the broker's own metrics (issue 19): with every
# consumer down, no service reports its queue.
ALERTS_ON_BROKER_METRICS = ("HavenDeadLetterQueueNotEmpty", "HavenQueueBacklogGrowing", "HavenQueueWithoutConsumers")

# The pages holding the tables the checks read (see docs/).
CONFIGURATION_DOC = "docs/configuration.md"
METRICS_DOC = "docs/metrics.md"

SECRET_HINTS = ("SECRET", "PASSWORD", "PASS", "TOKEN", "MNEMONIC", "PRIVATE_KEY", "API_KEYS", "DATABASE_URL", "AMQP_URL", "RPC_URL", "XPUB")

KUBERNETES_VERSION = "1.32"

CUSTOM_RESOURCE_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "monitoring.coreos.com_v1_prometheusrule.json",
}


class CheckFailed(Exception):
    """A check found problems; the message lists every one."""


class Problems:
    """Collects problems so one run reports all of them."""

    def __init__(self, check: str):
        self.check = check
        self.items: list[str] = []

    def add(self, message: str) -> None:
        self.items.append(message)

    def expect(self, condition: bool, message: str) -> bool:
        if not condition:
            self.add(message)
        return condition

    def raise_if_any(self) -> None:
        if self.items:
            listing = "\n".join(f"  - {item}" for item in self.items)
            raise CheckFailed(f"{self.check}: {len(self.items)} problem(s):\n{listing}")


def info(message: str) -> None:
    print(f"    {message}", flush=True)


def warn(message: str) -> None:
    print(f"    warning: {message}", flush=True)


# ---------------------------------------------------------------- facts --


def read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def markdown_table(page: str, heading: str) -> list[list[str]]:
    """Rows (cells stripped) of the first table under the heading `heading`
    (`# heading` or `## heading`) of the docs page `page`."""
    match = re.search(rf"^#{{1,2}} {re.escape(heading)}\s*$(.*?)(?=^#{{1,6}} |\Z)", read(ROOT / page), re.M | re.S)
    if not match:
        raise CheckFailed(f"{page} has no `# {heading}` heading")
    rows = []
    in_table = False
    for line in match.group(1).splitlines():
        if line.startswith("|"):
            cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
            if not in_table:
                in_table = True  # header
                continue
            if all(set(cell) <= set("-: ") for cell in cells):
                continue
            rows.append(cells)
        elif in_table:
            break
    return rows


def readme_settings() -> set[str]:
    rows = markdown_table(CONFIGURATION_DOC, "Configuration")
    return {row[0].strip("`") for row in rows}


def readme_metrics() -> dict[str, dict]:
    rows = markdown_table(METRICS_DOC, "Metrics")
    metrics = {}
    for row in rows:
        name = row[0].strip("`")
        labels = {label.strip().strip("`") for label in row[2].split(",") if label.strip()} if len(row) > 2 else set()
        metrics[name] = {"type": row[1] if len(row) > 1 else "", "labels": labels}
    return metrics


def service_ports() -> dict[str, int]:
    ports = {}
    for name in SERVICES:
        text = read(ROOT / "services" / name / "src" / "config.rs")
        match = re.search(r"DEFAULT_PORT:\s*u16\s*=\s*(\d+)", text)
        if not match:
            raise CheckFailed(f"services/{name}/src/config.rs: no DEFAULT_PORT")
        ports[name] = int(match.group(1))
    return ports


def queue_names() -> list[str]:
    """Work queue names of shared/messages/src/names.rs (QueueSpec consts)."""
    text = read(ROOT / "shared" / "messages" / "src" / "names.rs")
    names = re.findall(r"QueueSpec\s*=\s*QueueSpec\s*\{\s*name:\s*\"([^\"]+)\"", text)
    if not names:
        raise CheckFailed("no QueueSpec found in shared/messages/src/names.rs")
    return names


def workspace_binaries() -> dict[str, str]:
    """bin target name -> package name, from cargo metadata."""
    out = subprocess.run(
        ["cargo", "metadata", "--no-deps", "--format-version", "1", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    bins = {}
    for package in json.loads(out)["packages"]:
        for target in package["targets"]:
            if "bin" in target["kind"]:
                bins[target["name"]] = package["name"]
    return bins


def grace_seconds(value: str) -> float:
    match = re.fullmatch(r"(\d+)(ms|s|m|h)", value.strip())
    if not match:
        raise CheckFailed(f"cannot read duration {value!r}")
    return int(match.group(1)) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[match.group(2)]


def default_grace() -> float:
    for row in markdown_table(CONFIGURATION_DOC, "Configuration"):
        if row[0].strip("`") == "SHUTDOWN_GRACE_PERIOD":
            return grace_seconds(row[2].strip("`"))
    raise CheckFailed(f"{CONFIGURATION_DOC} has no SHUTDOWN_GRACE_PERIOD row")


def source_files() -> list[Path]:
    """Product sources of the shared crates and services (no test helpers)."""
    files = []
    for top in ("shared", "services"):
        for path in sorted((ROOT / top).glob("*/src/**/*.rs")):
            if "testing" not in path.relative_to(ROOT).parts:
                files.append(path)
    return files


def declared_settings() -> set[str]:
    """Every `env = "NAME"` of a clap argument in the shared crates and services."""
    names = set()
    for path in source_files():
        names |= set(re.findall(r'\benv\s*=\s*"([A-Z][A-Z0-9_]*)"', read(path)))
    return names


def declared_metrics() -> set[str]:
    """Every metric name constant (`const X: &str = "haven_...";`)."""
    names = set()
    for path in source_files():
        names |= set(re.findall(r'const\s+[A-Z0-9_]+\s*:\s*&str\s*=\s*"(haven_[a-z0-9_]+)"\s*;', read(path)))
    return names


def check_setting_names(problems: Problems, where: str, names, settings: set[str]) -> None:
    declared = declared_settings()
    for name in sorted(names):
        if name in settings or name in TOOL_SETTINGS:
            continue
        if name in declared:
            warn(f"{where}: {name} is a setting in the code but has no row in {CONFIGURATION_DOC} yet")
            continue
        problems.add(f"{where}: {name} is not a setting of any service (neither in the code nor in {CONFIGURATION_DOC})")


def check_must_set(problems: Problems, where: str, service: str, names) -> None:
    for need in MUST_SET[service]:
        options = need if isinstance(need, tuple) else (need,)
        if not any(option in names for option in options):
            problems.add(f"{where}: {service} does not get {' or '.join(options)}")


# -------------------------------------------------------------- tooling --


class Tools:
    def __init__(self, root: Path):
        self.root = root
        venv_bin = root / "venv" / "bin"
        self.kubectl = venv_bin / "kubectl"
        self.hadolint = venv_bin / "hadolint"
        self.promtool = root / "bin" / "promtool"
        self.caddy = root / "bin" / "caddy"

    def need(self, path: Path) -> str:
        if not path.exists():
            raise CheckFailed(f"{path} is missing: run the check through `cargo xtask test`, which installs it")
        return str(path)


def run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=kwargs.pop("cwd", ROOT), capture_output=True, text=True, **kwargs)


def metric_names_in(expr: str) -> set[str]:
    """haven_* and other metric names a PromQL expression reads."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # label values
    stripped = re.sub(r"\{[^}]*\}", "{}", stripped)       # matchers
    stripped = re.sub(r"\[[^\]]*\]", "[]", stripped)       # ranges
    stripped = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", stripped)
    names = set()
    for token in re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", stripped):
        if token.startswith("haven_") or token in EXTERNAL_METRICS:
            names.add(token)
    return names


def base_metric(name: str, known: set[str]) -> str:
    for suffix in ("_bucket", "_sum", "_count"):
        if name.endswith(suffix) and name[: -len(suffix)] in known:
            return name[: -len(suffix)]
    return name


def check_metric_use(problems: Problems, where: str, names: set[str], documented: dict) -> set[str]:
    """Every metric a query reads is exported by a service (declared in the
    code) or external; a histogram suffix only on a histogram. A metric in
    the code without its row in docs/metrics.md is only warned about here: the
    metrics-table test (deploy/checks/tests/metrics_table.rs) fails on it."""
    declared = declared_metrics()
    used = set()
    for raw in sorted(names):
        name = base_metric(raw, declared | set(documented))
        used.add(name)
        if name in EXTERNAL_METRICS:
            continue
        if name not in declared:
            problems.add(f"{where}: metric {raw} is exported by no service (no `const ...: &str = \"{name}\"` in shared/ or services/)")
            continue
        kind = documented.get(name, {}).get("type")
        if kind is None:
            UNDOCUMENTED.add(name)
        elif raw != name and kind != "histogram":
            problems.add(f"{where}: {raw} but {name} is a {kind}, not a histogram")
    return used


UNDOCUMENTED: set[str] = set()


def report_undocumented() -> None:
    for name in sorted(UNDOCUMENTED):
        warn(f"{name} is exported but has no row in {METRICS_DOC} yet")


# ------------------------------------------------------------ dockerfile --


def check_dockerfile(tools: Tools) -> None:
    problems = Problems("dockerfile")
    result = run([tools.need(tools.hadolint), "--config", str(ROOT / "deploy" / "checks" / "hadolint.yaml"), "Dockerfile"])
    problems.expect(result.returncode == 0, f"hadolint:\n{result.stdout}{result.stderr}")
    info("hadolint: no findings" if result.returncode == 0 else "hadolint: findings")

    text = read(ROOT / "Dockerfile")
    bins = workspace_binaries()
    packages = set(re.findall(r"-p ([a-z0-9-]+)", re.search(r'ARG PACKAGES="([^"]+)"', text).group(1)))
    copied = set(re.findall(r"target/release/([a-z0-9-]+)", text))
    for package in sorted(packages):
        problems.expect(package in bins.values(), f"Dockerfile builds package {package}, which has no binary in the workspace")
    for binary in sorted(copied):
        problems.expect(binary in bins, f"Dockerfile copies {binary}, which is no binary of the workspace")
        problems.expect(bins.get(binary) in packages, f"Dockerfile copies {binary} but does not build its package {bins.get(binary)}")
    for binary, package in sorted(bins.items()):
        if package in packages:
            problems.expect(binary in copied, f"package {package} has binary {binary} that the Dockerfile does not ship")
    for name in SERVICES:
        problems.expect(name in copied, f"the image does not ship {name}")
    for tool in ("migrate", "haven-deploy"):
        problems.expect(tool in copied, f"the image does not ship {tool}")
    problems.expect(re.search(r"^HEALTHCHECK .*?/health", text, re.M | re.S) is not None, "no HEALTHCHECK on /health")
    users = re.findall(r"^USER (\S+)", text, re.M)
    problems.expect(bool(users) and users[-1].split(":")[0] not in ("root", "0"), "the runtime image must end as a non-root USER")
    problems.expect("cargo chef cook" in text, "no cargo-chef dependency layer")
    info(f"image ships {len(copied)} binaries, all workspace targets: {', '.join(sorted(copied))}")

    # The build context must keep every workspace member and the contract artifacts.
    ignore = [line.strip() for line in read(ROOT / ".dockerignore").splitlines() if line.strip() and not line.startswith("#")]
    members = tomllib_members()
    for path in members + ["contracts/artifacts/HAVEN.json", "Cargo.lock", "package-lock.json"]:
        problems.expect(not dockerignored(path, ignore), f".dockerignore leaves {path} out of the build context")
    info(f".dockerignore keeps all {len(members)} workspace members and the contract artifacts")
    problems.raise_if_any()


def tomllib_members() -> list[str]:
    import tomllib

    with open(ROOT / "Cargo.toml", "rb") as f:
        return list(tomllib.load(f)["workspace"]["members"])


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; `!` re-includes."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pattern in patterns:
        negate = pattern.startswith("!")
        pattern = pattern[1:] if negate else pattern
        pattern = pattern.strip("/")
        if any(fnmatch.fnmatchcase(prefix, pattern) or fnmatch.fnmatchcase(prefix, pattern.replace("**/", "")) for prefix in prefixes):
            ignored = not negate
    return ignored


# --------------------------------------------------------------- compose --


def env_example() -> dict[str, str]:
    values = {}
    for line in read(ROOT / ".env.example").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's variable interpolation (`$$`, `${VAR}`, `${VAR:-default}`,
    `${VAR:?error}`), with the values of .env.example."""
    def one(text: str) -> str:
        def sub(match: re.Match) -> str:
            if match.group(0) == "$$":
                return "$"
            name, op, arg = match.group(1), match.group(2), match.group(3)
            current = env.get(name, "")
            if op in (":-", "-") and not current:
                return arg
            if op in (":?", "?") and not current:
                raise CheckFailed(f"compose: ${{{name}}} is required ({arg}) and .env.example does not set it")
            return current
        return FULL_INTERPOLATION.sub(sub, text)

    if isinstance(value, dict):
        return {one(k) if isinstance(k, str) else k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    return one(value) if isinstance(value, str) else value


FULL_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def check_compose(tools: Tools) -> None:
    import compose_spec

    problems = Problems("compose")
    text = read(ROOT / "docker-compose.yml")
    compose = yaml.safe_load(text)
    # The compose-spec parser (the Rust compose_spec crate behind the PyPI
    # package) validates every field strictly, on the file as `docker compose`
    # sees it once .env.example's values are interpolated.
    try:
        parsed = compose_spec.PyCompose.from_json(json.dumps(interpolate(compose, env_example())))
        parsed.validate()
        info(f"compose-spec: valid ({len(parsed.service_names())} services, after interpolating .env.example)")
    except ValueError as error:
        problems.add(f"compose-spec: {error}")

    services = compose.get("services", {})
    settings = readme_settings()
    ports = service_ports()
    bins = workspace_binaries()
    grace = default_grace()
    expected = set(SERVICES) | {"postgres", "rabbitmq", "anvil", "migrate", "deploy-contract", "payout-provider", "proxy", "prometheus", "grafana"}
    for name in sorted(expected - set(services)):
        problems.add(f"service {name} is missing")

    for name, service in services.items():
        for dep in service.get("depends_on", {}) or {}:
            problems.expect(dep in services, f"{name} depends on unknown service {dep}")
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./"):
                problems.expect((ROOT / source).exists(), f"{name} mounts {source}, which does not exist")
            elif source and not source.startswith("/"):
                problems.expect(source in (compose.get("volumes") or {}), f"{name} uses undeclared volume {source}")
        env = service.get("environment", {}) or {}
        for key, value in env.items():
            # RPC_URL is a secret in production (it may carry an API key), not
            # for the local anvil.
            if any(hint in key for hint in SECRET_HINTS) and key != "RPC_URL":
                if "${" not in str(value):
                    problems.add(f"{name}: {key} has a literal value; secrets come from .env (${{{key}}})")

        haven_image = "build" in service and service["build"].get("target") == "runtime"
        if not haven_image:
            continue
        command = service.get("command") or []
        entry = service.get("entrypoint") or []
        binary = command[0] if command else None
        if binary is None and entry:
            match = re.search(r"\b(haven-[a-z-]+|migrate)\b", " ".join(entry))
            binary = match.group(1) if match else None
        problems.expect(binary in bins, f"{name} runs {binary!r}, which is no binary of the workspace")
        check_setting_names(problems, f"docker-compose.yml {name}", env.keys(), settings)
        if name in SERVICES:
            where = f"docker-compose.yml {name}"
            names = set(env)
            if "with-contract" in " ".join(entry):
                names.add("CONTRACT_ADDRESS")
            check_must_set(problems, where, name, names)
            problems.expect(str(env.get("PORT")) == str(ports[name]), f"{where}: PORT {env.get('PORT')} but the service's default port is {ports[name]}")
            problems.expect(grace_seconds(str(env.get("SHUTDOWN_GRACE_PERIOD", "30s"))) == grace, f"{where}: SHUTDOWN_GRACE_PERIOD differs from the documented {grace}s")
            stop = grace_seconds(str(service.get("stop_grace_period", "10s")))
            problems.expect(stop >= 2 * grace + 5, f"{where}: stop_grace_period {stop}s is shorter than two drains of {grace}s plus 5s")
            problems.expect("healthcheck" not in service or not service["healthcheck"].get("disable"), f"{where}: its healthcheck is disabled")
        elif name in ("migrate", "deploy-contract"):
            problems.expect(service.get("restart") == "no", f"{name} is a one-shot and must not restart")
            problems.expect(bool(service.get("healthcheck", {}).get("disable")), f"{name}: one-shot containers turn the image HEALTHCHECK off")
    info(f"{len(services)} services; every haven container runs a workspace binary; settings match {CONFIGURATION_DOC}; drain {grace:.0f}s fits stop_grace_period")

    # Start order.
    def waits_for(name: str, dep: str, condition: str) -> bool:
        deps = services.get(name, {}).get("depends_on", {}) or {}
        return isinstance(deps, dict) and deps.get(dep, {}).get("condition") == condition

    problems.expect(waits_for("migrate", "postgres", "service_healthy"), "migrate must wait for a healthy postgres")
    problems.expect(waits_for("deploy-contract", "migrate", "service_completed_successfully"), "deploy-contract must wait for the migrations")
    problems.expect(waits_for("deploy-contract", "anvil", "service_healthy"), "deploy-contract must wait for anvil")
    for name in SERVICES:
        deps = services.get(name, {}).get("depends_on", {}) or {}
        problems.expect("migrate" in deps or "deploy-contract" in deps, f"{name} starts before the migrations ran")
    info("start order: postgres -> migrate -> deploy-contract -> services -> proxy")

    # Secrets: every ${VAR} is in .env.example (or has a default), and back.
    example = env_example()
    used = set()
    for match in INTERPOLATION.finditer(text):
        used.add(match.group(1))
        has_default = ":-" in match.group(0)
        problems.expect(has_default or match.group(1) in example, f"${{{match.group(1)}}} is used without a default and is not in .env.example")
    for key in example:
        problems.expect(key in used, f".env.example has {key}, which docker-compose.yml does not use")
    problems.expect(not (ROOT / ".env").exists() or ".env" in read(ROOT / ".gitignore"), ".env must be git-ignored")
    info(f".env.example lists all {len(example)} required variables; no secret is written in docker-compose.yml")

    # Prometheus scrapes every service at its port.
    prometheus = yaml.safe_load(read(ROOT / "deploy" / "prometheus" / "prometheus.yml"))
    targets = {t for job in prometheus["scrape_configs"] for sc in job.get("static_configs", []) for t in sc["targets"]}
    for name, port in ports.items():
        problems.expect(f"{name}:{port}" in targets, f"prometheus.yml does not scrape {name}:{port}")
    info(f"prometheus.yml scrapes all {len(ports)} services")
    families = {family for job in prometheus["scrape_configs"] if job.get("metrics_path") == "/metrics/detailed"
                for family in job.get("params", {}).get("family", [])}
    problems.expect({"queue_coarse_metrics", "queue_consumer_count"} <= families,
                    "prometheus.yml must scrape the broker's /metrics/detailed with family queue_coarse_metrics and queue_consumer_count (the queue alerts read them)")
    info("prometheus.yml scrapes the broker's per-queue depth and consumers")
    problems.raise_if_any()


# ------------------------------------------------------------------- k8s --


def render(tools: Tools, directory: Path) -> list[dict]:
    result = run([tools.need(tools.kubectl), "kustomize", str(directory)])
    if result.returncode != 0:
        raise CheckFailed(f"kubectl kustomize {directory.relative_to(ROOT)} failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def check_k8s(tools: Tools) -> None:
    import kubernetes_validate

    kustomizations = sorted(p.parent for p in (ROOT / "k8s").rglob("kustomization.yaml"))
    if not kustomizations:
        raise CheckFailed("no kustomization.yaml under k8s/")
    documented = set(readme_settings())
    ports = service_ports()
    grace = default_grace()
    queues = queue_names()
    schemas = {key: json.loads(read(ROOT / "deploy" / "schemas" / file)) for key, file in CUSTOM_RESOURCE_SCHEMAS.items()}
    alert_groups = yaml.safe_load(read(ROOT / "deploy" / "prometheus" / "alerts.yml"))["groups"]

    for directory in kustomizations:
        label = str(directory.relative_to(ROOT))
        problems = Problems(f"k8s {label}")
        docs = render(tools, directory)
        deployable = "overlays" in directory.parts
        kinds = {}
        for doc in docs:
            kind, api, name = doc.get("kind"), doc.get("apiVersion"), doc.get("metadata", {}).get("name")
            kinds.setdefault(kind, {})[name] = doc
            where = f"{kind}/{name}"
            if (api, kind) in schemas:
                for error in jsonschema.Draft202012Validator(schemas[(api, kind)]).iter_errors(doc):
                    problems.add(f"{where}: {'/'.join(map(str, error.path))}: {error.message}")
                continue
            try:
                kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
            except kubernetes_validate.utils.SchemaNotFoundError:
                problems.add(f"{where}: no schema for {api} {kind} (add one to deploy/schemas/)")
            except kubernetes_validate.ValidationError as error:
                problems.add(f"{where}: {'.'.join(map(str, error.path))}: {error.message}")
        problems.expect("Secret" not in kinds, "Secrets must be referenced, never defined in k8s/")
        info(f"{label}: {len(docs)} resources valid (Kubernetes {KUBERNETES_VERSION} strict schemas; CRDs from deploy/schemas)")

        config = {}
        for cm in kinds.get("ConfigMap", {}).values():
            config.update(cm.get("data", {}))
        if "SHUTDOWN_GRACE_PERIOD" in config:
            problems.expect(grace_seconds(config["SHUTDOWN_GRACE_PERIOD"]) == grace, f"ConfigMap SHUTDOWN_GRACE_PERIOD differs from the documented {grace}s")
        deployments = kinds.get("Deployment", {})
        k8s_services = kinds.get("Service", {})
        pdbs = kinds.get("PodDisruptionBudget", {}).values()
        for name, port in ports.items():
            dep = deployments.get(name)
            if not problems.expect(dep is not None, f"no Deployment {name}"):
                continue
            pod = dep["spec"]["template"]
            labels = pod["metadata"]["labels"]
            selector = dep["spec"]["selector"]["matchLabels"]
            problems.expect(selector.items() <= labels.items(), f"Deployment {name}: selector does not match its pod labels")
            spec = pod["spec"]
            container = spec["containers"][0]
            where = f"Deployment {name}"
            problems.expect((container.get("args") or container.get("command") or [None])[0] == name, f"{where}: runs {container.get('args')}, not the {name} binary")
            http_port = {p["name"]: p["containerPort"] for p in container.get("ports", [])}.get("http")
            problems.expect(http_port == port, f"{where}: port `http` is {http_port}, the service listens on {port}")
            # Readiness checks the dependencies; liveness and start-up only
            # that the process answers, so an outage restarts no pod.
            for probe, path in (("readinessProbe", "/health"), ("livenessProbe", "/livez"), ("startupProbe", "/livez")):
                get = container.get(probe, {}).get("httpGet", {})
                problems.expect(get.get("path") == path and get.get("port") in ("http", port), f"{where}: {probe} is not GET {path} on the http port")
            resources = container.get("resources", {})
            problems.expect("cpu" in resources.get("requests", {}) and "memory" in resources.get("requests", {}), f"{where}: no cpu/memory requests")
            problems.expect("memory" in resources.get("limits", {}), f"{where}: no memory limit")
            sc = container.get("securityContext", {})
            problems.expect(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False, f"{where}: container must be read-only and without privilege escalation")
            problems.expect(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: pod must run as non-root")
            pre_stop = container.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
            pre_stop_seconds = float(pre_stop[1]) if len(pre_stop) == 2 and pre_stop[0] == "sleep" else 0.0
            pod_grace = spec.get("terminationGracePeriodSeconds", 30)
            problems.expect(pod_grace >= pre_stop_seconds + 2 * grace + 5,
                            f"{where}: terminationGracePeriodSeconds {pod_grace} < preStop {pre_stop_seconds:.0f}s + HTTP and worker drains of {grace:.0f}s each + 5s")
            problems.expect("replicas" not in dep["spec"], f"{where}: sets replicas, which its autoscaler owns")
            env = {e["name"]: e for e in container.get("env", [])}
            for key, entry in env.items():
                if any(hint in key for hint in SECRET_HINTS):
                    problems.expect("secretKeyRef" in entry.get("valueFrom", {}), f"{where}: {key} must come from a Secret (secretKeyRef)")
            names = set(env)
            for source in container.get("envFrom", []):
                cm = kinds.get("ConfigMap", {}).get(source.get("configMapRef", {}).get("name"))
                if problems.expect(cm is not None or "secretRef" in source, f"{where}: envFrom refers to a ConfigMap not in the render"):
                    names |= set((cm or {}).get("data", {}))
            check_setting_names(problems, where, env.keys(), documented)
            check_setting_names(problems, f"{where} (ConfigMap)", names - set(env), documented)
            if deployable:
                check_must_set(problems, where, name, names)
            svc = k8s_services.get(name)
            if problems.expect(svc is not None, f"no Service {name}"):
                problems.expect(svc["spec"]["selector"].items() <= labels.items(), f"Service {name}: selector does not match the pods")
                problems.expect(any(p.get("name") == "http" and p.get("targetPort") in ("http", port) for p in svc["spec"]["ports"]), f"Service {name}: no `http` port to the pods")
            problems.expect(any(p["spec"]["selector"]["matchLabels"].items() <= labels.items() for p in pdbs), f"no PodDisruptionBudget selects {name}")
        info(f"{label}: 5 Deployments with /health readiness and /livez liveness probes, resources, non-root read-only pods, drain {grace:.0f}s x2 within terminationGracePeriodSeconds; Services and PDBs match")

        hpas = kinds.get("HorizontalPodAutoscaler", {})
        for name, role in SERVICES.items():
            if role != "api":
                continue
            hpa = next((h for h in hpas.values() if h["spec"]["scaleTargetRef"]["name"] == name), None)
            if problems.expect(hpa is not None, f"no HorizontalPodAutoscaler for {name}"):
                problems.expect(any(m.get("resource", {}).get("name") == "cpu" for m in hpa["spec"]["metrics"]), f"HPA of {name} does not scale on CPU")
        scaled = kinds.get("ScaledObject", {})
        auths = kinds.get("TriggerAuthentication", {})
        for name, role in SERVICES.items():
            if role != "worker":
                continue
            objects = [s for s in scaled.values() if s["spec"]["scaleTargetRef"]["name"] == name]
            if not problems.expect(len(objects) == 1, f"{name} needs exactly one ScaledObject, has {len(objects)}"):
                continue
            triggers = objects[0]["spec"]["triggers"]
            watched = {t["metadata"].get("queueName") for t in triggers if t["type"] == "rabbitmq"}
            consumed = {q for q in queues if q.split(".")[0] == name}
            problems.expect(watched == consumed, f"ScaledObject {name} watches {sorted(watched)}, the service consumes {sorted(consumed)} (shared/messages/src/names.rs)")
            for trigger in triggers:
                ref = trigger.get("authenticationRef", {}).get("name")
                problems.expect(ref in auths, f"ScaledObject {name}: TriggerAuthentication {ref} is not in the render")
            problems.expect(objects[0]["spec"].get("maxReplicaCount", 100) >= objects[0]["spec"].get("minReplicaCount", 0), f"ScaledObject {name}: max below min")
        info(f"{label}: HPA on CPU for the HTTP services; KEDA ScaledObjects on exactly the queues each worker consumes")

        monitors = kinds.get("ServiceMonitor", {}).values()
        for name in ports:
            svc = k8s_services.get(name)
            if svc is None:
                continue
            covered = any(m["spec"]["selector"].get("matchLabels", {}).items() <= svc["metadata"].get("labels", {}).items()
                          and any(e.get("port") == "http" and e.get("path") == "/metrics" for e in m["spec"]["endpoints"]) for m in monitors)
            problems.expect(covered, f"no ServiceMonitor scrapes {name}'s /metrics")
        rules = list(kinds.get("PrometheusRule", {}).values())
        problems.expect(len(rules) == 1 and rules[0]["spec"]["groups"] == alert_groups,
                        "the PrometheusRule differs from deploy/prometheus/alerts.yml: run `target/ops-tools/venv/bin/python deploy/checks/ops_check.py sync-rules`")
        jobs = kinds.get("Job", {}).values()
        problems.expect(any(j["spec"]["template"]["spec"]["containers"][0].get("args") == ["migrate", "up"] for j in jobs), "no Job runs `migrate up`")
        info(f"{label}: ServiceMonitor covers every service; PrometheusRule equals alerts.yml; migrations run as a Job")
        check_network_policies(problems, label, kinds)
        problems.raise_if_any()


# The port a setting's endpoint is reached on, for the egress a pod needs.
EGRESS_BY_SETTING = {"DATABASE_URL": ("TCP", 5432), "AMQP_URL": ("TCP", 5672), "RPC_URL": ("TCP", 443), "PAYOUT_PROVIDER_URL": ("TCP", 443)}


def selects(selector: dict, labels: dict) -> bool:
    """A Kubernetes label selector (matchLabels and matchExpressions) against pod labels."""
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        key, operator, values = expression["key"], expression["operator"], expression.get("values", [])
        if not {"In": lambda: labels.get(key) in values, "NotIn": lambda: labels.get(key) not in values,
                "Exists": lambda: key in labels, "DoesNotExist": lambda: key not in labels}[operator]():
            return False
    return True


def check_network_policies(problems: Problems, label: str, kinds: dict) -> None:
    """Default deny, then each pod exactly the egress its settings need, and ingress to its `http` port."""
    policies = list(kinds.get("NetworkPolicy", {}).values())
    problems.expect(any(p["spec"].get("podSelector") == {} and set(p["spec"].get("policyTypes", [])) == {"Ingress", "Egress"}
                        and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies),
                    "no default-deny NetworkPolicy (podSelector {}, policyTypes Ingress and Egress, no rules)")
    pods = {}
    for kind in ("Deployment", "Job"):
        for name, workload in kinds.get(kind, {}).items():
            template = workload["spec"]["template"]
            env = {e["name"] for c in template["spec"]["containers"] for e in c.get("env", [])}
            pods[name] = (template["metadata"]["labels"], env)
    names = {labels.get("app.kubernetes.io/name") for labels, _ in pods.values()}
    for policy in policies:
        for expression in policy["spec"].get("podSelector", {}).get("matchExpressions", []):
            if expression["key"] == "app.kubernetes.io/name":
                for value in expression.get("values", []):
                    problems.expect(value in names, f"NetworkPolicy {policy['metadata']['name']} selects {value}, which no Deployment or Job runs")
    for name, (labels, env) in pods.items():
        egress, ingress = set(), set()
        for policy in policies:
            if not selects(policy["spec"].get("podSelector", {}), labels):
                continue
            for rule in policy["spec"].get("egress", []):
                egress |= {(p.get("protocol", "TCP"), p.get("port")) for p in rule.get("ports", [])}
            for rule in policy["spec"].get("ingress", []):
                ingress |= {p.get("port") for p in rule.get("ports", [])}
        needed = {EGRESS_BY_SETTING[key] for key in env if key in EGRESS_BY_SETTING}
        problems.expect(("UDP", 53) in egress, f"{name}: no NetworkPolicy lets it resolve names (UDP 53)")
        for need in sorted(needed):
            problems.expect(need in egress, f"{name}: no NetworkPolicy allows egress to {need[0]} {need[1]}, which its settings need")
        for extra in sorted({("TCP", 5432), ("TCP", 5672), ("TCP", 443)} & egress - needed):
            problems.expect(False, f"{name}: a NetworkPolicy allows egress to {extra[0]} {extra[1]}, which none of its settings uses")
        if name in SERVICES:
            problems.expect("http" in ingress, f"{name}: no NetworkPolicy lets Prometheus (or the ingress controller) reach its `http` port")
    info(f"{label}: {len(policies)} NetworkPolicies: default deny; each pod gets DNS and exactly the egress its settings need")


def sync_rules() -> None:
    groups = yaml.safe_load(read(ROOT / "deploy" / "prometheus" / "alerts.yml"))["groups"]
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "haven"},
        "spec": {"groups": groups},
    }
    header = (
        "# GENERATED from deploy/prometheus/alerts.yml by\n"
        "# `target/ops-tools/venv/bin/python deploy/checks/ops_check.py sync-rules`:\n# edit alerts.yml, not this file\n"
        "# (`cargo xtask test` fails when the two differ).\n"
    )
    body = yaml.safe_dump(rule, sort_keys=False, width=100, allow_unicode=True)
    (ROOT / "k8s" / "base" / "prometheus-rule.yaml").write_text(header + body, encoding="utf-8")
    print("wrote k8s/base/prometheus-rule.yaml")


# ------------------------------------------------------------ prometheus --


def check_prometheus(tools: Tools) -> None:
    problems = Problems("prometheus")
    promtool = tools.need(tools.promtool)
    folder = ROOT / "deploy" / "prometheus"
    for args in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"]):
        result = run([promtool, *args], cwd=folder)
        if problems.expect(result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"):
            info(f"promtool {' '.join(args)}: ok")
    rules = yaml.safe_load(read(folder / "alerts.yml"))
    tests = yaml.safe_load(read(folder / "alerts.test.yml"))
    tested = {case["alertname"] for test in tests["tests"] for case in test.get("alert_rule_test", []) if case.get("exp_alerts")}
    documented = readme_metrics()
    alerts = []
    for group in rules["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            alerts.append(rule["alert"])
            where = f"alert {rule['alert']}"
            problems.expect(rule.get("labels", {}).get("severity") in ("page", "ticket"), f"{where}: severity must be page or ticket")
            problems.expect({"summary", "description", "runbook"} <= set(rule.get("annotations", {})), f"{where}: needs summary, description and runbook (the action to take)")
            if rule["alert"] in ALERTS_ON_BROKER_METRICS:
                problems.expect("rabbitmq_detailed_queue_" in str(rule["expr"]), f"{where}: must read the broker's rabbitmq_detailed_queue_* metrics, which do not depend on a consumer being up")
            problems.expect(rule["alert"] in tested, f"{where}: alerts.test.yml has no case where it fires")
            check_metric_use(problems, where, metric_names_in(str(rule["expr"])), documented)
    for name, why in ALERTS_MUST_HAVE.items():
        problems.expect(name in alerts, f"no alert {name} ({why})")
    info(f"{len(alerts)} alerts, each with severity, summary, description, runbook and a firing unit test; every metric is exported by a service or the broker")
    report_undocumented()
    problems.raise_if_any()


# --------------------------------------------------------------- grafana --


GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${service}": "x",
    "$service": "x",
}


def check_grafana(tools: Tools) -> None:
    problems = Problems("grafana")
    folder = ROOT / "deploy" / "grafana"
    documented = readme_metrics()
    dashboards = sorted((folder / "dashboards").glob("*.json"))
    problems.expect(bool(dashboards), "no dashboard JSON in deploy/grafana/dashboards")
    datasources = yaml.safe_load(read(folder / "provisioning" / "datasources" / "prometheus.yml"))["datasources"]
    problems.expect(any(d["type"] == "prometheus" and d["url"] == "http://prometheus:9090" for d in datasources), "the provisioned datasource does not point at the compose Prometheus")
    provider = yaml.safe_load(read(folder / "provisioning" / "dashboards" / "haven.yml"))["providers"][0]
    compose = yaml.safe_load(read(ROOT / "docker-compose.yml"))
    mounts = compose["services"]["grafana"]["volumes"]
    problems.expect(f"./deploy/grafana/dashboards:{provider['options']['path']}:ro" in mounts, "Grafana's dashboard provider path is not where compose mounts the dashboards")

    records = []
    used: set[str] = set()
    for path in dashboards:
        dashboard = json.loads(read(path))
        where = path.name
        problems.expect(bool(dashboard.get("uid")) and bool(dashboard.get("title")), f"{where}: needs uid and title")
        variables = {v["name"] for v in dashboard.get("templating", {}).get("list", [])}
        problems.expect("datasource" in variables, f"{where}: needs a `datasource` variable so it works with any Prometheus")
        ids = set()
        cells: dict[tuple[int, int], int] = {}
        for panel in dashboard["panels"]:
            pid = panel.get("id")
            problems.expect(pid not in ids, f"{where}: panel id {pid} used twice")
            ids.add(pid)
            grid = panel.get("gridPos", {})
            problems.expect(grid.get("x", 0) + grid.get("w", 0) <= 24, f"{where}: panel {panel.get('title')!r} is wider than the grid")
            for dx in range(grid.get("w", 0)):
                for dy in range(grid.get("h", 0)):
                    cell = (grid["x"] + dx, grid["y"] + dy)
                    if cell in cells:
                        problems.add(f"{where}: panel {panel.get('title')!r} overlaps panel id {cells[cell]}")
                        break
                    cells[cell] = pid
                else:
                    continue
                break
            if panel.get("type") == "row":
                continue
            problems.expect(panel.get("datasource", {}).get("uid") == "${datasource}", f"{where}: panel {panel.get('title')!r} does not use the datasource variable")
            for target in panel.get("targets", []):
                expr = target.get("expr", "")
                if not problems.expect(bool(expr), f"{where}: panel {panel.get('title')!r} has a target without a query"):
                    continue
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                problems.expect("$" not in expr, f"{where}: panel {panel.get('title')!r} uses an unknown variable: {target['expr']}")
                records.append({"record": f"dashboard:panel_{pid}_{target.get('refId', 'A')}", "expr": expr})
                used |= check_metric_use(problems, f"{where}: panel {panel.get('title')!r}", metric_names_in(expr), documented)
    for name, why in DASHBOARD_MUST_USE.items():
        problems.expect(name in used, f"the dashboard shows nothing from {name} ({why})")

    # promtool parses every query (as recording rules; nothing is evaluated).
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard-queries", "rules": records}]}, f)
        rules_file = f.name
    try:
        result = run([tools.need(tools.promtool), "check", "rules", rules_file])
        problems.expect(result.returncode == 0, f"promtool cannot parse a dashboard query:\n{result.stdout}{result.stderr}")
    finally:
        os.unlink(rules_file)
    info(f"{len(records)} dashboard queries parse (promtool); every metric is exported by a service; panels do not overlap")
    info("covers: " + "; ".join(DASHBOARD_MUST_USE.values()))
    report_undocumented()
    problems.raise_if_any()


# ----------------------------------------------------------------- proxy --


class Recorder(http.server.BaseHTTPRequestHandler):
    """A stand-in upstream: answers JSON naming itself and what it got."""

    upstream = "?"
    # What the stand-in's own /health answers (a service's readiness).
    health_status = 200

    def answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        if length:
            self.rfile.read(length)
        body = json.dumps({
            "upstream": self.upstream,
            "path": self.path,
            "forwarded_for": self.headers.get("x-forwarded-for"),
        }).encode()
        self.send_response(type(self).health_status if self.path == "/health" else 200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = answer

    def log_message(self, *args) -> None:
        pass


def serve_stand_in(name: str) -> tuple[http.server.ThreadingHTTPServer, int]:
    handler = type(f"Recorder_{name}", (Recorder,), {"upstream": name})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def request(url: str, method: str = "GET", body: bytes | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def check_proxy(tools: Tools) -> None:
    problems = Problems("proxy")
    caddy = tools.need(tools.caddy)
    caddyfile = ROOT / "deploy" / "proxy" / "Caddyfile"
    with tempfile.TemporaryDirectory() as home:
        env = {**os.environ, "HOME": home, "XDG_DATA_HOME": home, "XDG_CONFIG_HOME": home}
        result = run([caddy, "validate", "--config", str(caddyfile), "--adapter", "caddyfile"], env=env)
        problems.expect(result.returncode == 0, f"caddy validate:\n{result.stderr[-2000:]}")
        problems.raise_if_any()
        info("caddy validate: ok")

        ingress, ingress_port = serve_stand_in("webhook-ingress")
        reads, reads_port = serve_stand_in("read-api")
        port = free_port()
        env.update(PROXY_PORT=str(port), INGRESS_UPSTREAM=f"127.0.0.1:{ingress_port}", READ_API_UPSTREAM=f"127.0.0.1:{reads_port}")
        process = subprocess.Popen([caddy, "run", "--config", str(caddyfile), "--adapter", "caddyfile"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 20
            while True:
                try:
                    if request(f"{base}/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                if process.poll() is not None or time.monotonic() > deadline:
                    raise CheckFailed(f"proxy: caddy did not start:\n{process.stderr.read()[-2000:] if process.poll() is not None else 'timeout'}")
                time.sleep(0.2)
            cases = [
                ("POST", "/webhooks/aurora/booking-created", "webhook-ingress"),
                ("POST", "/webhooks/tribe/event-attendance", "webhook-ingress"),
                ("POST", "/token/mint", "webhook-ingress"),
                ("POST", "/token/redeem", "webhook-ingress"),
                ("POST", "/users/user-1/kyc", "webhook-ingress"),
                ("POST", "/users/user-1/kycx", None),
                ("GET", "/token/balance/user-1", "read-api"),
                ("GET", "/token/balance?wallet_address=0xabc", "read-api"),
                ("GET", "/analytics/reconciliation", "read-api"),
                ("GET", "/analytics/token-stats", "read-api"),
                ("GET", "/analytics/transactions/user-1?limit=5", "read-api"),
                ("GET", "/token/transactions/mint_key_1", "read-api"),
                ("GET", "/token/redemptions/0190f0e6-7b2a-7c3d-8e4f-000000000001", "read-api"),
                ("GET", "/metrics", None),
                ("GET", "/token/mintx", None),
                ("GET", "/", None),
            ]
            for method, path, upstream in cases:
                status, body = request(base + path, method, b"{}" if method == "POST" else None)
                if upstream:
                    ok = status == 200 and body.get("upstream") == upstream and body.get("path") == path
                    problems.expect(ok, f"{method} {path} should reach {upstream}, got {status} {body}")
                    problems.expect(bool(body.get("forwarded_for")), f"{method} {path}: no X-Forwarded-For reached {upstream}")
                else:
                    problems.expect(status == 404 and isinstance(body, dict) and "detail" in body, f"{method} {path} should be a JSON 404 from the proxy, got {status} {body}")
            info(f"routing through the real Caddyfile: {len(cases)} paths reach the right upstream (or a JSON 404), X-Forwarded-For passed")

            # /health reports the services' own /health, naming the one down.
            ingress_handler, reads_handler = ingress.RequestHandlerClass, reads.RequestHandlerClass
            for ingress_status, reads_status in ((200, 200), (503, 200), (200, 503), (503, 503)):
                ingress_handler.health_status, reads_handler.health_status = ingress_status, reads_status
                status, body = request(f"{base}/health")
                word = lambda code: "healthy" if code == 200 else "unhealthy"
                all_ready = ingress_status == reads_status == 200
                expected = {"status": word(200 if all_ready else 503),
                            "webhook-ingress": word(ingress_status), "read-api": word(reads_status)}
                problems.expect(status == (200 if all_ready else 503) and body == expected,
                                f"/health with webhook-ingress {ingress_status}, read-api {reads_status}: got {status} {body}, expected {expected}")
            ingress_handler.health_status = 200
            reads.shutdown()
            reads.server_close()
            status, body = request(f"{base}/health")
            problems.expect(status == 503 and isinstance(body, dict) and body.get("status") == "unhealthy",
                            f"/health with read-api not answering should be a JSON 503, got {status} {body}")
            info("/health reports each service's own /health: 200 only when all are ready, 503 naming the one that is not, 503 when one does not answer")
        finally:
            process.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=10)
            if process.poll() is None:
                process.kill()
            ingress.shutdown()
            reads.shutdown()
    problems.raise_if_any()


# ------------------------------------------------------------------ main --


CHECKS = {
    "dockerfile": check_dockerfile,
    "compose": check_compose,
    "k8s": check_k8s,
    "prometheus": check_prometheus,
    "grafana": check_grafana,
    "proxy": check_proxy,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tools", type=Path, default=ROOT / "target" / "ops-tools", help="where xtask installed the tools")
    parser.add_argument("checks", nargs="*", help=f"sync-rules, or any of: {', '.join(CHECKS)} (default: all checks)")
    args = parser.parse_args()
    if args.checks == ["sync-rules"]:
        sync_rules()
        return 0
    unknown = [name for name in args.checks if name not in CHECKS]
    if unknown:
        parser.error(f"unknown check(s): {', '.join(unknown)}")
    tools = Tools(args.tools.resolve())
    failed = []
    for name in args.checks or list(CHECKS):
        started = time.monotonic()
        print(f"  {name}:", flush=True)
        try:
            CHECKS[name](tools)
            print(f"  {name}: ok ({time.monotonic() - started:.1f}s)", flush=True)
        except CheckFailed as error:
            print(f"  {name}: FAILED\n{error}", flush=True)
            failed.append(name)
    if failed:
        print(f"deployment files: {len(failed)} check(s) failed: {', '.join(failed)}", flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
