"""A real ``vit-serve`` subprocess on 127.0.0.1 and a free port, for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

SLOW_SERVER = Path(__file__).with_name("slow_server.py")
REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServerProcess:
    def __init__(self, bundle: Path, log_path: Path, env: dict[str, str] | None = None, delay_s: float = 0.0):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        script = [str(SLOW_SERVER)] if delay_s else ["-m", "service.cli"]
        command = [
            sys.executable,
            *script,
            "--bundle",
            str(bundle),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        full_env = {
            **os.environ,
            "VIT_INTRA_OP_THREADS": "1",
            "VIT_DECODE_WORKERS": "2",
            "VIT_LOG_LEVEL": "warning",
            "VIT_TEST_ENGINE_DELAY_S": str(delay_s),
            # start-up timing would measure the undelayed engine, not the slowed one tests rely on
            **({"VIT_BATCH_AUTOTUNE": "false"} if delay_s else {}),
            **(env or {}),
        }
        self._log = open(log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout_s: float = 90.0) -> ServerProcess:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"server not ready in {timeout_s} s:\n{self.log()}")

    def terminate(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def stop(self, timeout_s: float = 30.0) -> int:
        self.terminate()
        try:
            code = self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._log.close()
        return code
