"""Webhook calls over httpx, to the address that was checked.

The host is resolved here, each address it resolves to is judged
(:mod:`authprofiles.notify.addresses`), and the request goes to the first of them, with
the original name in ``Host`` and, over HTTPS, in the TLS server name (so the
certificate is still checked against the name). Redirects are not followed (a 3xx is a
failed delivery): a receiver could otherwise send the call somewhere private.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx

from authprofiles.notify.addresses import first_refused, resolve
from authprofiles.notify.errors import DeliveryFailed

#: The longest one call may take to connect, and to send or to answer.
CONNECT_TIMEOUT_SECONDS = 5.0
TIMEOUT_SECONDS = 10.0
USER_AGENT = "authprofiles-webhooks/1"


class HttpxWebhookPoster:
    """Posts webhook bodies; answers the receiver's status code, or raises
    :class:`DeliveryFailed` when no answer came (or the address is refused)."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        timeout: float = TIMEOUT_SECONDS,
        resolver: Callable[[str, int], list[str]] = resolve,
    ) -> None:
        self.allow_private = allow_private
        self.timeout = timeout
        self.resolver = resolver

    def post(self, url: str, body: bytes, headers: Mapping[str, str]) -> int:
        try:
            parsed = httpx.URL(url)
        except httpx.InvalidURL:
            raise DeliveryFailed("the webhook URL is not a valid URL") from None
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise DeliveryFailed("the webhook URL is not an http or https URL")
        host = parsed.host
        port = parsed.port or (443 if parsed.scheme == "https" else 80)
        try:
            addresses = self.resolver(host, port)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise DeliveryFailed(f"the name {host} could not be resolved: {reason}") from None
        refused = None if self.allow_private else first_refused(addresses)
        if refused is not None:
            raise DeliveryFailed(
                f"{host} resolves to {refused}, a loopback or private address; webhooks "
                "are sent there only with AUTHPROFILES_WEBHOOK_ALLOW_PRIVATE=true"
            )
        pinned = parsed.copy_with(host=addresses[0])
        sent_headers = {
            "Host": parsed.netloc.decode("ascii"),
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            **headers,
        }
        extensions = {"sni_hostname": host} if parsed.scheme == "https" else None
        # A client per call: deliveries are rare, and nothing stays open between them.
        client = httpx.Client(
            timeout=httpx.Timeout(self.timeout, connect=min(self.timeout, CONNECT_TIMEOUT_SECONDS)),
            follow_redirects=False,
            # No proxy from the environment: the call goes to the address checked here.
            trust_env=False,
        )
        try:
            with (
                client,
                client.stream(
                    "POST", pinned, content=body, headers=sent_headers, extensions=extensions
                ) as response,
            ):
                # The body is not read: the status is the answer, and a receiver that
                # streams without end holds nothing here.
                return response.status_code
        except httpx.TimeoutException:
            raise DeliveryFailed(f"{host} did not answer within {self.timeout:g} s") from None
        except (httpx.NetworkError, httpx.RemoteProtocolError) as exc:
            # Their text comes from the socket or the HTTP parser, never from the URL.
            reason = str(exc)[:200] or type(exc).__name__
            raise DeliveryFailed(f"could not reach {host}: {reason}") from None
        except httpx.HTTPError as exc:
            raise DeliveryFailed(f"could not reach {host}: {type(exc).__name__}") from None


__all__ = ["HttpxWebhookPoster"]
