"""Try a profile for real: seed 000 "Test the Auth Profile", seed 001 "Auth Test Failed".

The stages come from the auth type's registration (``core.auth_types``):

- ``TestStage.AUTHORIZE`` (authorization code): check that the authorization URL
  answers (stage ``authorization_url``) and that the token endpoint accepts the client
  (stage ``client_authentication``: a deliberately invalid code must come back
  ``invalid_grant``, which RFC 6749 section 5.2 only returns once the client has
  authenticated); the browser flow is then the next step.
- ``TestStage.TOKEN`` (client credentials, password): obtain a token (stage ``token``).
- ``TestStage.TOKEN_TEST``: call the token test URL with its method and content type
  (seed 003) and the credentials applied (stage ``token_test``), when the profile has one.

Every exchange is recorded (``ports.RecordingHttpClient``), so a failure shows what was
sent and what came back (seed 001's "Headers and Response tabs"), with every secret
redacted: the client secret, passwords, tokens, and the values of secret fields,
wherever they appear.

Redirects: the token requests follow none; the token test URL's call follows those that
stay on its origin (the credentials are already there, and ``/me`` answering ``/me/``
is common) and stops at the first that leaves, failing the stage and naming the
Location in ``redirects``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authprofiles.core.audit import Action, AuditEntry, Target
from authprofiles.core.auth_types import TestStage, spec_for
from authprofiles.core.body_encoders import encode_test_body
from authprofiles.core.callers import CredentialRequest, Principal, Purpose, Role, require_role
from authprofiles.core.connections import TokenSet
from authprofiles.core.errors import Conflict, FieldError, ValidationFailed
from authprofiles.core.exchanges import (
    MAX_REDIRECTS,
    Exchange,
    ExchangeFailed,
    RecordedRequest,
    RecordedResponse,
    Redirect,
    origin,
)
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
from authprofiles.core.ports import (
    AuditTrail,
    Clock,
    ConfiguredProfileReader,
    CredentialPolicy,
    DiscardAudit,
    RecordingHttpClient,
)
from authprofiles.core.profiles import (
    FormFieldType,
    HttpMethod,
    Profile,
    field_values,
    form_values_of,
)
from authprofiles.core.redaction import Redactor
from authprofiles.core.templating import TemplateError, render_url
from authprofiles.core.validation import check_use_input
from authprofiles.oauth.errors import GrantRefused, OAuthFailure
from authprofiles.oauth.grants import (
    ClientSettings,
    GrantInput,
    OAuthEngine,
    Obtained,
    grant_for,
    new_code_verifier,
    new_state,
)
from authprofiles.oauth.grants.rfc6749_authorization_code import (
    authorization_url,
    exchange_code,
)
from authprofiles.services.oauth_settings import client_settings
from authprofiles.services.profile_test.results import (
    ProfileTestRequest,
    ProfileTestResult,
    ProfileTestStep,
    Stage,
    captured_request,
    captured_response,
    shown_redirect,
)
from authprofiles.services.profile_test.verdicts import (
    client_authentication_failure,
    judge_authorization_answer,
    last_status,
    started_without_person,
    token_failure,
    transport_failure,
    via,
)

#: The made-up code of the client authentication probe.
PROBE_CODE = "authprofiles-test-invalid-code"
#: An OAuth engine whose HTTP clients carry the given httpx event hooks.
EngineFactory = Callable[[Mapping[str, list[Callable[..., Any]]]], OAuthEngine]


def stages_for(profile: Profile) -> tuple[TestStage, ...]:
    """The stages a test of this profile runs, in order, as its auth type registers them."""
    return spec_for(profile.auth_type).test_stages


@dataclass
class _Step:
    """A stage's outcome with its last exchange as recorded; redacted in :func:`_result`."""

    stage: Stage
    ok: bool
    detail: str
    request: RecordedRequest | None
    response: RecordedResponse | None
    redirects: list[Redirect]


