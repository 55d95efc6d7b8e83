"""Running blocking work (database reads, identity-provider calls) from async code: a
step the async use cases share, not a use case itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TypeVar
from weakref import WeakKeyDictionary

import anyio
import anyio.to_thread

T = TypeVar("T")


async def in_thread_pool(call: Callable[[], T]) -> T:
    """Run ``call`` in the thread pool FastAPI's ``run_in_threadpool`` uses, so the event
    loop keeps serving (and streaming) other calls meanwhile."""
    return await anyio.to_thread.run_sync(call)


class FewThreads:
    """Runs short blocking calls (a read of one row) in at most ``threads`` threads at a
    time, others waiting on the event loop: dozens of threads contending for the GIL each
    wait for it far longer than such a call takes. Per event loop, as anyio's limiters."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self._limiters: WeakKeyDictionary[asyncio.AbstractEventLoop, anyio.CapacityLimiter] = (
            WeakKeyDictionary()
        )

    async def run(self, call: Callable[[], T]) -> T:
        loop = asyncio.get_running_loop()
        limiter = self._limiters.get(loop)
        if limiter is None:
            limiter = self._limiters[loop] = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(call, limiter=limiter)


__all__ = ["FewThreads", "in_thread_pool"]
