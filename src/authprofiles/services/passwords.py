"""People's passwords: argon2id (argon2-cffi's defaults, RFC 9106's second choice)."""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from authprofiles.core.errors import FieldError, ValidationFailed

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024

#: Verified against when there is no user, so that an unknown email takes as long as a
#: wrong password (no timing oracle for which accounts exist).
_DUMMY_HASH = _hasher.hash("not a password of anyone's")


def check_password(password: str, field: str = "password") -> None:
    """Refuse a password too short or too long, naming the field (never the value)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValidationFailed(
            [FieldError(field, f"must be at least {MIN_PASSWORD_LENGTH} characters")]
        )
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValidationFailed(
            [FieldError(field, f"must be at most {MAX_PASSWORD_LENGTH} characters")]
        )


def hash_password(password: str) -> str:
    check_password(password)
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; spends the same work when there is no hash."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


__all__ = ["check_password", "hash_password", "verify_password"]
