"""Webhook endpoints in and out of the database, each signing secret encrypted.

The secret is stored encrypted (not hashed, as API keys are): the server needs it back
to sign every delivery. Its ciphertext is bound to the row (``webhooks:<id>:secret``),
and `keys rotate` re-encrypts it with the rest (:mod:`authprofiles.store.rotation`).
"""

from __future__ import annotations

import builtins
import uuid
from collections.abc import Sequence
from datetime import datetime

from authprofiles.store.cipher import KeyError_, Keyring, SecretsUnreadable
from authprofiles.store.db import UnitOfWork
from authprofiles.store.models import WebhookRow, utcnow
from authprofiles.store.paging import oldest_first


def _context(row_id: str) -> str:
    return f"webhooks:{row_id}:secret"


class WebhookStore:
    def __init__(self, keyring: Keyring) -> None:
        self.keyring = keyring

    def add(
        self,
        session: UnitOfWork,
        *,
        workspace_id: str,
        url: str,
        events: Sequence[str],
        secret: str,
    ) -> WebhookRow:
        row = WebhookRow(
            id=str(uuid.uuid4()),
            workspace_id=workspace_id,
            url=url,
            events=" ".join(events),
            created_at=utcnow(),
        )
        row.secret_enc = self.keyring.encrypt(secret, _context(row.id))
        session.add(row)
        session.flush()
        return row

    def get(
        self, session: UnitOfWork, workspace_id: str | None, webhook_id: str
    ) -> WebhookRow | None:
        """The webhook of that id in ``workspace_id`` (None: in any workspace)."""
        row = session.get(WebhookRow, webhook_id)
        if row is None or (workspace_id is not None and row.workspace_id != workspace_id):
            return None
        return row

    def page(
        self,
        session: UnitOfWork,
        workspace_id: str,
        *,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> builtins.list[WebhookRow]:
        """Oldest first (then by id): a keyset page after ``(created_at, id)``."""
        return oldest_first(
            session, WebhookRow, WebhookRow.workspace_id == workspace_id, after=after, limit=limit
        )

    def subscribed(
        self, session: UnitOfWork, workspace_id: str, event: str
    ) -> builtins.list[WebhookRow]:
        """The workspace's webhooks subscribed to ``event``, oldest first. A workspace
        has a handful: they are filtered here rather than by a pattern in SQL."""
        rows = self.page(session, workspace_id)
        return [row for row in rows if event in row.events.split()]

    def delete(self, session: UnitOfWork, row: WebhookRow) -> None:
        """Forget the webhook; its deliveries, sent or not, go with it (the outbox's
        rows reference it ``ON DELETE CASCADE``)."""
        session.delete(row)
        session.flush()

    def secret(self, row: WebhookRow) -> str:
        """The signing secret; :class:`SecretsUnreadable` when this server cannot
        decrypt it."""
        try:
            return self.keyring.decrypt(row.secret_enc, _context(row.id))
        except KeyError_ as exc:
            raise SecretsUnreadable.of("webhook", row.id, exc) from None

    def reencrypt(self, row: WebhookRow) -> None:
        """Write the secret again under the keyring's active key (`keys rotate`); raises
        :class:`KeyError_` with the row left as it is when it cannot be decrypted."""
        context = _context(row.id)
        row.secret_enc = self.keyring.encrypt(
            self.keyring.decrypt(row.secret_enc, context), context
        )


__all__ = ["WebhookStore"]
