"""RFC 7009 token revocation of one connection: a step that deleting a connection and
deleting a profile both take (shared by those use cases, not a use case itself)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from authprofiles.core.connections import Connection
from authprofiles.core.errors import ValidationFailed
from authprofiles.core.profiles import Profile
from authprofiles.oauth.engine import OAuthEngine
from authprofiles.oauth.errors import GrantRefused, OAuthFailure
from authprofiles.services.oauth_settings import connection_settings

log = logging.getLogger("authprofiles.connections")


@dataclass
class RevocationReport:
    revoked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def add(self, other: RevocationReport) -> None:
        self.revoked += other.revoked
        self.errors += other.errors


def revoke_connection(
    engine: OAuthEngine, profile: Profile, connection: Connection, redirect_uri: str
) -> RevocationReport:
    """RFC 7009, best effort: the refresh token first (section 2.1: revoking it SHOULD
    also revoke the access tokens of the same grant), then the access token."""
    report = RevocationReport()
    tokens = connection.tokens
    if tokens is None or not profile.revocation_url:
        return report
    try:
        settings = connection_settings(profile, connection, redirect_uri)
    except ValidationFailed as exc:
        report.errors.append(exc.detail)
        return report
    for hint, token in (
        ("refresh_token", tokens.refresh_token),
        ("access_token", tokens.access_token),
    ):
        if not token:
            continue
        try:
            engine.revoke(settings, token=token, hint=hint)
            report.revoked.append(hint)
        except OAuthFailure as exc:
            if isinstance(exc, GrantRefused) and exc.error == "unsupported_token_type":
                continue
            log.warning(
                "revoking the %s of connection %s failed: %s", hint, connection.id, exc.detail
            )
            report.errors.append(f"{hint}: {exc.detail}")
    return report


__all__ = ["RevocationReport", "revoke_connection"]
