"""Handing out tokens on the hot paths: reuse, coalescing, and the token's JSON, once.

Agents ask for a connection's token far more often than it changes. This worker
remembers the tokens it handed out (:class:`RecentTokens`) and, within the
``token_reuse_seconds`` setting, hands the same one out again without reading it anew;
callers that miss the window together share one read (:class:`Coalescer`); and the token
endpoint's answer is rendered once per token (:class:`RenderedToken`), however many
callers it goes to. Every caller still gets its own policy decision, reused token or not.

:class:`TokenIssuing` is built on a ``core.ports.TokenSource`` (the token service, which
reads and refreshes), and is what the hot paths use: the token endpoint
(:meth:`TokenIssuing.issue`), the proxy (as its ``core.ports.TokenIssuer``), and the
services that change a connection's tokens (as their ``core.ports.TokenCache``).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Generic, Protocol, TypeVar

from authprofiles import telemetry
from authprofiles.core.callers import CredentialRequest, Principal, Purpose
from authprofiles.core.errors import Forbidden, NotFound, Unauthenticated
from authprofiles.core.ports import Clock, CredentialPolicy, IssuedCredential, TokenSource
from authprofiles.services.blocking import in_thread_pool
from authprofiles.services.errors import NeedsReauth

IssuedT = TypeVar("IssuedT", bound=IssuedCredential)
T = TypeVar("T")

#: How many connections' tokens a worker remembers.
REMEMBERED_CONNECTIONS = 4096


class ReuseSettings(Protocol):
    """The settings read on every call (they may change while the process runs)."""

    @property
    def token_reuse_seconds(self) -> float: ...

    @property
    def refresh_skew_seconds(self) -> int: ...


class BlockingRunner(Protocol):
    """Runs a blocking call (a database read, an identity provider call) off the loop."""

    def __call__(self, call: Callable[[], T], /) -> Awaitable[T]: ...


@dataclass(frozen=True, slots=True)
class RenderedToken(Generic[IssuedT]):
    """A token as the token endpoint answers it, rendered once for every caller it goes to."""

    issued: IssuedT
    json: bytes


class HandedOut(Generic[IssuedT]):
    """A token this worker handed out, when (``time.monotonic`` seconds), and its
    rendering once the token endpoint made it."""

    __slots__ = ("at", "issued", "rendered")

    def __init__(self, issued: IssuedT, at: float) -> None:
        self.issued = issued
        self.at = at
        #: Set by the first caller that renders it; callers racing to do so write the
        #: same bytes.
        self.rendered: RenderedToken[IssuedT] | None = None


class RecentTokens(Generic[IssuedT]):
    """Tokens this worker handed out a moment ago, by connection: bounded, thread-safe.

    Many agents asking for one connection's token at once is the common case; within the
    reuse window they get the token just read instead of a read each. Nothing here is
    needed by another worker: it only ever saves a read.
    """

    def __init__(
        self,
        size: int = REMEMBERED_CONNECTIONS,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.size = size
        self._monotonic = monotonic
        self._items: OrderedDict[str, HandedOut[IssuedT]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, connection_id: str, max_age: float | None) -> HandedOut[IssuedT] | None:
        """The last token handed out, if at most ``max_age`` seconds ago (None: any age)."""
        with self._lock:
            handed = self._items.get(connection_id)
        if handed is None or (max_age is not None and self._monotonic() - handed.at > max_age):
            return None
        return handed

    def put(self, issued: IssuedT) -> HandedOut[IssuedT]:
        handed = HandedOut(issued, self._monotonic())
        connection_id = issued.connection.id
        with self._lock:
            self._items[connection_id] = handed
            self._items.move_to_end(connection_id)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return handed

    def drop(self, connection_id: str) -> None:
        with self._lock:
            self._items.pop(connection_id, None)


class Coalescer:
    """Async callers of one worker that need the same connection read at once: the first
    reads, the others wait for it and then look in memory again.

    When the reuse window lapses under load, every caller in flight misses at the same
    moment; without this each would read the database through the thread pool (measured
    at 16 concurrent proxied calls: a quarter less throughput, and a p99 of 25 ms
    instead of 8 ms).
    """

    def __init__(self) -> None:
        # Keyed by loop too: a future belongs to the loop it was made on.
        self._pending: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[None]] = {}

    async def run(
        self,
        key: str,
        from_memory: Callable[[], T | None],
        load: Callable[[], Awaitable[T]],
    ) -> T:
        loop = asyncio.get_running_loop()
        pending = self._pending.get((loop, key))
        if pending is not None:
            await asyncio.shield(pending)  # only ever completes with None
            found = from_memory()
            # Nothing in memory: the first caller failed, or was refused what this one
            # may see. Each then reads for itself, and gets its own answer or error.
            return found if found is not None else await load()
        future = loop.create_future()
        self._pending[(loop, key)] = future
        try:
            return await load()
        finally:
            del self._pending[(loop, key)]
            future.set_result(None)


class TokenIssuing(Generic[IssuedT]):
    """Tokens for the hot paths: reused within the window, read once for concurrent
    callers, rendered once for the token endpoint; the policy asked for every caller."""

    def __init__(
        self,
        source: TokenSource[IssuedT],
        policy: CredentialPolicy,
        clock: Clock,
        settings: ReuseSettings,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        run_blocking: BlockingRunner = in_thread_pool,
        count_issued: Callable[[Principal, str, str | None], None] | None = None,
        read_current: Callable[[Principal, str], Awaitable[IssuedT | None]] | None = None,
    ) -> None:
        #: Reads a token still valid on the event loop, with no thread (None: it is not, or
        #: this cannot tell without blocking); the token source, off the loop, does the
        #: rest (``services.tokens.TokenService.current_token``).
        self._read_current = read_current
        #: Told of each token the token endpoint hands out (the audit log counts them per
        #: connection, caller and minute: ``services.audit.TokenIssueCounter.count``).
        self._count_issued = count_issued
        self._source = source
        self._policy = policy
        self._clock = clock
        self._settings = settings
        self._run_blocking = run_blocking
        self._recent: RecentTokens[IssuedT] = RecentTokens(monotonic=monotonic)
        self._coalescer = Coalescer()

    # -- the token endpoint ------------------------------------------------------------
    async def issue(
        self, principal: Principal, connection_id: str, render: Callable[[IssuedT], bytes]
    ) -> RenderedToken[IssuedT]:
        """A token valid beyond the refresh skew, for ``principal`` to read (the policy is
        asked, reused token or not), with ``render``'s JSON of it, made once per token.
        A ``token.read`` span, and a count of token fetches by outcome."""
        with (
            telemetry.span("token.read", _read_attributes(connection_id, "token")) as reading,
            _CountedFetch("token"),
        ):
            handed = self._reusable_to_read(principal, connection_id)
            reading.set_attribute("authprofiles.token.reused", handed is not None)
            if handed is None:
                handed = await self._shared_read(
                    connection_id,
                    partial(self._reusable_to_read, principal, connection_id),
                    partial(self._load, principal, connection_id),
                )
            rendered = handed.rendered
            if rendered is None:
                rendered = handed.rendered = RenderedToken(handed.issued, render(handed.issued))
            profile_id = handed.issued.connection.profile_id
            reading.set_attribute("authprofiles.profile_id", profile_id)
            if self._count_issued is not None:
                self._count_issued(principal, connection_id, profile_id)
            return rendered

    def _reusable_to_read(
        self, principal: Principal, connection_id: str
    ) -> HandedOut[IssuedT] | None:
        handed = self._reusable(principal, connection_id)
        if handed is not None:
            self._policy.authorize(
                principal, CredentialRequest.to_use(handed.issued.connection, Purpose.READ_TOKEN)
            )
        return handed

    async def _load(self, principal: Principal, connection_id: str) -> HandedOut[IssuedT]:
        if self._read_current is not None:
            current = await self._read_current(principal, connection_id)
            if current is not None:
                return self._recent.put(current)
        return await self._run_blocking(partial(self._read, principal, connection_id))

    def _read(self, principal: Principal, connection_id: str) -> HandedOut[IssuedT]:
        # The token source asks the policy before it reads.
        return self._recent.put(self._source.get_token(principal, connection_id))

    # -- core.ports.TokenIssuer ----------------------------------------------------------
    async def reuse_or_read(
        self,
        connection_id: str,
        from_memory: Callable[[], T | None],
        read: Callable[[], Awaitable[T]],
    ) -> T:
        """``from_memory()`` (built on :meth:`reusable`) when it finds something, else
        ``read()`` (built on :meth:`get_token`, off the loop), which concurrent callers for
        the same connection in this worker share: one reads, the others then find the
        token in memory. Each still gets its own policy decision, since both callables
        ask the policy for their own caller. A ``token.read`` span, and a count of token
        fetches by outcome (the proxy's)."""
        with (
            telemetry.span("token.read", _read_attributes(connection_id, "proxy")) as reading,
            _CountedFetch("proxy"),
        ):
            found = from_memory()
            reading.set_attribute("authprofiles.token.reused", found is not None)
            if found is not None:
                return found
            return await self._shared_read(connection_id, from_memory, read)

    async def _shared_read(
        self,
        connection_id: str,
        from_memory: Callable[[], T | None],
        read: Callable[[], Awaitable[T]],
    ) -> T:
        """``read()``, shared by this worker's concurrent callers for the connection (memory
        was just looked in and held nothing)."""
        if self._settings.token_reuse_seconds <= 0:
            return await read()  # nothing would be found in memory: no point waiting
        return await self._coalescer.run(connection_id, from_memory, read)

    def reusable(self, principal: Principal, connection_id: str) -> IssuedT | None:
        """A token handed out within the reuse window, still valid beyond the refresh skew,
        without any I/O; None when there is none. The caller asks the policy about its
        own use before handing the token on or applying it."""
        handed = self._reusable(principal, connection_id)
        return handed.issued if handed is not None else None

    def _reusable(self, principal: Principal, connection_id: str) -> HandedOut[IssuedT] | None:
        window = self._settings.token_reuse_seconds
        handed = self._recent.get(connection_id, window) if window > 0 else None
        if handed is None or handed.issued.connection.workspace_id != principal.workspace_id:
            return None
        skew = float(self._settings.refresh_skew_seconds)
        if handed.issued.tokens.expires_within(self._clock.now(), skew):
            return None
        return handed

    def get_token(
        self,
        principal: Principal,
        connection_id: str,
        *,
        purpose: Purpose = Purpose.READ_TOKEN,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
    ) -> IssuedT:
        """Read (and refresh if due) through the token source, which asks the policy
        first; remembered for reuse. Blocking."""
        issued = self._source.get_token(
            principal, connection_id, purpose=purpose, method=method, host=host, path=path
        )
        self._recent.put(issued)
        return issued

    def force_refresh(self, principal: Principal, connection_id: str, seen_version: int) -> IssuedT:
        """An API refused the token: nobody reuses it meanwhile, and the refreshed one is
        remembered instead. Blocking."""
        self._recent.drop(connection_id)
        issued = self._source.force_refresh(principal, connection_id, seen_version)
        self._recent.put(issued)
        return issued

    def last_issued(self, connection_id: str) -> IssuedT | None:
        """The last token this worker handed out for the connection, however long ago:
        a hint only (e.g. where a call will go), never a credential to use unchecked."""
        handed = self._recent.get(connection_id, None)
        return handed.issued if handed is not None else None

    # -- core.ports.TokenCache -----------------------------------------------------------
    def forget(self, connection_id: str) -> None:
        """The connection's tokens changed or went: nobody is handed the old ones."""
        self._recent.drop(connection_id)


def _read_attributes(connection_id: str, purpose: str) -> dict[str, str]:
    return {"authprofiles.connection_id": connection_id, "authprofiles.purpose": purpose}


class _CountedFetch:
    """Counts the token fetch its block makes (``telemetry.metrics.TOKEN_FETCHES``) by
    how it ended; a cancelled one (the caller went away) is not counted."""

    __slots__ = ("_purpose",)

    def __init__(self, purpose: str) -> None:
        self._purpose = purpose

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            telemetry.count_token_fetch(self._purpose, "ok")
        elif isinstance(error, Exception):
            telemetry.count_token_fetch(self._purpose, _fetch_outcome(error))


def _fetch_outcome(error: Exception) -> str:
    if isinstance(error, Forbidden | Unauthenticated):
        return "refused"
    if isinstance(error, NotFound):
        return "not_found"
    if isinstance(error, NeedsReauth):
        return "needs_reauth"
    return "error"


__all__ = [
    "BlockingRunner",
    "Coalescer",
    "HandedOut",
    "RecentTokens",
    "RenderedToken",
    "ReuseSettings",
    "TokenIssuing",
]
