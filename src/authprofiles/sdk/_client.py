"""``AuthProfilesClient``: the authprofiles HTTP API, one method per operation."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from authprofiles.sdk._auth import ConnectionAuth
    from authprofiles.sdk._requests import RequestsConnectionAuth

USER_AGENT = "authprofiles-sdk/0.1"


#: What an API answers a refused token with when the profile does not say (RFC 6750 3.1).
DEFAULT_AUTH_ERROR_STATUS = 401


def auth_error_status_of(profile: Mapping[str, object]) -> int:
    """The profile's ``auth_error_status_code`` (its JSON as the API answers it), else 401."""
    status = profile.get("auth_error_status_code")
    return int(status) if isinstance(status, int) else DEFAULT_AUTH_ERROR_STATUS


class AuthProfilesError(Exception):
    """The API answered with an error (an RFC 9457 problem): ``status_code``, ``title``,
    ``detail`` and the whole ``problem`` document (``errors`` names each bad field)."""

    def __init__(self, status_code: int, problem: Mapping[str, Any]) -> None:
        self.status_code = status_code
        self.problem = dict(problem)
        self.title = str(problem.get("title") or f"HTTP {status_code}")
        self.detail = str(problem.get("detail") or "")
        super().__init__(f"{status_code} {self.title}: {self.detail}")


@dataclass(frozen=True)
class Inject:
    """Where the server says each credential goes. The values are secrets."""

    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    query: Mapping[str, str] = field(default_factory=dict, repr=False)
    body: Mapping[str, str] = field(default_factory=dict, repr=False)
    path: Mapping[str, str] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class Token:
    """A valid access token of a connection (``repr`` never shows it)."""

    access_token: str = field(repr=False)
    token_type: str
    expires_at: datetime | None
    scopes: tuple[str, ...] | None
    inject: Inject
    auth_error_status_code: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Token:
        inject = data.get("inject") or {}
        expires = data.get("expires_at")
        expires_at = datetime.fromisoformat(expires) if isinstance(expires, str) else None
        if expires_at is not None and expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        scopes = data.get("scopes")
        status = data.get("auth_error_status_code")
        return cls(
            access_token=str(data["access_token"]),
            token_type=str(data.get("token_type") or "Bearer"),
            expires_at=expires_at,
            scopes=tuple(scopes) if isinstance(scopes, list) else None,
            inject=Inject(
                headers=dict(inject.get("headers") or {}),
                query=dict(inject.get("query") or {}),
                body=dict(inject.get("body") or {}),
                path=dict(inject.get("path") or {}),
            ),
            auth_error_status_code=int(status) if isinstance(status, int) else None,
            extra=dict(data.get("extra") or {}),
        )

    @classmethod
    def from_response(cls, response: httpx.Response) -> Token:
        """The token in an answer of ``GET /connections/{id}/token`` (or ``.../refresh``);
        an error answer raises :class:`AuthProfilesError`."""
        return cls.from_json(_decode(response))

    def seconds_left(self, now: datetime | None = None) -> float | None:
        if self.expires_at is None:
            return None
        return (self.expires_at - (now or datetime.now(UTC))).total_seconds()

    @property
    def sha256(self) -> str:
        """Names this token to the server without sending it (see ``refresh_token``)."""
        return hashlib.sha256(self.access_token.encode()).hexdigest()


class ServerRequest(httpx.Request):
    """A request to the authprofiles API itself (with the API key), as opposed to one to
    the connection's API: :class:`~authprofiles.sdk.ConnectionAuth`'s flow yields both, and
    sends this kind through :class:`AuthProfilesClient`'s own connection, never through the
    client the caller built for the connection's API (its hooks, proxies and certificates
    are for that API, and the API key must not pass through them)."""


