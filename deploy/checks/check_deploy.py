#!/usr/bin/env python3
"""What the schema validators cannot see in deploy/: the rules that tie the deployment to the
code and the docs. Run by .ci/deploy-checks (after the schema checks) from the repository
root; exits 1 with one line per finding.

- metrics: every metric an alert or the dashboard queries is one the Rust code exports,
  found by scanning crates/*/src for the `metrics` macros (histograms expand to
  _bucket/_sum/_count as the recorder in crates/telemetry renders them);
- alerts: every alert has a runbook_url into docs/OPERATIONS.md whose heading exists;
- dashboard: valid JSON, unique panel ids, every panel on the datasource variable;
- compose: the relay is scalable (no fixed name, no host port) and Docker waits longer
  than its grace period; every bind-mounted file exists; no secret literal;
- kubernetes (rendered manifests): no Secret objects, non-root pods with resources,
  the probes the contract names, at least two relays with a disruption budget and a
  termination grace longer than the relay's, every variable a documented one;
- versions: the Dockerfile's Rust and image versions match rust-toolchain.toml and
  Cargo.toml.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import tomllib
from pathlib import Path

import yaml

# Not ours: Prometheus's own scrape health, and kube-state-metrics for the backup CronJob.
EXTERNAL_METRICS = {
    "up",
    "kube_cronjob_status_last_successful_time",
    "kube_cronjob_created",
}

# Variables the deployment sets that are not the binaries' configuration: the PostgreSQL
# and Grafana images' own, and the backup and restore jobs'.
DEPLOYMENT_VARIABLES_PREFIXES = ("POSTGRES_", "GF_")
DEPLOYMENT_VARIABLES = {"BACKUP_KEEP_DAYS", "BACKUP_FILE", "IMAGE_TAG", "GRAFANA_ADMIN_PASSWORD"}

# Names whose values are secrets: never a literal in a committed file.
SECRET_NAME = re.compile(r"(PASS|PASSWORD|SECRET|TOKEN|TOKENS)$")
# Literal values that are fine for secret-named variables: the simulators' fixed test
# credentials (crates/sim), and Grafana's own default, which it asks to change.
KNOWN_NON_SECRETS = {"sim-chatwoot-token", "odata-password", "admin"}


class Findings:
    def __init__(self) -> None:
        self.items: list[str] = []

    def add(self, area: str, message: str) -> None:
        self.items.append(f"{area}: {message}")


# --- metrics the code exports ------------------------------------------------------------

MACRO = re.compile(r"\b(?:metrics::)?(counter|gauge|histogram)!\s*\(\s*([^,)\s]+)")
BUCKET_MATCHER = re.compile(r'Matcher::(Full|Prefix|Suffix)\(\s*"([^"]+)"')


def rust_sources(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("crates/*/src/**/*.rs"))


def strip_line_comments(text: str) -> str:
    return "\n".join(
        "" if line.lstrip().startswith("//") else line for line in text.splitlines()
    )


def bucket_matchers(root: Path) -> list[tuple[str, str]]:
    """The histogram matchers the Prometheus recorder is built with: those histograms are
    rendered with buckets, every other one as a summary."""
    telemetry = (root / "crates/telemetry/src/lib.rs").read_text(encoding="utf-8")
    return BUCKET_MATCHER.findall(telemetry)


def has_buckets(name: str, matchers: list[tuple[str, str]]) -> bool:
    for kind, value in matchers:
        if (
            (kind == "Full" and name == value)
            or (kind == "Prefix" and name.startswith(value))
            or (kind == "Suffix" and name.endswith(value))
        ):
            return True
    return False


def exported_metrics(root: Path, findings: Findings) -> set[str]:
    """Series names as /metrics shows them, from the macro calls in the sources."""
    matchers = bucket_matchers(root)
    names: set[str] = set()
    for path in rust_sources(root):
        text = strip_line_comments(path.read_text(encoding="utf-8"))
        for kind, argument in MACRO.findall(text):
            literal = re.fullmatch(r'"([a-zA-Z_:][a-zA-Z0-9_:]*)"', argument)
            if literal is None:
                findings.add(
                    "metrics",
                    f"{path.relative_to(root)}: a {kind}! whose name is not a string literal"
                    f" ({argument}) cannot be checked; name metrics with literals",
                )
                continue
            name = literal.group(1)
            if kind == "histogram":
                if has_buckets(name, matchers):
                    names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
                else:
                    names.update({name, f"{name}_sum", f"{name}_count"})
            else:
                names.add(name)
    return names


# --- metric names in PromQL ---------------------------------------------------------------

PROMQL_KEYWORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right",
    "and", "or", "unless", "bool", "offset", "inf", "nan",
}  # fmt: skip
STRINGS = re.compile(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'|`[^`]*`')
GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
IDENTIFIER = re.compile(r"(?<![A-Za-z0-9_:.$])[A-Za-z_:][A-Za-z0-9_:]*")


def promql_metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects: identifiers that are not functions,
    keywords, label names, durations or (Grafana) variables."""
    text = STRINGS.sub('""', expr)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = GROUPING.sub(" ", text)  # label lists of by/without/on/ignoring/group_*
    names = set()
    for match in IDENTIFIER.finditer(text):
        word = match.group(0)
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call (or an aggregation)
        if word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def check_metric_names(
    queries: list[tuple[str, str]], exported: set[str], findings: Findings
) -> None:
    """queries: (where, expr)."""
    known = exported | EXTERNAL_METRICS
    for where, expr in queries:
        names = promql_metric_names(expr)
        if not names:
            findings.add("metrics", f"{where}: no metric found in {expr!r}")
        for name in sorted(names - known):
            findings.add("metrics", f"{where}: {name} is not exported by the code")


