"""Try a profile for real: seed 000 "Test the Auth Profile", seed 001 "Auth Test Failed".

Client credentials and password: fetch a token (stage ``token``), then call the token
test URL with its method and content type (seed 003) and the credentials applied
(stage ``token_test``). Authorization code: check that the authorization URL answers
(stage ``authorization_url``) and that the token endpoint accepts the client (stage
``client_authentication``: a deliberately invalid code must come back ``invalid_grant``,
which RFC 6749 section 5.2 only returns once the client has authenticated); the browser
flow is then the next step.

Every exchange is captured at the transport, so a failure shows what was sent and what
came back (seed 001's "Headers and Response tabs"), with every secret redacted: the
client secret, passwords, tokens, and the values of secret fields, wherever they appear.

Redirects: no request that carries a credential follows one to another origin (scheme,
host and port). httpx would drop only ``Authorization`` there and carry the profile's
header fields along, and the Location may name any host. The token requests follow no
redirect at all; the token test URL's call follows those that stay on its origin (the
credentials are already there, and ``/me`` answering ``/me/`` is common) and stops at the
first that leaves, failing the stage and naming the Location in ``redirects``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, quote, quote_plus, urlencode, urljoin, urlsplit
from xml.sax.saxutils import escape, quoteattr

import httpx
from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.connections import TokenSet
from authprofiles.core.errors import FieldError, ValidationFailed
from authprofiles.core.injection import (
    BODY_METHODS,
    Injection,
    InjectionError,
    apply_headers,
    build_injection,
    fields_in_template,
    join_path,
    merge_query,
)
from authprofiles.core.profiles import (
    AuthType,
    FormFieldType,
    HttpMethod,
    Profile,
    TestContentType,
)
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.core.validation import check_use_input
from authprofiles.oauth.client_auth import basic_authorization
from authprofiles.oauth.errors import GrantRefused, OAuthFailure
from authprofiles.oauth.grants import ClientSettings, OAuthEngine, new_code_verifier, new_state
from authprofiles.oauth.transport import Transports
from authprofiles.services.access import Principal, Role, require_role
from authprofiles.services.oauth_settings import client_settings, field_values

if TYPE_CHECKING:
    from authprofiles.services.container import Services

log = logging.getLogger("authprofiles.testing")

Stage = Literal["token", "token_test", "authorization_url", "client_authentication"]
REDACTED = "[redacted]"
#: A value shorter than this is redacted where its key says it is secret, not wherever
#: its characters happen to appear (a 2-letter value would shred every word).
MIN_REDACTED_LENGTH = 4
#: Captured bodies are cut here; a test page has no use for more.
MAX_BODY_CHARS = 64 * 1024
#: The made-up code of the client authentication probe.
PROBE_CODE = "authprofiles-test-invalid-code"
#: Same-origin redirects the token test URL's call follows before giving up.
MAX_REDIRECTS = 10
#: RFC 9110 section 15.4: the 3xx codes whose Location says where to send the request.
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
_SECRET_KEYS = frozenset(
    {
        "access_token",
        "refresh_token",
        "id_token",
        "client_secret",
        "password",
        "code_verifier",
        "client_assertion",
        "assertion",
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
    }
)


# -- the API's shapes ------------------------------------------------------------------


class ProfileTestRequest(BaseModel):
    """Body of ``POST /profiles/{id}/test``: what a connection would supply."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    tenant: str | None = Field(
        default=None, description="Needed when the profile has tenancy", examples=["acme"]
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the profile's form fields",
        examples=[{"region": "eu"}],
    )
    username: str | None = Field(
        default=None, description="Password grant: the user to try", examples=["alice"]
    )
    password: str | None = Field(
        default=None, description="Password grant: never echoed", examples=["correct horse"]
    )


class CapturedRequest(BaseModel):
    method: str = Field(description="The request's method", examples=["POST"])
    url: str = Field(
        description="The URL called (secrets redacted)",
        examples=["https://idp.example.com/oauth2/token"],
    )
    headers: dict[str, str] = Field(
        description="The headers sent (secrets redacted)",
        examples=[{"Authorization": "Basic [redacted]", "Accept": "application/json"}],
    )
    body: str | None = Field(
        default=None,
        description="The body sent (secrets redacted)",
        examples=["grant_type=client_credentials&scope=billing.read"],
    )


