"""The compose stack's pieces point at each other: scrape target, mounts, provisioning and dashboard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tests.deploy.dockerfile import parse

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def mounts(service: dict) -> dict[str, str]:
    """container path -> host path (or volume name), without the mode suffix."""
    found = {}
    for entry in service.get("volumes", []):
        source, target = entry.split(":")[:2]
        found[target] = source
    return found


def test_service_uses_the_image_and_reserves_a_gpu(compose: dict) -> None:
    service = compose["services"]["vit-service"]
    assert service["build"]["dockerfile"] == "Dockerfile"
    assert (DEPLOY / service["build"]["context"] / "Dockerfile").is_file()
    (device,) = service["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    final = parse(ROOT / "Dockerfile").stage("final")
    cache = final.env()["VIT_TRT_CACHE_DIR"]
    assert mounts(service)[cache] in compose["volumes"]  # a named volume keeps built engines
    assert service["ports"] == [f"{final.last('EXPOSE').value}:{final.last('EXPOSE').value}"]


def test_env_names_are_service_settings(compose: dict) -> None:
    config = pytest.importorskip("service.core.config", reason="the service's settings are not in place")
    for name in compose["services"]["vit-service"].get("environment", {}):
        assert name.removeprefix("VIT_").lower() in config.Settings.model_fields, name


def test_prometheus_scrapes_the_compose_service(compose: dict) -> None:
    prometheus = compose["services"]["prometheus"]
    container_config = next(a for a in prometheus["command"] if a.startswith("--config.file="))
    config_path = container_config.split("=", 1)[1]
    host_paths = mounts(prometheus)
    assert (DEPLOY / host_paths[config_path]).resolve() == DEPLOY / "prometheus" / "prometheus.yml"
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:  # resolved next to the config inside the container
        in_container = str(Path(config_path).parent / rule_file)
        assert (DEPLOY / host_paths[in_container]).is_file(), rule_file
    (job,) = config["scrape_configs"]
    (target,) = job["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host == "vit-service" and host in compose["services"]
    assert port == parse(ROOT / "Dockerfile").stage("final").last("EXPOSE").value


def test_grafana_provisioning_finds_datasource_and_dashboard(compose: dict) -> None:
    grafana = compose["services"]["grafana"]
    host_paths = mounts(grafana)
    provisioning = DEPLOY / host_paths["/etc/grafana/provisioning"]
    datasources = yaml.safe_load((provisioning / "datasources" / "prometheus.yaml").read_text())
    (datasource,) = datasources["datasources"]
    assert datasource["url"] == "http://prometheus:9090" and "prometheus" in compose["services"]
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "vit.yaml").read_text())["providers"]
    dashboards = DEPLOY / host_paths[provider["options"]["path"]]
    assert (dashboards / "vit-service.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == f"{provider['options']['path']}/vit-service.json"

    dashboard = json.loads((dashboards / "vit-service.json").read_text())
    panels = dashboard["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == datasource["uid"], panel["title"]
        assert panel["targets"] and all(t["expr"] for t in panel["targets"]), panel["title"]
    titles = " ".join(p["title"].lower() for p in panels)
    for topic in ("throughput", "latency", "queue depth", "batch size", "rejections", "errors"):
        assert topic in titles, topic
