"""The load generator, run in its own process so it never shares the server's.

    python -m bench.loadgen URL --requests N --concurrency C [--header 'Name: value']

Prints JSON: latencies in seconds (sequential mode, concurrency 1) or the request
rate (concurrency > 1), and how many answers were not 200.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import httpx


async def _run(
    url: str, headers: dict[str, str], total: int, concurrency: int
) -> dict[str, object]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    latencies: list[float] = []
    failures = 0
    remaining = total
    async with httpx.AsyncClient(limits=limits, timeout=30, trust_env=False) as client:
        # Warm the connections so connection setup is not in the figures.
        await asyncio.gather(*(client.get(url, headers=headers) for _ in range(concurrency)))

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                start = time.perf_counter()
                response = await client.get(url, headers=headers)
                latencies.append(time.perf_counter() - start)
                if response.status_code != 200:
                    failures += 1

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return {
        "latencies": latencies,
        "elapsed": elapsed,
        "rps": len(latencies) / elapsed,
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--header", action="append", default=[])
    args = parser.parse_args()
    headers = dict(h.split(": ", 1) for h in args.header)
    result = asyncio.run(_run(args.url, headers, args.requests, args.concurrency))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
