"""``RequestsConnectionAuth``: the same credentials for ``requests``.

``requests.get(url, auth=RequestsConnectionAuth(client, connection_id))``: the token and
the authorization fields are applied when the request is prepared (by the wire's rules,
as :class:`~authprofiles.sdk.ConnectionAuth` applies them); a response hook sees the
answer and, when :class:`~authprofiles.wire.refresh_once.RefreshOnce` says so, sends the
request once more with a fresh token (when its body can be sent again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from authprofiles.sdk._auth import ConnectionCredentials
from authprofiles.sdk._client import Token
from authprofiles.wire.injection import InjectionError, carries_payload, place
from authprofiles.wire.refresh_once import RefreshOnce


@dataclass(frozen=True)
class _Original:
    """The request as the caller prepared it, before any credential was applied."""

    url: str
    body: bytes | str | None
    headers: CaseInsensitiveDict[str]

    @property
    def replayable(self) -> bool:
        return self.body is None or isinstance(self.body, bytes | str)


class RequestsConnectionAuth(ConnectionCredentials, AuthBase):
    """See :class:`authprofiles.sdk.ConnectionAuth`; the same options."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        original = _Original(
            url=str(request.url),
            body=request.body,
            headers=CaseInsensitiveDict(request.headers),
        )
        token = self.source.get()
        self._apply(request, original, token)
        retry: RefreshOnce | None = None

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            nonlocal retry
            if retry is None:
                status = self.source.known_auth_error_status
                if status is None:
                    if response.status_code < 400:
                        return response  # only a refusal needs to know the status
                    status = self.source.auth_error_status()
                retry = RefreshOnce(status)
            if not retry.on_response(response.status_code):
                return response
            return self._resend_with_a_fresh_token(response, original, token, **kwargs)

        # requests dispatches these after each answer (``register_hook`` is untyped).
        request.hooks["response"].append(on_response)
        return request

    def _apply(self, request: requests.PreparedRequest, original: _Original, token: Token) -> None:
        inject = token.inject
        method = (request.method or "GET").upper()
        body = original.body
        if isinstance(body, bytes | str) or body is None:
            raw = body.encode() if isinstance(body, str) else (body or b"")
        elif inject.body and carries_payload(method, has_body=True):
            raise InjectionError("payload fields need the request body in memory")
        else:
            raw = b""  # a stream, sent as it is
        placed = place(
            inject,
            method=method,
            url=original.url,
            body=raw,
            content_type=original.headers.get("Content-Type"),
            base_url=self.base_url,
        )
        request.url = placed.url
        headers = CaseInsensitiveDict(original.headers)
        headers.update(placed.headers)
        if placed.body is not None:
            body = placed.body
            headers["Content-Type"] = placed.content_type
            headers["Content-Length"] = str(len(placed.body))
            headers.pop("Transfer-Encoding", None)
        request.headers = headers
        request.body = body

    def _resend_with_a_fresh_token(
        self,
        response: requests.Response,
        original: _Original,
        token: Token,
        **kwargs: Any,
    ) -> requests.Response:
        fresh = self.source.refresh(token)
        if fresh.access_token == token.access_token or not original.replayable:
            return response
        # Let the refused answer go, and its connection back to the pool.
        response.content  # noqa: B018 - reading the body is the point
        response.close()
        retry = response.request.copy()
        self._apply(retry, original, fresh)
        connection = response.connection
        resent: requests.Response = connection.send(retry, **kwargs)
        resent.history.append(response)
        resent.request = retry
        return resent
