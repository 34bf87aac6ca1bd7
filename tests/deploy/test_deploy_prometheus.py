"""Observability: alert rules pass promtool, the dashboard and alerts use only metrics the service exposes,
and a real Prometheus with the project's scrape config scrapes a running service."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import free_port, http_get, png_bytes, stop, wait_ready

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS_DIR = ROOT / "deploy" / "prometheus"
DASHBOARD = ROOT / "deploy" / "grafana" / "dashboards" / "vit-service.json"
JOB = "vit-service"
# PromQL words that are not metric names (functions are recognised by their parenthesis).
PROMQL_WORDS = {"by", "without", "and", "or", "unless", "on", "ignoring", "group_left", "group_right", "bool"}
IDENTIFIER = re.compile(r"(?<![\w.:])([a-zA-Z_:][a-zA-Z0-9_:]*)(?![\w:])(?!\s*\()")


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.skip("promtool is not installed (Debian package prometheus; .ci/run installs it)")
    return path


def alert_expressions() -> list[str]:
    rules = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    exprs += [v["definition"] for v in dashboard["templating"]["list"] if v.get("definition")]
    return exprs


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (strings, selectors, ranges and grouping removed first)."""
    text = re.sub(r'"[^"]*"', "", expr)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "", text)
    text = re.sub(r",\s*[a-zA-Z_]\w*\s*\)", ")", text)  # label_values(metric, label): a label, not a metric
    return set(IDENTIFIER.findall(text)) - PROMQL_WORDS


def exposed_names(text: str) -> set[str]:
    """Every series name /metrics can produce, from its families (even those with no samples yet)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = {"up"}  # added by Prometheus to every target
    for family in text_string_to_metric_families(text):
        names |= {sample.name for sample in family.samples}
        suffixes = {
            "counter": ["_total", "_created"],
            "histogram": ["_bucket", "_sum", "_count", "_created"],
            "summary": ["_sum", "_count", "_created", ""],
            "info": ["_info"],
        }.get(family.type, [""])
        names |= {family.name + suffix for suffix in suffixes}
    return names


def test_alert_rules_pass_promtool() -> None:
    tool = promtool()
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        result = subprocess.run([tool, *args], cwd=PROMETHEUS_DIR, capture_output=True, text=True)
        assert result.returncode == 0, result.stdout + result.stderr


def test_scrape_config_passes_promtool() -> None:
    result = subprocess.run(
        [promtool(), "check", "config", "prometheus.yml"],
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_metric_name_extraction() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x="rate(b)"}[5m]))) / on (i) c unless d > 0.5'
    assert metric_names(expr) == {"a_bucket", "c", "d"}
    assert metric_names('label_values(up{job="x"}, instance)') == {"up"}


def test_dashboard_and_alerts_use_only_exposed_metrics(service_url: str) -> None:
    assert http_get(f"{service_url}/readyz")[0] == 200
    status, body = http_get(f"{service_url}/metrics")
    assert status == 200
    exposed = exposed_names(body.decode())
    used: dict[str, set[str]] = {}
    for source, exprs in (("alerts.yml", alert_expressions()), ("dashboard", dashboard_expressions())):
        for expr in exprs:
            for name in metric_names(expr):
                used.setdefault(name, set()).add(source)
    assert {"vit_queue_depth", "vit_batch_size_bucket", "http_request_duration_seconds_bucket"} <= set(used)
    missing = {name: sorted(where) for name, where in used.items() if name not in exposed}
    assert not missing, f"used but not exposed by /metrics: {missing}"


def query(base: str, promql: str) -> list[dict]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': promql})}"
    with urllib.request.urlopen(url, timeout=5) as response:
        payload = json.loads(response.read())
    assert payload["status"] == "success", payload
    return payload["data"]["result"]


def poll(base: str, promql: str, timeout_s: float = 60) -> list[dict]:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = query(base, promql)
        if result:
            return result
        time.sleep(0.5)
    raise AssertionError(f"{promql!r} returned nothing within {timeout_s:.0f}s")


def scrape_config_for(port: int, directory: Path) -> Path:
    """The project's prometheus.yml, aimed at the test's service; same job, rules and path."""
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    config["global"]["scrape_interval"] = "1s"
    config["global"]["evaluation_interval"] = "1s"
    (job,) = config["scrape_configs"]
    assert job["job_name"] == JOB
    job["static_configs"][0]["targets"] = [f"127.0.0.1:{port}"]
    shutil.copy(PROMETHEUS_DIR / "alerts.yml", directory / "alerts.yml")
    path = directory / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.mark.slow
def test_prometheus_scrapes_the_service(service_url: str, tmp_path: Path) -> None:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    service_port = int(service_url.rsplit(":", 1)[1])
    config = scrape_config_for(service_port, tmp_path)
    port = free_port()
    log = tmp_path / "prometheus.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
                "--storage.tsdb.retention.time=1h",
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{base}/-/ready", process, timeout_s=60, log=log)
        for seed in range(3):
            request = urllib.request.Request(
                f"{service_url}/classify", data=png_bytes(seed), headers={"Content-Type": "image/png"}
            )
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200
        (up,) = poll(base, f'up{{job="{JOB}"}} == 1')
        assert up["metric"]["instance"] == f"127.0.0.1:{service_port}"
        assert up["metric"]["service"] == "vit"  # the static label from the project's config
        poll(base, f'vit_batch_size_count{{job="{JOB}", batcher="classify"}} >= 3')
        poll(base, f'http_requests_total{{job="{JOB}", handler="/classify", status="200"}} >= 3')
        with urllib.request.urlopen(f"{base}/api/v1/rules", timeout=5) as response:
            groups = json.loads(response.read())["data"]["groups"]
        loaded = {rule["name"] for group in groups for rule in group["rules"]}
        rules = yaml.safe_load(config.with_name("alerts.yml").read_text())["groups"][0]["rules"]
        assert loaded == {rule["alert"] for rule in rules}
        assert not [rule for group in groups for rule in group["rules"] if rule.get("health") == "err"]
    finally:
        stop(process)
