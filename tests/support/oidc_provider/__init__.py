"""Handle on a second, independent authorization server: panva's oidc-provider (npm).

It has what django-oauth-toolkit lacks: ``private_key_jwt`` client authentication
(RFC 7523 section 2.2) and the ``iss`` authorization response parameter (RFC 9207),
plus the device authorization grant (RFC 8628) a second time. ``server.mjs`` beside this
file configures it; ``package.json`` pins it, and ``ensure_installed`` runs npm when
``node_modules`` is missing.

    with start_oidc_provider(tmp_path) as op:
        client = op.clients["private_key_jwt"]
        httpx.post(op.token_url, data={
            "grant_type": "client_credentials", "scope": "read",
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": client_assertion(client, op.token_url)})
        result = op.authorize(authorization_url)   # code, state, iss, redirect_url
"""

from __future__ import annotations

import atexit
import fcntl
import json
import re
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, NamedTuple
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from joserfc import jwt
from joserfc.jwk import ECKey, RSAKey

from tests.support._proc import ControlledServer, log_tail, signal_group

from ..idp import _Form, _FormParser

HERE = Path(__file__).resolve().parent
SERVER_SCRIPT = HERE / "server.mjs"

AuthMethod = Literal["private_key_jwt", "client_secret_basic", "client_secret_post", "none"]

# RFC 7523 section 2.2: the client_assertion_type of a JWT client assertion.
CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
ALL_GRANTS = ("authorization_code", "client_credentials", "refresh_token", DEVICE_CODE_GRANT)
# Loopback redirect URIs of the built-in clients. They are "native" clients, so
# oidc-provider accepts these on any port (RFC 8252 section 7.3): an app on a free
# port can use them as they are.
LOOPBACK_REDIRECT_URIS = ("http://127.0.0.1/oauth/callback", "http://127.0.0.1/callback")


class OidcProviderError(RuntimeError):
    """The server refused a control request, or a login went somewhere unexpected."""


@dataclass(frozen=True)
class SigningKey:
    """A key of a ``private_key_jwt`` client: the private half for tests (PEM), the
    public half registered at the server (JWK)."""

    kid: str
    private_key_pem: str
    public_jwk: dict[str, Any]
    alg: str = "RS256"


def new_signing_key(kid: str | None = None, kind: Literal["RSA", "EC"] = "RSA") -> SigningKey:
    """A new RSA 2048 (RS256) or P-256 (ES256) key, made with ``cryptography``."""
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "RSA":
        private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public: dict[str, Any] = RSAKey.import_key(private.public_key()).as_dict(private=False)
        alg = "RS256"
    else:
        private = ec.generate_private_key(ec.SECP256R1())
        public = ECKey.import_key(private.public_key()).as_dict(private=False)
        alg = "ES256"
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    kid = kid or f"key-{secrets.token_hex(4)}"
    public.update(kid=kid, use="sig", alg=alg)
    return SigningKey(kid, pem, public, alg)


@dataclass(frozen=True)
class Client:
    """A client registered at the server. ``client_secret`` is "" unless the method
    uses one; ``key`` is set for ``private_key_jwt``."""

    client_id: str
    auth_method: AuthMethod
    client_secret: str = ""
    key: SigningKey | None = None
    redirect_uris: tuple[str, ...] = field(default=())
    grant_types: tuple[str, ...] = field(default=())

    @property
    def private_key_pem(self) -> str:
        assert self.key is not None, f"{self.client_id} has no key"
        return self.key.private_key_pem

    @property
    def key_id(self) -> str:
        assert self.key is not None, f"{self.client_id} has no key"
        return self.key.kid


