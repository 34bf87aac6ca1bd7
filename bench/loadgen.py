"""HTTP load generator, run in its own process so that it never shares an interpreter with the server.

Closed loop: ``concurrency`` clients, each sending its next request as soon as the last one answered.
Open loop: Poisson arrivals at a fixed rate, independent of how fast the server answers (the way real
traffic arrives), so queueing and rejections (429) show up. Both are bounded in time and request count.

Every server receives the same image bytes; ``--kind`` only changes the envelope each server's API needs:
``raw`` (an ``image/*`` body), ``json_b64`` (``{"image": base64}``) or ``kserve_v1``
(``{"instances": [{"image": {"b64": ...}}]}``, KServe's v1 REST protocol).

    python -m bench.loadgen --url http://127.0.0.1:8000/classify --image cat.jpg --mode closed -c 16
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.stats import latency_summary_ms

KINDS = ("raw", "json_b64", "kserve_v1")


def build_request(kind: str, image: bytes, content_type: str) -> dict:
    """httpx ``request`` keyword arguments for one image in the given envelope."""
    if kind == "raw":
        return {"content": image, "headers": {"content-type": content_type}}
    encoded = base64.b64encode(image).decode("ascii")
    if kind == "json_b64":
        return {"json": {"image": encoded}}
    if kind == "kserve_v1":
        return {"json": {"instances": [{"image": {"b64": encoded}}]}}
    raise ValueError(f"unknown request kind {kind!r}; choose from {KINDS}")


@dataclass
class Tally:
    """Outcomes inside the measurement window ``[start, end]``.

    Throughput counts every success that *finishes* inside the window (a steady-state rate, whatever
    the request's start); latencies are those of the requests that *started* inside it.
    """

    start: float = float("inf")
    end: float = float("inf")
    latencies: list[float] = field(default_factory=list)
    done_in_window: int = 0
    sent: int = 0
    ok: int = 0
    rejected_429: int = 0
    errors: int = 0
    status_counts: dict[str, int] = field(default_factory=dict)
    client_dropped: int = 0

    def record(self, started: float, finished: float, status: int | None) -> None:
        if status == 200 and self.start <= finished <= self.end:
            self.done_in_window += 1
        if not self.start <= started <= self.end:
            return
        self.sent += 1
        key = str(status) if status is not None else "transport_error"
        self.status_counts[key] = self.status_counts.get(key, 0) + 1
        if status == 200:
            self.ok += 1
            self.latencies.append(finished - started)
        elif status == 429:
            self.rejected_429 += 1
        else:
            self.errors += 1

    def summary(self) -> dict:
        window = self.end - self.start
        return {
            "window_s": window,
            "sent": self.sent,
            "ok": self.ok,
            "throughput_rps": self.done_in_window / window if window > 0 else 0.0,
            "rejected_429": self.rejected_429,
            "errors": self.errors,
            "client_dropped": self.client_dropped,
            "status_counts": self.status_counts,
            **latency_summary_ms(self.latencies),
        }


async def _send(client: httpx.AsyncClient, url: str, request: dict, tally: Tally) -> float:
    started = time.perf_counter()
    try:
        response = await client.post(url, **request)
        await response.aread()
        status: int | None = response.status_code
    except httpx.HTTPError:
        status = None
    finished = time.perf_counter()
    tally.record(started, finished, status)
    return finished


async def closed_loop(
    url: str,
    request: dict,
    concurrency: int,
    duration: float,
    warmup: float,
    max_requests: int,
    max_seconds: float | None = None,
) -> dict:
    """``concurrency`` clients back to back. Warm-up lasts ``warmup`` seconds and at least until the first
    wave of requests is answered; the window then lasts ``duration`` seconds and at least until
    ``concurrency`` more answers arrived (so slow models still give whole batches), within ``max_seconds``."""
    max_seconds = max_seconds or 4 * (duration + warmup) + 60
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        begin = time.perf_counter()
        tally = Tally()
        state = {"budget": max_requests, "answers": 0, "window_answers": 0}

        def advance(now: float) -> None:
            state["answers"] += 1
            if tally.start == float("inf"):
                if now - begin >= warmup and state["answers"] >= concurrency:
                    tally.start = now
                return
            state["window_answers"] += 1
            if (
                tally.end == float("inf")
                and now - tally.start >= duration
                and state["window_answers"] >= concurrency
            ):
                tally.end = now

        async def worker() -> None:
            while tally.end == float("inf") and state["budget"] > 0:
                if time.perf_counter() - begin > max_seconds:
                    tally.start = min(tally.start, begin)
                    tally.end = min(tally.end, time.perf_counter())
                    break
                state["budget"] -= 1
                advance(await _send(client, url, request, tally))

        await asyncio.gather(*(worker() for _ in range(concurrency)))
        if tally.end == float("inf"):  # request budget ran out first
            tally.start = min(tally.start, begin)
            tally.end = time.perf_counter()
    return {"mode": "closed", "concurrency": concurrency, **tally.summary()}


async def open_loop(
    url: str,
    request: dict,
    rate: float,
    duration: float,
    warmup: float,
    max_requests: int,
    max_outstanding: int = 512,
    seed: int = 0,
) -> dict:
    """Poisson arrivals at ``rate`` per second for ``warmup + duration`` seconds, whatever the answers."""
    rng = random.Random(seed)
    limits = httpx.Limits(max_connections=max_outstanding, max_keepalive_connections=64)
    async with httpx.AsyncClient(limits=limits, timeout=120.0) as client:
        begin = time.perf_counter()
        tally = Tally(start=begin + warmup, end=begin + warmup + duration)
        tasks: set[asyncio.Task] = set()
        next_at = begin
        issued = 0
        while next_at < tally.end and issued < max_requests:
            delay = next_at - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(tasks) >= max_outstanding:
                if tally.start <= next_at <= tally.end:
                    tally.client_dropped += 1
            else:
                task = asyncio.create_task(_send(client, url, request, tally))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                issued += 1
            next_at += rng.expovariate(rate)
        if tasks:
            await asyncio.wait(tasks, timeout=120.0)
    return {"mode": "open", "offered_rps": rate, **tally.summary()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", required=True)
    parser.add_argument("--image", type=Path, required=True)
    parser.add_argument("--content-type", default="image/jpeg")
    parser.add_argument("--kind", choices=KINDS, default="raw")
    parser.add_argument("--mode", choices=("closed", "open"), default="closed")
    parser.add_argument("-c", "--concurrency", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0, help="open loop: arrivals per second")
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--max-requests", type=int, default=20000)
    args = parser.parse_args(argv)
    request = build_request(args.kind, args.image.read_bytes(), args.content_type)
    if args.mode == "closed":
        result = asyncio.run(
            closed_loop(args.url, request, args.concurrency, args.duration, args.warmup, args.max_requests)
        )
    else:
        result = asyncio.run(
            open_loop(args.url, request, args.rate, args.duration, args.warmup, args.max_requests)
        )
    json.dump(result, sys.stdout)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