# --- alerts -------------------------------------------------------------------------------


def github_anchor(heading: str) -> str:
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def doc_anchors(path: Path) -> set[str]:
    anchors = set()
    in_code = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            in_code = not in_code
        elif not in_code and line.startswith("#"):
            anchors.add(github_anchor(line.lstrip("#")))
    return anchors


def alert_rules(path: Path) -> list[dict]:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def check_alerts(root: Path, rules: list[dict], findings: Findings) -> None:
    operations = root / "docs/OPERATIONS.md"
    anchors = doc_anchors(operations) if operations.exists() else set()
    if not operations.exists():
        findings.add("alerts", "docs/OPERATIONS.md is missing: the runbooks live there")
    for rule in rules:
        name = rule.get("alert")
        if name is None:
            continue
        url = rule.get("annotations", {}).get("runbook_url", "")
        target = re.fullmatch(r"docs/OPERATIONS\.md#([\w-]+)", url)
        if target is None:
            findings.add("alerts", f"{name}: runbook_url must be docs/OPERATIONS.md#<anchor>, is {url!r}")
        elif target.group(1) not in anchors:
            findings.add("alerts", f"{name}: docs/OPERATIONS.md has no heading for #{target.group(1)}")
        if "severity" not in rule.get("labels", {}):
            findings.add("alerts", f"{name}: no severity label")
        if "summary" not in rule.get("annotations", {}):
            findings.add("alerts", f"{name}: no summary annotation")


# --- the Grafana dashboard ----------------------------------------------------------------


def dashboard_queries(path: Path, findings: Findings) -> list[tuple[str, str]]:
    try:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        findings.add("dashboard", f"{path.name}: not valid JSON: {error}")
        return []
    for key in ("uid", "title", "panels", "schemaVersion"):
        if key not in dashboard:
            findings.add("dashboard", f"{path.name}: no {key}")
    variables = {v.get("name") for v in dashboard.get("templating", {}).get("list", [])}
    if "datasource" not in variables:
        findings.add("dashboard", f"{path.name}: no `datasource` variable")
    queries, ids = [], set()
    panels = list(dashboard.get("panels", []))
    for panel in list(panels):
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    for panel in panels:
        title = panel.get("title", "?")
        if panel.get("id") in ids:
            findings.add("dashboard", f"{path.name}: panel id {panel.get('id')} twice")
        ids.add(panel.get("id"))
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") != "${datasource}":
            findings.add("dashboard", f"{path.name}: panel {title!r} is not on ${{datasource}}")
        targets = panel.get("targets", [])
        if not targets:
            findings.add("dashboard", f"{path.name}: panel {title!r} has no query")
        for target in targets:
            queries.append((f"{path.name}: panel {title!r}", target.get("expr", "")))
    return queries


