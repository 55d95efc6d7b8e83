"""Many HTTP requests at once from the test process, answers and dropped connections kept."""

from __future__ import annotations

import asyncio
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx

Request = tuple[str, str, dict[str, Any] | None]  # method, URL or path, JSON body
Result = httpx.Response | Exception


def send_concurrently(
    base_url: str, requests: list[Request], *, concurrency: int, headers: dict[str, str]
) -> list[Result]:
    """Every request, ``concurrency`` at a time; a dropped connection comes back as its
    error. Runs in its own thread: another suite's event loop (Playwright's) may own this
    one."""

    async def run() -> list[Result]:
        gate = asyncio.Semaphore(concurrency)
        limits = httpx.Limits(max_connections=concurrency)
        async with httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=120, limits=limits, trust_env=False
        ) as http:

            async def one(method: str, url: str, body: dict[str, Any] | None) -> httpx.Response:
                async with gate:
                    return await http.request(method, url, json=body)

            results = await asyncio.gather(*(one(*r) for r in requests), return_exceptions=True)
        return [r if isinstance(r, httpx.Response) else Exception(repr(r)) for r in results]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, run()).result()


def tally(results: list[Result]) -> Counter[str]:
    """Answers by status code; ``dropped`` counts connections closed without one."""
    return Counter(
        str(r.status_code) if isinstance(r, httpx.Response) else "dropped" for r in results
    )


def assert_no_failures(results: list[Result]) -> None:
    failures = [
        r if isinstance(r, Exception) else (r.status_code, r.text[:300])
        for r in results
        if isinstance(r, Exception) or r.status_code >= 500
    ]
    assert not failures, (tally(results), failures[:3])
