"""Running blocking work (database reads, identity-provider calls) from async code: a
step the async use cases share, not a use case itself."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio.to_thread

T = TypeVar("T")


async def in_thread_pool(call: Callable[[], T]) -> T:
    """Run ``call`` in the thread pool FastAPI's ``run_in_threadpool`` uses, so the event
    loop keeps serving (and streaming) other calls meanwhile."""
    return await anyio.to_thread.run_sync(call)


__all__ = ["in_thread_pool"]