# --- compose ------------------------------------------------------------------------------


def duration_seconds(value: str) -> float:
    total, matched = 0.0, False
    for amount, unit in re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", str(value)):
        matched = True
        total += float(amount) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]
    if not matched:
        raise ValueError(f"not a duration: {value!r}")
    return total


def relay_grace_default_ms(root: Path) -> int:
    """RELAY_SHUTDOWN_GRACE_MS's default, read from the relay's configuration code."""
    config = (root / "crates/relay/src/config.rs").read_text(encoding="utf-8")
    match = re.search(
        r'"RELAY_SHUTDOWN_GRACE_MS",\s*Duration::from_(secs|millis)\((\d+)\)', config
    )
    if match is None:
        raise SystemExit("cannot find RELAY_SHUTDOWN_GRACE_MS's default in crates/relay/src/config.rs")
    return int(match.group(2)) * (1000 if match.group(1) == "secs" else 1)


def secret_literals(where: str, variables: dict, findings: Findings) -> None:
    for name, value in variables.items():
        if not SECRET_NAME.search(str(name)) or value in (None, ""):
            continue
        text = str(value)
        # Interpolations (${VAR}, ${VAR:-default}) are fine when any default is a known
        # non-secret; anything else is a committed secret.
        defaults = re.findall(r"\$\{[A-Z0-9_]+(?::?-([^}]*))?\}", text)
        literal = re.sub(r"\$\{[^}]*\}", "", text)
        if literal.strip() or any(d and d not in KNOWN_NON_SECRETS for d in defaults):
            findings.add("secrets", f"{where}: {name} has a literal value")


def check_compose(root: Path, path: Path, grace_ms: int, findings: Findings) -> None:
    compose = yaml.safe_load(path.read_text(encoding="utf-8"))
    services = compose.get("services", {})
    relay = services.get("relay")
    if relay is None:
        findings.add("compose", "no `relay` service")
        return
    if "container_name" in relay:
        findings.add("compose", "relay: container_name makes `--scale relay=N` impossible")
    for port in relay.get("ports", []):
        findings.add("compose", f"relay: published port {port} makes `--scale relay=N` clash")
    env = relay.get("environment", {})
    relay_grace = int(env.get("RELAY_SHUTDOWN_GRACE_MS", grace_ms))
    stop = duration_seconds(relay.get("stop_grace_period", "10s"))
    if stop * 1000 <= relay_grace:
        findings.add(
            "compose",
            f"relay: stop_grace_period {stop:g}s must exceed RELAY_SHUTDOWN_GRACE_MS {relay_grace} ms",
        )
    for name in ("postgres", "migrate", "api"):
        if name not in services:
            findings.add("compose", f"no `{name}` service")
    for name in ("api", "relay"):
        after = services.get(name, {}).get("depends_on", {})
        if after.get("migrate", {}).get("condition") != "service_completed_successfully":
            findings.add("compose", f"{name}: must wait for migrate to complete successfully")
    if "healthcheck" not in services.get("postgres", {}):
        findings.add("compose", "postgres: no health check")
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if source.startswith((".", "/")) and not (path.parent / source).exists():
                findings.add("compose", f"{name}: bind mount {source} does not exist")
        build = service.get("build")
        if isinstance(build, dict):
            dockerfile = path.parent / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
            if not dockerfile.exists():
                findings.add("compose", f"{name}: {dockerfile} does not exist")
        secret_literals(f"compose {name}", service.get("environment", {}) or {}, findings)


