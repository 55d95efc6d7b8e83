"""Wiring: one object holding the database, the keys, the engines and the use cases."""

from __future__ import annotations

from authprofiles.core.ports import Clock, SystemClock
from authprofiles.oauth.grants import OAuthEngine
from authprofiles.oauth.transport import Transports
from authprofiles.services.access import RolePolicy
from authprofiles.services.api_keys import ApiKeys
from authprofiles.services.connections import ConnectionService
from authprofiles.services.profiles import ProfileService
from authprofiles.services.proxy import ProxyService
from authprofiles.services.testing import ProfileTestService
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
        self.connection_store = ConnectionStore(self.keyring)
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
        self.policy = RolePolicy()
        self.api_keys = ApiKeys(self.db)
        self.profiles = ProfileService(self)
        self.connections = ConnectionService(self)
        self.tokens = TokenService(self)
        self.proxy, self.profile_tests = ProxyService(self), ProfileTestService(self)

    def watch_keyring(self) -> KeyringWatcher | None:
        """Start following key rotations in a thread, with a heartbeat `keys rotate` waits
        on (a server worker does this; see the app's lifespan). Stop it with ``stop()``."""
        if not isinstance(self.keyring, LiveKeyring):
            return None
        return KeyringWatcher(self.keyring, self.db).start()

    def close(self) -> None:
        self.transports.close()
        self.db.dispose()