def client_assertion(
    client: Client,
    audience: str,
    *,
    lifetime: int = 60,
    jti: str | None = None,
    claims: dict[str, Any] | None = None,
) -> str:
    """A ``client_assertion`` (RFC 7523 section 3), signed with joserfc (authlib's JOSE
    library; ``authlib.jose`` is deprecated): iss = sub = client_id, ``aud`` the
    token endpoint URL (oidc-provider also accepts the issuer or the endpoint's own URL),
    a fresh ``jti``, a short ``exp``. ``claims`` add to or replace these."""
    assert client.key is not None, f"{client.client_id} has no key"
    now = int(time.time())
    payload: dict[str, Any] = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": audience,
        "jti": jti or uuid.uuid4().hex,
        "iat": now,
        "exp": now + lifetime,
        **(claims or {}),
    }
    header = {"alg": client.key.alg, "kid": client.key.kid, "typ": "JWT"}
    key_type = RSAKey if client.key.alg.startswith("RS") else ECKey
    return jwt.encode(header, payload, key_type.import_key(client.key.private_key_pem))


class Authorization(NamedTuple):
    """What the authorization response carries to the redirect URI (not requested)."""

    code: str | None
    state: str | None
    iss: str | None
    redirect_url: str
    error: str | None = None


class OidcProvider(ControlledServer):
    """A running oidc-provider. Use start_oidc_provider(); stop() (or ``with``) ends it.

    Built-in clients (``clients[...]``), all allowed authorization_code,
    client_credentials (except "none"), refresh_token and the device code grant, with
    ``LOOPBACK_REDIRECT_URIS`` on any port: "private_key_jwt" (``key`` holds its RSA
    key), "client_secret_basic", "client_secret_post", "none" (public: PKCE required).
    Scopes: openid, offline_access, email, profile, and read / write (access tokens for
    read / write are for the resource server ``api_resource``). One account:
    ``username`` / ``password``; ``add_account`` adds more (with email claims).
    """

    error = OidcProviderError

    def __init__(
        self,
        process: _NodeProcess,
        control_token: str,
        registration_token: str,
        clients: dict[str, Client],
        accounts: dict[str, str],
    ) -> None:
        super().__init__(process, process.url, control_token)
        self.issuer = process.url
        self.clients = clients
        self.accounts = accounts
        self.username, self.password = next(iter(accounts.items()))
        self._registration_token = registration_token
        self.openid_configuration_url = self.base_url + "/.well-known/openid-configuration"
        self.metadata_url = self.base_url + "/.well-known/oauth-authorization-server"  # RFC 8414
        metadata = self._http.get(self.openid_configuration_url).json()
        self.metadata: dict[str, Any] = metadata
        self.authorization_url: str = metadata["authorization_endpoint"]
        self.token_url: str = metadata["token_endpoint"]
        self.device_authorization_url: str = metadata["device_authorization_endpoint"]
        self.revocation_url: str = metadata["revocation_endpoint"]
        self.introspection_url: str = metadata["introspection_endpoint"]
        self.registration_url: str = metadata["registration_endpoint"]
        self.userinfo_url: str = metadata["userinfo_endpoint"]
        self.jwks_url: str = metadata["jwks_uri"]
        # The user's page of the device flow (not in the metadata: each answer says it).
        self.device_verification_url = self.base_url + "/device"
        self.api_resource = self.base_url + "/api"

    def register_client(
        self,
        auth_method: AuthMethod = "private_key_jwt",
        redirect_uris: Sequence[str] = (),
        grant_types: Sequence[str] = ("authorization_code", "refresh_token"),
        *,
        key: SigningKey | None = None,
        application_type: Literal["web", "native"] = "web",
        **metadata: Any,
    ) -> Client:
        """Register a client by RFC 7591 dynamic registration (exact redirect URIs).

        ``private_key_jwt`` clients get ``key`` (a new RSA key by default), whose public
        JWK is registered. ``metadata`` adds client metadata (e.g. ``scope``).
        """
        if auth_method == "private_key_jwt":
            key = key or new_signing_key()
        body: dict[str, Any] = {
            "token_endpoint_auth_method": auth_method,
            "redirect_uris": list(redirect_uris),
            "grant_types": list(grant_types),
            "response_types": ["code"] if "authorization_code" in grant_types else [],
            "application_type": application_type,
            "scope": "openid offline_access read write",
            **metadata,
        }
        if key is not None:
            body["jwks"] = {"keys": [key.public_jwk]}
        response = self._http.post(
            self.registration_url,
            json=body,
            headers={"Authorization": f"Bearer {self._registration_token}"},
        )
        if response.status_code != 201:
            raise OidcProviderError(
                f"registration -> {response.status_code}: {response.text[:2000]}"
            )
        data = response.json()
        return Client(
            data["client_id"],
            auth_method,
            data.get("client_secret", ""),
            key,
            tuple(redirect_uris),
            tuple(grant_types),
        )

    def counters(self) -> dict[str, dict[str, int]]:
        """``{"token_requests": {grant_type: n}, "requests": {route: n}}`` so far
        (routes are oidc-provider's names: "authorization", "token", "device_authorization",
        "revocation", ...)."""
        data: dict[str, dict[str, int]] = self._control("GET", "/_test/counters")
        return data

    def token_requests(self, grant_type: str | None = None) -> int:
        counts = self.counters()["token_requests"]
        if grant_type is None:
            return sum(counts.values())
        return counts.get(grant_type, 0)

    def reset_counters(self) -> None:
        self._control("POST", "/_test/counters")

    def set_access_token_lifetime(self, seconds: int) -> None:
        """Lifetime (expires_in) of access tokens issued from now on (start: 3600)."""
        self._control("POST", "/_test/settings", {"access_token_lifetime": seconds})

    def add_account(
        self, username: str, password: str, claims: dict[str, Any] | None = None
    ) -> None:
        """A person who can sign in from now on; ``claims`` (``email``,
        ``email_verified``, ``name``) are given out for the ``email`` / ``profile`` scopes."""
        self._control(
            "POST",
            "/_test/accounts",
            {"username": username, "password": password, "claims": claims or {}},
        )
        self.accounts[username] = password

    def set_device_interval(self, seconds: int) -> None:
        """The ``interval`` of device authorization answers from now on (start: 1 s)."""
        self._control("POST", "/_test/settings", {"device_interval": seconds})

    # -- the user, over HTTP -----------------------------------------------------

    def log_in_and_consent(
        self,
        authorization_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        consent: bool = True,
        client: httpx.Client | None = None,
    ) -> str:
        """Play the user: open the authorization URL, sign in, allow (or deny).

        Returns the final redirect leaving the server (the redirect URI with ``code``,
        ``state`` and ``iss``, or ``error``) without requesting it. Pass ``client`` to
        keep a browser session (cookies) across calls.
        """
        with _Browser(client) as http:
            return _walk(http, authorization_url, *self._credentials(username, password), consent)

    def authorize(
        self,
        authorization_url: str,
        username: str | None = None,
        password: str | None = None,
        *,
        consent: bool = True,
        client: httpx.Client | None = None,
    ) -> Authorization:
        """As log_in_and_consent, with the redirect's parameters picked out."""
        location = self.log_in_and_consent(
            authorization_url, username, password, consent=consent, client=client
        )
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        return Authorization(
            query.get("code"), query.get("state"), query.get("iss"), location, query.get("error")
        )

    def approve_device(
        self,
        user_code: str,
        username: str | None = None,
        password: str | None = None,
        *,
        approve: bool = True,
        client: httpx.Client | None = None,
    ) -> str:
        """Play the user of a device authorization (RFC 8628 section 3.3): open the
        verification page with ``user_code``, confirm it, sign in and allow; or abort.

        Returns "authorized" or "denied"; the next device-code poll answers with tokens,
        or ``access_denied``.
        """
        url = f"{self.device_verification_url}?{httpx.QueryParams({'user_code': user_code})}"
        with _Browser(client) as http:
            return _walk(http, url, *self._credentials(username, password), approve, device=True)

    def _credentials(self, username: str | None, password: str | None) -> tuple[str, str]:
        """The given sign-in, else the built-in account's (its password by default)."""
        username = username or self.username
        return username, self.accounts.get(username, "") if password is None else password