# --- Kubernetes ---------------------------------------------------------------------------


def documented_variables(root: Path) -> set[str]:
    names = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", (root / ".env.example").read_text(encoding="utf-8"), re.M))
    names |= set(re.findall(r"`([A-Z][A-Z0-9_]{2,})`", (root / "docs/CONFIGURATION.md").read_text(encoding="utf-8")))
    return names


def pod_specs(document: dict) -> list[dict]:
    kind = document.get("kind")
    spec = document.get("spec", {})
    if kind in ("Deployment", "Job", "StatefulSet", "DaemonSet"):
        return [spec.get("template", {}).get("spec", {})]
    if kind == "CronJob":
        return [spec.get("jobTemplate", {}).get("spec", {}).get("template", {}).get("spec", {})]
    return []


def check_variable(where: str, name: str, documented: set[str], findings: Findings) -> None:
    if name in documented or name in DEPLOYMENT_VARIABLES or name.startswith(DEPLOYMENT_VARIABLES_PREFIXES):
        return
    findings.add("kubernetes", f"{where}: {name} is not a documented variable (.env.example, docs/CONFIGURATION.md)")


def check_kubernetes(root: Path, documents: list[dict], grace_ms: int, findings: Findings) -> None:
    documented = documented_variables(root)
    by_kind: dict[str, list[dict]] = {}
    config: dict[str, str] = {}
    for document in documents:
        by_kind.setdefault(document.get("kind", "?"), []).append(document)
        if document.get("kind") == "Secret":
            findings.add("secrets", f"Secret {document['metadata'].get('name')} is defined; reference Secrets, never commit them")
        if document.get("kind") == "ConfigMap":
            for name, value in (document.get("data") or {}).items():
                check_variable(f"ConfigMap {document['metadata']['name']}", name, documented, findings)
                if SECRET_NAME.search(name):
                    findings.add("secrets", f"ConfigMap {document['metadata']['name']}: {name} belongs in a Secret")
                config[name] = value
    for document in documents:
        name = f"{document.get('kind')} {document.get('metadata', {}).get('name')}"
        for pod in pod_specs(document):
            if not pod.get("securityContext", {}).get("runAsNonRoot"):
                findings.add("kubernetes", f"{name}: pods must set runAsNonRoot")
            for container in pod.get("containers", []):
                where = f"{name}/{container.get('name')}"
                resources = container.get("resources", {})
                if "memory" not in resources.get("limits", {}) or not {"cpu", "memory"} <= set(resources.get("requests", {})):
                    findings.add("kubernetes", f"{where}: needs cpu and memory requests and a memory limit")
                security = container.get("securityContext", {})
                if security.get("allowPrivilegeEscalation") is not False:
                    findings.add("kubernetes", f"{where}: allowPrivilegeEscalation must be false")
                for variable in container.get("env", []):
                    check_variable(where, variable["name"], documented, findings)
                    if "value" in variable:
                        secret_literals(where, {variable["name"]: variable["value"]}, findings)
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    api, relay = deployments.get("cons-api"), deployments.get("cons-relay")
    if api is None or relay is None:
        findings.add("kubernetes", "cons-api and cons-relay Deployments are required")
        return
    api_container = api["spec"]["template"]["spec"]["containers"][0]
    if api_container.get("readinessProbe", {}).get("httpGet", {}).get("path") != "/api/health/db":
        findings.add("kubernetes", "cons-api: readiness must probe /api/health/db")
    if api_container.get("livenessProbe", {}).get("httpGet", {}).get("path") != "/api/health":
        findings.add("kubernetes", "cons-api: liveness must probe /api/health")
    if not any(h["spec"]["scaleTargetRef"]["name"] == "cons-api" for h in by_kind.get("HorizontalPodAutoscaler", [])):
        findings.add("kubernetes", "cons-api: no HorizontalPodAutoscaler")
    if relay["spec"].get("replicas", 1) < 2:
        findings.add("kubernetes", "cons-relay: at least two replicas")
    relay_labels = relay["spec"]["template"]["metadata"]["labels"]
    if not any(
        all(relay_labels.get(k) == v for k, v in p["spec"]["selector"]["matchLabels"].items())
        for p in by_kind.get("PodDisruptionBudget", [])
    ):
        findings.add("kubernetes", "cons-relay: no PodDisruptionBudget selects its pods")
    relay_grace_ms = int(config.get("RELAY_SHUTDOWN_GRACE_MS", grace_ms))
    termination = relay["spec"]["template"]["spec"].get("terminationGracePeriodSeconds", 30)
    if termination * 1000 <= relay_grace_ms:
        findings.add(
            "kubernetes",
            f"cons-relay: terminationGracePeriodSeconds {termination} must exceed RELAY_SHUTDOWN_GRACE_MS {relay_grace_ms} ms",
        )
    jobs = [j for j in by_kind.get("Job", []) if j["metadata"].get("labels", {}).get("app.kubernetes.io/component") == "migrate"]
    if not jobs or jobs[0]["spec"]["template"]["spec"]["containers"][0].get("command") != ["consctl", "migrate"]:
        findings.add("kubernetes", "a Job labelled component=migrate must run `consctl migrate`")
    if not by_kind.get("CronJob"):
        findings.add("kubernetes", "no backup CronJob")


