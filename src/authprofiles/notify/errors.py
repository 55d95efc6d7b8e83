"""What a channel raises when a message did not get through."""

from __future__ import annotations


class DeliveryFailed(Exception):
    """A message was not delivered; ``str()`` says why in words safe to keep in the
    delivery log and the server's log (never a password, a secret or a URL's path).
    ``status_code`` is the receiver's HTTP status when it answered one."""

    def __init__(self, message: str, *, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


__all__ = ["DeliveryFailed"]
