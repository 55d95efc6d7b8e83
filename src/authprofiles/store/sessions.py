"""Signed-in people's sessions, single sign-on requests and reset links, and the
counters that throttle password guessing.

A session's cookie holds a random token; only its SHA-256 is stored (like an API key's,
the token has 256 bits of entropy, so a fast hash is enough). A token is replaced now
and then (rotation): the replacement is a new row carrying the same ``csrf_token``,
which names the session across its tokens (its *lineage*), so signing out ends every
token the session had.
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update

from authprofiles.store.cipher import KeyError_, Keyring, SecretsUnreadable
from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import (
    MembershipRow,
    SignInRequestRow,
    SignInThrottleRow,
    UserRow,
    UserSessionRow,
    WorkspaceRow,
)


class SessionStore:
    def add(
        self,
        unit: UnitOfWork,
        *,
        session_id: str,
        token_hash: str,
        user_id: str,
        workspace_id: str,
        epoch: int,
        csrf_token: str,
        address: str | None,
        now: datetime,
        expires_at: datetime,
    ) -> UserSessionRow:
        row = UserSessionRow(
            id=session_id,
            token_hash=token_hash,
            user_id=user_id,
            workspace_id=workspace_id,
            epoch=epoch,
            csrf_token=csrf_token,
            address=address[:64] if address else None,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
        )
        unit.add(row)
        unit.flush()
        return row

    def find(
        self, unit: UnitOfWork, token_hash: str
    ) -> tuple[UserSessionRow, UserRow, MembershipRow | None] | None:
        """The session of ``token_hash`` with its user and their membership of the
        session's workspace (None when they are no longer a member): one query."""
        found = unit.execute(
            select(UserSessionRow, UserRow, MembershipRow)
            .join(UserRow, UserRow.id == UserSessionRow.user_id)
            .outerjoin(
                MembershipRow,
                (MembershipRow.user_id == UserSessionRow.user_id)
                & (MembershipRow.workspace_id == UserSessionRow.workspace_id),
            )
            .where(UserSessionRow.token_hash == token_hash)
        ).one_or_none()
        if found is None:
            return None
        session, user, membership = found
        return session, user, membership

    def memberships_of(
        self, unit: UnitOfWork, user_id: str
    ) -> builtins.list[tuple[WorkspaceRow, MembershipRow]]:
        """Every workspace the user is a member of with the membership (disabled ones
        too: the caller tells "disabled everywhere" from "in no workspace"), oldest
        membership first: the order a sign-in picks the workspace to land in."""
        rows = unit.execute(
            select(WorkspaceRow, MembershipRow)
            .join(MembershipRow, MembershipRow.workspace_id == WorkspaceRow.id)
            .where(MembershipRow.user_id == user_id)
            .order_by(MembershipRow.created_at, WorkspaceRow.id)
        )
        return [(workspace, membership) for workspace, membership in rows]

    def get_for_update(self, unit: UnitOfWork, session_id: str) -> UserSessionRow | None:
        return unit.scalars(
            select(UserSessionRow).where(UserSessionRow.id == session_id).with_for_update()
        ).one_or_none()

    def end_lineage(self, unit: UnitOfWork, user_id: str, csrf_token: str) -> None:
        """End one session: every token it had."""
        unit.execute(
            delete(UserSessionRow).where(
                UserSessionRow.user_id == user_id, UserSessionRow.csrf_token == csrf_token
            )
        )

    def end_every_session(self, unit: UnitOfWork, user_id: str) -> None:
        """End all of a user's sessions, in every worker at once: the user's
        ``session_epoch`` goes up (a session of an older epoch is refused wherever it is
        presented) and the rows go. Called on "sign out everywhere", a password change
        and disabling the user, inside the unit of work that does that."""
        unit.execute(
            update(UserRow)
            .where(UserRow.id == user_id)
            .values(session_epoch=UserRow.session_epoch + 1)
            .execution_options(synchronize_session=False)
        )
        unit.execute(delete(UserSessionRow).where(UserSessionRow.user_id == user_id))
        unit.expire_all()  # a UserRow loaded in this unit shows the new epoch

    def forget_ended(
        self, unit: UnitOfWork, user_id: str, now: datetime, idle_since: datetime
    ) -> None:
        """Remove the user's sessions past their absolute or idle timeout (they are refused
        anyway; this keeps the table small)."""
        unit.execute(
            delete(UserSessionRow).where(
                UserSessionRow.user_id == user_id,
                or_(UserSessionRow.expires_at <= now, UserSessionRow.last_seen_at <= idle_since),
            )
        )

    def set_workspace(
        self, unit: UnitOfWork, user_id: str, csrf_token: str, workspace_id: str
    ) -> None:
        unit.execute(
            update(UserSessionRow)
            .where(UserSessionRow.user_id == user_id, UserSessionRow.csrf_token == csrf_token)
            .values(workspace_id=workspace_id)
            .execution_options(synchronize_session=False)
        )