class CapturedResponse(BaseModel):
    status_code: int | None = Field(
        description="None when no answer came (see `error`)", examples=[401]
    )
    headers: dict[str, str] = Field(
        description="The headers received (secrets redacted)",
        examples=[{"Content-Type": "application/json"}],
    )
    body: str = Field(
        description="The body received (secrets redacted)",
        examples=['{"error": "invalid_client"}'],
    )
    error: str | None = Field(
        default=None,
        description="Why no answer came, if none did",
        examples=["idp.example.com did not answer within 15 s"],
    )


class ProfileTestRedirect(BaseModel):
    """A redirect met during a stage, and whether the test followed it."""

    url: str = Field(
        description="The URL that answered with the redirect",
        examples=["https://api.example.com/v1/me"],
    )
    status_code: int = Field(description="The redirect's status", examples=[302])
    location: str = Field(
        description="Where it pointed, made absolute (secrets redacted)",
        examples=["https://login.example.com/signin"],
    )
    followed: bool = Field(
        description="Followed only within the same origin (scheme, host, port) and only "
        "by the token test URL's call; a token request follows none",
        examples=[False],
    )


class ProfileTestStep(BaseModel):
    stage: Stage = Field(description="The stage this step ran", examples=["token"])
    ok: bool = Field(description="Whether the stage passed", examples=[True])
    detail: str = Field(
        description="What happened, in words",
        examples=["the identity provider issued a Bearer token"],
    )
    status_code: int | None = Field(description="The answer's status, if one came", examples=[200])
    request: CapturedRequest | None = Field(
        description="The stage's last request (secrets redacted)"
    )
    response: CapturedResponse | None = Field(description="The answer to it (secrets redacted)")
    redirects: list[ProfileTestRedirect] = Field(
        default_factory=list,
        description="Redirects met in this stage, in order",
        examples=[[]],
    )


class ProfileTestResult(BaseModel):
    """The outcome: at which stage it ended, why, and the exchange of that stage.

    Secrets are redacted everywhere, response bodies included.
    """

    ok: bool = Field(description="Whether every stage passed", examples=[False])
    stage: Stage = Field(
        description="The stage reached: the failing one, or the last", examples=["token"]
    )
    detail: str = Field(
        description="Why it ended there, in words",
        examples=["the identity provider refused the client: invalid_client"],
    )
    status_code: int | None = Field(
        description="The last answer's status, if one came", examples=[401]
    )
    request: CapturedRequest | None = Field(
        description="The last stage's request (secrets redacted)"
    )
    response: CapturedResponse | None = Field(description="The answer to it (secrets redacted)")
    steps: list[ProfileTestStep] = Field(description="Every stage run, in order")
    redirects: list[ProfileTestRedirect] = Field(
        default_factory=list,
        description="Redirects met in the last stage: one to another origin is not "
        "followed, so the profile's credentials never go there",
        examples=[[]],
    )
    next: Literal["authorize"] | None = Field(
        default=None,
        description="Authorization code: the browser flow comes next (see `detail`)",
        examples=["authorize"],
    )
    warnings: list[str] = Field(
        default_factory=list,
        description="What passed but may still go wrong",
        examples=[
            [
                "the token test URL answered text/html, not application/json as "
                "token_test_content_type says"
            ]
        ],
    )


# -- capturing every exchange at the transport -------------------------------------------


@dataclass
class _Exchange:
    request: CapturedRequest
    response: CapturedResponse | None = None


