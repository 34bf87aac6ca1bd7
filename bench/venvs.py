"""Each peer server in its own virtual environment under ``.bench/venvs/<peer>``.

Peers pin their own dependency trees (Ray, KServe and LitServe each bring their own FastAPI, uvicorn,
pydantic ...); keeping them out of the project's environment means their pins never constrain ours and
each peer runs exactly as its documentation installs it. Environments are cached: a stamp file records
the requirement list, so a second run reuses them and a changed list rebuilds them.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

# peer -> pip requirements as each project's install docs give them, plus the image stack all servers share.
COMMON = ["numpy>=1.26,<3", "pillow>=10.3,<14"]
PEER_REQUIREMENTS: dict[str, list[str]] = {
    # torch is pinned to the local CPU wheel that pip finds through its find-links.
    "fastapi_torch": [
        "torch==2.13.0",
        "safetensors>=0.4,<1",
        "fastapi>=0.115,<1",
        "uvicorn[standard]>=0.30,<1",
        "python-multipart>=0.0.9",
    ],
    "litserve": ["litserve>=0.2,<1", "onnxruntime>=1.20,<2"],
    "kserve": ["kserve>=0.13,<1", "onnxruntime>=1.20,<2"],
    "rayserve": ["ray[serve]>=2.30,<3", "onnxruntime>=1.20,<2"],
}
STAMP = ".bench-installed.json"


def venv_python(root: Path, peer: str) -> Path:
    return Path(root) / peer / "bin" / "python"


def is_ready(root: Path, peer: str) -> bool:
    stamp = Path(root) / peer / STAMP
    if not stamp.is_file() or not venv_python(root, peer).exists():
        return False
    try:
        return json.loads(stamp.read_text()) == PEER_REQUIREMENTS[peer] + COMMON
    except json.JSONDecodeError:
        return False


def ensure_venv(root: Path, peer: str, log: Path | None = None) -> Path:
    """Create (or reuse) the peer's environment and return its interpreter; raises on install failure."""
    if peer not in PEER_REQUIREMENTS:
        raise ValueError(f"unknown peer {peer!r}; choose from {sorted(PEER_REQUIREMENTS)}")
    python = venv_python(root, peer)
    if is_ready(root, peer):
        return python
    env_dir = Path(root) / peer
    env_dir.parent.mkdir(parents=True, exist_ok=True)
    base = getattr(sys, "_base_executable", sys.executable)
    requirements = PEER_REQUIREMENTS[peer] + COMMON
    out = open(log, "a") if log else subprocess.DEVNULL  # noqa: SIM115 - closed below
    try:
        subprocess.run([base, "-m", "venv", "--clear", str(env_dir)], check=True, stdout=out, stderr=out)
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", *requirements],
            check=True,
            stdout=out,
            stderr=out,
        )
    finally:
        if log:
            out.close()
    (env_dir / STAMP).write_text(json.dumps(requirements))
    return python


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="Create the peer servers' virtual environments.")
    parser.add_argument("--root", type=Path, default=Path(".bench/venvs"))
    parser.add_argument("peers", nargs="*", default=sorted(PEER_REQUIREMENTS))
    args = parser.parse_args()
    for name in args.peers:
        print(name, ensure_venv(args.root, name, log=args.root / f"{name}.log"), flush=True)
