"""Connections and pending authorizations in and out of the database, secrets encrypted."""

from __future__ import annotations

import builtins
import json
import random
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Table,
    bindparam,
    case,
    delete,
    exists,
    false,
    func,
    or_,
    select,
    tuple_,
    update,
)
from sqlalchemy.orm import Session

from authprofiles.core.connections import SHARED_OWNER, Connection, ConnectionStatus, TokenSet
from authprofiles.core.errors import NotFound
from authprofiles.core.ports import Clock, SystemClock
from authprofiles.core.renewal import DEFAULT_SCHEDULE, RenewalSchedule
from authprofiles.store.cipher import KeyError_, Keyring, SecretsUnreadable
from authprofiles.store.models import (
    AuthorizationRequestRow,
    ConnectionRow,
    UTCDateTime,
    utcnow,
)


def _context(row_id: str, field: str) -> str:
    return f"connections:{row_id}:{field}"


_table = cast(Table, ConnectionRow.__table__)
_connections = _table.c


#: The compare-and-swap that writes a refresh's tokens (``ConnectionStore.finish_refresh``):
#: built once, its parameters bound per call, since the background refresher runs it for
#: every renewal.
_FINISH_REFRESH = (
    update(_table)
    .where(_connections.id == bindparam("b_id"), _connections.version == bindparam("b_version"))
    .values(
        access_token_enc=bindparam("b_access_token_enc"),
        # An answer without a refresh token keeps the one held, but for a new grant.
        refresh_token_enc=case(
            (
                bindparam("b_keep_refresh_token", type_=Boolean()),
                func.coalesce(bindparam("b_refresh_token_enc"), _connections.refresh_token_enc),
            ),
            else_=bindparam("b_refresh_token_enc"),
        ),
        token_type=bindparam("b_token_type"),
        expires_at=bindparam("b_expires_at", type_=UTCDateTime()),
        # An answer without scopes keeps those stored, or else has those requested.
        scopes=case(
            (
                bindparam("b_keep_scopes", type_=Boolean()),
                func.coalesce(_connections.scopes, bindparam("b_scopes")),
            ),
            else_=bindparam("b_scopes"),
        ),
        extra_enc=bindparam("b_extra_enc"),
        next_refresh_at=bindparam("b_next_refresh_at", type_=UTCDateTime()),
        refresh_token_possibly_spent=false(),
        refreshed_at=bindparam("b_now", type_=UTCDateTime()),
        updated_at=bindparam("b_now", type_=UTCDateTime()),
        version=_connections.version + 1,
        status=ConnectionStatus.ACTIVE.value,
        last_error=None,
        last_error_at=None,
        refresh_lease_owner=None,
        refresh_lease_until=None,
    )
)


@dataclass(frozen=True)
class RefreshLease:
    """A refresh lease taken: whose, on which token (``version``), and whether the
    refresh token may already be spent (``possibly_spent``: the lease before this one
    lapsed with nothing written back, so its holder may have died after the identity
    provider rotated the refresh token)."""

    connection_id: str
    version: int
    owner: str
    possibly_spent: bool


@dataclass(frozen=True)
class UnreadableConnection(Connection):
    """A stored connection with a secret this process cannot decrypt (its master key is
    not loaded, or the value is damaged). Lists show it ``needs_reauth`` with a
    ``last_error`` naming the key it needs; it holds no secrets, so nothing refreshes or
    uses it, and ``ConnectionStore.get`` raises :class:`SecretsUnreadable` instead."""


