"""Handle on the real OAuth 2.0 authorization server (django-oauth-toolkit) subprocess.

with start_idp(tmp_path) as idp:
    client = idp.register_client("client-credentials")
    httpx.post(idp.token_url, data={"grant_type": "client_credentials"},
               auth=(client.client_id, client.client_secret))

The device authorization grant (RFC 8628):

    client = idp.register_client("device-code", client_type="public")
    started = httpx.post(idp.device_authorization_url, data={"client_id": client.client_id})
    idp.approve_device(started.json()["user_code"], username, password)
    httpx.post(idp.token_url, data={"grant_type": DEVICE_CODE_GRANT,
               "device_code": started.json()["device_code"], "client_id": client.client_id})
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode, urljoin, urlsplit

import httpx

from ._proc import ControlledServer, ServerProcess, http_ok

Grant = Literal["authorization-code", "client-credentials", "password", "device-code"]

# RFC 8628 section 3.4: the grant_type of a device-code poll at the token endpoint.
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# Paths served by the IdP (DOT is mounted under /o/).
AUTHORIZE_PATH = "/o/authorize/"
TOKEN_PATH = "/o/token/"
REVOKE_PATH = "/o/revoke_token/"
INTROSPECT_PATH = "/o/introspect/"
USERINFO_PATH = "/o/userinfo/"
JWKS_PATH = "/o/.well-known/jwks.json"
DEVICE_AUTHORIZATION_PATH = "/o/device-authorization/"
DEVICE_VERIFICATION_PATH = "/o/device/"
LOGIN_PATH = "/accounts/login/"
OIDC_DISCOVERY_PATH = "/.well-known/openid-configuration"
RFC8414_PATH = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True)
class Client:
    """A registered OAuth client; client_secret is the plain value ("" for public)."""

    client_id: str
    client_secret: str
    grant: str = ""
    redirect_uris: tuple[str, ...] = field(default=())


class IdPError(RuntimeError):
    """The IdP refused a control request or the login flow went somewhere unexpected."""


class IdP(ControlledServer):
    """A running test IdP. Use start_idp() to get one; stop() (or ``with``) ends it."""

    error = IdPError

    def __init__(self, process: ServerProcess, control_token: str) -> None:
        super().__init__(process, f"http://127.0.0.1:{process.port}", control_token)
        self.issuer = self.base_url
        self.authorization_url = self.base_url + AUTHORIZE_PATH
        self.token_url = self.base_url + TOKEN_PATH
        self.revocation_url = self.base_url + REVOKE_PATH
        self.introspection_url = self.base_url + INTROSPECT_PATH
        self.userinfo_url = self.base_url + USERINFO_PATH
        self.jwks_url = self.base_url + JWKS_PATH
        self.device_authorization_url = self.base_url + DEVICE_AUTHORIZATION_PATH
        self.device_verification_url = self.base_url + DEVICE_VERIFICATION_PATH
        self.openid_configuration_url = self.base_url + OIDC_DISCOVERY_PATH
        self.metadata_url = self.base_url + RFC8414_PATH

    def register_client(
        self,
        grant: Grant,
        redirect_uris: Sequence[str] = (),
        skip_authorization: bool = True,
        *,
        client_type: Literal["confidential", "public"] = "confidential",
        algorithm: Literal["RS256", "HS256", ""] = "RS256",
        name: str = "test client",
        client_id: str | None = None,
        client_secret: str | None = None,
    ) -> Client:
        """Register an application; the returned secret is the plain one (DOT stores a hash).

        ``grant`` "device-code" makes a device authorization grant client (RFC 8628): a
        public one authenticates by its client_id alone, a confidential one with its
        secret at both the device authorization and the token endpoints.
        ``algorithm`` signs OIDC ID tokens (issued only when "openid" is requested).
        ``client_id`` and ``client_secret`` choose them (any characters: DOT decodes HTTP
        Basic credentials as RFC 6749 section 2.3.1 says); by default DOT generates both.
        """
        body: dict[str, Any] = {
            "grant_type": grant,
            "redirect_uris": list(redirect_uris),
            "skip_authorization": skip_authorization,
            "client_type": client_type,
            "algorithm": algorithm,
            "name": name,
        }
        if client_id is not None:
            body["client_id"] = client_id
        if client_secret is not None:
            body["client_secret"] = client_secret
        data = self._control("POST", "/_test/clients", body)
        return Client(data["client_id"], data["client_secret"], grant, tuple(redirect_uris))

    def create_user(self, username: str, password: str) -> None:
        self._control("POST", "/_test/users", {"username": username, "password": password})

    def issue_tokens(self, client: Client, username: str, count: int) -> list[dict[str, Any]]:
        """``count`` token answers (``access_token``, ``refresh_token``, ``expires_in``,
        ``scope``) for ``username`` at ``client``, as that many password grants would give
        them, written by the IdP at once (a thousand grants take seconds more)."""
        body = {"client_id": client.client_id, "username": username, "count": count}
        tokens: list[dict[str, Any]] = self._control("POST", "/_test/tokens", body)["tokens"]
        return tokens

    def counters(self) -> dict[str, int]:
        """Token-endpoint requests so far, by grant_type ("(none)" when missing)."""
        data: dict[str, int] = self._control("GET", "/_test/counters")["token_requests"]
        return data

    def token_requests(self, grant_type: str | None = None) -> int:
        """How many requests reached the token endpoint (for one grant_type, or all)."""
        counts = self.counters()
        if grant_type is None:
            return sum(counts.values())
        return counts.get(grant_type, 0)

    def token_errors(self, error: str | None = None) -> int:
        """How many token-endpoint answers were errors (with that RFC 6749 ``error`` code,
        e.g. "invalid_grant", or any) since the last reset."""
        counts: dict[str, int] = self._control("GET", "/_test/counters")["token_errors"]
        return sum(counts.values()) if error is None else counts.get(error, 0)

    def path_requests(self, path: str) -> int:
        """How many requests reached an IdP path (e.g. REVOKE_PATH) since the last reset."""
        counts: dict[str, int] = self._control("GET", "/_test/counters")["requests"]
        return counts.get(path, 0)

    def reset_counters(self) -> None:
        self._control("POST", "/_test/counters")

    def revoke_all_tokens(
        self, client_id: str | None = None, *, username: str | None = None
    ) -> None:
        """Revoke every refresh (and access) token of a client and/or a user.

        A later refresh with any of them gets ``invalid_grant``.
        """
        self._control("POST", "/_test/revoke", {"client_id": client_id, "username": username})

    def token_status(self, token: str) -> dict[str, Any]:
        """``{"kind": "access" | "refresh" | None, "active": bool}``."""
        data: dict[str, Any] = self._control("POST", "/_test/token-status", {"token": token})
        return data

    def inactive(self, tokens: Sequence[str]) -> list[str]:
        """Those of ``tokens`` (access or refresh tokens) the IdP would no longer honour,
        asked in one request."""
        found = self._control("POST", "/_test/token-status", {"tokens": list(tokens)})
        return [
            t for t, status in zip(tokens, found["statuses"], strict=True) if not status["active"]
        ]

    def is_active(self, token: str) -> bool:
        """Whether the IdP would still honour this access or refresh token."""
        return bool(self.token_status(token)["active"])

    def set_access_token_lifetime(self, seconds: int) -> None:
        """Lifetime (expires_in) of access tokens issued from now on."""
        self._control("POST", "/_test/settings", {"access_token_lifetime": seconds})

    def set_device_interval(self, seconds: int) -> None:
        """The ``interval`` of device authorization answers from now on (start: 1 s)."""
        self._control("POST", "/_test/device", {"interval": seconds})

    def answer_slow_down(self, times: int = 1) -> None:
        """Answer ``slow_down`` (400) to the next ``times`` device-code polls, whatever
        their device code; DOT itself never does (it has no polling rate limit)."""
        self._control("POST", "/_test/device", {"slow_down": times})

    def expire_device_code(self, user_code: str) -> None:
        """The device code of ``user_code`` runs out now: polls answer ``expired_token``."""
        self._control("POST", "/_test/device", {"expire": user_code})

    # -- browser-like login ------------------------------------------------------

    def log_in_and_consent(
        self,
        authorization_url: str,
        username: str,
        password: str,
        *,
        consent: bool = True,
        client: httpx.Client | None = None,
    ) -> str:
        """Play the user: open the authorization URL, sign in, approve (or deny).

        Returns the final redirect Location leaving the IdP (the callback URL with
        ``code`` and ``state``, or ``error=...``) without requesting it. Pass ``client``
        to reuse a browser session (cookies) across calls.
        """
        own = client is None
        http = client or httpx.Client(timeout=30.0, trust_env=False)
        try:
            return _walk_login(http, authorization_url, username, password, consent)
        finally:
            if own:
                http.close()

    def approve_device(
        self,
        user_code: str,
        username: str,
        password: str,
        *,
        approve: bool = True,
        client: httpx.Client | None = None,
    ) -> str:
        """Play the user of a device authorization (RFC 8628 section 3.3): open the
        verification page with ``user_code`` filled in, sign in, accept (or deny).

        Returns the status DOT shows at the end ("Authorized" or "Denied"); raises
        IdPError when the code is refused (unknown, expired or already used). The next
        device-code poll answers with tokens, or ``access_denied``.
        """
        own = client is None
        http = client or httpx.Client(timeout=30.0, trust_env=False)
        url = f"{self.device_verification_url}?{urlencode({'user_code': user_code})}"
        try:
            return _walk_device(http, url, username, password, approve)
        finally:
            if own:
                http.close()


def start_idp(
    tmp_path: Path,
    *,
    access_token_lifetime: int = 3600,
    extra_scopes: Sequence[str] = (),
    device_interval: int = 1,
    timeout: float = 60.0,
) -> IdP:
    """Start an IdP subprocess with its own SQLite database under ``tmp_path``."""
    workdir = Path(tmp_path) / "idp"
    workdir.mkdir(parents=True, exist_ok=True)
    control_token = secrets.token_urlsafe(24)
    process = ServerProcess(
        "idp",
        ["-m", "tests.support.idp_project.serve"],
        workdir,
        env={
            "IDP_DATA_DIR": str(workdir),
            "IDP_CONTROL_TOKEN": control_token,
            "IDP_ACCESS_TOKEN_LIFETIME": str(access_token_lifetime),
            "IDP_EXTRA_SCOPES": " ".join(extra_scopes),
            "IDP_DEVICE_INTERVAL": str(device_interval),
        },
    )
    process.start(lambda port: http_ok(f"http://127.0.0.1:{port}/_test/health"), timeout)
    return IdP(process, control_token)


# --- login flow -----------------------------------------------------------------------


@dataclass
class _Form:
    attrs: dict[str, str]
    fields: list[tuple[str, str, str]] = field(default_factory=list)  # (type, name, value)


class _FormParser(HTMLParser):
    """Collects <form>s with their <input>/<button> fields (enough for these pages)."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[_Form] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(_Form(values))
        elif tag in ("input", "button") and self.forms:
            kind = values.get("type", "submit" if tag == "button" else "text").lower()
            self.forms[-1].fields.append((kind, values.get("name", ""), values.get("value", "")))