class _RecordingTransport(httpx.HTTPTransport):
    """Relays to a shared pool (egress routes included) and keeps a copy of each exchange.

    It owns no pool of its own, so it skips ``HTTPTransport.__init__`` and never closes
    the shared one.
    """

    def __init__(self, inner: httpx.BaseTransport, record: list[_Exchange]) -> None:
        self._inner = inner
        self._record = record

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _Exchange(
            CapturedRequest(
                method=request.method,
                url=str(request.url),
                headers=_header_dict(request.headers),
                body=_display_body(request.read(), request.headers.get("content-type")),
            )
        )
        self._record.append(exchange)
        try:
            response = self._inner.handle_request(request)
        except Exception as exc:
            exchange.response = CapturedResponse(
                status_code=None, headers={}, body="", error=f"{type(exc).__name__}: {exc}"
            )
            raise
        try:
            raw = b"".join(response.iter_raw())
        finally:
            response.close()
        copy = httpx.Response(response.status_code, headers=response.headers, content=raw)
        exchange.response = CapturedResponse(
            status_code=response.status_code,
            headers=_header_dict(response.headers),
            body=_display_body(copy.read(), response.headers.get("content-type")),
        )
        return httpx.Response(
            response.status_code,
            headers=response.headers,
            content=raw,
            request=request,
            extensions={k: v for k, v in response.extensions.items() if k != "network_stream"},
        )

    def close(self) -> None:
        pass

    def __enter__(self) -> _RecordingTransport:
        return self

    def __exit__(self, *args: object) -> None:
        pass


class _RecordingTransports(Transports):
    """What the OAuth engine sees: the shared pools, each behind a recorder."""

    def __init__(self, shared: Transports, record: list[_Exchange], timeout: float) -> None:
        super().__init__(timeout=timeout)
        self._shared = shared
        self._record = record

    def sync(self, egress_proxy_url: str | None) -> httpx.HTTPTransport:
        return _RecordingTransport(self._shared.sync(egress_proxy_url), self._record)

    def close(self) -> None:
        pass


def _header_dict(headers: httpx.Headers) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in headers.multi_items():
        out[name] = f"{out[name]}, {value}" if name in out else value
    return out


_TEXT_MEDIA = ("text/", "application/json", "application/xml", "application/x-www-form")


def _display_body(data: bytes, content_type: str | None) -> str:
    if not data:
        return ""
    media = (content_type or "").split(";")[0].strip().lower()
    textual = media.startswith(_TEXT_MEDIA) or media.endswith(("+json", "+xml")) or not media
    if media.startswith("multipart/"):
        textual = True
    if not textual:
        return f"<{len(data)} bytes of {media}>"
    text = data.decode("utf-8", "replace")
    if len(text) > MAX_BODY_CHARS:
        return text[:MAX_BODY_CHARS] + f"\n<cut: {len(text) - MAX_BODY_CHARS} more characters>"
    return text


# -- redaction --------------------------------------------------------------------------


class Redactor:
    """Replaces secret values, in every form they travel in, wherever they appear."""

    def __init__(self) -> None:
        self._values: set[str] = set()

    def add(self, *values: str | None) -> None:
        for value in values:
            if not value or len(value) < MIN_REDACTED_LENGTH:
                continue
            self._values.update(
                {
                    value,
                    quote(value, safe=""),
                    quote_plus(value),
                    json.dumps(value)[1:-1],
                    escape(value, {'"': "&quot;"}),
                }
            )

    def add_basic_credentials(self, client_id: str, secret: str | None) -> None:
        """The base64 credentials of client_secret_basic, as they are sent."""
        if not secret:
            return
        self.add(basic_authorization(client_id, secret).removeprefix("Basic "))

    def text(self, text: str) -> str:
        for value in sorted(self._values, key=len, reverse=True):
            text = text.replace(value, REDACTED)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        out = {}
        for name, value in headers.items():
            lowered = name.lower()
            if lowered in _SECRET_HEADERS:
                # Keep the scheme ("Basic", "Bearer"): it says which credential was sent.
                scheme, space, _ = value.partition(" ")
                keep = lowered.endswith("authorization") and space
                value = f"{scheme} {REDACTED}" if keep else REDACTED
            out[name] = self.text(value)
        return out

    def body(self, body: str | None, headers: Mapping[str, str]) -> str | None:
        if not body:
            return body
        media = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
        media = media.split(";")[0].strip().lower()
        try:
            document = json.loads(body)
        except ValueError:
            document = None
        if isinstance(document, dict | list):
            body = json.dumps(_redact_keys(document))
        elif media == "application/x-www-form-urlencoded" and "=" in body:
            pairs = parse_qsl(body.strip(), keep_blank_values=True)
            body = urlencode([(k, REDACTED if k.lower() in _SECRET_KEYS else v) for k, v in pairs])
        return self.text(body)

    def request(self, captured: CapturedRequest | None) -> CapturedRequest | None:
        if captured is None:
            return None
        return CapturedRequest(
            method=captured.method,
            url=self.text(captured.url),
            headers=self.headers(captured.headers),
            body=self.body(captured.body, captured.headers),
        )

    def response(self, captured: CapturedResponse | None) -> CapturedResponse | None:
        if captured is None:
            return None
        return CapturedResponse(
            status_code=captured.status_code,
            headers=self.headers(captured.headers),
            body=self.body(captured.body, captured.headers) or "",
            error=self.text(captured.error) if captured.error else None,
        )


