"""Concurrent callers that miss the reuse window together share one read."""

from __future__ import annotations

import asyncio

import pytest

from authprofiles.services.token_issuing import Coalescer


class Store:
    """A stand-in for the reuse window: ``read`` fills it, after a gate opens."""

    def __init__(self, failures: int = 0) -> None:
        self.memory: dict[str, str] = {}
        self.reads = 0
        self.failures = failures
        self.gate = asyncio.Event()

    def from_memory(self, key: str) -> str | None:
        return self.memory.get(key)

    async def read(self, key: str) -> str:
        self.reads += 1
        await self.gate.wait()
        if self.failures:
            self.failures -= 1
            raise RuntimeError("the database is away")
        self.memory[key] = f"token-{key}"
        return self.memory[key]


async def _ask(coalescer: Coalescer, store: Store, key: str, n: int) -> list[object]:
    tasks = [
        asyncio.create_task(
            coalescer.run(key, lambda: store.from_memory(key), lambda: store.read(key))
        )
        for _ in range(n)
    ]
    await asyncio.sleep(0)  # every caller is waiting now
    store.gate.set()
    return await asyncio.gather(*tasks, return_exceptions=True)


def test_callers_for_one_connection_share_one_read() -> None:
    async def scenario() -> None:
        coalescer, store = Coalescer(), Store()
        answers = await _ask(coalescer, store, "c1", 50)
        assert answers == ["token-c1"] * 50
        assert store.reads == 1

    asyncio.run(scenario())


def test_when_the_first_read_fails_each_caller_reads_for_itself() -> None:
    async def scenario() -> None:
        coalescer, store = Coalescer(), Store(failures=1)
        answers = await _ask(coalescer, store, "c1", 5)
        assert isinstance(answers[0], RuntimeError)
        # No caller is handed another's failure: the others found nothing in memory and
        # read for themselves (here the first of them filled it for the rest).
        assert answers[1:] == ["token-c1"] * 4
        assert store.reads == 2

    asyncio.run(scenario())


def test_different_connections_do_not_wait_for_each_other() -> None:
    async def scenario() -> None:
        coalescer, store = Coalescer(), Store()
        first = asyncio.create_task(
            coalescer.run("a", lambda: store.from_memory("a"), lambda: store.read("a"))
        )
        await asyncio.sleep(0)
        # "a" is stuck behind the gate; "b" reads at once, on its own.
        other = Store()
        other.gate.set()
        assert await coalescer.run("b", lambda: other.from_memory("b"), lambda: other.read("b"))
        store.gate.set()
        assert await first == "token-a"

    asyncio.run(scenario())


def test_a_cancelled_first_caller_releases_the_others() -> None:
    async def scenario() -> None:
        coalescer, store = Coalescer(), Store()
        leader = asyncio.create_task(
            coalescer.run("c1", lambda: store.from_memory("c1"), lambda: store.read("c1"))
        )
        await asyncio.sleep(0)
        follower = asyncio.create_task(
            coalescer.run("c1", lambda: store.from_memory("c1"), lambda: store.read("c1"))
        )
        await asyncio.sleep(0)
        leader.cancel()  # its caller went away mid-read
        with pytest.raises(asyncio.CancelledError):
            await leader
        store.gate.set()
        assert await follower == "token-c1"
        assert store.reads == 2

    asyncio.run(scenario())
