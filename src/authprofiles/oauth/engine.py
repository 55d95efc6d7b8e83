"""Requests to an authorization server through authlib's httpx client, with retries.

authlib builds every request (client authentication per RFC 6749 section 2.3.1 and the
methods of ``client_auth``; PKCE S256 per RFC 7636, refresh per section 6, revocation per
RFC 7009). This module is what every grant (``oauth.grants``, one module per RFC) sends
its requests through: it adds retries with backoff and jitter within a deadline, and turns
every failure into :class:`GrantRefused` (do not retry) or :class:`IdPUnavailable`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar
from urllib.parse import urlsplit

import httpx

from authprofiles import telemetry
from authprofiles.core.connections import TokenSet
from authprofiles.core.ports import Clock, SystemClock
from authprofiles.oauth._authlib import OAuth2Client, OAuthError, generate_token
from authprofiles.oauth.client_auth import register_client_auth_methods
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable
from authprofiles.oauth.responses import normalise_response, to_token_set
from authprofiles.oauth.rfc9207 import IssParameterLookup, IssuerMetadataCache
from authprofiles.oauth.transport import Transports

log = logging.getLogger("authprofiles.oauth")
T = TypeVar("T")


@dataclass(frozen=True)
class ClientSettings:
    """Everything a grant needs, with URLs already rendered for one connection."""

    client_id: str
    client_secret: str | None
    auth_method: str
    token_url: str
    refresh_url: str
    redirect_uri: str
    authorization_url: str | None = None
    revocation_url: str | None = None
    scopes: tuple[str, ...] = ()
    #: Seed 000's additional fields: extra authorization (or token) request parameters.
    extra_params: Mapping[str, str] = field(default_factory=dict)
    egress_proxy_url: str | None = None
    pkce: bool = True
    #: RFC 7523 ``private_key_jwt``: the PEM key assertions are signed with, its ``kid``,
    #: and the audience (default: the token endpoint URL).
    private_key: str | None = None
    private_key_id: str | None = None
    client_assertion_audience: str | None = None
    #: RFC 9207: the authorization server's issuer identifier, when the profile names it.
    issuer: str | None = None
    #: RFC 8628 section 3.1: the device authorization endpoint.
    device_authorization_url: str | None = None


def new_code_verifier() -> str:
    """RFC 7636 section 4.1: 43 to 128 characters of [A-Z a-z 0-9 - . _ ~]; 48 bytes → 64."""
    return str(generate_token(64))


def new_state() -> str:
    return str(generate_token(43))


class OAuthEngine:
    def __init__(
        self,
        transports: Transports,
        *,
        retries: int = 2,
        backoff_seconds: float = 0.2,
        deadline_seconds: float = 10.0,
        clock: Clock | None = None,
        sleep: Callable[[float], None] = time.sleep,
        event_hooks: Mapping[str, list[Callable[..., Any]]] | None = None,
        issuer_metadata: IssParameterLookup | None = None,
    ) -> None:
        self.transports = transports
        self.retries = retries
        self.backoff_seconds = backoff_seconds
        #: The most one call (an exchange, a refresh, a revocation) may take, retries
        #: included: what a caller waits at worst for a hung identity provider.
        self.deadline_seconds = deadline_seconds
        self.clock = clock or SystemClock()
        self._sleep = sleep
        #: httpx event hooks on every client (the profile test records exchanges with them).
        self.event_hooks = {k: list(v) for k, v in (event_hooks or {}).items()}
        #: Whether an issuer sends RFC 9207 ``iss`` (its metadata, fetched and cached), for
        #: the authorization code grant's check of an answer that lacks it. Engines on the
        #: same transports share one (the composition root passes it).
        self.issuer_metadata = issuer_metadata or IssuerMetadataCache(transports)
        # The timeouts of the attempt running in this thread (see _with_retries).
        self._attempt = threading.local()

    def client(self, settings: ClientSettings, *, with_scope: bool = True) -> Any:
        """An authlib OAuth 2.0 client for one request (the grants build theirs here)."""
        client = OAuth2Client(
            client_id=settings.client_id,
            client_secret=settings.client_secret or "",
            token_endpoint_auth_method=settings.auth_method,
            revocation_endpoint_auth_method=settings.auth_method,
            scope=list(settings.scopes) if with_scope and settings.scopes else None,
            redirect_uri=settings.redirect_uri,
            code_challenge_method="S256" if settings.pkce else None,
            transport=self.transports.sync(settings.egress_proxy_url),
            timeout=getattr(self._attempt, "timeout", None) or self.transports.timeout,
            trust_env=False,
            # Every request here carries the client's credentials: a redirect is the
            # identity provider's answer, never an invitation to send them elsewhere.
            follow_redirects=False,
            event_hooks={
                **self.event_hooks,
                # First, so that a hook recording the request sees what is sent.
                "request": [_propagate_trace, *self.event_hooks.get("request", [])],
            },
        )
        # client_secret_basic as RFC 6749 section 2.3.1 says (see client_auth), for the
        # token, refresh and revocation requests alike.
        register_client_auth_methods(
            client,
            private_key=settings.private_key,
            private_key_id=settings.private_key_id,
            client_assertion_audience=settings.client_assertion_audience,
            token_endpoint=settings.token_url,
        )
        client.register_compliance_hook("access_token_response", normalise_response)
        client.register_compliance_hook("refresh_token_response", normalise_response)
        return client

    # -- RFC 6749 section 4: a token request of any grant -------------------------------
    def fetch_token(
        self,
        settings: ClientSettings,
        what: str,
        *,
        grant_type: str,
        params: Mapping[str, str] | None = None,
        with_scope: bool = True,
        retry_after_send: bool = True,
    ) -> TokenSet:
        """POST ``grant_type`` and ``params`` to the token endpoint, the client
        authenticated by its method; ``what`` names the request in errors and logs."""

        def call() -> Any:
            client = self.client(settings, with_scope=with_scope)
            return client.fetch_token(
                settings.token_url, grant_type=grant_type, **dict(params or {})
            )

        return self.request_token(call, what, settings.token_url, retry_after_send=retry_after_send)

    def post_form(
        self, settings: ClientSettings, url: str, what: str, data: Mapping[str, str]
    ) -> dict[str, Any]:
        """POST a form to another endpoint of the server with the client authenticated as
        at its token endpoint (RFC 8628 section 3.1 asks this of the device authorization
        request), and return the JSON object it answers; an OAuth error body (RFC 6749
        section 5.2) raises :class:`GrantRefused`."""

        def call() -> httpx.Response:
            client = self.client(settings)
            body = dict(data)
            if settings.scopes:
                body.setdefault("scope", " ".join(settings.scopes))
            response: httpx.Response = client.post(
                url, data=body, auth=client.client_auth(settings.auth_method)
            )
            if response.status_code >= 500 or response.status_code == 429:
                # Passing: raised here so that it is retried and named like any other.
                response.raise_for_status()
            return response

        response = self._with_retries(call, what, url)
        try:
            document = response.json()
        except ValueError:
            document = None
        if not isinstance(document, dict):
            if response.status_code >= 400:
                raise GrantRefused(f"http_{response.status_code}", None, response.status_code)
            raise IdPUnavailable(
                f"{what} at {_host(url)}: unreadable answer from the identity provider",
                host=_host(url),
            )
        if response.status_code >= 400 or "error" in document:
            error = str(document.get("error") or f"http_{response.status_code}")
            raise GrantRefused(error, document.get("error_description"), response.status_code)
        return document

    # -- RFC 7009: revocation --------------------------------------------------------------
    def revoke(self, settings: ClientSettings, *, token: str, hint: str) -> None:
        if not settings.revocation_url:
            return
        url = settings.revocation_url

        def call() -> httpx.Response:
            response: httpx.Response = self.client(settings).revoke_token(
                url, token=token, token_type_hint=hint
            )
            return response

        response = self._with_retries(call, "revocation", url)
        # Section 2.2: 200 whether or not the token was valid; 503 means try later.
        if response.status_code >= 500:
            raise IdPUnavailable(
                f"revocation at {_host(url)} answered HTTP {response.status_code}", host=_host(url)
            )
        if response.status_code >= 400:
            raise GrantRefused(
                _error_code(response) or f"http_{response.status_code}",
                None,
                response.status_code,
            )

    # -- plumbing ---------------------------------------------------------------------------
    def request_token(
        self, call: Callable[[], Any], what: str, url: str, *, retry_after_send: bool = True
    ) -> TokenSet:
        """Run ``call`` (an authlib token request) with retries, and normalise the token
        response it returns (RFC 6749 section 5.1)."""
        received_at = self.clock.now()
        token = self._with_retries(call, what, url, retry_after_send=retry_after_send)
        try:
            return to_token_set(dict(token), received_at)
        except ValueError as exc:
            raise IdPUnavailable(f"{what} at {_host(url)}: {exc}", host=_host(url)) from None

    def _with_retries(
        self, call: Callable[[], T], what: str, url: str, *, retry_after_send: bool = True
    ) -> T:
        """``call`` until it succeeds, is refused, or the deadline passes: every attempt's
        timeouts are cut to what is left of it, so a hung identity provider costs the
        caller at most ``deadline_seconds``, retries and backoff included."""
        deadline = time.monotonic() + self.deadline_seconds
        attempt = 0
        while True:
            self._attempt.timeout = self._timeout_within(deadline - time.monotonic())
            try:
                return self._classify(call, what, _host(url))
            except GrantRefused as exc:
                _count_failure(exc)
                raise
            except IdPUnavailable as exc:
                _count_failure(exc)
                sent = not isinstance(exc.__cause__, httpx.ConnectError)
                left = deadline - time.monotonic()
                if attempt >= self.retries or (sent and not retry_after_send) or left < 0.1:
                    raise
                # Exponential backoff with full jitter, so many workers do not retry in step.
                delay = random.uniform(0, self.backoff_seconds * (2**attempt))  # noqa: S311
                delay = min(delay, left / 2)
                log.warning("%s failed (%s); retrying in %.2fs", what, exc.detail, delay)
                self._sleep(delay)
                attempt += 1
            finally:
                self._attempt.timeout = None

    def _timeout_within(self, left: float) -> httpx.Timeout:
        """The transports' timeouts, none longer than ``left`` seconds."""
        base = self.transports.timeout
        left = max(left, 0.01)

        def cut(value: float | None) -> float:
            return left if value is None else min(value, left)

        return httpx.Timeout(
            connect=cut(base.connect),
            read=cut(base.read),
            write=cut(base.write),
            pool=cut(base.pool),
        )

    @staticmethod
    def _classify(call: Callable[[], T], what: str, host: str) -> T:
        where = f"{what} at {host}"
        try:
            return call()
        except OAuthError as exc:
            raise GrantRefused(str(exc.error), exc.description, None) from None
        except httpx.TimeoutException as exc:
            phase = (
                "connecting" if isinstance(exc, httpx.ConnectTimeout) else "waiting for an answer"
            )
            raise IdPUnavailable(
                f"{where}: the identity provider timed out {phase}", timeout=True, host=host
            ) from exc
        except httpx.HTTPStatusError as exc:
            status = exc.response.status_code
            if status >= 500 or status == 429:
                raise IdPUnavailable(
                    f"{where}: the identity provider answered HTTP {status}", host=host
                ) from exc
            raise GrantRefused(
                _error_code(exc.response) or f"http_{status}",
                f"HTTP {status} without an OAuth error body",
                status,
            ) from None
        except httpx.TransportError as exc:
            # The OS's words ("Connection refused", "Name or service not known"): they name
            # no URL or credential, and they say what to fix.
            reason = str(exc) or type(exc).__name__
            verb = (
                "could not connect"
                if isinstance(exc, httpx.ConnectError)
                else "lost the connection"
            )
            raise IdPUnavailable(f"{where}: {verb} ({reason})", host=host) from exc
        except ValueError as exc:
            raise IdPUnavailable(
                f"{where}: unreadable answer from the identity provider", host=host
            ) from exc


#: RFC 8628 section 3.5's answers to a poll that is early: the device flow waiting, not failing.
_STILL_WAITING = frozenset({"authorization_pending", "slow_down"})


def _count_failure(exc: GrantRefused | IdPUnavailable) -> None:
    """One failed call to the identity provider, in ``telemetry.metrics.IDP_ERRORS``."""
    if isinstance(exc, IdPUnavailable):
        telemetry.count_idp_error("timeout" if exc.timeout else "unavailable")
    elif exc.error not in _STILL_WAITING:
        telemetry.count_idp_error(exc.error)


def _propagate_trace(request: httpx.Request) -> None:
    """httpx request hook: the identity provider continues the trace of the span the call
    is made in (a refresh's), while tracing is on."""
    telemetry.inject_trace_context(request.headers)


def _host(url: str) -> str:
    """The host (and port) a request goes to, to name in an error: never the path or query,
    which may carry a tenant's values."""
    try:
        return urlsplit(url).netloc.rpartition("@")[2] or url[:80]
    except ValueError:
        return "an unparsable URL"


def _error_code(response: httpx.Response) -> str | None:
    try:
        body = response.json()
    except ValueError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    return str(error) if error else None