def _is_idp_page(url: str, origin: str) -> bool:
    parts = urlsplit(url)
    same_origin = f"{parts.scheme}://{parts.netloc}" == origin
    return same_origin and parts.path.startswith(("/o/", "/accounts/"))


def _walk_login(http: httpx.Client, url: str, username: str, password: str, consent: bool) -> str:
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    response = http.get(url, follow_redirects=False)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if not _is_idp_page(location, origin):
                return location  # leaving the IdP: the client's redirect_uri
            response = http.get(location, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise IdPError(
                f"login flow: {response.request.method} {response.url} -> "
                f"{response.status_code}: {response.text[:2000]}"
            )
        parser = _FormParser()
        parser.feed(response.text)
        form = next((f for f in parser.forms if f.attrs.get("method", "").lower() == "post"), None)
        if form is None:
            raise IdPError(f"login flow: no form at {response.url}: {response.text[:2000]}")
        data: dict[str, str] = {}
        for kind, name, value in form.fields:
            if not name:
                continue  # e.g. DOT's unnamed "Cancel" button
            if kind == "password":
                data[name] = password
            elif name == "username":
                data[name] = username
            elif kind == "submit":
                # DOT's consent form: only the "allow" button grants access.
                if name == "allow" and consent:
                    data[name] = value
            elif kind not in ("checkbox", "radio"):
                data[name] = value
        action = urljoin(str(response.url), form.attrs.get("action") or str(response.url))
        response = http.post(action, data=data, follow_redirects=False)
        if response.status_code == 200 and "password" in data:
            raise IdPError(f"login flow: sign-in rejected for {username!r}")
    raise IdPError(f"login flow: too many steps from {url}")


def _walk_device(http: httpx.Client, url: str, username: str, password: str, approve: bool) -> str:
    """The device pages: sign-in, the user code (already filled in), accept or deny."""
    response = http.get(url, follow_redirects=True)
    for _ in range(10):
        if response.status_code != 200:
            raise IdPError(
                f"device flow: {response.request.method} {response.url} -> "
                f"{response.status_code}: {response.text[:2000]}"
            )
        parser = _FormParser()
        parser.feed(response.text)
        form = next((f for f in parser.forms if f.attrs.get("method", "").lower() == "post"), None)
        if form is None:
            # The status page ends the flow: "Device Authorized" or "Device Denied".
            marker = re.search(r"Device\s+(\w+)", response.text)
            if marker is None:
                raise IdPError(f"device flow: no form at {response.url}: {response.text[:2000]}")
            return marker.group(1)
        data: dict[str, str] = {}
        for kind, name, value in form.fields:
            if kind == "password":
                data[name] = password
            elif name == "username":
                data[name] = username
            elif name == "action":
                # DOT's confirmation page: two submit buttons named "action".
                if value == ("accept" if approve else "deny"):
                    data[name] = value
            elif name and kind != "submit":
                data[name] = value
        action = urljoin(str(response.url), form.attrs.get("action") or str(response.url))
        response = http.post(action, data=data, follow_redirects=True)
        if "password" in data and urlsplit(str(response.url)).path == LOGIN_PATH:
            raise IdPError(f"device flow: sign-in rejected for {username!r}")
        refused = re.search(r'class="errorlist[^>]*>\s*<li>(.*?)</li>', response.text, re.S)
        if "user_code" in data and refused is not None:
            # e.g. "Expired user code", "User code has already been used"
            raise IdPError(f"device flow: user code {data['user_code']!r}: {refused.group(1)}")
    raise IdPError(f"device flow: too many steps from {url}")
