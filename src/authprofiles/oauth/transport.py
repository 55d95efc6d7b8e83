"""Shared HTTP connection pools, one per egress route (direct, or a named forward proxy).

Creating a client builds an SSL context and a pool, which costs milliseconds; every OAuth
call and every proxied request reuses these instead.

OAuth calls (few, blocking, through authlib) use httpx. The proxy's upstream calls use
aiohttp: httpcore looks at every pooled connection on every request (encode/httpcore#928),
so at 16 concurrent calls its throughput fell to 747 req/s where aiohttp kept 16,969 on
the same upstream, and the proxy is where agents' calls pile up.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import weakref

import aiohttp
import httpx

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)


class Transports:
    def __init__(self, *, timeout: float) -> None:
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._sync: dict[str | None, httpx.HTTPTransport] = {}
        # aiohttp sessions belong to the loop they were made on: one set per loop.
        self._upstream: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[str | None, aiohttp.ClientSession]
        ] = weakref.WeakKeyDictionary()
        self._ssl: ssl.SSLContext | None = None
        self._lock = threading.Lock()

    def sync(self, egress_proxy_url: str | None) -> httpx.HTTPTransport:
        """The pool for OAuth calls; ``egress_proxy_url`` routes through a connector."""
        with self._lock:
            transport = self._sync.get(egress_proxy_url)
            if transport is None:
                transport = httpx.HTTPTransport(
                    proxy=httpx.Proxy(egress_proxy_url) if egress_proxy_url else None,
                    limits=_LIMITS,
                    retries=0,
                )
                self._sync[egress_proxy_url] = transport
            return transport

    def client(self, egress_proxy_url: str | None) -> httpx.Client:
        """A light client on the shared pool; closing it would close the pool, so don't.
        The profile test's recorder builds its own clients on these pools and never closes
        them. It follows no redirect: its requests carry credentials."""
        return httpx.Client(
            transport=self.sync(egress_proxy_url), timeout=self.timeout, trust_env=False
        )

    def upstream(self, egress_proxy_url: str | None) -> aiohttp.ClientSession:
        """The proxy's pool towards the profiles' APIs, for the running loop.

        Requests go out as the caller shaped them: no cookies are ever kept (the pool
        serves every connection and user, so one upstream's cookie must never ride along
        on another's call), bodies are relayed still compressed, and no Accept-Encoding
        or Content-Type is added that the caller did not send. ``egress_proxy_url`` is
        given per request (aiohttp's ``proxy=``); the key keeps one pool per route.
        """
        loop = asyncio.get_running_loop()
        # The hot path: a session already made for this loop and route, found without
        # the lock (a dict read is atomic); the lock guards making one.
        session = self._upstream.get(loop, {}).get(egress_proxy_url)
        if session is not None and not session.closed:
            return session
        with self._lock:
            sessions = self._upstream.setdefault(loop, {})
            session = sessions.get(egress_proxy_url)
            if session is None or session.closed:
                session = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(
                        limit=_LIMITS.max_connections or 0,
                        keepalive_timeout=_LIMITS.keepalive_expiry or 30,
                        # The CAs the OAuth calls trust (certifi, or SSL_CERT_FILE/DIR).
                        ssl=self._ssl_context(),
                    ),
                    cookie_jar=aiohttp.DummyCookieJar(),
                    auto_decompress=False,
                    skip_auto_headers=("Accept-Encoding", "Content-Type"),
                    timeout=aiohttp.ClientTimeout(
                        total=None,
                        sock_connect=self.timeout.connect,
                        sock_read=self.timeout.read,
                    ),
                    # Real APIs send long Content-Security-Policy and Set-Cookie lines.
                    max_line_size=64 * 1024,
                    max_field_size=64 * 1024,
                    trust_env=False,
                )
                sessions[egress_proxy_url] = session
            return session

    def _ssl_context(self) -> ssl.SSLContext:
        if self._ssl is None:
            self._ssl = httpx.create_ssl_context()
        return self._ssl

    def close(self) -> None:
        with self._lock:
            for transport in self._sync.values():
                transport.close()
            self._sync.clear()

    async def aclose(self) -> None:
        """Close the running loop's upstream pools (the server's shutdown)."""
        with self._lock:
            sessions = self._upstream.pop(asyncio.get_running_loop(), {})
        for session in sessions.values():
            await session.close()
