"""The profile test's API shapes: what a test is asked with, and what it answers.

Every captured request and response is shown with secrets redacted (see
:func:`captured_request` and :func:`captured_response`, which make them from the
exchanges recorded).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.exchanges import RecordedRequest, RecordedResponse, Redirect
from authprofiles.core.redaction import Redactor

#: The stages a test reports. The registry's ``TestStage.AUTHORIZE`` runs two of them
#: (``authorization_url``, then ``client_authentication``).
Stage = Literal["token", "token_test", "authorization_url", "client_authentication"]


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


def captured_request(
    recorded: RecordedRequest | None, redactor: Redactor
) -> CapturedRequest | None:
    if recorded is None:
        return None
    return CapturedRequest(
        method=recorded.method,
        url=redactor.text(recorded.url),
        headers=redactor.headers(recorded.headers),
        body=redactor.body(recorded.body, recorded.headers),
    )


def captured_response(
    recorded: RecordedResponse | None, redactor: Redactor
) -> CapturedResponse | None:
    if recorded is None:
        return None
    return CapturedResponse(
        status_code=recorded.status_code,
        headers=redactor.headers(recorded.headers),
        body=redactor.body(recorded.body, recorded.headers) or "",
        error=redactor.text(recorded.error) if recorded.error else None,
    )


def shown_redirect(redirect: Redirect, redactor: Redactor) -> ProfileTestRedirect:
    return ProfileTestRedirect(
        url=redactor.text(redirect.url),
        status_code=redirect.status_code,
        location=redactor.text(redirect.location),
        followed=redirect.followed,
    )


__all__ = [
    "CapturedRequest",
    "CapturedResponse",
    "ProfileTestRedirect",
    "ProfileTestRequest",
    "ProfileTestResult",
    "ProfileTestStep",
    "Stage",
    "captured_request",
    "captured_response",
    "shown_redirect",
]
