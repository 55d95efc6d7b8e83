"""The composition root: the one place the real adapters (database, keys, HTTP clients,
the aiohttp forwarder) are built and handed to the use cases through their constructors.
The app, the CLI and the tests build their services here."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from authprofiles.core.agent_grants import AgentCall
from authprofiles.core.audit import Action, Actor, AuditEntry, DetailValue, Target
from authprofiles.core.callers import Principal
from authprofiles.core.ports import (
    AuditTrail,
    Clock,
    Notifier,
    SystemClock,
)
from authprofiles.core.renewal import RenewalSchedule
from authprofiles.forwarding import AiohttpForwarder
from authprofiles.notify.addresses import resolve
from authprofiles.notify.smtp import smtp_sender
from authprofiles.notify.webhooks import HttpxWebhookPoster
from authprofiles.oauth.grants import OAuthEngine
from authprofiles.oauth.oidc_signin import OidcSignIn
from authprofiles.oauth.recording import RecordingHttpClient
from authprofiles.oauth.transport import Transports
from authprofiles.services.access import AccessIndex, RolePolicy
from authprofiles.services.agent_grants import AgentGrants
from authprofiles.services.api_keys import ApiKeys
from authprofiles.services.approvals import Approvals
from authprofiles.services.audit import AuditBuffer, AuditLog, TokenIssueCounter
from authprofiles.services.connections import ConnectionService
from authprofiles.services.incidents import Incidents
from authprofiles.services.notifications import (
    DeliveryWorker,
    EmailPreferences,
    OutboxNotifier,
    WebhookService,
)
from authprofiles.services.people import PeopleService
from authprofiles.services.profile_test import ProfileTestService
from authprofiles.services.profiles import ProfileService
from authprofiles.services.proxy import ProxyService
from authprofiles.services.signin import Sessions, SignInService
from authprofiles.services.token_issuing import TokenIssuing
from authprofiles.services.tokens import TokenService
from authprofiles.settings import Settings
from authprofiles.store.cipher import Keyring
from authprofiles.store.connections import ConnectionStore
from authprofiles.store.db import Database
from authprofiles.store.keys import KeyringWatcher, LiveKeyring
from authprofiles.store.outbox import OutboxStore
from authprofiles.store.people import UserStore
from authprofiles.store.profiles import ProfileStore
from authprofiles.store.reads import CredentialReader
from authprofiles.store.sessions import SignInRequestStore
from authprofiles.store.webhooks import WebhookStore


class AgentGate:
    """The agent services as the proxy reaches them (``services.proxy.agents.AgentGate``)."""

    def __init__(
        self,
        grants: AgentGrants,
        approvals: Approvals,
        calls: AuditBuffer[tuple[Principal, AgentCall, float]],
    ) -> None:
        self.grant_in_memory = grants.grant_in_memory
        self.grant_of = grants.grant_of
        self.reserve_call = grants.reserve_call
        self.refund_call = grants.refund_call
        self.pass_or_hold = approvals.pass_or_hold
        self.approval_status = approvals.status_of
        self.restore_approval = approvals.restore
        self._calls = calls

    def record_call(self, principal: Principal, call: AgentCall) -> None:
        # On the caller's path: a tuple now, its audit entry when the buffer is written.
        self._calls.add((principal, call, time.time()))


def agent_call_entry(item: tuple[Principal, AgentCall, float]) -> AuditEntry:
    """An agent's call as its audit entry: ``agent.called`` or ``agent.refused``."""
    principal, call, at = item
    detail: dict[str, DetailValue] = {
        "method": call.method,
        "path": call.path[:500],
        "outcome": call.outcome,
    }
    if call.status is not None:
        detail["status"] = call.status
    return AuditEntry(
        workspace_id=principal.workspace_id,
        action=Action.AGENT_CALLED if call.sent else Action.AGENT_REFUSED,
        actor=Actor.of(principal),
        target=Target("connection", call.connection_id),
        address=principal.address,
        detail=detail,
        at=datetime.fromtimestamp(at, UTC),
    )


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
        self.connection_store = ConnectionStore(
            self.keyring,
            self.clock,
            RenewalSchedule(
                lead_seconds=settings.background_refresh_lead_seconds
                + settings.refresh_skew_seconds,
                jitter=settings.background_refresh_jitter,
            ),
        )
        self.credentials = CredentialReader(
            self.db.engine,
            self.connection_store,
            self.profile_store,
            async_reads=self.db.async_reads,
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
        self.audit_log = AuditLog(self.db)
        self.audit: AuditTrail = self.audit_log
        # Tokens handed out, counted per connection, caller and minute (not a write each);
        # the app's lifespan flushes it (see services.audit).
        self.token_counter = TokenIssueCounter(self.audit_log)
        self.notifier: Notifier = OutboxNotifier(
            settings,
            users=UserStore(),
            webhooks=WebhookStore(self.keyring),
            outbox=OutboxStore(),
            clock=self.clock,
        )
        # Who was invited to which profile, as the policy reads it (each worker keeps it
        # a few seconds per user; the people service tells it of every change).
        self.access_index = AccessIndex(lambda ws, user: self.people.usable_profiles(ws, user))
        self.policy = RolePolicy(self.access_index)
        self.api_keys = ApiKeys(self.db, self.audit)
        self.people = PeopleService(
            db=self.db,
            profile_store=self.profile_store,
            audit=self.audit,
            notifier=self.notifier,
            clock=self.clock,
            on_access_changed=self.access_index.invalidate,
            on_user_changed=self.api_keys.forget_user,
        )
        self.incidents = Incidents(self.profile_store, self.notifier, self.audit)
        self.tokens = TokenService(
            settings=settings,
            db=self.db,
            connection_store=self.connection_store,
            profile_store=self.profile_store,
            credentials=self.credentials,
            oauth=self.oauth,
            policy=self.policy,
            clock=self.clock,
            incidents=self.incidents,
        )
        # The worker's memory of the tokens it handed out, in front of the token service:
        # the hot paths read through it, and the services that change tokens tell it.
        self.token_issuing = TokenIssuing(
            self.tokens,
            self.policy,
            self.clock,
            settings,
            count_issued=self.token_counter.count,
            read_current=self.tokens.current_token,
        )
        self.profiles = ProfileService(
            settings=settings,
            db=self.db,
            profile_store=self.profile_store,
            connection_store=self.connection_store,
            oauth=self.oauth,
            token_cache=self.token_issuing,
            audit=self.audit,
        )
        self.connections = ConnectionService(
            settings=settings,
            db=self.db,
            connection_store=self.connection_store,
            profile_store=self.profile_store,
            oauth=self.oauth,
            clock=self.clock,
            token_cache=self.token_issuing,
            policy=self.policy,
            incidents=self.incidents,
            audit=self.audit,
        )
        # Agents: grants that work only through the proxy (and /mcp), calls a person
        # approves first, and every call of theirs in the audit log (written in batches).
        self.agent_grants = AgentGrants(
            db=self.db,
            clock=self.clock,
            audit=self.audit,
            policy=self.policy,
            connections=self.credentials,
            access_token_seconds=settings.agent_access_token_seconds,
        )
        self.approvals = Approvals(
            db=self.db,
            clock=self.clock,
            audit=self.audit,
            notifier=self.notifier,
            ttl_seconds=settings.approval_ttl_seconds,
            approval_url=lambda approval_id: (
                f"{settings.public_base_url}/console/approvals/{approval_id}"
            ),
        )
        self.agent_calls = AuditBuffer(self.audit_log, agent_call_entry)
        self.proxy = ProxyService(
            tokens=self.token_issuing,
            connections=self.credentials,
            policy=self.policy,
            forwarder=AiohttpForwarder(self.transports.upstream),
            agents=AgentGate(self.agent_grants, self.approvals, self.agent_calls),
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
            audit=self.audit,
        )
        # People signing in: sessions, password and single sign-on, reset links (HELPER C).
        self.sessions = Sessions(settings, self.db, self.clock)
        self.signin = SignInService(
            settings=settings,
            db=self.db,
            sessions=self.sessions,
            requests=SignInRequestStore(self.keyring),
            oidc=OidcSignIn(self.transports),
            audit=self.audit,
            clock=self.clock,
        )
        # Notifications (HELPER A): webhooks, each person's email choices, and the worker
        # that sends what the notifier put in the outbox (run by the app's lifespan).
        self.webhooks = WebhookService(
            db=self.db,
            store=WebhookStore(self.keyring),
            outbox=OutboxStore(),
            audit=self.audit,
            resolver=resolve,
            allow_private=settings.webhook_allow_private,
        )
        self.notification_preferences = EmailPreferences(db=self.db, users=UserStore())
        self.deliveries = DeliveryWorker(
            db=self.db,
            outbox=OutboxStore(),
            webhooks=WebhookStore(self.keyring),
            poster=HttpxWebhookPoster(allow_private=settings.webhook_allow_private),
            email=smtp_sender(settings),
            retry_seconds=settings.notification_retry_seconds,
            clock=self.clock,
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
