"""Each person's choice of the events they are emailed about (all on by default).

Kept as the events turned off (``UserRow.muted_events``): an event added later is on
for everybody until they turn it off.
"""

from __future__ import annotations

from collections.abc import Mapping

from authprofiles.core.callers import Principal
from authprofiles.core.errors import Conflict, FieldError, NotFound, ValidationFailed
from authprofiles.core.notices import EVENT_NAMES
from authprofiles.store.db import Database, UnitOfWork
from authprofiles.store.models import UserRow
from authprofiles.store.people import UserStore


class NoUser(Conflict):
    """The caller acts for no person (an API key made before its workspace had an
    admin): there is nobody whose preferences these would be."""


def muted_events(user: UserRow) -> set[str]:
    """The events ``user`` turned emails off for (all are on by default)."""
    return set((user.muted_events or "").split())


def email_choices(user: UserRow) -> dict[str, bool]:
    muted = muted_events(user)
    return {event: event not in muted for event in EVENT_NAMES}


class EmailPreferences:
    def __init__(self, *, db: Database, users: UserStore) -> None:
        self.db = db
        self.users = users

    def get(self, principal: Principal) -> dict[str, bool]:
        """``{event: emailed?}`` for every event, for the caller's own user."""
        with self.db.read() as session:
            return email_choices(self._user(session, principal))

    def set(self, principal: Principal, email: Mapping[str, bool]) -> dict[str, bool]:
        """Turn the events named on (true) or off (false); those not named stay as they
        are. Answers every event's setting afterwards."""
        unknown = [event for event in email if event not in EVENT_NAMES]
        if unknown:
            raise ValidationFailed(
                [
                    FieldError(
                        f"email.{event}",
                        f"is not an event; choose from: {', '.join(EVENT_NAMES)}",
                    )
                    for event in unknown
                ]
            )
        with self.db.session() as session:
            user = self._user(session, principal)
            muted = muted_events(user)
            for event, on in email.items():
                (muted.discard if on else muted.add)(event)
            user.muted_events = " ".join(e for e in EVENT_NAMES if e in muted)
            return email_choices(user)

    def _user(self, session: UnitOfWork, principal: Principal) -> UserRow:
        if principal.user_id is None:
            raise NoUser(
                "this caller acts for no user, so it has no email preferences; call as a "
                "person (signed in, or with an API key made for a user)"
            )
        user = self.users.get(session, principal.user_id)
        if user is None:
            raise NotFound(f"no user with id {principal.user_id!r}")
        return user


__all__ = ["EmailPreferences", "NoUser", "email_choices"]
