"""What the proxy does differently for an agent: its grant is checked before any token is
read, its calls are counted and may be held for a person's approval, and what the
upstream answers comes back with the injected credentials taken out.

The agent services (``services.agent_grants``, ``services.approvals``) are reached
through :class:`AgentGate`, which the composition root wires: the proxy imports neither.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Protocol

from authprofiles.core.agent_grants import AgentCall, AgentGrant, HeldCall
from authprofiles.core.callers import Principal
from authprofiles.core.errors import UpstreamError
from authprofiles.core.ports import ForwardedResponse
from authprofiles.core.redaction import Redactor, StreamRedactor


class AgentGate(Protocol):
    """The agent services, as the proxy uses them (blocking methods run in threads)."""

    def grant_in_memory(self, principal: Principal) -> AgentGrant | None:
        """The principal's grant when this worker read it recently (no I/O), else None."""
        ...

    def grant_of(self, principal: Principal) -> AgentGrant:
        """The principal's grant; ``Unauthenticated`` once expired or revoked (blocking)."""
        ...

    def reserve_call(self, grant: AgentGrant) -> None:
        """Count a call; ``RateLimited`` when the rate or budget is spent (blocking)."""
        ...

    def refund_call(self, grant: AgentGrant) -> None: ...

    def pass_or_hold(self, principal: Principal, grant: AgentGrant, call: HeldCall) -> str | None:
        """Let an approved call through once (the approval's id), else ``ApprovalRequired``
        (blocking)."""
        ...

    def approval_status(self, approval_id: str) -> str | None: ...

    def restore_approval(self, approval_id: str) -> None:
        """An approval used by a call that then never reached the upstream stands again."""
        ...

    def record_call(self, principal: Principal, call: AgentCall) -> None:
        """Put the call in the audit log (buffered: no I/O on the caller's path)."""
        ...


class AnswerRedactor(Redactor):
    """Every form of the values injected with one token: an echoing API gives them back as
    they were sent, or encoded. Short values (under 4 characters) are left: they would
    shred text. Made once per token (kept on it) and shared by its calls."""


class RedactedBody:
    """The upstream's answer to an agent, with the injected values replaced by
    ``[redacted]`` in its headers and body. A body the upstream compressed cannot be
    checked, so it is refused (the request asked for ``identity``)."""

    def __init__(self, response: ForwardedResponse, redactor: Redactor) -> None:
        self._response = response
        self._redactor = redactor
        self._stream = StreamRedactor(redactor)

    def headers(self, raw: Sequence[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        out = []
        for name, value in raw:
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                raise UpstreamError(
                    "the upstream compressed its answer although asked not to; an agent's "
                    "answer must be checked for credentials, which a compressed body hides"
                )
            text = value.decode("latin-1")
            if self._redactor.contained_in(text):
                value = self._redactor.text(text).encode("latin-1")
            out.append((name, value))
        return out

    async def read(self) -> bytes:
        return self._stream.whole(await self._response.read())

    async def iter_raw(self) -> AsyncIterator[bytes]:
        async for chunk in self._response.iter_raw():
            out = self._stream.feed(chunk)
            if out:
                yield out
        tail = self._stream.end()
        if tail:
            yield tail


__all__ = ["AgentGate", "AnswerRedactor", "RedactedBody"]