def _redact_keys(document: Any) -> Any:
    if isinstance(document, dict):
        return {
            k: REDACTED
            if isinstance(k, str) and k.lower() in _SECRET_KEYS and isinstance(v, str)
            else _redact_keys(v)
            for k, v in document.items()
        }
    if isinstance(document, list):
        return [_redact_keys(v) for v in document]
    return document


# -- the token test URL's body, in its content type ----------------------------------------


def encode_test_body(
    content_type: TestContentType | None, fields: Mapping[str, str]
) -> tuple[bytes, str]:
    """Payload fields as a body of the profile's token test content type (seed 003)."""
    kind = content_type or TestContentType.JSON
    media = kind.media_type
    if kind in (TestContentType.JSON, TestContentType.ORACLE_ADF):
        return json.dumps(dict(fields)).encode(), media
    if kind in (TestContentType.URL_ENCODED, TestContentType.TWITTER_ENCODED_JSON):
        return urlencode(list(fields.items())).encode(), media
    if kind in (TestContentType.XML, TestContentType.RSS):
        items = "".join(
            f"<field name={quoteattr(k)}>{escape(v)}</field>" for k, v in fields.items()
        )
        document = f'<?xml version="1.0" encoding="UTF-8"?><request>{items}</request>'
        return document.encode(), media
    if kind is TestContentType.CSV:
        buffer = io.StringIO()
        if fields:
            writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line breaks
            writer.writerow(list(fields))
            writer.writerow(list(fields.values()))
        return buffer.getvalue().encode(), media
    if kind is TestContentType.TEXT:
        return "".join(f"{k}={v}\n" for k, v in fields.items()).encode(), media
    boundary = secrets.token_hex(16)
    if kind is TestContentType.MULTIPART_FORM_DATA:
        # RFC 7578: one part per field, each named by Content-Disposition.
        parts = [
            f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
            for k, v in fields.items()
        ]
        body = "".join(parts) + f"--{boundary}--\r\n"
        return body.encode(), f"{media}; boundary={boundary}"
    # RFC 2387 multipart/related: a single JSON root part.
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
        f"{json.dumps(dict(fields))}\r\n--{boundary}--\r\n"
    )
    return body.encode(), f'{media}; boundary={boundary}; type="application/json"'


# -- the use case -------------------------------------------------------------------------


@dataclass
class _Run:
    """One test run: the recorder, the redactor and the steps so far."""

    profile: Profile
    tenant: str | None
    fields: dict[str, str]
    record: list[_Exchange] = field(default_factory=list)
    redactor: Redactor = field(default_factory=Redactor)
    steps: list[ProfileTestStep] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def mark(self) -> int:
        return len(self.record)

    def step(
        self,
        stage: Stage,
        ok: bool,
        detail: str,
        since: int,
        redirects: list[ProfileTestRedirect] | None = None,
    ) -> ProfileTestStep:
        exchange = self.record[-1] if len(self.record) > since else None
        response = exchange.response if exchange else None
        if redirects is None:
            # A stage that follows nothing: its last answer may still be a redirect.
            unfollowed = _redirect_of(exchange) if exchange else None
            redirects = [unfollowed] if unfollowed else []
        step = ProfileTestStep(
            stage=stage,
            ok=ok,
            detail=detail,
            status_code=response.status_code if response else None,
            request=exchange.request if exchange else None,
            response=response,
            redirects=redirects,
        )
        self.steps.append(step)
        return step


