"""OAuth 2.0 grants, one module per specification, each registered under its auth type
(``registry.grant_for``)."""

from authprofiles.oauth.engine import ClientSettings, OAuthEngine, new_code_verifier, new_state
from authprofiles.oauth.grants.base import (
    Grant,
    GrantInput,
    NextStep,
    Obtained,
    Pending,
    PendingAuthorization,
    StillPending,
)
from authprofiles.oauth.grants.registry import grant_for, register_grant

__all__ = [
    "ClientSettings",
    "Grant",
    "GrantInput",
    "NextStep",
    "OAuthEngine",
    "Obtained",
    "Pending",
    "PendingAuthorization",
    "StillPending",
    "grant_for",
    "new_code_verifier",
    "new_state",
    "register_grant",
]
