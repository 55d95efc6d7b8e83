"""Helpers for the benchmarks: servers in their own processes, the load generator, stats."""

from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Row:
    """One line of the results table."""

    name: str
    value: float
    baseline: float
    unit: str
    goal: str
    passed: bool

    @property
    def ratio(self) -> float:
        return self.value / self.baseline if self.baseline else float("nan")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(env: dict[str, str], cwd: Path, port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [sys.executable, "-m", "authprofiles.cli.main", "serve", "--port", str(port)],
        env={**os.environ, **env},
        cwd=cwd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise RuntimeError("the server did not start")


def load(
    url: str, *, requests: int, concurrency: int, headers: dict[str, str] | None = None
) -> dict:
    """Run the load generator in its own process and return its figures."""
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        url,
        "--requests",
        str(requests),
        "--concurrency",
        str(concurrency),
    ]
    for name, value in (headers or {}).items():
        command += ["--header", f"{name}: {value}"]
    out = subprocess.run(command, cwd=ROOT, capture_output=True, check=True).stdout
    result: dict = json.loads(out)
    if result["failures"]:
        raise RuntimeError(f"{url}: {result['failures']} answers were not 200")
    return result


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return statistics.quantiles(ordered, n=100, method="inclusive")[int(q) - 1]