class ProfileTestService:
    def __init__(self, services: Services) -> None:
        self.s = services

    def run(
        self, principal: Principal, profile_id: str, request: ProfileTestRequest
    ) -> ProfileTestResult:
        require_role(principal, Role.DEVELOPER)
        profile = self.s.profiles.get_configured(principal, profile_id)
        # Every problem with the input at once, before anything is called.
        # The test runs with whatever form fields are given; only their keys are checked.
        tenant, errors = check_use_input(
            profile, request.tenant, request.fields, require_mandatory=False
        )
        fields = dict(request.fields)
        errors += _credential_errors(profile, request)
        if errors:
            raise ValidationFailed(errors)
        run = _Run(profile, tenant, fields)
        self._collect_secrets(run, request)
        transports = _RecordingTransports(
            self.s.transports, run.record, self.s.settings.http_timeout_seconds
        )
        # No retries: a test shows the first answer, not the last of several.
        engine = OAuthEngine(transports, retries=0, clock=self.s.clock)
        settings = client_settings(
            profile, tenant=run.tenant, fields=run.fields, redirect_uri=self.s.settings.callback_url
        )
        if profile.auth_type is AuthType.AUTHORIZATION_CODE:
            self._authorization_code(run, engine, transports, settings)
        else:
            tokens = self._token(run, engine, settings, request)
            if tokens is not None and profile.token_test_url:
                self._token_test(run, transports, tokens)
        return self._result(run)

    # -- input ------------------------------------------------------------------------
    def _collect_secrets(self, run: _Run, request: ProfileTestRequest) -> None:
        profile, redactor = run.profile, run.redactor
        redactor.add(profile.client_secret, profile.password, request.password)
        if profile.client_id:
            redactor.add_basic_credentials(profile.client_id, profile.client_secret)
        redactor.add(*(f.value for f in profile.additional_fields))
        redactor.add(*(f.value for f in profile.authorization_fields))
        secret_keys = {f.key for f in profile.form_fields if f.type is FormFieldType.PASSWORD}
        secret_keys |= {f.key for f in profile.authorization_fields}
        redactor.add(*(v for k, v in run.fields.items() if k in secret_keys))

    # -- client credentials and password: a token, then the token test URL -------------------
    def _token(
        self,
        run: _Run,
        engine: OAuthEngine,
        settings: ClientSettings,
        request: ProfileTestRequest,
    ) -> TokenSet | None:
        profile = run.profile
        since = run.mark()
        try:
            if profile.auth_type is AuthType.CLIENT_CREDENTIALS:
                tokens = engine.client_credentials(settings)
            else:
                username = request.username or profile.username
                password = request.password or profile.password
                assert username and password  # checked with the rest of the input
                form_keys = {f.key for f in profile.form_fields}
                tokens = engine.password(
                    settings,
                    username=username,
                    password=password,
                    form_values={k: v for k, v in run.fields.items() if k in form_keys},
                )
        except OAuthFailure as exc:
            run.step("token", False, _token_failure(exc, run.record[since:]), since)
            return None
        run.redactor.add(tokens.access_token, tokens.refresh_token)
        run.redactor.add(*(str(v) for k, v in tokens.extra.items() if k == "id_token"))
        expires = f", expires at {tokens.expires_at.isoformat()}" if tokens.expires_at else ""
        scopes = f", scopes: {' '.join(tokens.scopes)}" if tokens.scopes else ""
        run.step(
            "token",
            True,
            f"the identity provider issued a {tokens.token_type} token{expires}{scopes}",
            since,
        )
        return tokens

    def _token_test(self, run: _Run, transports: Transports, tokens: TokenSet) -> None:
        profile = run.profile
        assert profile.token_test_url is not None
        values = field_values(profile, run.fields)
        try:
            injection = build_injection(
                access_token=tokens.access_token,
                token_type=tokens.token_type,
                authorization_fields=profile.authorization_fields,
                field_values=values,
            )
            url = self._token_test_url(run, injection, tokens, values)
        except (TemplateError, InjectionError) as exc:
            detail = getattr(exc, "detail", str(exc))
            raise ValidationFailed([FieldError("token_test_url", detail)]) from None
        run.redactor.add(*injection.values())
        method = (profile.token_test_method or HttpMethod.GET).value
        kind = profile.token_test_content_type
        headers = {"Accept": kind.media_type if kind else "*/*"}
        content: bytes | None = None
        if method in BODY_METHODS or (injection.body and method != "GET"):
            content, media = encode_test_body(kind, injection.body)
            headers["Content-Type"] = media
        headers = apply_headers(headers, injection)
        since = run.mark()
        redirects: list[ProfileTestRedirect] = []
        with transports.client(profile.egress_proxy_url) as client:
            try:
                response = _send_within_origin(
                    client,
                    client.build_request(method, url, headers=headers, content=content),
                    redirects,
                )
            except httpx.HTTPError as exc:
                detail = _transport_failure("the token test URL", url, exc)
                run.step("token_test", False, detail, since, redirects)
                return
        host = urlsplit(url).netloc
        via = _via(redirects)
        if redirects and not redirects[-1].followed:
            last = redirects[-1]
            leaving = _origin(httpx.URL(last.location)) != _origin(httpx.URL(url))
            why = (
                f"a redirect to another origin ({last.location}), not followed: the call "
                "carries the profile's credentials, which must not go there. If the API "
                "lives there, make that the token test URL"
                if leaving
                else f"more than {MAX_REDIRECTS} redirects within its origin, not followed further"
            )
            run.step(
                "token_test",
                False,
                f"the token test URL ({host}) answered HTTP {last.status_code}{via}: {why}",
                since,
                redirects,
            )
            return
        status = f"HTTP {response.status_code}{via}"
        if 200 <= response.status_code < 300:
            run.step(
                "token_test",
                True,
                f"the token test URL ({host}) accepted the token: {status}",
                since,
                redirects,
            )
            received = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind and received and received != kind.media_type:
                run.warnings.append(
                    f"the token test URL answered {received}, not {kind.media_type} "
                    f"as token_test_content_type says"
                )
            return
        auth_error = profile.effective_auth_error_status_code
        why = (
            "refused the token (the profile's auth error status)"
            if response.status_code == auth_error
            else "did not accept the call"
        )
        run.step(
            "token_test",
            False,
            f"the token test URL ({host}) {why}: {status}",
            since,
            redirects,
        )

    @staticmethod
    def _token_test_url(
        run: _Run, injection: Injection, tokens: TokenSet, values: dict[str, str]
    ) -> str:
        template = run.profile.token_test_url
        assert template is not None
        rendered = render_url(
            template,
            tenant=run.tenant,
            fields={**values, "access_token": tokens.access_token, **injection.path},
        )
        in_template = fields_in_template(template)
        params = {k: v for k, v in injection.path.items() if k not in in_template}
        url = join_path(rendered, "", params) if params else rendered
        return merge_query(url, injection.query)

    # -- authorization code: the authorization URL, then the client at the token endpoint ----
    def _authorization_code(
        self,
        run: _Run,
        engine: OAuthEngine,
        transports: Transports,
        settings: ClientSettings,
    ) -> None:
        verifier = new_code_verifier() if settings.pkce else None
        run.redactor.add(verifier)
        url = engine.authorization_url(settings, state=new_state(), code_verifier=verifier)
        since = run.mark()
        with transports.client(settings.egress_proxy_url) as client:
            try:
                response = client.get(url)
            except httpx.HTTPError as exc:
                detail = _transport_failure("the authorization URL", url, exc)
                run.step("authorization_url", False, detail, since)
                return
        ok, detail = _judge_authorization_answer(response, settings.redirect_uri)
        run.step("authorization_url", ok, detail, since)
        if not ok:
            return

        since = run.mark()
        try:
            engine.exchange_code(settings, code=PROBE_CODE, code_verifier=verifier)
        except GrantRefused as exc:
            status = _last_status(run.record[since:])
            if exc.error == "invalid_grant":
                run.step(
                    "client_authentication",
                    True,
                    "the token endpoint accepted the client (it refused only the made-up "
                    "code, with invalid_grant). Next: authorize in the browser: POST "
                    f"/api/v1/profiles/{run.profile.id}/connections and open the returned "
                    "authorization_url",
                    since,
                )
                return
            if exc.error == "invalid_client" or status == 401:
                detail = (
                    "the token endpoint rejected the client: check client_id, client_secret "
                    f"and client_auth_method ({exc.error}"
                    + (f": {exc.description}" if exc.description else "")
                    + ")"
                )
            elif exc.error == "unauthorized_client":
                detail = (
                    "the client is not allowed the authorization code grant at this "
                    f"identity provider ({exc.error})"
                )
            else:
                detail = f"the token endpoint answered {exc.error}" + (
                    f": {exc.description}" if exc.description else ""
                )
            run.step("client_authentication", False, detail, since)
            return
        except OAuthFailure as exc:
            run.step("client_authentication", False, _token_failure(exc, run.record[since:]), since)
            return
        run.step(
            "client_authentication",
            False,
            "the token endpoint issued a token for a made-up code: it does not check codes",
            since,
        )

    # -- the answer ---------------------------------------------------------------------
    def _result(self, run: _Run) -> ProfileTestResult:
        redactor = run.redactor
        steps = [
            ProfileTestStep(
                stage=s.stage,
                ok=s.ok,
                detail=redactor.text(s.detail),
                status_code=s.status_code,
                request=redactor.request(s.request),
                response=redactor.response(s.response),
                redirects=[
                    r.model_copy(
                        update={"url": redactor.text(r.url), "location": redactor.text(r.location)}
                    )
                    for r in s.redirects
                ],
            )
            for s in run.steps
        ]
        last = steps[-1]
        ok = all(s.ok for s in steps)
        authorize_next = ok and run.profile.auth_type is AuthType.AUTHORIZATION_CODE
        result = ProfileTestResult(
            ok=ok,
            stage=last.stage,
            detail=last.detail,
            status_code=last.status_code,
            request=last.request,
            response=last.response,
            steps=steps,
            redirects=last.redirects,
            next="authorize" if authorize_next else None,
            warnings=[redactor.text(w) for w in run.warnings],
        )
        # Belt and braces: one more pass over every string of the finished answer.
        return ProfileTestResult.model_validate(_redact_strings(result.model_dump(), redactor))


