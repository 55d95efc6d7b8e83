"""RFC 8414 metadata, the device authorization endpoint's answer, and the /_test/ control
endpoints of the test IdP."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import json
import secrets
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import wraps
from typing import Any
from urllib.parse import unquote_plus

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import reverse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import (
    DeviceCodeResponse,
    DeviceRequest,
    create_device_grant,
    get_access_token_model,
    get_application_model,
    get_device_grant_model,
    get_refresh_token_model,
)
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.views import ConnectDiscoveryInfoView, DeviceAuthorizationView

from . import runtime

Application = get_application_model()
AccessToken = get_access_token_model()
RefreshToken = get_refresh_token_model()
DeviceGrant = get_device_grant_model()

# The suite's names for DOT's grant types (register_client's "grant_type").
GRANT_TYPES = {
    "authorization-code": Application.GRANT_AUTHORIZATION_CODE,
    "client-credentials": Application.GRANT_CLIENT_CREDENTIALS,
    "password": Application.GRANT_PASSWORD,
    "device-code": Application.GRANT_DEVICE_CODE,
}

View = Callable[[HttpRequest], HttpResponse]


def _absolute(view_name: str) -> str:
    return f"{settings.BASE_URL}{reverse(f'oauth2_provider:{view_name}')}"


def authorization_server_metadata(request: HttpRequest) -> HttpResponse:
    """RFC 8414 document: the OIDC discovery metadata plus what OIDC leaves out."""
    discovery = ConnectDiscoveryInfoView.as_view()(request)
    data: dict[str, Any] = json.loads(discovery.content)
    auth_methods = list(oauth2_settings.OIDC_TOKEN_ENDPOINT_AUTH_METHODS_SUPPORTED)
    data.update(
        grant_types_supported=[
            "authorization_code",
            "client_credentials",
            "password",
            "refresh_token",
            Application.GRANT_DEVICE_CODE,
        ],
        device_authorization_endpoint=_absolute("device-authorization"),
        response_modes_supported=["query"],
        revocation_endpoint=_absolute("revoke-token"),
        revocation_endpoint_auth_methods_supported=auth_methods,
        introspection_endpoint=_absolute("introspect"),
        introspection_endpoint_auth_methods_supported=auth_methods,
    )
    data.setdefault("code_challenge_methods_supported", ["plain", "S256"])
    data.setdefault("token_endpoint_auth_methods_supported", auth_methods)
    return JsonResponse(data)


class DeviceAuthorization(DeviceAuthorizationView):
    """DOT's device authorization endpoint (RFC 8628 section 3.1), with two changes.

    - DOT 3.4's own ``post`` fails (500) with oauthlib 4, whose answer adds the resolved
      ``scope`` that DOT's ``DeviceCodeResponse`` does not take, and it reads the client
      id from the body only (a confidential client sending HTTP Basic gets a 500 too).
      Here oauthlib's answer is stored with DOT's own ``create_device_grant``.
    - The answer's ``interval`` is the test's (runtime): oauthlib builds its server
      once per process with a fixed one, and the answer is where the client learns it.
    """

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        headers, body, status = self.create_device_authorization_response(request)
        if status != 200:
            return JsonResponse(json.loads(body), status=status, headers=headers)
        answer: dict[str, Any] = dict(body)
        answer["interval"] = runtime.device_interval()
        fields = {f.name for f in dataclasses.fields(DeviceCodeResponse)}
        create_device_grant(
            DeviceRequest(client_id=_client_id(request), scope=answer.get("scope", "")),
            DeviceCodeResponse(**{k: v for k, v in answer.items() if k in fields}),
        )
        return JsonResponse(answer, headers={**headers, "Cache-Control": "no-store"})


def _client_id(request: HttpRequest) -> str:
    """The client that oauthlib authenticated: from HTTP Basic, else from the body."""
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        user = base64.b64decode(credentials).decode().partition(":")[0]
        return unquote_plus(user)  # RFC 6749 section 2.3.1: form-encoded, then Basic
    return str(request.POST["client_id"])


# --- /_test/ control endpoints ----------------------------------------------------


def _control(view: View) -> View:
    """JSON in/out, no CSRF, and the X-Control-Token header must match."""

    @csrf_exempt
    @wraps(view)
    def wrapper(request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Control-Token", "")
        if not hmac.compare_digest(given.encode(), settings.CONTROL_TOKEN.encode()):
            return JsonResponse({"error": "bad control token"}, status=403)
        return view(request)

    return wrapper


def _json(request: HttpRequest) -> dict[str, Any]:
    if not request.body:
        return {}
    body: dict[str, Any] = json.loads(request.body)
    return body


@require_GET
def health(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"ok": True})


@_control
@require_POST
def register_client(request: HttpRequest) -> HttpResponse:
    body = _json(request)
    client_type = body.get("client_type", Application.CLIENT_CONFIDENTIAL)
    # DOT hashes client_secret on save (hash_client_secret=True by default): keep the
    # plain value to hand back, it cannot be read from the database afterwards.
    secret = ""
    if client_type == Application.CLIENT_CONFIDENTIAL:
        secret = body.get("client_secret") or generate_client_secret()
    chosen = {"client_id": body["client_id"]} if body.get("client_id") else {}
    app = Application(
        **chosen,
        name=body.get("name", "test client"),
        client_type=client_type,
        authorization_grant_type=GRANT_TYPES.get(body["grant_type"], body["grant_type"]),
        redirect_uris=" ".join(body.get("redirect_uris", [])),
        skip_authorization=bool(body.get("skip_authorization", True)),
        algorithm=body.get("algorithm", Application.RS256_ALGORITHM),
        client_secret=secret,
    )
    app.full_clean(exclude=["client_secret", "user"])
    app.save()
    return JsonResponse({"client_id": app.client_id, "client_secret": secret}, status=201)


@_control
@require_POST
def create_user(request: HttpRequest) -> HttpResponse:
    body = _json(request)
    get_user_model().objects.create_user(
        username=body["username"], password=body["password"], email=body.get("email", "")
    )
    return JsonResponse({"username": body["username"]}, status=201)


@_control
def counters(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":  # POST resets
        runtime.reset_counters()
    return JsonResponse(runtime.counters())


@_control
@require_POST
def revoke_all(request: HttpRequest) -> HttpResponse:
    """Revoke every refresh token (and so its access token) of a client and/or user."""
    body = _json(request)
    filters: dict[str, Any] = {}
    if body.get("client_id"):
        filters["application__client_id"] = body["client_id"]
    if body.get("username"):
        filters["user__username"] = body["username"]
    if not filters:
        return JsonResponse({"error": "client_id or username required"}, status=400)
    with transaction.atomic():
        refresh = 0
        for token in RefreshToken.objects.filter(revoked__isnull=True, **filters):
            token.revoke()  # marks it revoked and deletes its access token
            refresh += 1
        # Access tokens without a refresh token (client credentials) go too.
        access, _ = AccessToken.objects.filter(**filters).delete()
    return JsonResponse({"refresh_tokens_revoked": refresh, "access_tokens_deleted": access})


@_control
@require_POST
def issue_tokens(request: HttpRequest) -> HttpResponse:
    """``count`` access and refresh token pairs for a user at a client, as that many
    grants would issue them (each its own token family), written at once: a test that
    needs a thousand connections holding real tokens does not wait for a thousand grants."""
    body = _json(request)
    app = Application.objects.get(client_id=body["client_id"])
    user = get_user_model().objects.get(username=body["username"])
    scope = body.get("scope") or " ".join(oauth2_settings.DEFAULT_SCOPES)
    expires = datetime.now(UTC) + timedelta(seconds=runtime.access_token_lifetime())
    count = int(body["count"])
    values = [(secrets.token_urlsafe(30), secrets.token_urlsafe(30)) for _ in range(count)]
    with transaction.atomic():
        access = AccessToken.objects.bulk_create(
            AccessToken(user=user, application=app, token=a, expires=expires, scope=scope)
            for a, _ in values
        )
        RefreshToken.objects.bulk_create(
            RefreshToken(
                user=user, application=app, token=r, access_token=at, token_family=uuid.uuid4()
            )
            for at, (_, r) in zip(access, values, strict=True)
        )
    lifetime = runtime.access_token_lifetime()
    return JsonResponse(
        {
            "tokens": [
                {"access_token": a, "refresh_token": r, "expires_in": lifetime, "scope": scope}
                for a, r in values
            ]
        },
        status=201,
    )


def _lookup(queryset: QuerySet[Any], raw: str) -> Any:
    """Find a token row by value: DOT >= 3 looks tokens up by a SHA-256 checksum."""
    field_names = {f.name for f in queryset.model._meta.get_fields()}
    if "token_checksum" in field_names:
        checksum = hashlib.sha256(raw.encode()).hexdigest()
        # Rotation may leave a revoked row with the same checksum: prefer a live one.
        rows = list(queryset.filter(token_checksum=checksum))
    else:
        rows = list(queryset.filter(token=raw))
    live = [r for r in rows if getattr(r, "revoked", None) is None]
    return (live or rows or [None])[0]


@_control
@require_POST
def token_status(request: HttpRequest) -> HttpResponse:
    """Whether an access or refresh token would still be honoured by the IdP; for a list
    of ``tokens``, ``{"statuses": [...]}`` in their order."""
    body = _json(request)
    if "tokens" in body:
        return JsonResponse({"statuses": [_status_of(raw) for raw in body["tokens"]]})
    return JsonResponse(_status_of(body["token"]))


def _status_of(raw: str) -> dict[str, Any]:
    access = _lookup(AccessToken.objects.all(), raw)
    if access is not None:
        return {"kind": "access", "active": access.is_valid()}
    refresh = _lookup(RefreshToken.objects.select_related("access_token"), raw)
    if refresh is not None:
        # A rotated or revoked refresh token is kept with `revoked` set; a live one
        # always still has its access token.
        active = refresh.revoked is None and refresh.access_token_id is not None
        return {"kind": "refresh", "active": active}
    return {"kind": None, "active": False}


@_control
@require_POST
def update_settings(request: HttpRequest) -> HttpResponse:
    body = _json(request)
    if "access_token_lifetime" in body:
        seconds = int(body["access_token_lifetime"])
        runtime.set_access_token_lifetime(seconds)
        oauth2_settings.ACCESS_TOKEN_EXPIRE_SECONDS = seconds  # DOT's own fallback
    return JsonResponse({"access_token_lifetime": runtime.access_token_lifetime()})


@_control
@require_POST
def device(request: HttpRequest) -> HttpResponse:
    """Device flow controls: ``interval``, ``slow_down`` (how many polls answer it), and
    ``expire`` (a user_code whose device code runs out now, as if its time had passed).
    """
    body = _json(request)
    if "interval" in body:
        runtime.set_device_interval(int(body["interval"]))
    if "slow_down" in body:
        runtime.answer_slow_down(int(body["slow_down"]))
    if body.get("expire"):
        # DOT answers expired_token only for a grant marked expired, and marks it only
        # when the user types its code: set both, as passing time and a late user would.
        changed = DeviceGrant.objects.filter(user_code=body["expire"]).update(
            status=DeviceGrant.EXPIRED, expires=datetime.now(UTC) - timedelta(seconds=1)
        )
        if not changed:
            return JsonResponse({"error": "no such user_code"}, status=404)
    return JsonResponse({"interval": runtime.device_interval()})
