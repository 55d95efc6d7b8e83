"""Shared HTTP connection pools, one per egress route (direct, or a named forward proxy).

Creating an httpx client builds an SSL context and a pool, which costs milliseconds;
every OAuth call and every proxied request reuses these instead.
"""

from __future__ import annotations

import threading
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

_LIMITS = httpx.Limits(max_connections=200, max_keepalive_connections=50, keepalive_expiry=30)


class Transports:
    def __init__(self, *, timeout: float) -> None:
        self.timeout = httpx.Timeout(timeout, connect=min(timeout, 10.0))
        self._sync: dict[str | None, httpx.HTTPTransport] = {}
        self._async: dict[str | None, httpx.AsyncHTTPTransport] = {}
        self._async_clients: dict[str | None, httpx.AsyncClient] = {}
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
        """A light client on the shared pool; closing it would close the pool, so don't."""
        return httpx.Client(
            transport=self.sync(egress_proxy_url), timeout=self.timeout, trust_env=False
        )

    def async_client(self, egress_proxy_url: str | None) -> httpx.AsyncClient:
        """One async client per route for the proxy; must be used on the server's loop."""
        with self._lock:
            client = self._async_clients.get(egress_proxy_url)
            if client is None:
                client = httpx.AsyncClient(
                    # One client serves every caller: a cookie an upstream sets for one
                    # must never ride along on another's call, so none is ever kept.
                    cookies=CookieJar(policy=DefaultCookiePolicy(allowed_domains=[])),
                    transport=httpx.AsyncHTTPTransport(
                        proxy=httpx.Proxy(egress_proxy_url) if egress_proxy_url else None,
                        limits=_LIMITS,
                    ),
                    timeout=self.timeout,
                    trust_env=False,
                    follow_redirects=False,
                )
                self._async_clients[egress_proxy_url] = client
            return client

    def close(self) -> None:
        with self._lock:
            for transport in self._sync.values():
                transport.close()
            self._sync.clear()

    async def aclose(self) -> None:
        with self._lock:
            clients = list(self._async_clients.values())
            self._async_clients.clear()
        for client in clients:
            await client.aclose()
