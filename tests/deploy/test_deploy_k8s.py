"""Kubernetes and KServe manifests: valid against their schemas, lint-clean, and consistent with the image."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
kubernetes_validate = pytest.importorskip("kubernetes_validate")
jsonschema = pytest.importorskip("jsonschema")

from tests.deploy.dockerfile import parse  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
KSERVE = K8S / "kserve" / "inferenceservice.yaml"
KSERVE_SCHEMA = Path(__file__).with_name("kserve_inferenceservice.schema.json")
# The oldest Kubernetes release the manifests promise to work on.
K8S_VERSION = "1.30.0"


def load_all(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> dict[str, dict]:
    """kind -> the resource, for the plain Kubernetes manifests (not the Kustomization)."""
    found: dict[str, dict] = {}
    for path in sorted(K8S.glob("*.yaml")):
        for doc in load_all(path):
            if doc["kind"] != "Kustomization":
                found[doc["kind"]] = doc
    return found


@pytest.fixture(scope="module")
def resources() -> dict[str, dict]:
    return manifests()


@pytest.fixture(scope="module")
def container(resources: dict[str, dict]) -> dict:
    (only,) = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    return only


def env_of(container: dict) -> dict[str, str]:
    return {item["name"]: item["value"] for item in container.get("env", [])}


@pytest.mark.parametrize("path", sorted(K8S.glob("*.yaml")), ids=lambda p: p.name)
def test_manifest_is_valid_against_the_kubernetes_schema(path: Path) -> None:
    for doc in load_all(path):
        if doc["kind"] == "Kustomization":
            listed = {K8S / name for name in doc["resources"]}
            assert all(p.is_file() for p in listed), listed
            assert listed == {p for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml"}
            continue
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_strict_validation_catches_a_misspelt_field(resources: dict[str, dict]) -> None:
    broken = json.loads(json.dumps(resources["Deployment"]))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)


def test_expected_resources_are_present(resources: dict[str, dict]) -> None:
    assert set(resources) == {"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget"}
    assert resources["HorizontalPodAutoscaler"]["apiVersion"] == "autoscaling/v2"


def test_selectors_and_targets_agree(resources: dict[str, dict]) -> None:
    deployment = resources["Deployment"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    for selector in (
        deployment["spec"]["selector"]["matchLabels"],
        resources["Service"]["spec"]["selector"],
        resources["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= pod_labels.items()
    target = resources["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert resources["Service"]["spec"]["ports"][0]["targetPort"] in port_names


def test_gpu_probes_and_draining(resources: dict[str, dict], container: dict) -> None:
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    # preStop keeps the pod serving while endpoints update; then the service drains for its graceful
    # timeout. Kubernetes kills the pod at terminationGracePeriodSeconds, which must cover both.
    command = container["lifecycle"]["preStop"]["exec"]["command"]
    assert command[0] == "sleep"
    drain = int(env_of(container)["VIT_GRACEFUL_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > int(command[1]) + drain
    assert resources["Deployment"]["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_deployment_matches_the_image(container: dict, resources: dict[str, dict]) -> None:
    image = parse(ROOT / "Dockerfile")
    final = image.stage("final")
    env = final.env()
    pod = resources["Deployment"]["spec"]["template"]["spec"]
    user = final.last("USER").value.split(":")[0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert str(pod["securityContext"]["runAsUser"]) == user
    # The engine cache: same path in the image's VOLUME, its env default, and the pod's mount.
    (volume,) = final.all("VOLUME")
    cache = env_of(container)["VIT_TRT_CACHE_DIR"]
    assert json.loads(volume.value) == [cache] == [env["VIT_TRT_CACHE_DIR"]]
    mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
    assert cache in mounts
    assert env_of(container)["VIT_BUNDLE"] == env["VIT_BUNDLE"]
    port = container["ports"][0]["containerPort"]
    assert str(port) == final.last("EXPOSE").value
    assert container["args"] == final.last("CMD").exec_form()


def test_env_names_are_service_settings(container: dict) -> None:
    config = pytest.importorskip("service.core.config", reason="the service's settings are not in place")
    fields = set(config.Settings.model_fields)
    kserve_container = load_all(KSERVE)[0]["spec"]["predictor"]["containers"][0]
    for name in [*env_of(container), *env_of(kserve_container)]:
        assert name.startswith("VIT_") and name.removeprefix("VIT_").lower() in fields, name


def test_kserve_inference_service_is_structurally_valid() -> None:
    schema = json.loads(KSERVE_SCHEMA.read_text())
    (service,) = load_all(KSERVE)
    jsonschema.validate(service, schema)
    (container,) = service["spec"]["predictor"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    broken = json.loads(json.dumps(service))
    broken["spec"]["predictor"]["containers"][0]["imagePullPolicyy"] = "Always"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, schema)


def test_yamllint_is_clean() -> None:
    pytest.importorskip("yamllint")
    result = subprocess.run(
        [sys.executable, "-m", "yamllint", "--strict", "-c", str(ROOT / "deploy/.yamllint"), str(K8S.parent)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
