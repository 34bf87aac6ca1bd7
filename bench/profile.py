"""Where the engine's time goes: ONNX Runtime's own profiler, summed by operator type.

    python -m bench.profile .bench/bundles/vit-s16/classify.onnx --batch 8

For the service process itself use py-spy (``py-spy record -p PID -f raw -o prof.txt --nonblocking``);
``docs/benchmarks.md`` reports what it found.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np
import onnxruntime as ort


def op_shares(graph: Path, input_size: tuple[int, int], batch: int, runs: int = 3) -> dict:
    """Share of kernel time per operator type over ``runs`` timed runs (after one warm-up)."""
    with tempfile.TemporaryDirectory() as scratch:
        options = ort.SessionOptions()
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(scratch) / "ort")
        session = ort.InferenceSession(str(graph), options, providers=["CPUExecutionProvider"])
        pixels = np.random.default_rng(0).integers(0, 256, size=(batch, *input_size, 3), dtype=np.uint8)
        for _ in range(runs + 1):
            session.run(None, {session.get_inputs()[0].name: pixels})
        events = json.loads(Path(session.end_profiling()).read_text())
    per_op: Counter[str] = Counter()
    runs_seen = 0
    for event in events:
        if event.get("cat") == "Session" and event.get("name") == "model_run":
            runs_seen += 1
        if event.get("cat") == "Node" and event.get("name", "").endswith("_kernel_time"):
            per_op[event["args"].get("op_name", "?")] += event["dur"]
    total = sum(per_op.values()) or 1
    return {
        "batch": batch,
        "runs": runs_seen,
        "kernel_ms_per_run": total / 1000.0 / max(1, runs_seen),
        "shares": {op: us / total for op, us in per_op.most_common(8)},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__.splitlines()[0])
    parser.add_argument("graph", type=Path)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=224)
    args = parser.parse_args(argv)
    print(json.dumps(op_shares(args.graph, (args.size, args.size), args.batch), indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
