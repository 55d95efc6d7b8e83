"""``POST /api/v1/profiles/{id}/test``: try a profile for real (seed 000 "Test the Auth
Profile"); on failure, the stage, the request headers and the response (seed 001's
"Auth Test Failed" with its Headers and Response tabs), secrets redacted."""

from __future__ import annotations

from fastapi import APIRouter

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.problems import problem_responses
from authprofiles.services.profile_test import ProfileTestRequest, ProfileTestResult

router = APIRouter(tags=["profiles"])

_RESPONSES = problem_responses(
    {
        403: "A viewer's API key, or a profile the caller may not use",
        409: "The profile is not configured (mandatory fields empty), or its auth type "
        "has no test (a person takes part in obtaining its tokens)",
        422: "Missing or invalid input, e.g. `tenant` for tenancy",
    }
)


@router.post("/profiles/{profile_id}/test", response_model=ProfileTestResult, responses=_RESPONSES)
def run_profile_test(
    profile_id: str,
    services: ServicesDep,
    principal: CurrentPrincipal,
    body: ProfileTestRequest | None = None,
) -> ProfileTestResult:
    """Client credentials and password: fetch a token (stage `token`), then call the
    token test URL with the credentials applied (stage `token_test`). Authorization code:
    check the authorization URL answers (stage `authorization_url`) and the token endpoint
    accepts the client (stage `client_authentication`); the browser flow is `next`.

    A test that ran answers 200 with `ok` true or false; `stage` says where it ended.
    Secrets are redacted everywhere, response bodies included."""
    return services.profile_tests.run(principal, profile_id, body or ProfileTestRequest())
