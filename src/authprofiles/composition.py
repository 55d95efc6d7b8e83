"""The composition root: the one place the real adapters (database, keys, HTTP clients,
the aiohttp forwarder) are built and handed to the use cases through their constructors.
The app, the CLI and the tests build their services here."""

from __future__ import annotations

from authprofiles.core.ports import (
    AuditTrail,
    Clock,
    DiscardAudit,
    DiscardNotices,
    Notifier,
    SystemClock,
)
from authprofiles.forwarding import AiohttpForwarder
from authprofiles.oauth.grants import OAuthEngine
from authprofiles.oauth.recording import RecordingHttpClient
from authprofiles.oauth.transport import Transports
from authprofiles.services.access import RolePolicy
from authprofiles.services.api_keys import ApiKeys
from authprofiles.services.connections import ConnectionService
from authprofiles.services.profile_test import ProfileTestService
from authprofiles.services.profiles import ProfileService
from authprofiles.services.proxy import ProxyService
from authprofiles.services.token_issuing import TokenIssuing
from authprofiles.services.tokens import TokenService
from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.db import Database
from authprofiles.store.keys import KeyringWatcher, LiveKeyring
from authprofiles.store.profiles import ProfileStore
from authprofiles.store.reads import CredentialReader


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        db: Database | None = None,
        keyring: Keyring | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.settings = settings
        self.db = db or Database(settings.database_url)
        # Live: it follows `keys rotate` while the process runs (see store/keys).
        self.keyring = keyring or LiveKeyring(settings)
        if isinstance(self.keyring, LiveKeyring):
            self.keyring.attach(self.db.engine)
        self.clock = clock or SystemClock()
        self.profile_store = ProfileStore(self.keyring)
        self.connection_store = ConnectionStore(self.keyring, self.clock)
        self.credentials = CredentialReader(
            self.db.engine, self.connection_store, self.profile_store
        )
        self.transports = Transports(timeout=settings.http_timeout_seconds)
        self.oauth = OAuthEngine(
            self.transports,
            retries=settings.idp_retries,
            backoff_seconds=settings.idp_backoff_seconds,
            deadline_seconds=settings.idp_deadline_seconds,
            clock=self.clock,
        )
        # The audit log and the notifier: every use case that changes something tells them.
        self.audit: AuditTrail = DiscardAudit()  # HELPER B replaces this line
        self.notifier: Notifier = DiscardNotices()  # HELPER A replaces this line
        self.policy = RolePolicy()
        self.api_keys = ApiKeys(self.db)
        self.tokens = TokenService(
            settings=settings,
            db=self.db,
            connection_store=self.connection_store,
            profile_store=self.profile_store,
            credentials=self.credentials,
            oauth=self.oauth,
            policy=self.policy,
            clock=self.clock,
        )
        # The worker's memory of the tokens it handed out, in front of the token service:
        # the hot paths read through it, and the services that change tokens tell it.
        self.token_issuing = TokenIssuing(self.tokens, self.policy, self.clock, settings)
        self.profiles = ProfileService(
            settings=settings,
            db=self.db,
            profile_store=self.profile_store,
            connection_store=self.connection_store,
            oauth=self.oauth,
            token_cache=self.token_issuing,
        )
        self.connections = ConnectionService(
            settings=settings,
            db=self.db,
            connection_store=self.connection_store,
            profile_store=self.profile_store,
            oauth=self.oauth,
            clock=self.clock,
            token_cache=self.token_issuing,
        )
        self.proxy = ProxyService(
            tokens=self.token_issuing,
            connections=self.credentials,
            policy=self.policy,
            forwarder=AiohttpForwarder(self.transports.upstream),
        )
        self.profile_tests = ProfileTestService(
            profiles=self.profiles,
            policy=self.policy,
            clock=self.clock,
            # No retries: a test shows the first answer, not the last of several.
            engine_for=lambda hooks: OAuthEngine(
                self.transports,
                retries=0,
                clock=self.clock,
                event_hooks=hooks,
                issuer_metadata=self.oauth.issuer_metadata,
            ),
            recording_client=lambda: RecordingHttpClient(self.transports),
            callback_url=settings.callback_url,
        )

    def watch_keyring(self) -> KeyringWatcher | None:
        """Start following key rotations in a thread, with a heartbeat `keys rotate` waits
        on (a server worker does this; see the app's lifespan). Stop it with ``stop()``."""
        if not isinstance(self.keyring, LiveKeyring):
            return None
        return KeyringWatcher(self.keyring, self.db).start()

    def close(self) -> None:
        self.transports.close()
        self.db.dispose()
