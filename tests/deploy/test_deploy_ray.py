"""Ray Serve: the one-command local deployment answers /classify like the plain service does."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.deploy.conftest import ROOT, free_port, png_bytes

pytest.importorskip("ray.serve", reason="Ray Serve is not installed (extra: ray)")

CONFIG = ROOT / "deploy" / "ray" / "config.yaml"


def post_image(url: str, data: bytes, timeout: float = 30) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "image/png"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        body = exc.read()
        return exc.code, json.loads(body) if body.startswith(b"{") else {"raw": body.decode(errors="replace")}


def test_config_builds_the_application_from_this_module() -> None:
    from deploy.ray import serve_app

    config = yaml.safe_load(CONFIG.read_text())
    (app,) = config["applications"]
    module, _, builder = app["import_path"].partition(":")
    assert module == serve_app.__name__ and callable(getattr(serve_app, builder))
    args = serve_app.AppArgs.model_validate(app["args"])  # every key is a real argument
    assert set(app["args"]) <= set(serve_app.AppArgs.model_fields)
    assert args.bundle == ROOT / app["args"]["bundle"]  # relative: a bundle of this checkout
    application = serve_app.build_app(app["args"])
    deployment = application._bound_deployment  # what Serve will deploy
    assert deployment.ray_actor_options["num_gpus"] == args.num_gpus
    assert deployment._deployment_config.autoscaling_config.max_replicas == args.max_replicas


@pytest.mark.slow
def test_ray_serve_round_trip_matches_the_plain_service(
    tiny_bundle: Path, service_url: str, tmp_path: Path
) -> None:
    port = free_port()
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        # A single-node Ray that keeps its own agents on loopback, without usage reporting.
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_USAGE_STATS_ENABLED": "0",
        "PYTHONPATH": str(ROOT),
    }
    command = [
        sys.executable, "-m", "deploy.ray.serve_app",
        "--bundle", str(tiny_bundle), "--host", "127.0.0.1", "--port", str(port),
        "--address", "local", "--node-ip-address", "127.0.0.1", "--num-cpus", "2",
        "--max-replicas", "1", "--max-batch-size", "4", "--intra-op-threads", "1",
    ]  # fmt: skip
    log = tmp_path / "ray.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
        )
    image = png_bytes(seed=7)
    try:
        deadline = time.monotonic() + 180
        status, ray_body = 0, {}
        while time.monotonic() < deadline:
            if process.poll() is not None:
                output = log.read_text()[-4000:]
                raise AssertionError(f"Ray Serve exited with {process.returncode}:\n{output}")
            try:
                status, ray_body = post_image(f"http://127.0.0.1:{port}/classify?top_k=10", image, timeout=10)
            except OSError:
                status = 0
            if status == 200:
                break
            time.sleep(1)
        assert status == 200, f"no answer from Ray Serve ({status}, {ray_body}):\n{log.read_text()[-4000:]}"

        plain_status, plain_body = post_image(f"{service_url}/classify?top_k=10", image)
        assert plain_status == 200
        ray_scores = {p["index"]: p["score"] for p in ray_body["predictions"]}
        plain_scores = {p["index"]: p["score"] for p in plain_body["predictions"]}
        assert ray_body["predictions"][0]["label"] == plain_body["predictions"][0]["label"]
        assert ray_scores.keys() == plain_scores.keys()
        assert max(abs(ray_scores[i] - plain_scores[i]) for i in ray_scores) <= 1e-5
        assert (ray_body["model"], ray_body["version"]) == (plain_body["model"], plain_body["version"])

        # Bad input gets the service's error format and status.
        status, body = post_image(f"http://127.0.0.1:{port}/classify", b"not an image")
        assert status == 400 and body["error"]["code"] == "invalid_image"
    finally:
        # SIGINT: Serve and the local Ray node shut down as on Ctrl-C; then make sure the group is gone.
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers of this session only
