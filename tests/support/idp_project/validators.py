"""DOT's request validator, completed for oauthlib 4's device-code token requests.

oauthlib 4 asks the validator where a polled ``device_code`` stands
(``validate_device_code``, RFC 8628 section 3.5); DOT 3.4 predates that method, so
every approved device code failed with a 500. The answer comes from DOT's own
DeviceGrant rows, which its verification pages update. A device code is also made
single-use here: DOT would hand out new tokens for it on every poll.
"""

from __future__ import annotations

from typing import Any

from oauth2_provider.models import get_device_grant_model
from oauth2_provider.oauth2_validators import OAuth2Validator

DeviceGrant = get_device_grant_model()
DEVICE_CODE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"

# oauthlib 4's DeviceCodeGrant.DEVICE_CODE_* values: "authorized" and the RFC 8628
# section 3.5 error codes (spelled out: oauthlib 3 has no such constants to import).
_STATUS = {
    DeviceGrant.AUTHORIZED: "authorized",
    DeviceGrant.AUTHORIZATION_PENDING: "authorization_pending",
    DeviceGrant.DENIED: "access_denied",
    DeviceGrant.EXPIRED: "expired_token",
}


class IdPValidator(OAuth2Validator):
    def validate_device_code(
        self, client_id: str | None, code: str, request: Any, *args: Any, **kwargs: Any
    ) -> str | None:
        """The grant's status, or None (``invalid_grant``) for another client's code.

        DOT's pre-token hook has already put the approving user and the scopes on the
        request.
        """
        client = getattr(request, "client", None)
        owner = client.client_id if client is not None else client_id
        grant = DeviceGrant.objects.filter(device_code=code, client_id=owner).first()
        if grant is None:
            return None
        if grant.is_expired():
            return _STATUS[DeviceGrant.EXPIRED]
        return _STATUS.get(grant.status)

    def save_token(self, token: dict[str, Any], request: Any, *args: Any, **kwargs: Any) -> None:
        super().save_token(token, request, *args, **kwargs)
        if request.grant_type == DEVICE_CODE_GRANT:
            # Redeemed: a later poll finds no such code (DOT answers device_not_found).
            DeviceGrant.objects.filter(device_code=request.device_code).delete()
