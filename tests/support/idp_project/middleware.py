"""Counts requests per path, token-endpoint requests per grant_type and token-endpoint
error answers per ``error`` code, and answers ``slow_down`` to device-code polls when a
test asked for it.

It runs before any view and whatever the outcome, so a test can prove e.g. that
exactly one refresh reached the IdP even when the refresh failed.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import parse_qs

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse

from . import runtime

DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


class CountRequestsMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self._token_path = reverse("oauth2_provider:token")

    def __call__(self, request: HttpRequest) -> HttpResponse:
        grant_type: str | None = None
        if request.path == self._token_path:
            grant_type = "(none)"
            if request.method == "POST":
                # request.body is cached, so DOT can still read the form afterwards;
                # touching request.POST here could consume a multipart stream.
                values = parse_qs(request.body.decode("utf-8", "replace")).get("grant_type")
                if values:
                    grant_type = values[0]
        if not request.path.startswith("/_test/"):
            runtime.count_request(request.path, grant_type)
        if grant_type == DEVICE_CODE_GRANT and runtime.take_slow_down():
            # RFC 8628 section 3.5: "slow_down: A variant of authorization_pending, the
            # authorization request is still pending and polling should continue, but the
            # interval MUST be increased by 5 seconds". DOT has no rate limit that would
            # say it, so a test asks for it (IdP.answer_slow_down).
            return JsonResponse({"error": "slow_down"}, status=400)
        response = self.get_response(request)
        if grant_type is not None and response.status_code >= 400:
            # RFC 6749 section 5.2: an error answer names its ``error`` code.
            try:
                error = str(json.loads(response.content)["error"])
            except (ValueError, KeyError, TypeError):
                error = f"(status {response.status_code})"
            runtime.count_token_error(error)
        return response
