"""Profiles in and out of the database, encrypting secrets at the boundary."""

from __future__ import annotations

import builtins
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, tuple_, update
from sqlalchemy.orm import Session

from authprofiles.core.errors import NotFound
from authprofiles.core.profiles import (
    AdditionalField,
    AuthorizationField,
    AuthType,
    Profile,
    ProfileDefinition,
    ProfileStatus,
)
from authprofiles.core.validation import missing_fields
from authprofiles.store.cipher import KeyError_, Keyring, SecretsUnreadable
from authprofiles.store.models import ProfileRow, utcnow

# Stored in their own columns, or derived; everything else goes to the JSON ``config``.
_COLUMN_FIELDS = {
    "name",
    "auth_type",
    "identity_provider",
    "client_secret",
    "private_key",
    "password",
}


@dataclass(frozen=True)
class ProfileSummary:
    id: str
    name: str
    auth_type: AuthType
    identity_provider: str | None
    status: ProfileStatus


def _context(row_id: str, field: str) -> str:
    return f"profiles:{row_id}:{field}"


class UnreadableProfile(Profile):
    """A stored profile with a secret this process cannot decrypt (its master key is not
    loaded, or the value is damaged). Lists show it, ``failing`` with a reason that names
    the key it needs; its secret values are empty, and whatever would use it gets
    :class:`SecretsUnreadable` instead (``ProfileStore.get``)."""

    @property
    def status(self) -> ProfileStatus:
        return ProfileStatus.FAILING


class ProfileStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    # -- writing -----------------------------------------------------------------
    def add(self, session: Session, workspace_id: str, definition: ProfileDefinition) -> Profile:
        now = utcnow()
        row = ProfileRow(id=str(uuid.uuid4()), workspace_id=workspace_id, created_at=now)
        self._fill(row, definition)
        row.updated_at = now
        session.add(row)
        session.flush()
        return self.to_domain(row)

    def replace(self, session: Session, profile: Profile, definition: ProfileDefinition) -> Profile:
        row = self._row(session, profile.workspace_id, profile.id)
        self._fill(row, definition)
        row.updated_at = utcnow()
        session.flush()
        return self.to_domain(row)

    def set_failing(self, session: Session, profile_id: str, reason: str | None) -> bool:
        """Mark the profile failing (``reason``) or working again (None). True when this
        changed whether it fails: an incident opened or closed. Decided by one conditional
        UPDATE, so of several writers racing only one sees the change (one notice)."""
        row = ProfileRow.failing_reason
        this = update(ProfileRow).where(ProfileRow.id == profile_id)
        this = this.execution_options(synchronize_session=False)
        if reason is None:
            closed = session.execute(this.where(row.is_not(None)).values(failing_reason=None))
            return bool(getattr(closed, "rowcount", 0))
        opened = session.execute(this.where(row.is_(None)).values(failing_reason=reason))
        if getattr(opened, "rowcount", 0):
            return True
        # Failing already: the reason may have changed, the incident has not.
        session.execute(this.values(failing_reason=reason))
        return False

    def name_of(self, session: Session, workspace_id: str, profile_id: str) -> str:
        """The profile's name; :class:`NotFound` outside ``workspace_id``."""
        name = session.scalar(
            select(ProfileRow.name).where(
                ProfileRow.id == profile_id, ProfileRow.workspace_id == workspace_id
            )
        )
        if name is None:
            raise NotFound(f"no profile with id {profile_id}")
        return name

    def delete(self, session: Session, profile: Profile) -> None:
        session.delete(self._row(session, profile.workspace_id, profile.id))
        session.flush()

    def _fill(self, row: ProfileRow, definition: ProfileDefinition) -> None:
        enc = self.keyring.encrypt
        row.name = definition.name
        row.auth_type = definition.auth_type.value
        row.identity_provider = definition.identity_provider
        row.client_secret_enc = (
            enc(definition.client_secret, _context(row.id, "client_secret"))
            if definition.client_secret
            else None
        )
        row.private_key_enc = (
            enc(definition.private_key, _context(row.id, "private_key"))
            if definition.private_key
            else None
        )
        row.password_enc = (
            enc(definition.password, _context(row.id, "password")) if definition.password else None
        )
        config: dict[str, Any] = definition.model_dump(mode="json", exclude=_COLUMN_FIELDS)
        config["additional_fields"] = [
            {"key": f.key, "value_enc": enc(f.value, _context(row.id, f"additional:{f.key}"))}
            for f in definition.additional_fields
        ]
        config["authorization_fields"] = [
            {
                "type": f.type.value,
                "key": f.key,
                "value_enc": (
                    enc(f.value, _context(row.id, f"authorization:{f.type.value}:{f.key}"))
                    if f.value is not None
                    else None
                ),
            }
            for f in definition.authorization_fields
        ]
        row.config = json.dumps(config, sort_keys=True)

    # -- reading -----------------------------------------------------------------
    def _row(
        self, session: Session, workspace_id: str, profile_id: str, *, lock: bool = False
    ) -> ProfileRow:
        # ``lock``: FOR UPDATE on PostgreSQL, so two edits of one profile take turns
        # instead of one overwriting what the other read (SQLite's writer locks it all).
        row = session.get(ProfileRow, profile_id, with_for_update=lock or None)
        if row is None or row.workspace_id != workspace_id:
            raise NotFound(f"no profile with id {profile_id}")
        return row

    def get(
        self,
        session: Session,
        workspace_id: str,
        profile_id: str,
        *,
        lock: bool = False,
        strict: bool = True,
    ) -> Profile:
        """The profile, to use: :class:`SecretsUnreadable` when a secret cannot be read
        (``strict=False``: an :class:`UnreadableProfile` instead, to show or delete)."""
        return self.to_domain(
            self._row(session, workspace_id, profile_id, lock=lock), strict=strict
        )

    def find_by_name(self, session: Session, workspace_id: str, name: str) -> Profile | None:
        row = session.scalars(
            select(ProfileRow).where(
                ProfileRow.workspace_id == workspace_id, ProfileRow.name == name
            )
        ).one_or_none()
        return None if row is None else self.to_domain(row, strict=True)

    def name_taken(self, session: Session, workspace_id: str, name: str) -> bool:
        found = session.scalar(
            select(ProfileRow.id).where(
                ProfileRow.workspace_id == workspace_id, ProfileRow.name == name
            )
        )
        return found is not None

    def list(
        self,
        session: Session,
        workspace_id: str,
        *,
        name: str | None = None,
        after: tuple[str, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[Profile]:
        """The workspace's profiles by name (then id), only those named ``name`` when given,
        at most ``limit``, starting after the ``(name, id)`` key ``after``: a keyset page,
        as cheap on the thousandth page as on the first (OFFSET would count its way there)."""
        statement = select(ProfileRow).where(ProfileRow.workspace_id == workspace_id)
        if name is not None:
            statement = statement.where(ProfileRow.name == name)
        if after is not None:
            statement = statement.where(tuple_(ProfileRow.name, ProfileRow.id) > after)
        statement = statement.order_by(ProfileRow.name, ProfileRow.id)
        if limit is not None:
            statement = statement.limit(limit)
        return [self.to_domain(row) for row in session.scalars(statement)]

    def summaries(self, session: Session, workspace_id: str) -> builtins.list[ProfileSummary]:
        out = []
        for profile in self.list(session, workspace_id):
            out.append(
                ProfileSummary(
                    id=profile.id,
                    name=profile.name,
                    auth_type=profile.auth_type,
                    identity_provider=profile.identity_provider,
                    status=profile.status,
                )
            )
        return out

    def all_rows(self, session: Session) -> builtins.list[ProfileRow]:
        return list(session.scalars(select(ProfileRow).order_by(ProfileRow.id)))

    def to_domain(self, row: ProfileRow, *, strict: bool = False) -> Profile:
        """The profile with its secrets decrypted. One that cannot be decrypted comes back
        as an :class:`UnreadableProfile`, so one bad row never breaks a list; ``strict``
        raises :class:`SecretsUnreadable` instead, for anything that uses the secrets."""
        try:
            return self._decrypted(row, self.keyring.decrypt)
        except KeyError_ as exc:
            unreadable = SecretsUnreadable.of("profile", row.id, exc)
            if strict:
                raise unreadable from None
        # Every secret stands in as set but empty: the profile is shown, never used.
        shown = self._decrypted(row, lambda _token, _context: "")
        return UnreadableProfile.model_validate(
            {**shown.model_dump(), "failing_reason": unreadable.detail}
        )

    def _decrypted(self, row: ProfileRow, dec: Callable[[str, str], str]) -> Profile:
        config = json.loads(row.config)
        additional = [
            AdditionalField(
                key=item["key"],
                value=dec(item["value_enc"], _context(row.id, f"additional:{item['key']}")),
            )
            for item in config.pop("additional_fields", [])
        ]
        authorization = [
            AuthorizationField(
                type=item["type"],
                key=item["key"],
                value=(
                    dec(
                        item["value_enc"],
                        _context(row.id, f"authorization:{item['type']}:{item['key']}"),
                    )
                    if item.get("value_enc")
                    else None
                ),
            )
            for item in config.pop("authorization_fields", [])
        ]
        return Profile.model_validate(
            {
                **config,
                "id": row.id,
                "workspace_id": row.workspace_id,
                "name": row.name,
                "auth_type": row.auth_type,
                "identity_provider": row.identity_provider,
                "client_secret": (
                    dec(row.client_secret_enc, _context(row.id, "client_secret"))
                    if row.client_secret_enc
                    else None
                ),
                "private_key": (
                    dec(row.private_key_enc, _context(row.id, "private_key"))
                    if row.private_key_enc
                    else None
                ),
                "password": (
                    dec(row.password_enc, _context(row.id, "password"))
                    if row.password_enc
                    else None
                ),
                "additional_fields": additional,
                "authorization_fields": authorization,
                "failing_reason": row.failing_reason,
                "created_at": row.created_at,
                "updated_at": row.updated_at,
            }
        )

    def reencrypt(self, row: ProfileRow) -> None:
        """Write the row's secrets again under the keyring's active key. A secret that
        cannot be decrypted raises :class:`KeyError_`, and the row is left as it is."""
        profile = self._decrypted(row, self.keyring.decrypt)
        self._fill(row, profile.definition())


__all__ = ["ProfileStore", "ProfileSummary", "UnreadableProfile", "missing_fields"]