class ConnectionStore:
    def __init__(
        self, keyring: Keyring, clock: Clock | None = None, renewal: RenewalSchedule | None = None
    ) -> None:
        self.keyring = keyring
        #: Stamps rows (created, refreshed, failed): tests age tokens through it.
        self.clock = clock or SystemClock()
        #: When the background refresher renews each token stored (``next_refresh_at``).
        self.renewal = renewal or DEFAULT_SCHEDULE

    def _enc(self, row_id: str, field: str, value: str | None) -> str | None:
        return None if value is None else self.keyring.encrypt(value, _context(row_id, field))

    def _dec(self, row_id: str, field: str, value: str | None) -> str | None:
        return None if value is None else self.keyring.decrypt(value, _context(row_id, field))

    # -- writing -----------------------------------------------------------------
    def add(
        self,
        session: Session,
        *,
        workspace_id: str,
        profile_id: str,
        owner: str,
        tenant: str | None,
        fields: dict[str, str],
        username: str | None,
        password: str | None,
        status: ConnectionStatus,
        tokens: TokenSet | None,
        requested_scopes: Sequence[str] = (),
    ) -> Connection:
        now = self.clock.now()
        row = ConnectionRow(
            id=str(uuid.uuid4()),
            workspace_id=workspace_id,
            profile_id=profile_id,
            owner=owner,
            tenant=tenant,
            username=username,
            status=status.value,
            version=0,
            created_at=now,
            updated_at=now,
        )
        row.fields_enc = self._enc(row.id, "fields", json.dumps(fields)) if fields else None
        row.password_enc = self._enc(row.id, "password", password)
        if tokens is not None:
            self._set_tokens(row, tokens, now, requested_scopes)
        session.add(row)
        session.flush()
        return self.to_domain(row)

    def _token_columns(self, row_id: str, tokens: TokenSet, now: datetime) -> dict[str, object]:
        """The columns a token response writes, but the scopes and the version (which
        depend on what is stored): the row's :meth:`_set_tokens` and the compare-and-swap
        of :meth:`finish_refresh` both write these."""
        columns: dict[str, object] = {
            "access_token_enc": self._enc(row_id, "access_token", tokens.access_token),
            "token_type": tokens.token_type,
            "expires_at": tokens.expires_at,
            "extra_enc": (
                self._enc(row_id, "extra", json.dumps(tokens.extra)) if tokens.extra else None
            ),
            "next_refresh_at": self.renewal.renew_at(
                tokens.expires_at,
                now,
                random.random(),  # noqa: S311 (a schedule's jitter, no secret)
            ),
            "refresh_token_possibly_spent": False,
            "refreshed_at": now,
            "updated_at": now,
        }
        # A response without a refresh token keeps the one we hold (RFC 6749 section 6:
        # the server MAY issue a new refresh token); one with a new token replaces it.
        if tokens.refresh_token is not None:
            columns["refresh_token_enc"] = self._enc(row_id, "refresh_token", tokens.refresh_token)
        return columns

    def _set_tokens(
        self, row: ConnectionRow, tokens: TokenSet, now: datetime, requested: Sequence[str]
    ) -> None:
        for name, value in self._token_columns(row.id, tokens, now).items():
            setattr(row, name, value)
        if tokens.scopes is not None:
            row.scopes = json.dumps(list(tokens.scopes))
        elif row.scopes is None and requested:
            # RFC 6749 section 5.1: an omitted scope means the scope requested.
            row.scopes = json.dumps(list(requested))
        row.version = (row.version or 0) + 1

    def store_tokens(
        self, row: ConnectionRow, tokens: TokenSet, *, requested: Sequence[str]
    ) -> None:
        """Save a token response; access and (rotated) refresh token change together."""
        self._set_tokens(row, tokens, self.clock.now(), requested)
        row.status = ConnectionStatus.ACTIVE.value
        row.last_error = None
        row.last_error_at = None

    def store_new_grant(
        self, row: ConnectionRow, tokens: TokenSet, *, requested: Sequence[str]
    ) -> None:
        """Save the answer to a new grant (a code exchanged again, client credentials or a
        password grant run again): it replaces everything of the grant before, the
        refresh token and the scopes too, rather than keeping an older refresh token when
        the new answer has none (that one belongs to a grant the user replaced)."""
        row.refresh_token_enc = None
        row.scopes = None
        self.store_tokens(row, tokens, requested=requested)

    def set_credentials(
        self, row: ConnectionRow, *, username: str | None = None, password: str | None = None
    ) -> None:
        """Keep a preauthorized connection's own username and password (the password
        encrypted): each one given replaces the one kept; None leaves it as it is."""
        if username is not None:
            row.username = username
        if password is not None:
            row.password_enc = self._enc(row.id, "password", password)
        row.updated_at = self.clock.now()

    def set_fields(self, row: ConnectionRow, fields: Mapping[str, str]) -> None:
        """Replace the connection's field values (encrypted)."""
        row.fields_enc = self._enc(row.id, "fields", json.dumps(dict(fields))) if fields else None
        row.updated_at = self.clock.now()

    def mark_error(self, row: ConnectionRow, message: str, *, needs_reauth: bool) -> None:
        row.last_error = message
        row.last_error_at = self.clock.now()
        if needs_reauth:
            row.status = ConnectionStatus.NEEDS_REAUTH.value
            row.next_refresh_at = None  # nothing to renew until a person authorizes again
        row.updated_at = self.clock.now()

    # -- the refresh lease ----------------------------------------------------------
    # A refresh is claimed, run outside any transaction, then written back. Each step is
    # one short transaction, so a slow identity provider holds no database lock. A lease
    # that lapses with nothing written back (``refresh_lease_until`` still set when the
    # next claimant comes) marks the refresh token possibly spent: its holder died, and
    # may have died after the identity provider rotated it.
    @staticmethod
    def _lease_values(owner: str, until: datetime) -> dict[str, object]:
        return {
            "refresh_lease_owner": owner,
            "refresh_lease_until": until,
            "refresh_token_possibly_spent": or_(
                ConnectionRow.refresh_token_possibly_spent,
                ConnectionRow.refresh_lease_until.is_not(None),
            ),
        }

    @staticmethod
    def _lease_free(now: datetime) -> ColumnElement[bool]:
        return or_(
            ConnectionRow.refresh_lease_until.is_(None), ConnectionRow.refresh_lease_until < now
        )

    def claim_refresh(
        self, session: Session, connection_id: str, *, version: int, owner: str, seconds: float
    ) -> RefreshLease | None:
        """Take the lease if nobody holds a live one and the token is still ``version``:
        one conditional UPDATE, so of any number of claimants exactly one wins; None when
        another did. Leases run on the system's time, not the clock port's: processes
        compare them."""
        now = utcnow()
        found = session.execute(
            update(ConnectionRow)
            .where(
                ConnectionRow.id == connection_id,
                ConnectionRow.version == version,
                ConnectionRow.status == ConnectionStatus.ACTIVE.value,
                self._lease_free(now),
            )
            .values(self._lease_values(owner, now + timedelta(seconds=seconds)))
            .returning(ConnectionRow.refresh_token_possibly_spent)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if found is None:
            return None
        return RefreshLease(connection_id, version, owner, bool(found[0]))

    def claim_due_refreshes(
        self, session: Session, *, due_by: datetime, owner: str, seconds: float, limit: int
    ) -> builtins.list[tuple[RefreshLease, ConnectionRow]]:
        """Lease up to ``limit`` active connections whose renewal time came by ``due_by``
        (``next_refresh_at``, soonest first: the clock port's time, like the expiry it is
        taken from) and that nobody else holds, for ``seconds``: one statement. Of several
        workers claiming at once each connection goes to one: on PostgreSQL the claim
        locks the rows it picks and skips those another claim holds (``FOR UPDATE SKIP
        LOCKED``); on SQLite the claiming transaction holds the database's write lock
        (``Database.session``). Each lease comes with the row as the claim left it, so
        nothing is read again to renew it."""
        now = utcnow()
        due = (
            select(ConnectionRow.id)
            .where(
                ConnectionRow.status == ConnectionStatus.ACTIVE.value,
                ConnectionRow.next_refresh_at <= due_by,
                self._lease_free(now),
            )
            .order_by(ConnectionRow.next_refresh_at)
            .limit(limit)
        )
        if session.get_bind().dialect.name != "sqlite":
            due = due.with_for_update(skip_locked=True)
        claimed = session.scalars(
            update(ConnectionRow)
            .where(ConnectionRow.id.in_(due.scalar_subquery()))
            .values(self._lease_values(owner, now + timedelta(seconds=seconds)))
            .returning(ConnectionRow)
            .execution_options(synchronize_session=False, populate_existing=True)
        )
        return [
            (RefreshLease(row.id, row.version, owner, bool(row.refresh_token_possibly_spent)), row)
            for row in claimed
        ]

    def release_refresh(
        self, session: Session, connection_id: str, *, owner: str, retry_at: datetime | None
    ) -> None:
        """End ``owner``'s lease without a refresh (nothing was asked of the identity
        provider), the connection due again at ``retry_at`` (unchanged when None)."""
        values: dict[str, object] = {"refresh_lease_owner": None, "refresh_lease_until": None}
        if retry_at is not None:
            values["next_refresh_at"] = retry_at
        session.execute(
            update(ConnectionRow)
            .where(ConnectionRow.id == connection_id, ConnectionRow.refresh_lease_owner == owner)
            .values(values)
            .execution_options(synchronize_session=False)
        )

    def lease_state(self, session: Session, connection_id: str) -> tuple[int, datetime | None]:
        """(version, lease deadline) without decrypting anything: what a waiter polls."""
        found = session.execute(
            select(ConnectionRow.version, ConnectionRow.refresh_lease_until).where(
                ConnectionRow.id == connection_id
            )
        ).one_or_none()
        if found is None:
            raise NotFound(f"no connection with id {connection_id}")
        return int(found[0]), found[1]

    def finish_refresh(
        self,
        session: Session,
        connection_id: str,
        *,
        version: int,
        tokens: TokenSet,
        requested: Sequence[str],
        owner: str | None = None,
        new_grant: bool = False,
    ) -> bool:
        """Write a refresh's tokens only if nobody wrote newer ones since ``version``: one
        conditional UPDATE (a compare-and-swap); False when somebody did. The access and
        the rotated refresh token change together, and the lease ends with the write
        (``owner``'s lease ends when nothing is written, too). ``new_grant``: the tokens
        come from the grant run again (a password connection logging in anew), not from
        the refresh token, which is then dropped even when the answer has none.

        The version decides, not the lease: a claimant whose lease lapsed while its
        identity provider was slow still holds the newest tokens that IdP issued, and
        writing them beats dropping a rotated refresh token."""
        now = self.clock.now()
        columns = self._token_columns(connection_id, tokens, now)
        # RFC 6749 section 5.1: an omitted scope means the scope requested; a refresh
        # keeps the scopes stored, if any.
        scopes = tokens.scopes if tokens.scopes is not None else (tuple(requested) or None)
        written = session.execute(
            _FINISH_REFRESH,
            {
                "b_id": connection_id,
                "b_version": version,
                "b_access_token_enc": columns["access_token_enc"],
                "b_keep_refresh_token": not new_grant,
                "b_refresh_token_enc": columns.get("refresh_token_enc"),
                "b_token_type": tokens.token_type,
                "b_expires_at": tokens.expires_at,
                "b_keep_scopes": tokens.scopes is None and not new_grant,
                "b_scopes": json.dumps(list(scopes)) if scopes is not None else None,
                "b_extra_enc": columns["extra_enc"],
                "b_next_refresh_at": columns["next_refresh_at"],
                "b_now": now,
            },
        )
        if getattr(written, "rowcount", 0) == 1:
            return True
        if owner is not None:
            self.release_refresh(session, connection_id, owner=owner, retry_at=None)
        return False

    def abandon_refresh(
        self,
        session: Session,
        connection_id: str,
        *,
        version: int,
        owner: str,
        error: str,
        needs_reauth: bool,
        retry_at: datetime | None = None,
    ) -> ConnectionRow | None:
        """Record a failed refresh and end the lease; nothing is marked when a newer token
        was written meanwhile (the failure is then stale). A connection that stays active
        is due again at ``retry_at`` (when given). The row, or None."""
        row = self.locked_row(session, connection_id)
        if row is None:
            return None
        if row.refresh_lease_owner == owner:
            row.refresh_lease_owner = row.refresh_lease_until = None
        if row.version != version:
            return None
        self.mark_error(row, error, needs_reauth=needs_reauth)
        if not needs_reauth and retry_at is not None:
            row.next_refresh_at = retry_at
        return row

    # -- reading -----------------------------------------------------------------
    def row(self, session: Session, workspace_id: str | None, connection_id: str) -> ConnectionRow:
        row = session.get(ConnectionRow, connection_id)
        if row is None or (workspace_id is not None and row.workspace_id != workspace_id):
            raise NotFound(f"no connection with id {connection_id}")
        return row

    def locked_row(self, session: Session, connection_id: str) -> ConnectionRow | None:
        """The row under a write lock: FOR UPDATE on PostgreSQL; SQLite's BEGIN IMMEDIATE
        already holds the database's write lock for the whole transaction."""
        statement = select(ConnectionRow).where(ConnectionRow.id == connection_id)
        if session.get_bind().dialect.name != "sqlite":
            statement = statement.with_for_update()
        return session.scalars(statement.execution_options(populate_existing=True)).one_or_none()

    def get(self, session: Session, workspace_id: str | None, connection_id: str) -> Connection:
        """The connection, to use: :class:`SecretsUnreadable` when a secret cannot be read."""
        return self.to_domain(self.row(session, workspace_id, connection_id), strict=True)

    def for_profile(self, session: Session, profile_id: str) -> builtins.list[ConnectionRow]:
        return list(
            session.scalars(select(ConnectionRow).where(ConnectionRow.profile_id == profile_id))
        )

    def list(
        self,
        session: Session,
        workspace_id: str,
        profile_id: str | None = None,
        *,
        owner: str | None = None,
        status: ConnectionStatus | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
        visible_to: tuple[str, Collection[str]] | None = None,
    ) -> builtins.list[Connection]:
        """Connections oldest first (then by id), those of ``profile_id``, ``owner`` and
        ``status`` when given, at most ``limit``, starting after the ``(created_at, id)``
        key ``after``: a keyset page, not an OFFSET. ``visible_to`` = ``(user id, profile
        ids)``: only that user's own and the shared ones of those profiles."""
        statement = select(ConnectionRow).where(ConnectionRow.workspace_id == workspace_id)
        if visible_to is not None:
            user_id, profile_ids = visible_to
            statement = statement.where(
                (ConnectionRow.owner == user_id)
                | (
                    (ConnectionRow.owner == SHARED_OWNER)
                    & ConnectionRow.profile_id.in_(builtins.list(profile_ids))
                )
            )
        if profile_id is not None:
            statement = statement.where(ConnectionRow.profile_id == profile_id)
        if owner is not None:
            statement = statement.where(ConnectionRow.owner == owner)
        if status is not None:
            statement = statement.where(ConnectionRow.status == status.value)
        if after is not None:
            statement = statement.where(tuple_(ConnectionRow.created_at, ConnectionRow.id) > after)
        statement = statement.order_by(ConnectionRow.created_at, ConnectionRow.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [self.to_domain(r) for r in session.scalars(statement)]

    def count_by_profile(self, session: Session, workspace_id: str) -> dict[str, int]:
        """How many connections each profile of the workspace has (one grouped count:
        nothing is read or decrypted)."""
        statement = (
            select(ConnectionRow.profile_id, func.count())
            .where(ConnectionRow.workspace_id == workspace_id)
            .group_by(ConnectionRow.profile_id)
        )
        return {profile_id: int(count) for profile_id, count in session.execute(statement)}

    def all_rows(self, session: Session) -> builtins.list[ConnectionRow]:
        return list(session.scalars(select(ConnectionRow).order_by(ConnectionRow.id)))

    def to_domain(self, row: ConnectionRow, *, strict: bool = False) -> Connection:
        """The connection with its secrets decrypted. One that cannot be decrypted comes
        back as an :class:`UnreadableConnection`, so one bad row never breaks a list;
        ``strict`` raises :class:`SecretsUnreadable` instead, for anything that uses it."""
        try:
            return self._decrypted(row)
        except KeyError_ as exc:
            unreadable = SecretsUnreadable.of("connection", row.id, exc)
            if strict:
                raise unreadable from None
        # Shown as needing authorization (never written so): a status nothing refreshes,
        # holding no secret at all.
        shown = self._decrypted(row, lambda _row_id, _field, _value: None)
        return UnreadableConnection(
            **{
                **{f.name: getattr(shown, f.name) for f in dataclass_fields(shown)},
                "status": ConnectionStatus.NEEDS_REAUTH,
                "last_error": unreadable.detail,
            }
        )

    def _decrypted(
        self,
        row: ConnectionRow,
        dec: Callable[[str, str, str | None], str | None] | None = None,
    ) -> Connection:
        dec = dec or self._dec
        access = dec(row.id, "access_token", row.access_token_enc)
        tokens = None
        if access is not None:
            extra = dec(row.id, "extra", row.extra_enc)
            tokens = TokenSet(
                access_token=access,
                token_type=row.token_type or "Bearer",
                refresh_token=dec(row.id, "refresh_token", row.refresh_token_enc),
                expires_at=row.expires_at,
                scopes=tuple(json.loads(row.scopes)) if row.scopes else None,
                extra=json.loads(extra) if extra else {},
            )
        fields = dec(row.id, "fields", row.fields_enc)
        return Connection(
            id=row.id,
            workspace_id=row.workspace_id,
            profile_id=row.profile_id,
            owner=row.owner,
            tenant=row.tenant,
            fields=json.loads(fields) if fields else {},
            status=ConnectionStatus(row.status),
            tokens=tokens,
            username=row.username,
            password=dec(row.id, "password", row.password_enc),
            last_error=row.last_error,
            last_error_at=row.last_error_at,
            refreshed_at=row.refreshed_at,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )

    def reencrypt(self, row: ConnectionRow) -> None:
        """Write the row's secrets again under the keyring's active key. All are decrypted
        first: one that cannot be raises :class:`KeyError_` with the row left as it is."""
        fields = ("fields", "password", "access_token", "refresh_token", "extra")
        plain = {field: self._dec(row.id, field, getattr(row, f"{field}_enc")) for field in fields}
        for field, value in plain.items():
            setattr(row, f"{field}_enc", self._enc(row.id, field, value))

    # -- pending authorizations -----------------------------------------------------
    def add_authorization_request(
        self,
        session: Session,
        *,
        workspace_id: str,
        connection_id: str,
        kind: str,
        state_hash: str,
        secrets: Mapping[str, str],
        redirect_uri: str,
        expires_at: datetime,
        next_poll_at: datetime | None = None,
    ) -> None:
        row_id = str(uuid.uuid4())
        session.add(
            AuthorizationRequestRow(
                id=row_id,
                workspace_id=workspace_id,
                connection_id=connection_id,
                kind=kind,
                state_hash=state_hash,
                secrets_enc=self._encrypt_secrets(row_id, secrets),
                redirect_uri=redirect_uri,
                created_at=self.clock.now(),
                expires_at=expires_at,
                next_poll_at=next_poll_at,
            )
        )

    def _encrypt_secrets(self, row_id: str, secrets: Mapping[str, str]) -> str | None:
        if not secrets:
            return None
        return self.keyring.encrypt(
            json.dumps(dict(secrets)), f"authorization_requests:{row_id}:secrets"
        )

    def authorization_secrets(self, row: AuthorizationRequestRow) -> dict[str, str]:
        """The grant's secrets of a pending authorization, decrypted."""
        try:
            secrets: dict[str, str] = {}
            if row.code_verifier_enc:  # written before pending authorizations had kinds
                secrets["code_verifier"] = self.keyring.decrypt(
                    row.code_verifier_enc, f"authorization_requests:{row.id}:verifier"
                )
            if row.secrets_enc:
                secrets.update(
                    json.loads(
                        self.keyring.decrypt(
                            row.secrets_enc, f"authorization_requests:{row.id}:secrets"
                        )
                    )
                )
        except KeyError_ as exc:
            # Raised inside the caller's transaction: a claim is rolled back with it.
            raise SecretsUnreadable.of("authorization request", row.id, exc) from None
        return secrets

    def claim_authorization_request(
        self, session: Session, state_hash: str
    ) -> tuple[AuthorizationRequestRow | None, dict[str, str], bool]:
        """Mark the request used, atomically. Returns (row, its secrets, claimed_now). A
        polled authorization (a device code) is answered by its polls, never by a
        redirect: it is not found here."""
        row = session.scalars(
            select(AuthorizationRequestRow).where(
                AuthorizationRequestRow.state_hash == state_hash,
                AuthorizationRequestRow.next_poll_at.is_(None),
            )
        ).one_or_none()
        if row is None:
            return None, {}, False
        claimed = self._mark_used(session, row.id)
        return row, self.authorization_secrets(row), claimed

    def _mark_used(self, session: Session, row_id: str) -> bool:
        result = session.execute(
            update(AuthorizationRequestRow)
            .where(AuthorizationRequestRow.id == row_id, AuthorizationRequestRow.used_at.is_(None))
            .values(used_at=self.clock.now())
            .execution_options(synchronize_session=False)
        )
        return getattr(result, "rowcount", 0) == 1

    # -- polled pending authorizations (the device code grant) --------------------------
    def due_polls(
        self, session: Session, now: datetime, limit: int = 100
    ) -> builtins.list[tuple[str, datetime]]:
        """``(id, next_poll_at)`` of unanswered polled authorizations whose time to ask
        came, soonest first."""
        rows = session.execute(
            select(AuthorizationRequestRow.id, AuthorizationRequestRow.next_poll_at)
            .where(
                AuthorizationRequestRow.next_poll_at.is_not(None),
                AuthorizationRequestRow.next_poll_at <= now,
                AuthorizationRequestRow.used_at.is_(None),
            )
            .order_by(AuthorizationRequestRow.next_poll_at)
            .limit(limit)
        )
        return [(row_id, at) for row_id, at in rows if at is not None]

    def claim_poll(
        self, session: Session, row_id: str, *, seen: datetime, until: datetime
    ) -> AuthorizationRequestRow | None:
        """Take the next poll of one authorization: one conditional UPDATE moves its
        ``next_poll_at`` from ``seen`` to ``until`` (a lease: a worker that dies leaves
        it to be polled again then). None when another worker took it."""
        result = session.execute(
            update(AuthorizationRequestRow)
            .where(
                AuthorizationRequestRow.id == row_id,
                AuthorizationRequestRow.next_poll_at == seen,
                AuthorizationRequestRow.used_at.is_(None),
            )
            .values(next_poll_at=until)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) != 1:
            return None
        return session.get(AuthorizationRequestRow, row_id)

    def schedule_poll(
        self,
        session: Session,
        row_id: str,
        *,
        at: datetime,
        secrets: Mapping[str, str] | None = None,
    ) -> None:
        values: dict[str, object] = {"next_poll_at": at}
        if secrets is not None:
            values["secrets_enc"] = self._encrypt_secrets(row_id, secrets)
            values["code_verifier_enc"] = None
        session.execute(
            update(AuthorizationRequestRow)
            .where(AuthorizationRequestRow.id == row_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )

    def finish_poll(self, session: Session, row_id: str) -> bool:
        """Mark a polled authorization answered; False when it was already."""
        return self._mark_used(session, row_id)

    def supersede_authorization_requests(self, session: Session, connection_id: str) -> None:
        """Forget the connection's authorizations not yet answered: a newer one replaces
        them, and only its link completes it."""
        session.execute(
            delete(AuthorizationRequestRow)
            .where(
                AuthorizationRequestRow.connection_id == connection_id,
                AuthorizationRequestRow.used_at.is_(None),
            )
            .execution_options(synchronize_session=False)
        )

    def expire_authorizations(
        self, session: Session, *, before: datetime, connection_id: str | None = None
    ) -> builtins.list[str]:
        """Clean up authorizations that ended before ``before``: delete each connection
        that never held a token, ``pending`` (abandoned) or ``needs_reauth`` (denied, kept
        until then so its owner could see why), with no authorization left that ends
        later; then every authorization request that ended. Only ``connection_id``'s when
        given. Returns the ids of the connections deleted."""
        live = exists().where(
            AuthorizationRequestRow.connection_id == ConnectionRow.id,
            AuthorizationRequestRow.expires_at >= before,
        )
        abandoned = (
            ConnectionRow.status.in_(
                [ConnectionStatus.PENDING.value, ConnectionStatus.NEEDS_REAUTH.value]
            ),
            ConnectionRow.access_token_enc.is_(None),
            ~live,
        )
        ended = delete(AuthorizationRequestRow).where(AuthorizationRequestRow.expires_at < before)
        found = select(ConnectionRow.id).where(*abandoned)
        if connection_id is not None:
            found = found.where(ConnectionRow.id == connection_id)
            ended = ended.where(AuthorizationRequestRow.connection_id == connection_id)
        ids = builtins.list(session.scalars(found))
        if ids:
            # Checked again as they go: a callback or a new authorization may have come
            # meanwhile. Their requests go with them (ON DELETE CASCADE).
            session.execute(
                delete(ConnectionRow)
                .where(ConnectionRow.id.in_(ids), *abandoned)
                .execution_options(synchronize_session=False)
            )
        session.execute(ended.execution_options(synchronize_session=False))
        return ids

    def all_authorization_requests(
        self, session: Session
    ) -> builtins.list[AuthorizationRequestRow]:
        return list(session.scalars(select(AuthorizationRequestRow)))

    def reencrypt_authorization_request(self, row: AuthorizationRequestRow) -> None:
        for column, name in (("code_verifier_enc", "verifier"), ("secrets_enc", "secrets")):
            value = getattr(row, column)
            if value:
                context = f"authorization_requests:{row.id}:{name}"
                setattr(
                    row, column, self.keyring.encrypt(self.keyring.decrypt(value, context), context)
                )