def _redact_strings(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor.text(value)
    if isinstance(value, dict):
        return {k: _redact_strings(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact_strings(v, redactor) for v in value]
    return value


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    """RFC 6454 section 4: scheme, host and port (the scheme's default when omitted)."""
    default = {"http": 80, "https": 443}.get(url.scheme)
    return url.scheme, url.host, url.port or default


def _send_within_origin(
    client: httpx.Client, request: httpx.Request, redirects: list[ProfileTestRedirect]
) -> httpx.Response:
    """Send, following redirects only while they stay on the request's origin.

    Each redirect met is appended to ``redirects``; the answer returned is the last one
    received (a redirect itself when one was not followed).
    """
    origin = _origin(request.url)
    response = client.send(request, follow_redirects=False)
    # httpx builds the next request as it would follow it (RFC 9110 section 15.4: 303
    # turns into GET, the body goes with 307 and 308), without sending it.
    while response.next_request is not None:
        target = response.next_request
        follow = _origin(target.url) == origin and len(redirects) < MAX_REDIRECTS
        redirects.append(
            ProfileTestRedirect(
                url=str(response.request.url),
                status_code=response.status_code,
                location=str(target.url),
                followed=follow,
            )
        )
        if not follow:
            break
        response.close()
        response = client.send(target, follow_redirects=False)
    return response


def _redirect_of(exchange: _Exchange) -> ProfileTestRedirect | None:
    """The redirect an exchange answered with, if any (not followed)."""
    response = exchange.response
    if response is None or response.status_code not in _REDIRECT_STATUSES:
        return None
    location = {k.lower(): v for k, v in response.headers.items()}.get("location")
    if not location:
        return None
    assert response.status_code is not None
    return ProfileTestRedirect(
        url=exchange.request.url,
        status_code=response.status_code,
        location=urljoin(exchange.request.url, location),
        followed=False,
    )


def _via(redirects: list[ProfileTestRedirect]) -> str:
    followed = [r for r in redirects if r.followed]
    if not followed:
        return ""
    where = urlsplit(followed[-1].location)
    path = where.path + (f"?{where.query}" if where.query else "")
    count = "a redirect" if len(followed) == 1 else f"{len(followed)} redirects"
    return f" (after {count} within its origin, to {path})"


def _last_status(exchanges: Iterable[_Exchange]) -> int | None:
    status = None
    for exchange in exchanges:
        if exchange.response is not None:
            status = exchange.response.status_code
    return status


def _token_failure(exc: OAuthFailure, exchanges: list[_Exchange]) -> str:
    last = exchanges[-1] if exchanges else None
    where = f"the token URL ({urlsplit(last.request.url).netloc})" if last else "the token URL"
    if last is not None and last.response is not None and last.response.status_code is None:
        return f"could not reach {where}: {last.response.error}"
    redirect = _redirect_of(last) if last is not None else None
    if redirect is not None:
        return (
            f"{where} answered HTTP {redirect.status_code}, a redirect to {redirect.location}: "
            "not followed, since a token request carries the client's credentials. If the "
            "token endpoint lives there, make that the token URL"
        )
    if isinstance(exc, GrantRefused):
        reason = {
            "invalid_client": "rejected the client: check client_id, client_secret and "
            "client_auth_method",
            "invalid_grant": "refused the grant (for the password grant: the username or password)",
            "invalid_scope": "refused the scopes",
            "unauthorized_client": "does not allow this client this grant type",
            "unsupported_grant_type": "does not support this grant type",
        }.get(exc.error, "refused the request")
        text = exc.error + (f": {exc.description}" if exc.description else "")
        return f"{where} {reason} ({text})"
    status = last.response.status_code if last and last.response else None
    if status is not None:
        return f"{where} answered HTTP {status}, not a token response ({exc.detail})"
    return f"{where}: {exc.detail}"


def _transport_failure(what: str, url: str, exc: httpx.HTTPError) -> str:
    host = urlsplit(url).netloc
    if isinstance(exc, httpx.TimeoutException):
        return f"{what} ({host}) did not answer in time ({type(exc).__name__})"
    return f"could not reach {what} ({host}): {type(exc).__name__}: {exc}"


def _judge_authorization_answer(response: httpx.Response, redirect_uri: str) -> tuple[bool, str]:
    host = urlsplit(str(response.request.url)).netloc
    status = response.status_code
    if status >= 400:
        return False, f"the authorization URL ({host}) answered HTTP {status}"
    if response.is_redirect:
        location = urljoin(str(response.request.url), response.headers.get("location", ""))
        if location.startswith(redirect_uri):
            query = dict(parse_qsl(urlsplit(location).query))
            if "error" in query:
                text = query["error"] + (
                    f": {query['error_description']}" if query.get("error_description") else ""
                )
                return False, f"the identity provider refused the authorization request ({text})"
        return True, (
            f"the authorization URL ({host}) answered HTTP {status}, "
            f"sending the browser on to {urlsplit(location).netloc}{urlsplit(location).path}"
        )
    return True, f"the authorization URL ({host}) answered HTTP {status}"


__all__ = [
    "CapturedRequest",
    "CapturedResponse",
    "ProfileTestRedirect",
    "ProfileTestRequest",
    "ProfileTestResult",
    "ProfileTestService",
    "ProfileTestStep",
    "Redactor",
    "encode_test_body",
]


def _credential_errors(profile: Profile, request: ProfileTestRequest) -> list[FieldError]:
    """The password grant tries a user: the request's, else the profile's stored one."""
    if profile.auth_type is not AuthType.PASSWORD:
        return []
    errors = []
    if not (request.username or profile.username):
        errors.append(FieldError("username", "the password grant needs a username"))
    if not (request.password or profile.password):
        errors.append(FieldError("password", "the password grant needs a password"))
    return errors