# --- versions -----------------------------------------------------------------------------


def check_versions(root: Path, findings: Findings) -> None:
    dockerfile = (root / "deploy/Dockerfile").read_text(encoding="utf-8")
    toolchain = tomllib.loads((root / "rust-toolchain.toml").read_text(encoding="utf-8"))
    workspace = tomllib.loads((root / "Cargo.toml").read_text(encoding="utf-8"))
    arguments = dict(re.findall(r"^ARG (\w+)=(\S+)", dockerfile, re.M))
    if arguments.get("RUST_VERSION") != toolchain["toolchain"]["channel"]:
        findings.add("versions", f"Dockerfile RUST_VERSION {arguments.get('RUST_VERSION')} != rust-toolchain.toml {toolchain['toolchain']['channel']}")
    version = workspace["workspace"]["package"]["version"]
    if arguments.get("VERSION") != version:
        findings.add("versions", f"Dockerfile VERSION {arguments.get('VERSION')} != workspace version {version}")
    for crate in ("api", "relay", "cli"):
        manifest = tomllib.loads((root / f"crates/{crate}/Cargo.toml").read_text(encoding="utf-8"))
        if manifest["package"].get("version") != {"workspace": True}:
            findings.add("versions", f"crates/{crate} must take the workspace version (the image labels carry it)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("."))
    parser.add_argument("--kubernetes", type=Path, nargs="*", default=[], help="rendered manifests")
    arguments = parser.parse_args()
    root = arguments.root.resolve()
    findings = Findings()
    observability = root / "deploy/observability"

    exported = exported_metrics(root, findings)
    rules = alert_rules(observability / "prometheus/alerts.yml")
    check_alerts(root, rules, findings)
    queries = [(f"alert {r.get('alert') or r.get('record')}", r["expr"]) for r in rules]
    for dashboard in sorted((observability / "grafana/dashboards").glob("*.json")):
        queries += dashboard_queries(dashboard, findings)
    check_metric_names(queries, exported, findings)

    grace_ms = relay_grace_default_ms(root)
    check_compose(root, root / "deploy/compose.yaml", grace_ms, findings)
    documents = []
    for path in arguments.kubernetes:
        documents += [d for d in yaml.safe_load_all(path.read_text(encoding="utf-8")) if d]
    if documents:
        check_kubernetes(root, documents, grace_ms, findings)
    check_versions(root, findings)

    print(f"metrics exported by the code: {len(exported)} series names; queries checked: {len(queries)}")
    for item in findings.items:
        print(f"FINDING {item}")
    print(f"deploy checks: {len(findings.items)} finding(s)")
    return 1 if findings.items else 0


if __name__ == "__main__":
    sys.exit(main())