@dataclass
class _Run:
    """One test run: what it runs with, the recorder, the redactor and the steps so far."""

    profile: Profile
    tenant: str | None
    fields: dict[str, str]
    http: RecordingHttpClient
    engine: OAuthEngine
    settings: ClientSettings
    #: The grant's input for ``TestStage.TOKEN`` (checked before anything is sent).
    grant_input: GrantInput | None
    redactor: Redactor = field(default_factory=Redactor)
    steps: list[_Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    tokens: TokenSet | None = None

    @property
    def exchanges(self) -> list[Exchange]:
        return list(self.http.exchanges)

    def mark(self) -> int:
        return len(self.http.exchanges)

    def step(
        self,
        stage: Stage,
        ok: bool,
        detail: str,
        since: int,
        redirects: list[Redirect] | None = None,
    ) -> None:
        exchanges = self.http.exchanges
        exchange = exchanges[-1] if len(exchanges) > since else None
        if redirects is None:
            # A stage that follows nothing: its last answer may still be a redirect.
            unfollowed = exchange.redirect() if exchange else None
            redirects = [unfollowed] if unfollowed else []
        self.steps.append(
            _Step(
                stage=stage,
                ok=ok,
                detail=detail,
                request=exchange.request if exchange else None,
                response=exchange.response if exchange else None,
                redirects=redirects,
            )
        )


class ProfileTestService:
    """Runs a profile's test stages for a caller the policy allows, and answers what
    happened, redacted. Built from ports: the profiles, the policy, the clock, an OAuth
    engine factory and a recording HTTP client factory (one client per run)."""

    def __init__(
        self,
        *,
        profiles: ConfiguredProfileReader,
        policy: CredentialPolicy,
        clock: Clock,
        engine_for: EngineFactory,
        recording_client: Callable[[], RecordingHttpClient],
        callback_url: str,
        audit: AuditTrail | None = None,
    ) -> None:
        self._profiles = profiles
        #: Told of every test run: its outcome only, never what was sent or received.
        self._audit = audit or DiscardAudit()
        self._policy = policy
        self._clock = clock
        self._engine_for = engine_for
        self._recording_client = recording_client
        self._callback_url = callback_url
        self._stages: dict[TestStage, Callable[[_Run], bool]] = {
            TestStage.AUTHORIZE: self._authorize,
            TestStage.TOKEN: self._token,
            TestStage.TOKEN_TEST: self._token_test,
        }

    def run(
        self, principal: Principal, profile_id: str, request: ProfileTestRequest
    ) -> ProfileTestResult:
        # A test obtains a token with the profile's client credentials: a credential use
        # like any other, put to the policy once before anything is sent. It belongs to
        # no connection (none exists yet), so it is asked as the shared one. A role that
        # may use no credential is refused before any secret is decrypted; the profile is
        # read before the invitation is checked, so that another workspace's id answers
        # as unknown, never as forbidden.
        require_role(principal, Role.DEVELOPER)
        profile = self._profiles.get_configured(principal, profile_id)
        self._policy.authorize(
            principal,
            CredentialRequest(
                connection_id="",
                connection_owner="shared",
                purpose=Purpose.TEST,
                profile_id=profile_id,
            ),
        )
        stages = stages_for(profile)
        if not stages:
            spec = spec_for(profile.auth_type)
            raise Conflict(
                f"{spec.label} registers no test stage: a person takes part in obtaining "
                "its tokens, so connect to try the profile"
            )
        # Every problem with the input at once, before anything is called.
        # The test runs with whatever form fields are given; only their keys are checked.
        tenant, errors = check_use_input(
            profile, request.tenant, request.fields, require_mandatory=False
        )
        fields = dict(request.fields)
        grant_input = None
        if TestStage.TOKEN in stages:
            grant_input, grant_errors = grant_for(profile.auth_type).check_input(
                profile, _grant_input(profile, request, fields)
            )
            errors += grant_errors
        if errors:
            raise ValidationFailed(errors)
        http = self._recording_client()
        # No retries (the factory's engine makes none): a test shows the first answer,
        # not the last of several.
        run = _Run(
            profile=profile,
            tenant=tenant,
            fields=fields,
            http=http,
            engine=self._engine_for(http.event_hooks),
            settings=client_settings(
                profile, tenant=tenant, fields=fields, redirect_uri=self._callback_url
            ),
            grant_input=grant_input,
        )
        _collect_secrets(run, request)
        for stage in stages:
            if not self._stages[stage](run):
                break
        result = _result(run, authorize_next=TestStage.AUTHORIZE in stages)
        self._audit.record(
            AuditEntry.by(
                principal,
                Action.PROFILE_TESTED,
                Target("profile", profile.id, profile.name),
                profile_id=profile.id,
                detail={"ok": result.ok, "stage": result.stage, "status_code": result.status_code},
            )
        )
        return result

    # -- TestStage.TOKEN: a token from the token endpoint, no person taking part ----------
    def _token(self, run: _Run) -> bool:
        assert run.grant_input is not None  # checked with the rest of the input
        since = run.mark()
        try:
            obtained = grant_for(run.profile.auth_type).start(
                run.engine, run.settings, run.grant_input, self._clock.now(), 0.0
            )
        except OAuthFailure as exc:
            run.http.record_failure(exc)
            run.step("token", False, token_failure(exc, run.exchanges[since:]), since)
            return False
        if not isinstance(obtained, Obtained):
            # A grant a person finishes (a device code): the server took the client and
            # started it, which is as far as a test without that person goes.
            run.redactor.add(*obtained.secrets.values())
            run.step("token", True, started_without_person(obtained.next_step), since)
            return True
        tokens = run.tokens = obtained.tokens
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
        return True

    # -- TestStage.TOKEN_TEST: the token test URL, with the credentials applied ------------
    def _token_test(self, run: _Run) -> bool:
        profile, tokens = run.profile, run.tokens
        if not profile.token_test_url or tokens is None:
            return True  # optional (seed 003), and nothing to apply without a token
        values = field_values(profile, run.fields)
        try:
            injection = build_injection(
                access_token=tokens.access_token,
                token_type=tokens.token_type,
                authorization_fields=profile.authorization_fields,
                field_values=values,
            )
            url = _token_test_url(run, injection, tokens, values)
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
        try:
            answer = run.http.send(
                method,
                url,
                headers=headers,
                content=content,
                egress_proxy_url=run.settings.egress_proxy_url,
                follow_within_origin=True,
            )
        except ExchangeFailed as exc:
            detail = transport_failure("the token test URL", url, exc)
            run.step("token_test", False, detail, since, list(exc.redirects))
            return False
        redirects = list(answer.redirects)
        host = urlsplit(url).netloc
        followed = via(redirects)
        if redirects and not redirects[-1].followed:
            last = redirects[-1]
            why = (
                f"a redirect to another origin ({last.location}), not followed: the call "
                "carries the profile's credentials, which must not go there. If the API "
                "lives there, make that the token test URL"
                if origin(last.location) != origin(last.url)
                else f"more than {MAX_REDIRECTS} redirects within its origin, not followed further"
            )
            run.step(
                "token_test",
                False,
                f"the token test URL ({host}) answered HTTP {last.status_code}{followed}: {why}",
                since,
                redirects,
            )
            return False
        status = f"HTTP {answer.status_code}{followed}"
        if 200 <= answer.status_code < 300:
            run.step(
                "token_test",
                True,
                f"the token test URL ({host}) accepted the token: {status}",
                since,
                redirects,
            )
            received = answer.content_type
            if kind and received and received != kind.media_type:
                run.warnings.append(
                    f"the token test URL answered {received}, not {kind.media_type} "
                    f"as token_test_content_type says"
                )
            return True
        why = (
            "refused the token (the profile's auth error status)"
            if answer.status_code == profile.effective_auth_error_status_code
            else "did not accept the call"
        )
        run.step(
            "token_test", False, f"the token test URL ({host}) {why}: {status}", since, redirects
        )
        return False

    # -- TestStage.AUTHORIZE: the authorization URL, then the client at the token endpoint -
    def _authorize(self, run: _Run) -> bool:
        settings = run.settings
        # coordinator: via the grant registry. The one place the test names a grant: the
        # stage is RFC 6749 section 4.1's probe (authorization_url, exchange_code).
        verifier = new_code_verifier() if settings.pkce else None
        run.redactor.add(verifier)
        url = authorization_url(run.engine, settings, state=new_state(), code_verifier=verifier)
        since = run.mark()
        try:
            answer = run.http.send("GET", url, egress_proxy_url=settings.egress_proxy_url)
        except ExchangeFailed as exc:
            detail = transport_failure("the authorization URL", url, exc)
            run.step("authorization_url", False, detail, since)
            return False
        ok, detail = judge_authorization_answer(answer, settings.redirect_uri)
        run.step("authorization_url", ok, detail, since)
        if not ok:
            return False

        since = run.mark()
        try:
            exchange_code(run.engine, settings, code=PROBE_CODE, code_verifier=verifier)
        except GrantRefused as exc:
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
                return True
            status = last_status(run.exchanges[since:])
            detail = client_authentication_failure(exc, status)
            run.step("client_authentication", False, detail, since)
            return False
        except OAuthFailure as exc:
            run.http.record_failure(exc)
            run.step(
                "client_authentication", False, token_failure(exc, run.exchanges[since:]), since
            )
            return False
        run.step(
            "client_authentication",
            False,
            "the token endpoint issued a token for a made-up code: it does not check codes",
            since,
        )
        return False


def _grant_input(
    profile: Profile, request: ProfileTestRequest, fields: dict[str, str]
) -> GrantInput:
    """What the grant runs with: the password grant tries a user (the request's, else
    the profile's stored one), with the values of the profile's form fields."""
    return GrantInput(
        username=request.username or profile.username,
        password=request.password or profile.password,
        form_values=form_values_of(profile, fields),
    )


def _collect_secrets(run: _Run, request: ProfileTestRequest) -> None:
    profile, redactor = run.profile, run.redactor
    redactor.add(profile.client_secret, profile.private_key, profile.password, request.password)
    if profile.client_id:
        redactor.add_basic_credentials(profile.client_id, profile.client_secret)
    redactor.add(*(f.value for f in profile.additional_fields))
    redactor.add(*(f.value for f in profile.authorization_fields))
    secret_keys = {f.key for f in profile.form_fields if f.type is FormFieldType.PASSWORD}
    secret_keys |= {f.key for f in profile.authorization_fields}
    redactor.add(*(v for k, v in run.fields.items() if k in secret_keys))


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


def _result(run: _Run, *, authorize_next: bool) -> ProfileTestResult:
    """The answer, redacted: at which stage the test ended, why, and every step."""
    redactor = run.redactor
    steps = [
        ProfileTestStep(
            stage=s.stage,
            ok=s.ok,
            detail=redactor.text(s.detail),
            status_code=s.response.status_code if s.response else None,
            request=captured_request(s.request, redactor),
            response=captured_response(s.response, redactor),
            redirects=[shown_redirect(r, redactor) for r in s.redirects],
        )
        for s in run.steps
    ]
    last = steps[-1]
    ok = all(s.ok for s in steps)
    result = ProfileTestResult(
        ok=ok,
        stage=last.stage,
        detail=last.detail,
        status_code=last.status_code,
        request=last.request,
        response=last.response,
        steps=steps,
        redirects=last.redirects,
        next="authorize" if ok and authorize_next else None,
        warnings=[redactor.text(w) for w in run.warnings],
    )
    # Belt and braces: one more pass over every string of the finished answer.
    return ProfileTestResult.model_validate(redactor.document(result.model_dump()))


__all__ = ["PROBE_CODE", "EngineFactory", "ProfileTestService", "stages_for"]
