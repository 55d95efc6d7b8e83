"""RFC 8628: the device authorization grant, for agents and command-line tools on
machines with no browser.

The client asks the device authorization endpoint for a device code and a user code
(section 3.1); a person opens the verification URI on any device and types the user
code; meanwhile the client polls the token endpoint with the device code (section 3.4)
until the person approves or denies, or the code expires (section 3.5).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from authprofiles.core.auth_types import AuthType, AuthTypeSpec, spec_for
from authprofiles.core.connections import TokenSet
from authprofiles.core.profiles import ClientAuthMethod
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable
from authprofiles.oauth.grants.base import (
    FinishedByPerson,
    GrantInput,
    NextStep,
    Pending,
    PendingAuthorization,
    StillPending,
)

#: The kind of pending authorization it starts.
KIND = AuthType.DEVICE_CODE.value
#: Section 3.4: "grant_type REQUIRED. Value MUST be set to
#: "urn:ietf:params:oauth:grant-type:device_code"."
GRANT_TYPE = "urn:ietf:params:oauth:grant-type:device_code"
#: Section 3.2: "If no value is provided, clients MUST use 5 as the default."
DEFAULT_INTERVAL = 5
#: Section 3.5: on ``slow_down`` "the interval MUST be increased by 5 seconds for this
#: and all subsequent requests".
SLOW_DOWN_STEP = 5
#: Client authentication methods whose encoder puts ``client_id`` in the body itself.
_PUTS_CLIENT_ID_IN_BODY = frozenset({ClientAuthMethod.NONE, ClientAuthMethod.CLIENT_SECRET_POST})


def request_device_code(engine: OAuthEngine, settings: ClientSettings) -> dict[str, Any]:
    """Section 3.1: the device authorization request, with the client authenticated as
    at the token endpoint ("The client authentication requirements of Section 3.2.1 of
    [RFC6749] apply to requests on this endpoint")."""
    url = settings.device_authorization_url
    if not url:
        raise ValueError("the profile has no device authorization URL")
    data: dict[str, str] = dict(settings.extra_params)
    if settings.auth_method not in _PUTS_CLIENT_ID_IN_BODY:
        # "client_id REQUIRED if the client is not authenticating with the authorization
        # server". Sent with the other methods too (some servers read it from the body
        # alone); never twice (RFC 6749 section 3.2: parameters "MUST NOT be included
        # more than once").
        data["client_id"] = settings.client_id
    answer = engine.post_form(settings, url, "device authorization request", data)
    missing = [
        name for name in ("device_code", "user_code", "verification_uri") if not answer.get(name)
    ]
    if missing:
        raise IdPUnavailable(
            f"the device authorization answer lacks {', '.join(missing)}",
            host=urlsplit(url).netloc,
        )
    return answer


def _positive_int(value: Any, default: int) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number > 0 else default


class DeviceCodeGrant(FinishedByPerson):
    @property
    def spec(self) -> AuthTypeSpec:
        return spec_for(AuthType.DEVICE_CODE)

    def start(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        given: GrantInput,
        now: datetime,
        lifetime_seconds: float,
    ) -> Pending:
        answer = request_device_code(engine, settings)
        interval = _positive_int(answer.get("interval"), DEFAULT_INTERVAL)
        # Section 3.2: "expires_in REQUIRED. The lifetime in seconds of the "device_code"
        # and "user_code"." Our own deadline stands in when a server leaves it out.
        expires_in = _positive_int(answer.get("expires_in"), int(lifetime_seconds))
        expires_at = now + timedelta(seconds=expires_in)
        complete_uri = answer.get("verification_uri_complete")
        return Pending(
            kind=KIND,
            # The device code is what the answer is matched with; the store keeps a hash.
            state=str(answer["device_code"]),
            secrets={"device_code": str(answer["device_code"]), "interval": str(interval)},
            expires_at=expires_at,
            next_step=NextStep(
                user_code=str(answer["user_code"]),
                verification_uri=str(answer["verification_uri"]),
                verification_uri_complete=str(complete_uri) if complete_uri else None,
                expires_at=expires_at,
                interval=interval,
            ),
            next_poll_at=now + timedelta(seconds=interval),
        )

    def complete(
        self,
        engine: OAuthEngine,
        settings: ClientSettings,
        pending: PendingAuthorization,
        answer: Mapping[str, str],
        now: datetime,
    ) -> TokenSet | StillPending:
        """Section 3.4: one poll of the token endpoint. ``authorization_pending`` (or the
        server unavailable for now): ask again after the interval; ``slow_down``: after a
        longer one; ``access_denied`` and ``expired_token`` end it (raised as
        :class:`GrantRefused`)."""
        interval = _positive_int(pending.secrets.get("interval"), DEFAULT_INTERVAL)
        try:
            return engine.fetch_token(
                settings,
                "device access token request",
                grant_type=GRANT_TYPE,
                params={"device_code": pending.secrets["device_code"]},
                with_scope=False,
            )
        except IdPUnavailable:
            # Passing (a timeout, a 5xx): ask again after the interval.
            return StillPending(now + timedelta(seconds=interval))
        except GrantRefused as exc:
            if exc.error == "authorization_pending":
                return StillPending(now + timedelta(seconds=interval))
            if exc.error == "slow_down":
                interval += SLOW_DOWN_STEP
                return StillPending(
                    now + timedelta(seconds=interval),
                    secrets={**pending.secrets, "interval": str(interval)},
                )
            raise


__all__ = ["GRANT_TYPE", "KIND", "DeviceCodeGrant", "request_device_code"]
