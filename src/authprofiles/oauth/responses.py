"""RFC 6749 section 5 token responses as real servers send them, normalised.

Servers differ from the letter of the RFC in known ways, all handled here:
``expires_in`` as a string ("3600") or absent, ``token_type`` in any case,
form-encoded bodies instead of JSON (GitHub's legacy default), and provider
extras such as Salesforce's ``instance_url`` that must be kept.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx

from authprofiles.core.connections import TokenSet

_STANDARD = {"access_token", "token_type", "refresh_token", "expires_in", "expires_at", "scope"}


def decode_body(response: httpx.Response) -> dict[str, Any] | None:
    """The body as a mapping: JSON object, or form-encoded pairs; None when neither."""
    media = response.headers.get("content-type", "").split(";")[0].strip().lower()
    text = response.text
    if media in ("application/x-www-form-urlencoded", "text/plain") and "=" in text:
        pairs = parse_qsl(text.strip(), keep_blank_values=True)
        if pairs:
            return dict(pairs)
    try:
        document = json.loads(text)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def normalise_response(response: httpx.Response) -> httpx.Response:
    """authlib compliance hook: hand authlib a JSON body it can parse, whatever came."""
    body = decode_body(response)
    if body is None:
        return response  # authlib then raises, and we report it as unreadable
    if "expires_in" in body:
        body["expires_in"] = _seconds(body["expires_in"])
        if body["expires_in"] is None:
            del body["expires_in"]
    body.pop("expires_at", None)  # ours is computed from expires_in, never trusted from the wire
    headers = {k: v for k, v in response.headers.items() if k.lower() not in _DROP_HEADERS}
    headers["content-type"] = "application/json"
    return httpx.Response(
        status_code=response.status_code,
        headers=headers,
        content=json.dumps(body).encode(),
        request=response.request,
    )


_DROP_HEADERS = {"content-length", "content-encoding", "transfer-encoding", "content-type"}


def _seconds(value: Any) -> int | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if math.isnan(seconds) or seconds <= 0 or math.isinf(seconds):
        return None
    return int(seconds)


def to_token_set(token: dict[str, Any], received_at: datetime) -> TokenSet:
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("the token response has no access_token")
    token_type = str(token.get("token_type") or "Bearer")
    expires_in = _seconds(token.get("expires_in"))
    scope = token.get("scope")
    scopes: tuple[str, ...] | None = None
    if isinstance(scope, str):
        scopes = tuple(scope.split())
    elif isinstance(scope, list):
        scopes = tuple(str(s) for s in scope)
    refresh = token.get("refresh_token")
    return TokenSet(
        access_token=access_token,
        token_type="Bearer" if token_type.lower() == "bearer" else token_type,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
        expires_at=received_at + timedelta(seconds=expires_in) if expires_in else None,
        scopes=scopes,
        extra={k: v for k, v in token.items() if k not in _STANDARD},
    )
