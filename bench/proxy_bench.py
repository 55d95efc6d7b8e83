"""The proxy against a direct call to the same upstream, and a 200 MB stream through it.

The echo upstream and the app server (``authprofiles serve``, uvicorn) each run in their
own process; so does the load generator. Goals (issue 13): proxied p50 at most 1.2x the
bare forwarder's (below), requests/s at concurrency 16 at least 0.6x its; streaming
200 MB through the proxy grows the server's memory by less than 50 MB (the body must
never be held). The direct call to the upstream is reported beside them.

A third server, ``bench.bare_forwarder`` (uvicorn + aiohttp and nothing else), is measured
too: what the libraries alone cost for one hop, the floor under any proxy built on them.

An agent calls through an agent grant (issue 14): its grant's rules are checked before the
token is read and the injected credentials are taken out of the answer. Goal: its proxied
p50 at most 1.1x the API-key caller's. Both callers (the grant is made with the key, so the
agent acts for the same person under the same policy) call the same server, connection and
upstream, in runs of the same length taking turns (ABBA), so whatever drifts during the
run reaches both alike; each figure is the median of its runs.

    .venv/bin/python -m bench proxy_bench     # this suite alone, also writes results.json
    .venv/bin/python -m bench.proxy_bench     # the table only
"""

from __future__ import annotations

import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import psutil

from authprofiles.store.cipher import encode_key, new_key
from bench.common import (
    ROOT,
    Row,
    free_port,
    load,
    prepare_connection,
    server_env,
    start_process,
    start_server,
    stop,
)
from tests.support.echo import EchoServer, expected_sha256, start_echo

SEQUENTIAL = 3000
CONCURRENT = 4000
CONCURRENCY = 16
STREAM_BYTES = 200 * 1024 * 1024
RSS_GOAL_MB = 50.0
MB = 1024 * 1024
#: The grant against the key: runs per caller, taking turns, and each run's length.
AGENT_ROUNDS = 8
AGENT_CONCURRENT_ROUNDS = 4
AGENT_ROUND_SECONDS = 2.0
AGENT_GOAL = 1.1
KEY, GRANT = "API key", "agent grant"

# The streaming client, run in its own process: reads the body chunk by chunk, keeps
# nothing but a digest, and reports what it got and how long it took.
_STREAM_CLIENT = """
import hashlib, json, sys, time, httpx
url, header = sys.argv[1], sys.argv[2]
headers = dict([header.split(": ", 1)]) if header else {}
digest, size = hashlib.sha256(), 0
began = time.perf_counter()
with httpx.Client(timeout=120, trust_env=False) as client:
    with client.stream("GET", url, headers=headers) as response:
        status = response.status_code
        for chunk in response.iter_raw():
            size += len(chunk)
            digest.update(chunk)
print(json.dumps({"status": status, "bytes": size, "sha256": digest.hexdigest(),
                  "seconds": time.perf_counter() - began}))
"""


def _start_bare_forwarder(upstream: str) -> tuple[subprocess.Popen[bytes], str]:
    url = f"http://127.0.0.1:{free_port()}"
    process = start_process(
        ["-m", "bench.bare_forwarder", upstream, url.rsplit(":", 1)[1]], f"{url}/_echo/health"
    )
    return process, url


def _tree_rss(process: psutil.Process) -> int:
    total = 0
    for member in [process, *process.children(recursive=True)]:
        with contextlib.suppress(psutil.NoSuchProcess):  # a worker may just have gone
            total += member.memory_info().rss
    return total


def _stream(url: str, header: str, server: psutil.Process | None) -> tuple[dict, int]:
    """Stream ``url`` in a client process; sample the server's RSS meanwhile (peak)."""
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(server)) if server else 0
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        out = subprocess.run(
            [sys.executable, "-c", _STREAM_CLIENT, url, header],
            cwd=ROOT,
            capture_output=True,
            check=True,
            timeout=600,
        ).stdout
    finally:
        done.set()
        sampler.join()
    result: dict = json.loads(out)
    if result["status"] != 200 or result["bytes"] != STREAM_BYTES:
        raise RuntimeError(f"{url}: HTTP {result['status']}, {result['bytes']} bytes")
    if result["sha256"] != expected_sha256(STREAM_BYTES):
        raise RuntimeError(f"{url}: the streamed body differs from what the upstream sent")
    return result, peak