class _Browser:
    """The caller's httpx client, or a new one closed at the end."""

    def __init__(self, client: httpx.Client | None) -> None:
        self._own = client is None
        self._client = client or httpx.Client(timeout=30.0, trust_env=False)

    def __enter__(self) -> httpx.Client:
        return self._client

    def __exit__(self, *exc: object) -> None:
        if self._own:
            self._client.close()


def _walk(
    http: httpx.Client,
    url: str,
    username: str,
    password: str,
    allow: bool,
    *,
    device: bool = False,
) -> str:
    """Follow the server's pages: redirects within it, and each page's one form.

    Authorization code: returns the Location that leaves the server. Device flow:
    returns "authorized" (the success page) or "denied" (back at the code page).
    """
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    response = http.get(url, follow_redirects=False)
    denied = False
    for _ in range(20):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            target = urlsplit(location)
            if f"{target.scheme}://{target.netloc}" != origin:
                return location  # leaving the server: the client's redirect URI
            response = http.get(location, follow_redirects=False)
            continue
        if response.status_code != 200:
            raise OidcProviderError(
                f"{response.request.method} {response.url} -> {response.status_code}: "
                f"{response.text[:2000]}"
            )
        if 'id="device-result"' in response.text:
            return "authorized"
        forms = _FormParser()
        forms.feed(response.text)
        by_id = {f.attrs.get("id", ""): f for f in forms.forms}
        error = re.search(r'<p id="error">(.*?)</p>', response.text, re.S)
        if device and denied and "op.deviceInputForm" in by_id:
            return "denied"  # aborted: oidc-provider shows the code page again
        if error is not None:
            raise OidcProviderError(f"at {response.url}: {error.group(1)}")
        data: dict[str, str] = {}
        if "login" in by_id:
            form = by_id["login"]
            data = {"username": username, "password": password}
        elif "consent" in by_id:
            form = by_id["consent"] if allow else by_id["deny"]
            denied = not allow
        elif "op.deviceInputForm" in by_id:
            form = by_id["op.deviceInputForm"]
            data = _filled_in(form)
        elif "op.deviceConfirmForm" in by_id:
            form = by_id["op.deviceConfirmForm"]
            data = _filled_in(form)
            if not allow:
                data["abort"] = "yes"
                denied = True
        elif len(forms.forms) == 1 and "forms[0].submit()" in response.text:
            # A page that posts itself from script (the device page with ?user_code=).
            form = forms.forms[0]
            data = _filled_in(form)
        else:
            raise OidcProviderError(f"no known form at {response.url}: {response.text[:2000]}")
        action = urljoin(str(response.url), form.attrs.get("action") or str(response.url))
        response = http.post(action, data=data, follow_redirects=False)
    raise OidcProviderError(f"too many steps from {url}")


