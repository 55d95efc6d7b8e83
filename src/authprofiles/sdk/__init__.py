"""The authprofiles SDK: the HTTP API, and auth adapters for httpx and requests.

    from authprofiles.sdk import AuthProfilesClient

    with AuthProfilesClient("http://127.0.0.1:8000", api_key) as ap:
        auth = ap.auth(connection_id, base_url="https://api.example.com/v1")
        httpx.get("https://api.example.com/v1/invoices", auth=auth)

It depends on httpx and requests only, never on the server's own packages, so it can
be vendored or installed next to any agent. The rules it applies credentials by, and
refreshes a refused one by, are :mod:`authprofiles.wire`'s (standard library only), the
same the server's proxy follows.
"""

from authprofiles.sdk._auth import ConnectionAuth, TokenSource
from authprofiles.sdk._client import AuthProfilesClient, AuthProfilesError, Inject, Token
from authprofiles.sdk._requests import RequestsConnectionAuth
from authprofiles.wire.injection import InjectionError

__all__ = [
    "AuthProfilesClient",
    "AuthProfilesError",
    "ConnectionAuth",
    "Inject",
    "InjectionError",
    "RequestsConnectionAuth",
    "Token",
    "TokenSource",
]