def _agent_grant(base: str, auth: dict[str, str], connection_id: str, proxy: str) -> str:
    """A grant on the connection, made with the API key's person's key (so the agent
    acts for the same person, under the same policy): its token. Checks that a call
    through it is the agent's (the echoed access token comes back redacted)."""
    with httpx.Client(timeout=30, trust_env=False) as client:
        made = client.post(
            f"{base}/api/v1/agent-grants",
            headers=auth,
            json={
                "agent": "bench-agent",
                "connection_ids": [connection_id],
                "rules": [{"methods": ["GET"], "path": "/**"}],
                "ttl_seconds": 3600,
            },
        )
        if made.status_code != 201:
            raise RuntimeError(f"could not make an agent grant: {made.status_code} {made.text}")
        token: str = made.json()["token"]
        for headers, redacted in ((auth, False), ({"Authorization": f"Bearer {token}"}, True)):
            answer = client.get(f"{proxy}/bench/items", headers=headers)
            if answer.status_code != 200 or ("[redacted]" in answer.text) != redacted:
                raise RuntimeError(f"unexpected proxied answer: {answer.status_code} {answer.text}")
    return token


def _taking_turns(
    url: str, callers: dict[str, dict[str, str]], *, rounds: int, concurrency: int, requests: int
) -> dict[str, list[dict]]:
    """Each caller loads ``url`` in ``rounds`` runs of the same length (wrk: seconds; the
    Python generator: calls), taking turns: A B, B A, A B... so each goes first as often,
    and drift in the machine or the server reaches both alike. Each is warmed up first
    (its credential verified and cached, the upstream pool filled)."""
    for headers in callers.values():
        load(
            url,
            requests=requests,
            concurrency=concurrency,
            headers=headers,
            seconds=1,
            warm_up=False,
        )
    runs: dict[str, list[dict]] = {name: [] for name in callers}
    names = list(callers)
    for turn in range(rounds):
        for name in names if turn % 2 == 0 else names[::-1]:
            runs[name].append(
                load(
                    url,
                    requests=requests,
                    concurrency=concurrency,
                    headers=callers[name],
                    seconds=AGENT_ROUND_SECONDS,
                    warm_up=False,
                )
            )
    return runs


def _median(runs: list[dict], key: str) -> float:
    return statistics.median(run[key] for run in runs)


def _report_turns(label: str, runs: dict[str, list[dict]], key: str, scale: float) -> None:
    """Each run's figure, for the record (stderr): the table shows their medians."""
    for name, each in runs.items():
        figures = " ".join(f"{run[key] * scale:.3g}" for run in each)
        calls = sum(run["requests"] for run in each)
        print(f"proxy_bench: {label}, {name}: {figures} ({calls} calls)", file=sys.stderr)


