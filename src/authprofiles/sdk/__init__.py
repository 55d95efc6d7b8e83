"""The authprofiles SDK: the HTTP API, and auth adapters for httpx and requests.

    from authprofiles.sdk import AuthProfilesClient

    with AuthProfilesClient("http://127.0.0.1:8000", api_key) as ap:
        auth = ap.auth(connection_id, base_url="https://api.example.com/v1")
        httpx.get("https://api.example.com/v1/invoices", auth=auth)

It depends on httpx and requests only, never on the server's own packages, so it can
be vendored or installed next to any agent.
"""

from authprofiles.sdk._auth import ConnectionAuth, TokenSource
from authprofiles.sdk._client import AuthProfilesClient, AuthProfilesError, Inject, Token
from authprofiles.sdk._inject import InjectionError
from authprofiles.sdk._requests import RequestsConnectionAuth

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
