"""Connection use cases: authorize (every grant) and authorize again, complete the
callback, read, list, disconnect, and clean up authorizations nobody finished."""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from authprofiles.core.audit import SYSTEM, Action, Actor, AuditEntry, Target
from authprofiles.core.connections import SHARED_OWNER, Connection, ConnectionStatus
from authprofiles.core.errors import FieldError, Forbidden, NotFound, ValidationFailed
from authprofiles.core.ports import AuditTrail, Clock, TokenCache
from authprofiles.core.profiles import FieldLocation, Profile, form_values_of
from authprofiles.core.validation import check_use_input
from authprofiles.oauth.engine import ClientSettings, OAuthEngine
from authprofiles.oauth.errors import GrantRefused, IssuerMismatch, OAuthFailure
from authprofiles.oauth.grants import (
    Grant,
    GrantInput,
    NextStep,
    Obtained,
    Pending,
    PendingAuthorization,
    StillPending,
    grant_for,
)
from authprofiles.services.access import Principal, Role, RolePolicy, require_role
from authprofiles.services.errors import from_oauth, refuses_client
from authprofiles.services.incidents import Incidents
from authprofiles.services.oauth_settings import (
    client_settings,
    connection_settings,
    require_configured,
)
from authprofiles.services.revocation import RevocationReport, revoke_connection

if TYPE_CHECKING:
    from authprofiles.settings import Settings
    from authprofiles.store.connections import ConnectionStore
    from authprofiles.store.db import Database, UnitOfWork
    from authprofiles.store.profiles import ProfileStore

log = logging.getLogger("authprofiles.connections")


class ConnectionRequest(BaseModel):
    """Body of ``POST /profiles/{id}/connections``."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    owner: str = Field(
        default=SHARED_OWNER,
        min_length=1,
        max_length=200,
        description="`shared` (default), or the user id the connection belongs to",
        examples=["shared"],
    )
    tenant: str | None = Field(
        default=None, description="Needed when the profile has tenancy", examples=["acme"]
    )
    fields: dict[str, str] = Field(
        default_factory=dict,
        description="Values of the profile's form fields (and of authorization fields "
        "without a stored value)",
        examples=[{"region": "eu"}],
    )
    username: str | None = Field(
        default=None,
        max_length=255,
        description="Password grant: the resource owner's username",
        examples=["alice"],
    )
    password: str | None = Field(
        default=None,
        max_length=1024,
        description="Password grant: write-only",
        examples=["correct horse battery staple"],
    )


class ReauthorizeRequest(BaseModel):
    """Body of ``POST /connections/{id}/reauthorize``, all optional: the password grant's
    credentials (needed in user mode, where none are kept; in preauthorized mode they
    replace the ones the connection keeps). The tenant and field values stay."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Password grant only: the resource owner's username",
        examples=["alice"],
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Password grant only; write-only",
        examples=["correct horse battery staple"],
    )


class ConnectionPatch(BaseModel):
    """Body of ``PATCH /connections/{id}``: new stored credentials of a preauthorized
    password connection, or new values of the connection's fields. All write-only."""

    model_config = ConfigDict(extra="forbid")

    username: str | None = Field(
        default=None,
        min_length=1,
        max_length=255,
        description="Preauthorized password grant: the username it logs in with",
        examples=["svc-reports"],
    )
    password: str | None = Field(
        default=None,
        min_length=1,
        max_length=1024,
        description="Preauthorized password grant: its password; write-only",
        examples=["correct horse battery staple"],
    )
    fields: dict[str, str] | None = Field(
        default=None,
        description="Values of the profile's form fields (and of its authorization fields "
        "left without a value) for this connection; those named replace the ones kept",
        examples=[{"account_id": "acme-42"}],
    )


@dataclass(frozen=True)
class StartedConnection:
    connection: Connection
    #: For a grant a person finishes: what they do next (a link to follow, a code to type).
    next_step: NextStep | None = None


@dataclass(frozen=True)
class CallbackOutcome:
    ok: bool
    title: str
    message: str
    status_code: int = 200
    connection_id: str | None = None


def hash_state(state: str) -> str:
    return hashlib.sha256(state.encode()).hexdigest()