def run() -> list[Row]:
    with tempfile.TemporaryDirectory(prefix="authprofiles-proxy-bench-") as tmp:
        workdir = Path(tmp)
        echo: EchoServer = start_echo(workdir)
        server = bare = None
        try:
            key = encode_key(new_key())
            # A profile whose API is the echo upstream, with one authorization field of
            # each cheap kind (header and query).
            api_key, connection_id = prepare_connection(
                workdir,
                key,
                {
                    "name": "bench-proxy",
                    "api_base_url": echo.url,
                    "authorization_fields": [
                        {"type": "header", "key": "X-Tenant", "value": "t1"},
                        {"type": "query", "key": "api_key", "value": "k1"},
                    ],
                },
            )
            port = free_port()
            server = start_server(server_env(workdir, key), workdir, port)
            proxy = f"http://127.0.0.1:{port}/api/v1/proxy/{connection_id}"
            auth = {"Authorization": f"Bearer {api_key}"}

            bare, bare_url = _start_bare_forwarder(echo.url)

            direct_seq = load(f"{echo.url}/bench/items", requests=SEQUENTIAL, concurrency=1)
            bare_seq = load(f"{bare_url}/bench/items", requests=SEQUENTIAL, concurrency=1)
            proxied_seq = load(
                f"{proxy}/bench/items", requests=SEQUENTIAL, concurrency=1, headers=auth
            )
            direct_conc = load(
                f"{echo.url}/bench/items", requests=CONCURRENT, concurrency=CONCURRENCY
            )
            bare_conc = load(
                f"{bare_url}/bench/items", requests=CONCURRENT, concurrency=CONCURRENCY
            )
            proxied_conc = load(
                f"{proxy}/bench/items",
                requests=CONCURRENT,
                concurrency=CONCURRENCY,
                headers=auth,
            )

            grant = _agent_grant(f"http://127.0.0.1:{port}", auth, connection_id, proxy)
            callers = {KEY: auth, GRANT: {"Authorization": f"Bearer {grant}"}}
            agent_seq = _taking_turns(
                f"{proxy}/bench/items",
                callers,
                rounds=AGENT_ROUNDS,
                concurrency=1,
                requests=SEQUENTIAL // AGENT_ROUNDS,
            )
            agent_conc = _taking_turns(
                f"{proxy}/bench/items",
                callers,
                rounds=AGENT_CONCURRENT_ROUNDS,
                concurrency=CONCURRENCY,
                requests=CONCURRENT // AGENT_CONCURRENT_ROUNDS,
            )

            direct_stream, _ = _stream(f"{echo.url}/bytes/{STREAM_BYTES}", "", None)
            server_process = psutil.Process(server.pid)
            rss_before = _tree_rss(server_process)
            proxied_stream, rss_peak = _stream(
                f"{proxy}/bytes/{STREAM_BYTES}",
                f"Authorization: Bearer {api_key}",
                server_process,
            )
        finally:
            stop(bare)
            stop(server)
            echo.stop()

    direct_p50 = direct_seq["p50"] * 1000
    bare_p50 = bare_seq["p50"] * 1000
    proxied_p50 = proxied_seq["p50"] * 1000
    direct_p99 = direct_seq["p99"] * 1000
    proxied_p99 = proxied_seq["p99"] * 1000
    _report_turns("sequential p50 (ms) per run", agent_seq, "p50", 1000)
    _report_turns(f"req/s at {CONCURRENCY} per run", agent_conc, "rps", 1)
    key_p50 = _median(agent_seq[KEY], "p50") * 1000
    grant_p50 = _median(agent_seq[GRANT], "p50") * 1000
    key_rps = _median(agent_conc[KEY], "rps")
    grant_rps = _median(agent_conc[GRANT], "rps")
    growth = max(0.0, (rss_peak - rss_before) / MB)
    direct_rate = STREAM_BYTES / MB / direct_stream["seconds"]
    proxied_rate = STREAM_BYTES / MB / proxied_stream["seconds"]
    floor = "bare forwarder (the libraries' floor)"
    return [
        Row(
            "proxied call p50 vs bare forwarder (sequential)",
            proxied_p50,
            bare_p50,
            "ms",
            "<= 1.2x floor",
            proxied_p50 <= 1.2 * bare_p50,
            floor,
        ),
        Row(
            f"proxied req/s at {CONCURRENCY} vs bare forwarder",
            proxied_conc["rps"],
            bare_conc["rps"],
            "req/s",
            ">= 0.6x floor",
            proxied_conc["rps"] >= 0.6 * bare_conc["rps"],
            floor,
        ),
        Row(
            "proxied call p50 vs direct (sequential)",
            proxied_p50,
            direct_p50,
            "ms",
            "(reported)",
            True,
            "echo upstream called directly",
        ),
        Row(
            "bare forwarder p50 vs direct: the libraries' floor",
            bare_p50,
            direct_p50,
            "ms",
            "(reported)",
            True,
            "echo upstream called directly",
        ),
        Row(
            "proxied call p99 vs direct (sequential)",
            proxied_p99,
            direct_p99,
            "ms",
            "(reported)",
            True,
            "echo upstream called directly",
        ),
        Row(
            f"proxied req/s at {CONCURRENCY} vs direct",
            proxied_conc["rps"],
            direct_conc["rps"],
            "req/s",
            "(reported)",
            True,
            "echo upstream called directly",
        ),
        Row(
            "proxied call p50, agent grant vs API key (sequential)",
            grant_p50,
            key_p50,
            "ms",
            f"<= {AGENT_GOAL}x API key",
            grant_p50 <= AGENT_GOAL * key_p50,
            "API-key caller, alternating runs",
        ),
        Row(
            f"proxied req/s at {CONCURRENCY}, agent grant vs API key",
            grant_rps,
            key_rps,
            "req/s",
            "(reported)",
            True,
            "API-key caller, alternating runs",
        ),
        Row(
            "stream 200 MB: server RSS growth vs RSS before",
            growth,
            rss_before / MB,
            "MB",
            f"growth < {RSS_GOAL_MB:.0f} MB",
            growth < RSS_GOAL_MB,
            "server RSS before",
        ),
        Row(
            "stream 200 MB: proxied vs direct throughput",
            proxied_rate,
            direct_rate,
            "MB/s",
            "(reported)",
            True,
            "echo upstream called directly",
        ),
    ]


if __name__ == "__main__":
    from bench.__main__ import print_table

    print_table(run())
