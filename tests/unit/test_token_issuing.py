"""The token-issuing use case, built from fakes of its ports: reuse within the window and
beyond the skew, concurrent callers sharing one read, the JSON rendered once per token,
and the policy asked for every caller, reused token or not."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role
from authprofiles.core.connections import Connection, TokenSet
from authprofiles.core.errors import Forbidden, NotFound
from authprofiles.services.access import RolePolicy
from authprofiles.services.token_issuing import TokenIssuing
from authprofiles.services.tokens import IssuedToken
from tests.support.values import a_connection

T = TypeVar("T")
START = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WORKSPACE = "ws-1"
DEVELOPER = Principal(workspace_id=WORKSPACE, role=Role.DEVELOPER, name="dev")
VIEWER = Principal(workspace_id=WORKSPACE, role=Role.VIEWER, name="viewer")
STRANGER = Principal(workspace_id="ws-2", role=Role.DEVELOPER, name="stranger")


class FakeClock:
    def __init__(self) -> None:
        self.current = START

    def now(self) -> datetime:
        return self.current


class FakeMonotonic:
    def __init__(self) -> None:
        self.seconds = 1000.0

    def __call__(self) -> float:
        return self.seconds


@dataclass
class FakeSettings:
    token_reuse_seconds: float = 1.0
    refresh_skew_seconds: int = 60


class RecordingPolicy:
    """The role policy, with each question it was asked written down."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, Purpose]] = []
        self._policy = RolePolicy()

    def authorize(self, principal: Principal, request: CredentialRequest) -> None:
        self.asked.append((principal.name, request.purpose))
        self._policy.authorize(principal, request)


@dataclass
class FakeTokenSource:
    """The token service's port: asks the policy, then hands out the stored token (a
    new one on each force_refresh), counting its reads."""

    policy: RecordingPolicy
    clock: FakeClock
    lifetime: timedelta = timedelta(hours=1)
    reads: int = 0
    generation: int = 0
    connections: dict[str, Connection] = field(default_factory=dict)

    def add(self, connection_id: str) -> None:
        self.connections[connection_id] = _connection(connection_id, self._tokens())

    def _tokens(self) -> TokenSet:
        self.generation += 1
        return TokenSet(
            access_token=f"at-{self.generation}",
            token_type="Bearer",
            expires_at=self.clock.now() + self.lifetime,
        )

    def get_token(
        self,
        principal: Principal,
        connection_id: str,
        *,
        purpose: Purpose = Purpose.READ_TOKEN,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
    ) -> IssuedToken:
        self.reads += 1
        connection = self.connections.get(connection_id)
        if connection is None or connection.workspace_id != principal.workspace_id:
            raise NotFound(f"no connection with id {connection_id}")
        self.policy.authorize(
            principal,
            CredentialRequest(
                connection_id=connection.id, connection_owner=connection.owner, purpose=purpose
            ),
        )
        assert connection.tokens is not None
        return IssuedToken(connection, _PROFILE, connection.tokens)

    def force_refresh(
        self, principal: Principal, connection_id: str, seen_version: int
    ) -> IssuedToken:
        self.add(connection_id)
        return self.get_token(principal, connection_id)


def _connection(connection_id: str, tokens: TokenSet) -> Connection:
    return a_connection(
        tokens, id=connection_id, workspace_id=WORKSPACE, created_at=START, updated_at=START
    )


_PROFILE: Any = object()  # never looked at by the use case


async def directly(call: Callable[[], T]) -> T:
    return call()


