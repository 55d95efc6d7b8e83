"""The registry of grants: one per auth type, found by :func:`grant_for`.

Each grant module registers here; the auth type's declaration (fields, mandatory rules,
labels, test stages) is in ``core.auth_types``, which validation reads without importing
this package.
"""

from __future__ import annotations

from authprofiles.core.auth_types import AUTH_TYPES, AuthType
from authprofiles.oauth.grants.base import Grant
from authprofiles.oauth.grants.rfc6749_authorization_code import AuthorizationCodeGrant
from authprofiles.oauth.grants.rfc6749_client_credentials import ClientCredentialsGrant
from authprofiles.oauth.grants.rfc6749_password import PasswordGrant
from authprofiles.oauth.grants.rfc8628_device_code import DeviceCodeGrant

_GRANTS: dict[AuthType, Grant] = {}


def register_grant(grant: Grant) -> None:
    auth_type = grant.spec.auth_type
    if auth_type in _GRANTS:
        raise ValueError(f"a grant for {auth_type.value} is registered already")
    _GRANTS[auth_type] = grant


def grant_for(auth_type: AuthType) -> Grant:
    return _GRANTS[auth_type]


register_grant(AuthorizationCodeGrant())
register_grant(ClientCredentialsGrant())
register_grant(PasswordGrant())
register_grant(DeviceCodeGrant())

# Every declared auth type has its grant.
assert {spec.auth_type for spec in AUTH_TYPES} == set(_GRANTS), "an auth type has no grant"

__all__ = ["grant_for", "register_grant"]