class ConnectionService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        connection_store: ConnectionStore,
        profile_store: ProfileStore,
        oauth: OAuthEngine,
        clock: Clock,
        token_cache: TokenCache,
        policy: RolePolicy,
        incidents: Incidents,
        audit: AuditTrail,
    ) -> None:
        self.settings = settings
        self.policy = policy
        self.incidents = incidents
        self.audit = audit
        self.db = db
        self.connection_store = connection_store
        self.profile_store = profile_store
        self.oauth = oauth
        self.clock = clock
        #: Told when a connection's tokens change or go, so no worker serves old ones.
        self.token_cache = token_cache

    # -- start ------------------------------------------------------------------------
    def create(
        self, principal: Principal, profile_id: str, request: ConnectionRequest
    ) -> StartedConnection:
        profile = self._configured(principal.workspace_id, profile_id)
        self.policy.may_create_connection(principal, profile.id, request.owner)
        grant = grant_for(profile.auth_type)
        tenant, errors = check_use_input(profile, request.tenant, request.fields)
        given, more = grant.check_input(
            profile,
            GrantInput(
                username=request.username,
                password=request.password,
                form_values=form_values_of(profile, request.fields),
            ),
        )
        # Named with the rest: one answer lists everything the request lacks.
        if errors + more:
            raise ValidationFailed(errors + more)
        shared = request.owner == SHARED_OWNER
        settings = client_settings(
            profile, tenant=tenant, fields=request.fields, redirect_uri=self.settings.callback_url
        )
        outcome = self._start(
            grant,
            profile,
            settings,
            given,
            refused_shared=("connecting a shared connection" if shared else None),
        )
        # The grant's network calls came first; only now is anything written, in one
        # transaction.
        with self.db.session() as session:
            kept = grant.keeps_credentials(profile)
            connection = self.connection_store.add(
                session,
                workspace_id=principal.workspace_id,
                profile_id=profile.id,
                owner=request.owner,
                tenant=tenant,
                fields=request.fields,
                # Seed 003: pre-authorized credentials are kept (encrypted) so tokens can be
                # regenerated when the refresh token is refused; a user's are used once.
                # Only the connection's own are kept: otherwise the profile's stand, as
                # they are when it is edited.
                username=request.username if kept else None,
                password=request.password if kept else None,
                status=(
                    ConnectionStatus.ACTIVE
                    if isinstance(outcome, Obtained)
                    else ConnectionStatus.PENDING
                ),
                tokens=outcome.tokens if isinstance(outcome, Obtained) else None,
                requested_scopes=profile.scopes,
            )
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.CONNECTION_CREATED,
                    _target(connection),
                    profile_id=profile.id,
                    detail={"owner": connection.owner, "status": connection.status.value},
                ),
                session,
            )
            if isinstance(outcome, Pending):
                self._add_pending(session, principal.workspace_id, connection.id, outcome)
                return StartedConnection(connection=connection, next_step=outcome.next_step)
            if connection.is_shared:
                self._working(session, profile, connection.id)
        return StartedConnection(connection=connection)

    def _configured(self, workspace_id: str, profile_id: str) -> Profile:
        with self.db.read() as session:
            return require_configured(self.profile_store.get(session, workspace_id, profile_id))

    def _start(
        self,
        grant: Grant,
        profile: Profile,
        settings: ClientSettings,
        given: GrantInput,
        *,
        refused_shared: str | None,
    ) -> Obtained | Pending:
        """Run the grant's first step (the network call: no transaction is open).
        ``refused_shared`` names a shared connection's attempt: if the identity provider
        refuses the client itself, the profile is marked failing with it."""
        try:
            return grant.start(
                self.oauth,
                settings,
                given,
                self.clock.now(),
                float(self.settings.authorization_state_ttl_seconds),
            )
        except OAuthFailure as exc:
            if refused_shared is not None and refuses_client(exc):
                self._mark_failing(profile, f"{refused_shared}: {exc.detail}")
            raise from_oauth(exc) from None

    def _add_pending(
        self, session: UnitOfWork, workspace_id: str, connection_id: str, pending: Pending
    ) -> None:
        self.connection_store.add_authorization_request(
            session,
            workspace_id=workspace_id,
            connection_id=connection_id,
            kind=pending.kind,
            state_hash=hash_state(pending.state),
            secrets=pending.secrets,
            redirect_uri=pending.redirect_uri,
            expires_at=pending.expires_at,
            next_poll_at=pending.next_poll_at,
        )

    def _mark_failing(self, profile: Profile, reason: str) -> None:
        """The seeds' "failing": the identity provider refused the profile's client."""
        with self.db.session() as session:
            self.incidents.failing(
                session, workspace_id=profile.workspace_id, profile_id=profile.id, reason=reason
            )

    def _working(self, session: UnitOfWork, profile: Profile, connection_id: str) -> None:
        """The shared connection got tokens: the profile works (its incident closes)."""
        self.incidents.working(
            session,
            workspace_id=profile.workspace_id,
            profile_id=profile.id,
            connection_id=connection_id,
        )

    # -- authorize the same connection again -------------------------------------------
    def reauthorize(
        self, principal: Principal, connection_id: str, request: ReauthorizeRequest
    ) -> StartedConnection:
        """The same connection, authorized again (after ``needs_reauth``, or to replace a
        grant): for a grant a person finishes, a new pending authorization whose answer
        stores the new tokens on this connection, which keeps its status and tokens until
        then (a connection that works keeps working if the user never comes back); for
        the other grants a new grant, stored at once."""
        with self.db.read() as session:
            connection = self.connection_store.get(session, principal.workspace_id, connection_id)
        self.policy.may_manage_connection(principal, connection.owner, connection.profile_id)
        profile = self._configured(principal.workspace_id, connection.profile_id)
        grant = grant_for(profile.auth_type)
        given, errors = grant.check_input(
            profile,
            GrantInput(
                username=request.username,
                password=request.password,
                form_values=form_values_of(profile, connection.fields),
            ),
            kept=connection,
        )
        if errors:
            raise ValidationFailed(errors)
        settings = connection_settings(profile, connection, self.settings.callback_url)
        outcome = self._start(
            grant,
            profile,
            settings,
            given,
            refused_shared=(f"shared connection {connection.id}" if connection.is_shared else None),
        )
        store = self.connection_store
        with self.db.session() as session:
            # Under its lock: a refresh finishing meanwhile (a compare-and-swap on the
            # version) finds the version moved on and drops its older tokens.
            row = store.locked_row(session, connection_id)
            if row is None:
                raise NotFound(f"no connection with id {connection_id}")
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.CONNECTION_REAUTHORIZED,
                    _target(connection),
                    profile_id=profile.id,
                    detail={"pending": isinstance(outcome, Pending)},
                ),
                session,
            )
            if isinstance(outcome, Pending):
                # Only the newest link completes it: an older one left open is forgotten.
                store.supersede_authorization_requests(session, connection_id)
                self._add_pending(session, principal.workspace_id, connection_id, outcome)
                return StartedConnection(
                    connection=store.to_domain(row), next_step=outcome.next_step
                )
            store.store_new_grant(row, outcome.tokens, requested=profile.scopes)
            if grant.keeps_credentials(profile):
                store.set_credentials(row, username=request.username, password=request.password)
            if row.owner == SHARED_OWNER:
                self._working(session, profile, connection_id)
            renewed = store.to_domain(row)
        self.token_cache.forget(connection_id)
        return StartedConnection(connection=renewed)

    # -- change what a connection keeps ------------------------------------------------
    def update(
        self, principal: Principal, connection_id: str, patch: ConnectionPatch
    ) -> Connection:
        """New stored credentials (a preauthorized password connection's) or field values;
        used from the next token on. Its owner, or an admin for a shared one."""
        with self.db.read() as session:
            connection = self.connection_store.get(session, principal.workspace_id, connection_id)
            profile = self.profile_store.get(session, principal.workspace_id, connection.profile_id)
        self.policy.may_manage_connection(principal, connection.owner, connection.profile_id)
        errors: list[FieldError] = []
        keeps = grant_for(profile.auth_type).keeps_credentials(profile)
        if not keeps:
            errors.extend(
                FieldError(name, "only a preauthorized password connection keeps credentials")
                for name, value in (("username", patch.username), ("password", patch.password))
                if value is not None
            )
        fields = dict(connection.fields)
        if patch.fields is not None:
            fields.update(patch.fields)
            _tenant, problems = check_use_input(profile, connection.tenant, fields)
            errors.extend(problems)
        if errors:
            raise ValidationFailed(errors)
        changed = [
            name
            for name, value in (
                ("username", patch.username),
                ("password", patch.password),
                ("fields", patch.fields),
            )
            if value is not None
        ]
        with self.db.session() as session:
            row = self.connection_store.locked_row(session, connection_id)
            if row is None:
                raise NotFound(f"no connection with id {connection_id}")
            if keeps:
                self.connection_store.set_credentials(
                    row, username=patch.username, password=patch.password
                )
            if patch.fields is not None:
                self.connection_store.set_fields(row, fields)
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.CONNECTION_UPDATED,
                    _target(connection),
                    profile_id=profile.id,
                    detail={"changed": ",".join(changed)},
                ),
                session,
            )
            updated = self.connection_store.to_domain(row)
        self.token_cache.forget(connection_id)
        return updated

    # -- RFC 6749 section 4.1.2: the redirect back -----------------------------------------
    def complete_authorization(
        self,
        *,
        state: str | None,
        code: str | None,
        error: str | None,
        error_description: str | None,
        iss: str | None = None,
    ) -> CallbackOutcome:
        if not state:
            return _refused("The answer from the identity provider carries no state.")
        with self.db.session() as session:
            row, secrets, claimed = self.connection_store.claim_authorization_request(
                session, hash_state(state)
            )
            if row is not None:
                pending = PendingAuthorization(
                    kind=row.kind,
                    connection_id=row.connection_id,
                    secrets=secrets,
                    redirect_uri=row.redirect_uri,
                    expires_at=row.expires_at,
                )
                connection_id, expires_at = pending.connection_id, pending.expires_at
        if row is None:
            return _refused(
                "This authorization was not started here, or it was replaced by a newer one, "
                "cancelled or expired."
            )
        if not claimed:
            return _refused("This authorization link was already used. Start again.")
        if expires_at <= self.clock.now():
            # Came back too late: a connection that never completed goes now.
            with self.db.session() as session:
                self.connection_store.expire_authorizations(
                    session, before=self.clock.now(), connection_id=connection_id
                )
            return _refused("This authorization took longer than allowed. Start again.")
        with self.db.read() as session:
            connection = self.connection_store.get(session, None, connection_id)
            profile = self.profile_store.get(
                session, connection.workspace_id, connection.profile_id
            )
        settings = connection_settings(profile, connection, pending.redirect_uri)
        answer = {
            key: value
            for key, value in (
                ("code", code),
                ("iss", iss),
                ("error", error),
                ("error_description", error_description),
            )
            if value is not None
        }
        try:
            # The grant checks the answer (RFC 9207: its issuer first, error answers
            # included) and redeems its code.
            completed = grant_for(profile.auth_type).complete(
                self.oauth, settings, pending, answer, self.clock.now()
            )
            assert not isinstance(completed, StillPending)  # a redirect is the answer
            tokens = completed
        except IssuerMismatch as exc:
            # RFC 9207 section 2.4: the answer is not believed, nor its code redeemed: it
            # may come from another server (a mix-up attack).
            self._record_callback_failure(connection_id, exc.detail, client_refused=False)
            return _refused(f"{exc.detail}.")
        except OAuthFailure as exc:
            if error:
                # RFC 6749 section 4.1.2.1: the refusal came on the redirect.
                text = f"{error}: {error_description}" if error_description else error
                self._record_callback_failure(
                    connection_id,
                    f"authorization refused ({text})",
                    client_refused=refuses_client(exc),
                )
                return _refused(f"The identity provider did not authorize: {text}.")
            if not code:
                self._record_callback_failure(
                    connection_id, "the identity provider answered without a code", False
                )
                return _refused("The answer from the identity provider carries no code.")
            self._record_callback_failure(
                connection_id, exc.detail, client_refused=refuses_client(exc)
            )
            return _refused(f"Exchanging the code failed: {exc.detail}.", status=502)
        with self.db.session() as session:
            locked = self.connection_store.locked_row(session, connection_id)
            if locked is not None:
                # The new grant replaces the old one whole, on the same connection.
                self.connection_store.store_new_grant(locked, tokens, requested=profile.scopes)
                self._record_authorized(session, connection)
                if connection.is_shared:
                    self._working(session, profile, connection.id)
        if locked is None:
            return _refused("This connection was deleted while it was being authorized.")
        self.token_cache.forget(connection_id)
        return CallbackOutcome(
            ok=True,
            title="Connected",
            message=f"{profile.identity_provider or profile.name} is connected. "
            "You can close this window.",
            connection_id=connection_id,
        )

    def _record_authorized(self, session: UnitOfWork, connection: Connection) -> None:
        """A person finished an authorization (the redirect came back, or the device code
        was approved): the owner acted, at the identity provider."""
        actor = SYSTEM if connection.is_shared else Actor("user", connection.owner, "")
        self.audit.record(
            AuditEntry(
                workspace_id=connection.workspace_id,
                action=Action.CONNECTION_AUTHORIZED,
                actor=actor,
                target=_target(connection),
                profile_id=connection.profile_id,
            ),
            session,
        )

    def _record_callback_failure(
        self, connection_id: str, message: str, client_refused: bool
    ) -> None:
        """Say on the connection why its authorization failed. One that never held a
        token has nothing to serve: it becomes ``needs_reauth`` (no longer ``pending``),
        so its owner sees why and can authorize it again. One being authorized again
        keeps its status and the tokens it has. A shared connection's client refused by
        the identity provider marks the profile failing."""
        with self.db.session() as session:
            row = self.connection_store.locked_row(session, connection_id)
            if row is None:
                return
            never_connected = row.status == ConnectionStatus.PENDING.value
            self.connection_store.mark_error(row, message, needs_reauth=never_connected)
            if client_refused and row.owner == SHARED_OWNER:
                self.incidents.failing(
                    session,
                    workspace_id=row.workspace_id,
                    profile_id=row.profile_id,
                    reason=f"shared connection {row.id}: {message}",
                    connection_id=row.id,
                )

    # -- polled grants (a device code): ask whether the person has answered ---------------
    def poll_pending(self) -> int:
        """Poll each pending authorization whose time to ask came (its grant says when,
        honouring the server's interval); returns how many were polled. Each poll is
        claimed first (one conditional UPDATE moves its time on), so of several workers
        one asks; the network call runs with no transaction open. Run by a background
        pass every ``authorization_poll_tick_seconds``."""
        now = self.clock.now()
        with self.db.read() as session:
            due = self.connection_store.due_polls(session, now)
        polled = 0
        for request_id, seen in due:
            try:
                polled += self._poll_one(request_id, seen)
            except Exception:
                log.exception("polling pending authorization %s failed", request_id)
        return polled

    def _poll_one(self, request_id: str, seen: datetime) -> int:
        store = self.connection_store
        now = self.clock.now()
        # Should this worker die mid-poll, another asks again once this lapses.
        lease = now + timedelta(seconds=self.settings.idp_deadline_seconds + 5)
        with self.db.session() as session:
            row = store.claim_poll(session, request_id, seen=seen, until=lease)
            if row is None:
                return 0  # another worker took it
            pending = PendingAuthorization(
                kind=row.kind,
                connection_id=row.connection_id,
                secrets=store.authorization_secrets(row),
                redirect_uri=row.redirect_uri,
                expires_at=row.expires_at,
            )
        with self.db.read() as session:
            connection = store.get(session, None, pending.connection_id)
            profile = self.profile_store.get(
                session, connection.workspace_id, connection.profile_id
            )
        settings = connection_settings(profile, connection, self.settings.callback_url)
        try:
            if pending.expires_at <= now:
                raise GrantRefused("expired_token", "the code expired before it was used", None)
            outcome = grant_for(profile.auth_type).complete(self.oauth, settings, pending, {}, now)
        except GrantRefused as exc:
            # Denied, expired, or the client refused: this authorization is over.
            with self.db.session() as session:
                store.finish_poll(session, request_id)
            self._record_callback_failure(
                connection.id, f"authorization ended ({exc.detail})", refuses_client(exc)
            )
            return 1
        if isinstance(outcome, StillPending):
            with self.db.session() as session:
                store.schedule_poll(
                    session, request_id, at=outcome.next_poll_at, secrets=outcome.secrets
                )
            return 1
        with self.db.session() as session:
            locked = store.locked_row(session, connection.id)
            if store.finish_poll(session, request_id) and locked is not None:
                store.store_new_grant(locked, outcome, requested=profile.scopes)
                self._record_authorized(session, connection)
                if connection.is_shared:
                    self._working(session, profile, connection.id)
        self.token_cache.forget(connection.id)
        return 1

    # -- authorizations nobody finished --------------------------------------------------
    def expire_abandoned(self) -> int:
        """Delete each connection whose first authorization ended unanswered or denied
        (its ``authorization_state_ttl_seconds`` passed), and every authorization request
        that ended; returns how many connections went. A connection being authorized again is
        never deleted: it keeps what it had. Run by the background refresher's pass."""
        # A callback that claimed its request just before the end may still be exchanging
        # the code: it has the identity provider's deadline to do so.
        before = self.clock.now() - timedelta(seconds=self.settings.idp_deadline_seconds)
        with self.db.session() as session:
            gone = self.connection_store.expire_authorizations(session, before=before)
        if gone:
            log.info("deleted %d connections whose authorization was never completed", len(gone))
        return len(gone)

    # -- read ------------------------------------------------------------------------------
    def get(self, principal: Principal, connection_id: str) -> Connection:
        """A connection the caller may see (viewers see none: they read profiles)."""
        require_role(principal, Role.DEVELOPER)
        with self.db.read() as session:
            connection = self.connection_store.get(session, principal.workspace_id, connection_id)
        if not self.policy.may_see_connection(principal, connection.owner, connection.profile_id):
            raise Forbidden(
                "this connection is another user's, or of a profile not shared with you"
            )
        return connection

    def counts_by_profile(self, principal: Principal) -> dict[str, int]:
        """How many connections each profile of the caller's workspace has (admins only:
        they see every connection)."""
        require_role(principal, Role.ADMIN)
        with self.db.read() as session:
            return self.connection_store.count_by_profile(session, principal.workspace_id)

    def list(
        self,
        principal: Principal,
        profile_id: str | None = None,
        *,
        owner: str | None = None,
        status: ConnectionStatus | None = None,
        after: tuple[datetime, str] | None = None,
        limit: int | None = None,
    ) -> list[Connection]:
        """The connections of the caller's workspace (what ``get`` shows it), those of
        ``profile_id``, ``owner`` and ``status`` when given, oldest first; a page of
        ``limit`` after the ``(created_at, id)`` key ``after``. Admins see every one;
        developers their own and the shared ones of the profiles shared with them."""
        require_role(principal, Role.DEVELOPER)
        visible_to = self.policy.visible_to(principal)
        with self.db.read() as session:
            return self.connection_store.list(
                session,
                principal.workspace_id,
                profile_id,
                owner=owner,
                status=status,
                after=after,
                limit=limit,
                visible_to=visible_to,
            )

    # -- disconnect ------------------------------------------------------------------------
    def delete(self, principal: Principal, connection_id: str) -> RevocationReport:
        """Disconnect: its owner, or an admin (who may disconnect anyone's, to clean up
        after people who left, without ever using it)."""
        with self.db.read() as session:
            connection = self.connection_store.get(session, principal.workspace_id, connection_id)
            profile = self.profile_store.get(
                session, connection.workspace_id, connection.profile_id
            )
        self.policy.may_disconnect(principal, connection.owner)
        report = self.revoke(profile, connection)
        with self.db.session() as session:
            session.delete(
                self.connection_store.row(session, principal.workspace_id, connection_id)
            )
            self.audit.record(
                AuditEntry.by(
                    principal,
                    Action.CONNECTION_DELETED,
                    _target(connection),
                    profile_id=profile.id,
                    detail={"revoked_at_idp": len(report.revoked)},
                ),
                session,
            )
        self.token_cache.forget(connection_id)
        return report

    def revoke(self, profile: Profile, connection: Connection) -> RevocationReport:
        return revoke_connection(self.oauth, profile, connection, self.settings.callback_url)


def _target(connection: Connection) -> Target:
    return Target("connection", connection.id, connection.owner)


def _refused(message: str, status: int = 400) -> CallbackOutcome:
    return CallbackOutcome(ok=False, title="Not connected", message=message, status_code=status)


__all__ = [
    "ConnectionPatch",
    "ConnectionRequest",
    "ConnectionService",
    "FieldLocation",
    "ReauthorizeRequest",
    "RevocationReport",
]
