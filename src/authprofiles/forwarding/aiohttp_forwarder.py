"""``core.ports.Forwarder`` on aiohttp.

aiohttp rather than httpx: httpcore looks at every pooled connection on every request
(encode/httpcore#928), and the proxy is where agents' calls pile up (see the pools in
``oauth.transport``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import aiohttp
import yarl
from opentelemetry.trace import SpanKind

from authprofiles import telemetry
from authprofiles.core.errors import UpstreamError, UpstreamTimeout
from authprofiles.core.ports import ForwardedResponse, OutboundRequest, UpstreamBodyBrokeOff

#: Picks the pool for an egress route (None: direct), made for the running loop.
SessionFor = Callable[[str | None], aiohttp.ClientSession]


class AiohttpResponse:
    """An aiohttp answer as ``core.ports.ForwardedResponse``: body not yet read."""

    __slots__ = ("_response", "raw_headers", "status")

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self._response = response
        self.status = response.status
        self.raw_headers = response.raw_headers

    async def read(self) -> bytes:
        try:
            return await self._response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamBodyBrokeOff(type(exc).__name__) from None
        finally:
            self._response.release()

    async def iter_raw(self) -> AsyncIterator[bytes]:
        # The session does not decompress: Content-Length stays true for the caller.
        try:
            async for chunk in self._response.content.iter_any():
                yield chunk
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise UpstreamBodyBrokeOff(type(exc).__name__) from None

    async def release(self) -> None:
        # A body read to its end gives the connection back to the pool; one cut short
        # closes it (aiohttp decides which).
        self._response.release()


class AiohttpForwarder:
    """Sends each request on the pool of its egress route, exactly as planned: no
    redirect is followed (the request carries credentials), no header is added but, while
    tracing is on, the W3C trace context (``traceparent``) of the call's span."""

    def __init__(self, session_for: SessionFor) -> None:
        self._session_for = session_for

    async def send(self, request: OutboundRequest) -> ForwardedResponse:
        """The upstream's answer, in an ``upstream.call`` client span that ends once its
        headers are in (the body is the caller's to stream). The span names the method,
        the host and the status; not the URL, whose query may carry a credential."""
        with telemetry.span(
            "upstream.call",
            {"http.request.method": request.method, "server.address": request.host},
            kind=SpanKind.CLIENT,
        ) as current:
            response = await self._send(request)
            current.set_attribute("http.response.status_code", response.status)
            return response

    async def _send(self, request: OutboundRequest) -> ForwardedResponse:
        host = request.host
        session = self._session_for(request.egress_proxy_url)
        try:
            response = await session.request(
                request.method,
                # Already encoded and checked by the planning: sent exactly as built.
                yarl.URL(request.url, encoded=True),
                # The upstream continues this call's trace, not whatever the caller sent.
                headers=telemetry.with_trace_context(request.headers),
                data=request.body,
                allow_redirects=False,
                proxy=request.egress_proxy_url,
            )
        except TimeoutError as exc:  # aiohttp's connect and read timeouts are these
            raise UpstreamTimeout(
                f"{host} did not answer in time ({type(exc).__name__})", host
            ) from None
        except (aiohttp.ClientProxyConnectionError, aiohttp.ClientHttpProxyError) as exc:
            raise UpstreamError(
                f"the egress proxy could not reach {host}: {_described(exc)}", host
            ) from None
        except aiohttp.ClientConnectorError as exc:
            raise UpstreamError(f"could not connect to {host}: {_described(exc)}", host) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"the connection to {host} failed: {_described(exc)}", host
            ) from None
        return AiohttpResponse(response)


def _described(exc: Exception) -> str:
    # Whole: the caller redacts the credentials before shortening it, so that a cut
    # never leaves part of a secret behind.
    return f"{type(exc).__name__}: {exc}"


__all__ = ["AiohttpForwarder", "AiohttpResponse", "SessionFor"]
