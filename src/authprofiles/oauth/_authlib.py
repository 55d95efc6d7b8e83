"""The authlib names we use, imported once.

authlib 1.9 prefers the httpx2 fork and warns when its httpx integration falls back to
httpx, the HTTP stack this project standardises on; the integration behaves the same.
``authlib.deprecate`` installs an "always" filter when first imported, so it is
imported before our "ignore" filter goes on top of it.
"""

from __future__ import annotations

import warnings

import authlib.deprecate  # noqa: F401  (see above: must precede the filter)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.common.security import generate_token
    from authlib.integrations.base_client import OAuthError
    from authlib.integrations.httpx_client import OAuth2Client
    from authlib.oauth2.rfc7523 import PrivateKeyJWT, private_key_jwt_sign
    from authlib.oauth2.rfc8414 import AuthorizationServerMetadata, get_well_known_url

__all__ = [
    "AuthorizationServerMetadata",
    "OAuth2Client",
    "OAuthError",
    "PrivateKeyJWT",
    "generate_token",
    "get_well_known_url",
    "private_key_jwt_sign",
]
