"""Start a server in its own process group on a loopback port, wait until it answers, stop it cleanly."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


@dataclass
class ServerSpec:
    """How to launch one server and talk to it."""

    name: str
    argv: list[str]
    port: int
    predict_path: str  # e.g. "/classify" or "/v1/models/vit:predict"
    ready_path: str  # answers 200 once the model is loaded
    kind: str  # request envelope, see bench.loadgen.KINDS
    env: dict[str, str] = field(default_factory=dict)
    metrics_path: str | None = None
    ready_timeout_s: float = 180.0

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def predict_url(self) -> str:
        return self.base_url + self.predict_path


class ServerError(RuntimeError):
    """The server did not start or died; the message carries the tail of its log."""


class RunningServer:
    """Context manager: the server process runs (and is ready) inside the ``with`` block."""

    def __init__(self, spec: ServerSpec, log_path: Path, cwd: Path | None = None) -> None:
        self.spec = spec
        self.log_path = Path(log_path)
        self.cwd = cwd
        self.process: subprocess.Popen | None = None
        self.startup_s: float | None = None

    def __enter__(self) -> RunningServer:
        return self.start()

    def start(self) -> RunningServer:
        """Launch the server and wait until it is ready (stopped again if it never gets there)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.spec.env}
        started = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                self.spec.argv,
                env=env,
                cwd=self.cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop() ends the server and its workers
            )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        self.startup_s = time.perf_counter() - started
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.spec.ready_timeout_s
        url = self.spec.base_url + self.spec.ready_path
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise ServerError(
                    f"{self.spec.name} exited with {self.process.returncode}: {self.log_tail()}"
                )
            try:
                if httpx.get(url, timeout=2.0).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise ServerError(
            f"{self.spec.name} not ready after {self.spec.ready_timeout_s:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, chars: int = 1500) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def get(self, path: str, **kwargs) -> httpx.Response:
        return httpx.get(self.spec.base_url + path, timeout=30.0, **kwargs)

    def stop(self, grace_s: float = 15.0) -> None:
        """SIGTERM the server's process group, then SIGKILL what is left after ``grace_s``."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except ProcessLookupError:
            return
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # stragglers (e.g. workers) in the same group
        process.wait(timeout=5)
