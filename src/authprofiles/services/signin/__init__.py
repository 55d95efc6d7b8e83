"""People signing in: password and single sign-on, server-side sessions, reset links."""

from authprofiles.services.signin.service import (
    DEFAULT_NEXT,
    ResetLink,
    SignedIn,
    SignInRefused,
    SignInService,
    SsoStart,
    safe_next,
)
from authprofiles.services.signin.sessions import (
    CSRF_FIELD,
    CSRF_HEADER,
    SAFE_METHODS,
    SESSION_COOKIE,
    ActiveSession,
    IssuedSession,
    Sessions,
    csrf_matches,
)

__all__ = [
    "CSRF_FIELD",
    "CSRF_HEADER",
    "DEFAULT_NEXT",
    "SAFE_METHODS",
    "SESSION_COOKIE",
    "ActiveSession",
    "IssuedSession",
    "ResetLink",
    "Sessions",
    "SignInRefused",
    "SignInService",
    "SignedIn",
    "SsoStart",
    "csrf_matches",
    "safe_next",
]