class _Unclosed(httpx.AsyncBaseTransport):
    """Lends a caller's async transport to a short-lived client without closing it."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        pass


class AuthProfilesClient:
    """The authprofiles API at ``base_url`` (e.g. ``http://127.0.0.1:8000``) with an API key.

    Errors raise :class:`AuthProfilesError`. Profiles and connections come back as the
    API's JSON objects; tokens as :class:`Token`. Use it as a context manager, or call
    :meth:`close`.
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout: float = 30.0,
        verify: ssl.SSLContext | bool = True,
        trust_env: bool = True,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._api = self.base_url + "/api/v1"
        self._headers = {"Authorization": f"Bearer {api_key}", "User-Agent": USER_AGENT}
        self._timeout = timeout
        self._verify = verify
        self._trust_env = trust_env
        self._async_transport = async_transport
        self._http = httpx.Client(
            base_url=self._api,
            headers=self._headers,
            timeout=timeout,
            verify=verify,
            trust_env=trust_env,
            transport=transport,
        )

    # -- plumbing --------------------------------------------------------------------
    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> AuthProfilesClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"AuthProfilesClient({self.base_url!r})"

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        """Any API call: ``path`` is relative to ``/api/v1``; returns the decoded JSON."""
        return _decode(self.send(self.build_request(method, path, **kwargs)))

    def build_request(self, method: str, path: str, **kwargs: Any) -> ServerRequest:
        """An API call not sent yet (``path`` relative to ``/api/v1``, the API key in place),
        for :meth:`send` or :meth:`asend`."""
        built = self._http.build_request(method, path, **kwargs)
        return ServerRequest(
            built.method,
            built.url,
            headers=built.headers,
            stream=built.stream,
            extensions=built.extensions,
        )

    def send(self, request: httpx.Request) -> httpx.Response:
        """Send a request of :meth:`build_request`; the answer is read whole."""
        return self._http.send(request)

    async def asend(self, request: httpx.Request) -> httpx.Response:
        """The same, on the running event loop (a short-lived connection per call)."""
        transport = _Unclosed(self._async_transport) if self._async_transport else None
        async with httpx.AsyncClient(
            timeout=self._timeout,
            verify=self._verify,
            trust_env=self._trust_env,
            transport=transport,
        ) as client:
            return await client.send(request)

    def token_request(self, connection_id: str) -> ServerRequest:
        """``GET /connections/{id}/token``, not sent yet."""
        return self.build_request("GET", f"/connections/{_id(connection_id)}/token")

    def refresh_request(self, connection_id: str, *, refused: Token | None = None) -> ServerRequest:
        """``POST /connections/{id}/token/refresh`` naming the refused token, not sent yet."""
        body = {"refused_token_sha256": refused.sha256} if refused else {}
        return self.build_request(
            "POST", f"/connections/{_id(connection_id)}/token/refresh", json=body
        )

    def _every_page(self, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
        """A list's items from every page: the API answers a page and names the next one
        in ``Link: <...>; rel="next"`` (RFC 8288). Only that link's query (its cursor) is
        used, on this client's own URL: the API key goes nowhere else."""
        items: list[dict[str, Any]] = []
        while True:
            response = self._http.get(path, params=params)
            items.extend(_decode(response))
            following = response.links.get("next", {}).get("url")
            if not following:
                return items
            params = dict(httpx.URL(following).params)

    async def arequest(self, method: str, path: str, **kwargs: Any) -> Any:
        """The same, on the running event loop (a short-lived connection per call)."""
        return _decode(await self.asend(self.build_request(method, path, **kwargs)))

    # -- profiles --------------------------------------------------------------------
    def list_profiles(self, *, name: str | None = None) -> list[dict[str, Any]]:
        """Every profile (``name``: only the one of that name), fetched a page at a time."""
        return self._every_page("/profiles", _without_none(name=name))

    def get_profile(self, profile_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/profiles/{_id(profile_id)}"))

    def create_profile(
        self,
        profile: Mapping[str, Any] | None = None,
        *,
        allow_incomplete: bool = False,
        **fields: Any,
    ) -> dict[str, Any]:
        """Fields as in the API (``name``, ``auth_type``, ``client_id``, ...)."""
        params = {"allow_incomplete": "true"} if allow_incomplete else None
        body = {**(profile or {}), **fields}
        return dict(self.request("POST", "/profiles", json=body, params=params))

    def update_profile(
        self, profile_id: str, changes: Mapping[str, Any] | None = None, **fields: Any
    ) -> dict[str, Any]:
        body = {**(changes or {}), **fields}
        return dict(self.request("PATCH", f"/profiles/{_id(profile_id)}", json=body))

    def delete_profile(self, profile_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/profiles/{_id(profile_id)}"))

    def test_profile(
        self,
        profile_id: str,
        *,
        tenant: str | None = None,
        fields: Mapping[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Try the profile for real: ``{ok, stage, status_code, request, response, ...}``."""
        body = _without_none(
            tenant=tenant,
            fields=dict(fields) if fields else None,
            username=username,
            password=password,
        )
        return dict(self.request("POST", f"/profiles/{_id(profile_id)}/test", json=body))

    def discover(self, issuer: str) -> dict[str, Any]:
        """RFC 8414 / OpenID metadata of an issuer, to prefill a profile."""
        return dict(self.request("GET", "/discovery", params={"issuer": issuer}))

    # -- connections -----------------------------------------------------------------
    def create_connection(
        self,
        profile_id: str,
        *,
        owner: str = "shared",
        tenant: str | None = None,
        fields: Mapping[str, str] | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> dict[str, Any]:
        """Authorization code: ``authorization_url`` to open; other grants: connected."""
        body = _without_none(
            owner=owner,
            tenant=tenant,
            fields=dict(fields) if fields else None,
            username=username,
            password=password,
        )
        return dict(self.request("POST", f"/profiles/{_id(profile_id)}/connections", json=body))

    def list_connections(self, profile_id: str) -> list[dict[str, Any]]:
        return self._every_page(f"/profiles/{_id(profile_id)}/connections", {})

    def get_connection(self, connection_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/connections/{_id(connection_id)}"))

    def delete_connection(self, connection_id: str) -> dict[str, Any]:
        return dict(self.request("DELETE", f"/connections/{_id(connection_id)}"))

    # -- tokens ----------------------------------------------------------------------
    def get_token(self, connection_id: str) -> Token:
        """A valid token (the server refreshes it first if it is about to expire)."""
        return Token.from_response(self.send(self.token_request(connection_id)))

    async def aget_token(self, connection_id: str) -> Token:
        return Token.from_response(await self.asend(self.token_request(connection_id)))

    def refresh_token(self, connection_id: str, *, refused: Token | None = None) -> Token:
        """An API refused ``refused``: have the server refresh once. When another client
        already did, the server answers with that newer token instead."""
        return Token.from_response(self.send(self.refresh_request(connection_id, refused=refused)))

    async def arefresh_token(self, connection_id: str, *, refused: Token | None = None) -> Token:
        request = self.refresh_request(connection_id, refused=refused)
        return Token.from_response(await self.asend(request))

    def auth_error_status_code(self, connection_id: str) -> int:
        """The status by which the connection's API says "token refused" (default 401)."""
        connection = self.get_connection(connection_id)
        return auth_error_status_of(self.get_profile(str(connection["profile_id"])))

    async def aauth_error_status_code(self, connection_id: str) -> int:
        connection = await self.arequest("GET", f"/connections/{_id(connection_id)}")
        return auth_error_status_of(
            await self.arequest("GET", f"/profiles/{_id(str(connection['profile_id']))}")
        )

    # -- using a connection ----------------------------------------------------------------
    def proxy_url(self, connection_id: str, path: str = "") -> str:
        """Where to call the connection's API through the server's proxy."""
        return f"{self._api}/proxy/{_id(connection_id)}/{path.lstrip('/')}"

    def auth(self, connection_id: str, **options: Any) -> ConnectionAuth:
        """An ``httpx.Auth`` applying the connection's token; see :class:`ConnectionAuth`."""
        from authprofiles.sdk._auth import ConnectionAuth

        return ConnectionAuth(self, connection_id, **options)

    def requests_auth(self, connection_id: str, **options: Any) -> RequestsConnectionAuth:
        """The same for ``requests``; see :class:`RequestsConnectionAuth`."""
        from authprofiles.sdk._requests import RequestsConnectionAuth

        return RequestsConnectionAuth(self, connection_id, **options)


def _id(value: str) -> str:
    return quote(value, safe="")


def _without_none(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


def _decode(response: httpx.Response) -> Any:
    if response.status_code >= 400:
        try:
            problem = response.json()
        except ValueError:
            problem = {"detail": response.text[:500]}
        if not isinstance(problem, dict):
            problem = {"detail": str(problem)}
        raise AuthProfilesError(response.status_code, problem)
    if not response.content:
        return None
    return response.json()
