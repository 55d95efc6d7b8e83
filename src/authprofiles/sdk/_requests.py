"""``RequestsConnectionAuth``: the same credentials for ``requests``.

``requests.get(url, auth=RequestsConnectionAuth(client, connection_id))``: the token and
the authorization fields are applied when the request is prepared; a response hook sees
the answer and, on the API's auth error status, sends the request once more with a
fresh token (when its body can be sent again).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import requests
from requests.auth import AuthBase
from requests.structures import CaseInsensitiveDict

from authprofiles.sdk._auth import ConnectionCredentials
from authprofiles.sdk._client import Token
from authprofiles.sdk._inject import InjectionError, apply_to_url, carries_payload, merge_body

if TYPE_CHECKING:
    pass


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

        def on_response(response: requests.Response, **kwargs: Any) -> requests.Response:
            return self._retry_if_refused(response, original, token, **kwargs)

        # requests dispatches these after each answer (``register_hook`` is untyped).
        request.hooks["response"].append(on_response)
        return request

    def _apply(self, request: requests.PreparedRequest, original: _Original, token: Token) -> None:
        inject = token.inject
        method = (request.method or "GET").upper()
        request.url = apply_to_url(original.url, inject.query, inject.path, self.base_url)
        headers = CaseInsensitiveDict(original.headers)
        headers.update(inject.headers)
        body = original.body
        if inject.body and carries_payload(method, bool(body)):
            if body is not None and not isinstance(body, bytes | str):
                raise InjectionError("payload fields need the request body in memory")
            raw = body.encode() if isinstance(body, str) else (body or b"")
            merged, media = merge_body(raw, headers.get("Content-Type"), inject.body)
            body = merged
            headers["Content-Type"] = media
            headers["Content-Length"] = str(len(merged))
            headers.pop("Transfer-Encoding", None)
        request.headers = headers
        request.body = body

    def _retry_if_refused(
        self,
        response: requests.Response,
        original: _Original,
        token: Token,
        **kwargs: Any,
    ) -> requests.Response:
        status = response.status_code
        if status < 400 or status != self.source.auth_error_status():
            return response
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