class Renderer:
    """Renders a token's JSON, counting how often it was asked to."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, issued: IssuedToken) -> bytes:
        self.calls += 1
        return f'{{"access_token":"{issued.tokens.access_token}"}}'.encode()


@dataclass
class World:
    clock: FakeClock
    monotonic: FakeMonotonic
    settings: FakeSettings
    policy: RecordingPolicy
    source: FakeTokenSource
    issuing: TokenIssuing[IssuedToken]
    render: Renderer

    def issue(self, principal: Principal = DEVELOPER, connection_id: str = "c1") -> bytes:
        rendered = asyncio.run(self.issuing.issue(principal, connection_id, self.render))
        return rendered.json


def world(run_blocking: Any = directly, **settings: Any) -> World:
    clock, monotonic, policy = FakeClock(), FakeMonotonic(), RecordingPolicy()
    source = FakeTokenSource(policy, clock)
    source.add("c1")
    config = FakeSettings(**settings)
    issuing = TokenIssuing(
        source, policy, clock, config, monotonic=monotonic, run_blocking=run_blocking
    )
    return World(clock, monotonic, config, policy, source, issuing, Renderer())


def test_a_token_handed_out_within_the_window_is_reused_and_rendered_once() -> None:
    w = world(token_reuse_seconds=1.0)
    first = w.issue()
    w.monotonic.seconds += 0.9
    assert w.issue() is first  # the very bytes rendered for the first caller
    assert w.source.reads == 1
    assert w.render.calls == 1


def test_once_the_window_lapses_the_token_is_read_and_rendered_again() -> None:
    w = world(token_reuse_seconds=1.0)
    w.issue()
    w.monotonic.seconds += 1.1
    w.issue()
    assert w.source.reads == 2
    assert w.render.calls == 2


def test_a_token_expiring_within_the_skew_is_not_reused() -> None:
    w = world(token_reuse_seconds=3600, refresh_skew_seconds=60)
    assert w.issue() == b'{"access_token":"at-1"}'
    w.clock.current += timedelta(minutes=58)  # 2 minutes left: beyond the skew
    w.issue()
    assert w.source.reads == 1
    w.clock.current += timedelta(minutes=1, seconds=1)  # 59 s left: within it
    w.source.add("c1")  # the source would have refreshed it
    assert w.issue() == b'{"access_token":"at-2"}'
    assert w.source.reads == 2


def test_with_reuse_off_every_call_reads() -> None:
    w = world(token_reuse_seconds=0)
    for _ in range(3):
        w.issue()
    assert w.source.reads == 3
    assert w.render.calls == 3


def test_the_policy_is_asked_for_each_caller_of_a_reused_token() -> None:
    w = world(token_reuse_seconds=30)
    w.issue(DEVELOPER)
    w.issue(DEVELOPER)
    with pytest.raises(Forbidden):
        w.issue(VIEWER)
    assert w.source.reads == 1  # the viewer was refused the token in memory
    assert w.policy.asked == [
        ("dev", Purpose.READ_TOKEN),
        ("dev", Purpose.READ_TOKEN),
        ("viewer", Purpose.READ_TOKEN),
    ]


def test_a_token_is_not_reused_across_workspaces() -> None:
    w = world(token_reuse_seconds=30)
    w.issue(DEVELOPER)
    with pytest.raises(NotFound):
        w.issue(STRANGER)
    assert w.source.reads == 2


def test_a_forgotten_connection_is_read_again() -> None:
    w = world(token_reuse_seconds=30)
    w.issue()
    w.issuing.forget("c1")
    w.issue()
    assert w.source.reads == 2


def test_a_forced_refresh_replaces_the_token_in_memory() -> None:
    w = world(token_reuse_seconds=30)
    assert w.issue() == b'{"access_token":"at-1"}'
    refreshed = w.issuing.force_refresh(DEVELOPER, "c1", seen_version=1)
    assert refreshed.tokens.access_token == "at-2"
    assert w.issuing.reusable(DEVELOPER, "c1") is refreshed
    assert w.issue() == b'{"access_token":"at-2"}'
    assert w.issuing.last_issued("c1") is refreshed


def test_concurrent_callers_missing_the_window_share_one_read_and_one_rendering() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def after_gate(call: Callable[[], T]) -> T:
            await gate.wait()  # the read is under way for as long as the gate is shut
            return call()

        w = world(run_blocking=after_gate, token_reuse_seconds=30)
        callers = [
            asyncio.create_task(w.issuing.issue(DEVELOPER, "c1", w.render)) for _ in range(20)
        ]
        await asyncio.sleep(0)  # every caller is waiting now
        gate.set()
        answers = await asyncio.gather(*callers)
        assert {a.json for a in answers} == {b'{"access_token":"at-1"}'}
        assert w.source.reads == 1
        assert w.render.calls == 1
        # Every caller got its own policy decision: the reader in the source, the
        # others on the token found in memory.
        assert len(w.policy.asked) == 20

    asyncio.run(scenario())


def test_a_caller_refused_while_waiting_for_anothers_read_gets_its_own_answer() -> None:
    async def scenario() -> None:
        gate = asyncio.Event()

        async def after_gate(call: Callable[[], T]) -> T:
            await gate.wait()
            return call()

        w = world(run_blocking=after_gate, token_reuse_seconds=30)
        reader = asyncio.create_task(w.issuing.issue(DEVELOPER, "c1", w.render))
        await asyncio.sleep(0)
        waiter = asyncio.create_task(w.issuing.issue(VIEWER, "c1", w.render))
        await asyncio.sleep(0)
        gate.set()
        assert (await reader).json == b'{"access_token":"at-1"}'
        with pytest.raises(Forbidden):
            await waiter
        assert w.source.reads == 1

    asyncio.run(scenario())
