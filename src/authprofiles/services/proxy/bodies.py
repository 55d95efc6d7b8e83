"""Reading the caller's body: held in memory only when payload fields must be merged into
it, or when it is small enough to replay after a refused token; otherwise streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from authprofiles.core.errors import TooLarge
from authprofiles.core.injection import Injection, PayloadError, carries_payload
from authprofiles.services.proxy.planning import IncomingRequest, RequestBody

#: A body up to this size is buffered so the call can be replayed after a refused token.
REPLAY_LIMIT = 1024 * 1024
#: Payload fields need the whole body in memory; larger bodies are refused.
PAYLOAD_LIMIT = 10 * 1024 * 1024


class BodyTooLarge(TooLarge):
    """The caller's body is larger than the proxy holds in memory for payload fields."""


async def read_body(
    incoming: IncomingRequest,
    injection: Injection,
    *,
    replay_limit: int = REPLAY_LIMIT,
    payload_limit: int = PAYLOAD_LIMIT,
) -> RequestBody:
    headers = {k.lower(): v for k, v in incoming.headers}
    content_type = headers.get("content-type")
    length: int | None = None
    if "content-length" in headers:
        try:
            length = int(headers["content-length"])
        except ValueError:
            raise PayloadError("the Content-Length header is not a number") from None
    has_body = bool(length) or "transfer-encoding" in headers
    merge = bool(injection.body) and carries_payload(incoming.method, has_body)
    if not has_body:
        return RequestBody(b"", None, content_type, 0, merge)
    stream = aiter(incoming.body)
    if merge:
        data, complete = await _read_upto(stream, payload_limit)
        if not complete:
            raise BodyTooLarge(
                f"payload fields are merged into the body, which must then be at most "
                f"{_in_mib(payload_limit)}"
            )
        return RequestBody(data, None, content_type, len(data), merge)
    if length is not None and length > replay_limit:
        return RequestBody(None, stream, content_type, length, merge)
    data, complete = await _read_upto(stream, replay_limit)
    if complete:
        return RequestBody(data, None, content_type, len(data), merge)
    # Larger than it looked (chunked): send what was read, then the rest, unbuffered.
    return RequestBody(None, _prepend(data, stream), content_type, length, merge)


def _in_mib(limit: int) -> str:
    mib = limit / (1024 * 1024)
    return f"{mib:g} MiB" if mib >= 1 else f"{limit} bytes"


async def _read_upto(stream: AsyncIterator[bytes], limit: int) -> tuple[bytes, bool]:
    """Read until the end (True) or until more than ``limit`` bytes were read (False)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            return b"".join(chunks), False
    return b"".join(chunks), True


async def _prepend(first: bytes, rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    yield first
    async for chunk in rest:
        yield chunk


__all__ = ["PAYLOAD_LIMIT", "REPLAY_LIMIT", "BodyTooLarge", "read_body"]