def _filled_in(form: _Form) -> dict[str, str]:
    """A form's values as the page set them (hidden fields, the prefilled user code)."""
    return {name: value for kind, name, value in form.fields if name and kind != "submit"}


# --- install and process ------------------------------------------------------------


def ensure_installed(directory: Path = HERE, timeout: float = 300.0) -> None:
    """Install the pinned oidc-provider into ``directory/node_modules`` if it is missing.

    ``npm ci`` from package-lock.json when there is one (the exact tree), else
    ``npm install``. A file lock keeps two pytest workers from installing at once.
    """
    if (directory / "node_modules" / "oidc-provider" / "package.json").exists():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise OidcProviderError("node and npm are needed for the oidc-provider test server")
    with (directory / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (directory / "node_modules" / "oidc-provider" / "package.json").exists():
            return  # another worker installed it while we waited
        command = "ci" if (directory / "package-lock.json").exists() else "install"
        done = subprocess.run(
            [npm, command, "--no-audit", "--no-fund"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise OidcProviderError(
                f"npm {command} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
            )


class _NodeProcess:
    """The node server: started, its port line awaited, its output kept in a log file.

    A reader thread copies stdout to the log (a pipe nobody reads would fill up and stall
    the server) and signals the "listening URL" line: the wait is on that event.
    """

    def __init__(self, workdir: Path, config_path: Path) -> None:
        self.workdir = workdir
        self.log_path = workdir / "oidc_provider.log"
        self.url = ""
        self._config_path = config_path
        self._ready = threading.Event()
        self._proc: subprocess.Popen[bytes] | None = None
        self._reader: threading.Thread | None = None

    def start(self, timeout: float) -> None:
        node = shutil.which("node")
        if node is None:
            raise OidcProviderError("node is needed for the oidc-provider test server")
        self._proc = subprocess.Popen(
            [node, str(SERVER_SCRIPT), str(self._config_path)],
            cwd=HERE,
            # stdin stays open while we live: the server exits when it closes.
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        atexit.register(self.stop)
        assert self._proc.stdout is not None
        self._reader = threading.Thread(
            target=self._read, args=(self._proc.stdout,), name="oidc-provider-log", daemon=True
        )
        self._reader.start()
        if not self._ready.wait(timeout) or not self.url:
            code = self._proc.poll()
            self.stop()
            what = f"exited with code {code}" if code is not None else "took too long to start"
            raise OidcProviderError(f"oidc-provider {what}. Log tail:\n{self.log_tail()}")

    def _read(self, stream: IO[bytes]) -> None:
        with self.log_path.open("ab") as log:
            for line in iter(stream.readline, b""):
                log.write(line)
                log.flush()
                if not self.url and line.startswith(b"listening "):
                    self.url = line.split()[1].decode()
                    self._ready.set()
        self._ready.set()  # end of output: the process is gone (start() tells why)

    def log_tail(self, limit: int = 6000) -> str:
        return log_tail(self.log_path, limit)

    def stop(self) -> None:
        """Close stdin (the server exits), SIGTERM then SIGKILL if it lingers. Idempotent."""
        proc, self._proc = self._proc, None
        atexit.unregister(self.stop)
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                signal_group(proc.pid, signal.SIGKILL)
                proc.wait(timeout=5)
        if self._reader is not None:
            self._reader.join(timeout=5)
        if proc.stdout is not None:
            proc.stdout.close()


def start_oidc_provider(
    tmp_path: Path,
    *,
    device_interval: int = 1,
    access_token_lifetime: int = 3600,
    timeout: float = 60.0,
) -> OidcProvider:
    """Install if needed, then start the server with its built-in clients and account."""
    ensure_installed()
    workdir = Path(tmp_path) / "oidc_provider"
    workdir.mkdir(parents=True, exist_ok=True)
    control_token = secrets.token_urlsafe(24)
    registration_token = secrets.token_urlsafe(24)
    accounts = {"alice": secrets.token_urlsafe(12)}
    clients = {
        "private_key_jwt": Client(
            "pkjwt-client", "private_key_jwt", key=new_signing_key("pkjwt-key-1")
        ),
        "client_secret_basic": Client(
            "basic-client", "client_secret_basic", secrets.token_urlsafe(24)
        ),
        "client_secret_post": Client(
            "post-client", "client_secret_post", secrets.token_urlsafe(24)
        ),
        "none": Client("public-client", "none"),
    }
    registered: dict[str, Client] = {}
    metadata = []
    for name, client in clients.items():
        grants = (
            ALL_GRANTS
            if name != "none"
            else tuple(g for g in ALL_GRANTS if g != "client_credentials")
        )
        entry: dict[str, Any] = {
            "client_id": client.client_id,
            "token_endpoint_auth_method": client.auth_method,
            "application_type": "native",
            "redirect_uris": list(LOOPBACK_REDIRECT_URIS),
            "grant_types": list(grants),
            "response_types": ["code"],
            "scope": "openid offline_access read write",
        }
        if client.client_secret:
            entry["client_secret"] = client.client_secret
        if client.key is not None:
            entry["jwks"] = {"keys": [client.key.public_jwk]}
        metadata.append(entry)
        registered[name] = Client(
            client.client_id,
            client.auth_method,
            client.client_secret,
            client.key,
            LOOPBACK_REDIRECT_URIS,
            grants,
        )
    config_path = workdir / "config.json"
    config_path.write_text(
        json.dumps(
            {
                "clients": metadata,
                "accounts": accounts,
                "control_token": control_token,
                "registration_token": registration_token,
                "device_interval": device_interval,
                "access_token_lifetime": access_token_lifetime,
            }
        )
    )
    process = _NodeProcess(workdir, config_path)
    process.start(timeout)
    try:
        return OidcProvider(process, control_token, registration_token, registered, accounts)
    except BaseException:
        process.stop()
        raise