class SignInRequestStore:
    """Single-use, short-lived requests keyed by the hash of a value handed to the
    person (an OpenID ``state``, a reset link's token); what they carry is encrypted."""

    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    @staticmethod
    def _context(row_id: str) -> str:
        return f"signin_requests:{row_id}:secrets"

    def add(
        self,
        unit: UnitOfWork,
        *,
        request_id: str,
        state_hash: str,
        secrets: Mapping[str, str],
        now: datetime,
        expires_at: datetime,
    ) -> None:
        unit.add(
            SignInRequestRow(
                id=request_id,
                state_hash=state_hash,
                secrets_enc=self.keyring.encrypt(
                    json.dumps(dict(secrets)), self._context(request_id)
                ),
                created_at=now,
                expires_at=expires_at,
            )
        )
        unit.flush()

    def usable(
        self, unit: UnitOfWork, state_hash: str, now: datetime, *, claim: bool
    ) -> dict[str, str] | None:
        """What the unused, unexpired request of ``state_hash`` carries; with ``claim``
        it is marked used in this unit (so a second presentation finds nothing)."""
        statement = select(SignInRequestRow).where(
            SignInRequestRow.state_hash == state_hash,
            SignInRequestRow.used_at.is_(None),
            SignInRequestRow.expires_at > now,
        )
        if claim:
            statement = statement.with_for_update()
        row = unit.scalars(statement).one_or_none()
        if row is None:
            return None
        try:
            secrets: dict[str, str] = json.loads(
                self.keyring.decrypt(row.secrets_enc, self._context(row.id))
            )
        except KeyError_ as exc:
            raise SecretsUnreadable.of("sign-in request", row.id, exc) from None
        if claim:
            row.used_at = now
            unit.flush()
        return secrets

    def forget_expired(self, unit: UnitOfWork, now: datetime) -> None:
        unit.execute(delete(SignInRequestRow).where(SignInRequestRow.expires_at <= now))

    def claim_matching(
        self, unit: UnitOfWork, now: datetime, matches: Callable[[dict[str, str]], bool]
    ) -> int:
        """Mark used every unused, unexpired request whose contents ``matches`` (say, the
        older reset links of one user, when a new one is made); returns how many. What a
        request carries is encrypted, so each is read: there are few (expired ones are
        forgotten, single sign-ons last minutes)."""
        rows = unit.scalars(
            select(SignInRequestRow)
            .where(SignInRequestRow.used_at.is_(None), SignInRequestRow.expires_at > now)
            .with_for_update()
        )
        claimed = 0
        for row in rows:
            try:
                contents = json.loads(self.keyring.decrypt(row.secrets_enc, self._context(row.id)))
            except KeyError_ as exc:
                raise SecretsUnreadable.of("sign-in request", row.id, exc) from None
            if isinstance(contents, dict) and matches(contents):
                row.used_at = now
                claimed += 1
        unit.flush()
        return claimed

    def reencrypt(self, row: SignInRequestRow) -> None:
        """Write the row's secrets again under the keyring's active key (`keys rotate`)."""
        context = self._context(row.id)
        row.secrets_enc = self.keyring.encrypt(
            self.keyring.decrypt(row.secrets_enc, context), context
        )


@dataclass(frozen=True)
class Attempt:
    """One password attempt counted on one key, before the password is checked:
    ``locked_until`` is the lock the key is under (one that was running already, or the
    one this attempt set by reaching the limit; None when not locked), ``refused`` says
    the key was locked before this attempt (which was then not counted and must not be
    checked), and ``set_lock`` that this very attempt locked it."""

    key: str
    locked_until: datetime | None
    refused: bool = False
    set_lock: bool = False


class ThrottleStore:
    """Password attempts counted per key (``email:…``, ``ip:…``) in a window.

    An attempt is counted *before* its password is checked, in one short write
    transaction that also reads the lock (the row is taken with ``SELECT … FOR UPDATE``
    on PostgreSQL; on SQLite the transaction holds the database's write lock), so
    parallel requests cannot all read "not locked" and then all check a password: the
    limit bounds how many passwords are checked, not how many failures were recorded
    afterwards. A right password then takes its attempt back (:meth:`forgive`).
    """

    def _row_for_update(self, unit: UnitOfWork, key: str) -> SignInThrottleRow | None:
        return unit.scalars(
            select(SignInThrottleRow).where(SignInThrottleRow.key == key).with_for_update()
        ).one_or_none()

    def count_attempt(
        self,
        unit: UnitOfWork,
        key: str,
        *,
        now: datetime,
        window_start: datetime,
        limit: int,
        lock_until: datetime,
    ) -> Attempt:
        """Count one attempt on ``key`` unless it is locked (then nothing is counted and
        the attempt is ``refused``). The count restarts when its window began before
        ``window_start``; the ``limit``-th attempt locks the key until ``lock_until``
        (that attempt itself is still checked: ``limit`` attempts are, no more)."""
        row = self._row_for_update(unit, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            return Attempt(key, row.locked_until, refused=True)
        if row is None:
            row = SignInThrottleRow(key=key, failures=0, window_started_at=now, locked_until=None)
            unit.add(row)
        elif row.window_started_at < window_start:
            row.failures, row.window_started_at, row.locked_until = 0, now, None
        row.failures += 1
        set_lock = row.failures >= limit
        if set_lock:
            row.locked_until = lock_until
            row.failures, row.window_started_at = 0, now
        unit.flush()
        return Attempt(key, lock_until if set_lock else None, set_lock=set_lock)

    def forgive(self, unit: UnitOfWork, attempt: Attempt, *, limit: int) -> None:
        """Take back an attempt that turned out right (an address's: a busy office
        signing in from one address is not guessing): one fewer counted, and the lock
        lifted when that attempt had set it."""
        row = self._row_for_update(unit, attempt.key)
        if row is None or attempt.refused:
            return
        if attempt.set_lock and row.locked_until == attempt.locked_until:
            row.locked_until, row.failures = None, max(0, limit - 1)
        else:
            row.failures = max(0, row.failures - 1)
        unit.flush()

    def clear(self, unit: UnitOfWork, key: str) -> None:
        unit.execute(delete(SignInThrottleRow).where(SignInThrottleRow.key == key))


__all__ = ["Attempt", "SessionStore", "SignInRequestStore", "ThrottleStore"]
