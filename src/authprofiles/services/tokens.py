"""Valid tokens on demand, with single-flight refresh across threads and processes.

However many callers ask at once, exactly one refresh reaches the IdP: callers in one
process queue on a per-connection lock; the holder claims a refresh lease in the
database (one conditional UPDATE naming who refreshes until when), calls the IdP with no
transaction open, and writes the tokens back only if the stored token is still the one
it refreshed (a compare-and-swap on the version). Callers in other processes wait for
that write. The rotated refresh token is written in the same statement as the access
token, so it can never be lost between the two; a slow IdP holds no database lock.

The hot path (a token that is still valid) only reads.

The background refresher renews tokens before they expire, spread over every worker of
every host: each pass leases a batch of due connections in one short transaction (``FOR
UPDATE SKIP LOCKED`` on PostgreSQL), so each is renewed by one worker, renews them a
few at a time with no transaction open, and writes each result back as above. A pass
that found a full batch is followed by another at once. A worker that dies mid-lease
leaves leases that lapse; whoever takes one over treats the refresh token as possibly
spent (the identity provider may have rotated it before the worker died, and replaying
it at a server with reuse detection revokes the whole grant): a connection that keeps
its credentials logs in again instead, and any other replays it once and, refused,
needs authorizing again, its owner told.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Generic, TypeVar, cast

from authprofiles import telemetry
from authprofiles.core.callers import CredentialRequest, Principal, Purpose
from authprofiles.core.connections import Connection, ConnectionStatus, DerivedOnce, TokenSet
from authprofiles.core.errors import DomainError, NotFound
from authprofiles.core.injection import Injection, InjectionError, build_injection
from authprofiles.core.ports import Clock, CredentialPolicy
from authprofiles.core.profiles import Profile, field_values, form_values_of
from authprofiles.core.templating import TemplateError
from authprofiles.oauth.engine import OAuthEngine
from authprofiles.oauth.errors import GrantRefused, IdPUnavailable, OAuthFailure
from authprofiles.oauth.grants import GrantInput, grant_for
from authprofiles.services.blocking import FewThreads
from authprofiles.services.errors import NeedsReauth, from_oauth, refuses_client
from authprofiles.services.incidents import Incidents
from authprofiles.services.oauth_settings import connection_settings
from authprofiles.store.connections import UnreadableConnection
from authprofiles.store.models import utcnow

if TYPE_CHECKING:
    from authprofiles.settings import Settings
    from authprofiles.store.connections import ConnectionStore, RefreshLease
    from authprofiles.store.db import Database
    from authprofiles.store.models import ConnectionRow
    from authprofiles.store.profiles import ProfileStore
    from authprofiles.store.reads import CredentialReader

T = TypeVar("T")

log = logging.getLogger("authprofiles.tokens")

#: Names this process in refresh leases (a host's processes share one database).
_WORKER = f"{socket.gethostname()[:32]}:{os.getpid()}"


class _KeyedLocks:
    """One lock per connection while anyone holds or awaits it, then forgotten. Unlike a
    fixed set of striped locks, a caller never queues behind an unrelated connection whose
    identity provider is slow."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held: dict[str, tuple[threading.Lock, int]] = {}

    @contextmanager
    def held(self, key: str) -> Iterator[None]:
        with self._guard:
            lock, users = self._held.get(key, (threading.Lock(), 0))
            self._held[key] = (lock, users + 1)
        try:
            with lock:
                yield
        finally:
            with self._guard:
                lock, users = self._held[key]
                if users == 1:
                    del self._held[key]
                else:
                    self._held[key] = (lock, users - 1)


@dataclass(frozen=True)
class IssuedToken:
    connection: Connection
    profile: Profile
    tokens: TokenSet
    #: Set when a refresh was due and failed for a passing reason: the token is still
    #: valid (until ``tokens.expires_at``), and the caller is told why it was not renewed.
    refresh_error: str | None = None
    #: What the proxy derived from this token once (its target and injected parts), so a
    #: token reused within the reuse window (``services.token_issuing``) is not worked
    #: out again for every call.
    derived: DerivedOnce = field(default_factory=DerivedOnce, compare=False, repr=False)

    def injection(self) -> Injection:
        try:
            return build_injection(
                access_token=self.tokens.access_token,
                token_type=self.tokens.token_type,
                authorization_fields=self.profile.authorization_fields,
                field_values=field_values(self.profile, self.connection.fields),
            )
        except TemplateError as exc:
            raise InjectionError(
                f"an authorization field cannot be filled in for this connection: {exc}"
            ) from None


@dataclass(frozen=True)
class _Written:
    """What became of a refresh under a lease: whether its outcome (tokens, or the
    failure) was written, or a newer token found written instead; the failure, if any,
    and whether it means a person must authorize again."""

    written: bool
    failure: GrantRefused | IdPUnavailable | None = None
    needs_reauth: bool = False


@dataclass(frozen=True)
class _Renewal:
    """New tokens from the identity provider under a lease, not yet written."""

    connection: Connection
    profile: Profile
    lease: RefreshLease
    tokens: TokenSet
    #: The grant ran again (the refresh token was possibly spent): a new grant's tokens.
    new_grant: bool


#: Threads a worker reads still-valid tokens in at once on SQLite (measured at 32 callers:
#: with 4, a read waits for the GIL far less than with the thread pool's 40).
READING_THREADS = 4

#: How many renewed tokens the background refresher writes in one transaction, at most.
RENEWALS_WRITTEN_TOGETHER = 16


@dataclass(frozen=True)
class Refreshed:
    """What a refresh left stored. ``failure``: it failed for a passing reason, and the
    current token, still valid, is served instead (see :meth:`TokenService.refresh`)."""

    connection: Connection
    profile: Profile
    failure: str | None = None


class TokenService:
    def __init__(
        self,
        *,
        settings: Settings,
        db: Database,
        connection_store: ConnectionStore,
        profile_store: ProfileStore,
        credentials: CredentialReader,
        oauth: OAuthEngine,
        policy: CredentialPolicy,
        clock: Clock,
        incidents: Incidents,
    ) -> None:
        self.settings = settings
        #: Refusals of a refresh open (and successes close) the profile's incident.
        self.incidents = incidents
        self.db = db
        self.connection_store = connection_store
        self.profile_store = profile_store
        self.credentials = credentials
        self.oauth = oauth
        self.policy = policy
        self.clock = clock
        self._locks = _KeyedLocks()
        self._flights: _Flights[Refreshed] = _Flights()
        #: The hot path's reads where there is no async driver (SQLite).
        self._reading_threads = FewThreads(READING_THREADS)

    @property
    def skew(self) -> float:
        return float(self.settings.refresh_skew_seconds)

    def get_token(
        self,
        principal: Principal,
        connection_id: str,
        *,
        purpose: Purpose = Purpose.READ_TOKEN,
        method: str | None = None,
        host: str | None = None,
        path: str | None = None,
    ) -> IssuedToken:
        """A token valid for at least the skew, refreshed first if need be."""
        connection, profile = self.credentials.read(principal.workspace_id, connection_id)
        self.policy.authorize(
            principal,
            CredentialRequest.to_use(connection, purpose, method=method, host=host, path=path),
        )
        now = self.clock.now()
        if _usable(connection) and not _stale(connection, now, self.skew):
            assert connection.tokens is not None
            issued = IssuedToken(connection, profile, connection.tokens)
        else:
            _raise_unless_active(connection)
            refreshed = self.refresh(connection.id, within_seconds=self.skew)
            issued = self._issued(refreshed.connection, refreshed.profile, refreshed.failure)
        if issued.profile.failing_reason and connection.is_shared and issued.refresh_error is None:
            # A token request for the shared connection succeeded: the incident closes. Not
            # when its refresh failed and the current token was served meanwhile: that is
            # the incident going on (closing it would open a new one at the next call).
            self._working(issued.profile, connection.id)
        return issued

    async def current_token(self, principal: Principal, connection_id: str) -> IssuedToken | None:
        """The stored token, for ``principal`` to read, when it is valid beyond the skew:
        read on the event loop, no thread taken, nothing refreshed or written. None when
        that is not the whole answer (the token is due, the policy must read first, an
        incident is to close): :meth:`get_token` then does it all, off the loop."""
        if not self.policy.decides_in_memory(principal):
            return None
        found = await self.credentials.read_async(principal.workspace_id, connection_id)
        if found is None:  # no async driver (SQLite): the read alone, in a few threads
            found = await self._reading_threads.run(
                partial(self.credentials.read, principal.workspace_id, connection_id)
            )
        connection, profile = found
        self.policy.authorize(principal, CredentialRequest.to_use(connection, Purpose.READ_TOKEN))
        if not _usable(connection) or _stale(connection, self.clock.now(), self.skew):
            return None
        if profile.failing_reason and connection.is_shared:
            return None
        assert connection.tokens is not None
        return IssuedToken(connection, profile, connection.tokens)

    def _working(self, profile: Profile, connection_id: str) -> None:
        with self.db.session() as session:
            self.incidents.working(
                session,
                workspace_id=profile.workspace_id,
                profile_id=profile.id,
                connection_id=connection_id,
            )

    def force_refresh(
        self, principal: Principal, connection_id: str, seen_version: int
    ) -> IssuedToken:
        """After an API refused the token (the profile's auth error status): refresh once,
        unless another caller already replaced the token we saw."""
        # The API refused the current token: it is no answer to a failed refresh.
        refreshed = self.refresh(connection_id, seen_version=seen_version, serve_current=False)
        if refreshed.connection.workspace_id != principal.workspace_id:
            raise NotFound(f"no connection with id {connection_id}")
        return self._issued(refreshed.connection, refreshed.profile)

    def _issued(
        self, connection: Connection, profile: Profile, refresh_error: str | None = None
    ) -> IssuedToken:
        _raise_unless_active(connection)
        if connection.tokens is None or connection.tokens.is_expired(self.clock.now()):
            raise DomainError("the connection has no valid token")
        return IssuedToken(connection, profile, connection.tokens, refresh_error)

    def refresh(
        self,
        connection_id: str,
        *,
        within_seconds: float | None = None,
        seen_version: int | None = None,
        serve_current: bool = True,
    ) -> Refreshed:
        """Refresh if still needed; return what is stored then.

        ``within_seconds``: refresh when the token expires within it. ``seen_version``:
        refresh unless the stored token changed since that version (a forced refresh).
        ``serve_current``: when the identity provider fails for a passing reason and the
        current token is still valid, return it with the failure named instead of raising.

        Callers in this process queue on the connection's own lock; across processes one
        claims the refresh lease (a conditional UPDATE), calls the identity provider with
        no transaction open, and writes the result back if the token is still the one it
        refreshed. The others wait for that write, or serve the current token while it
        is still valid. A claimant that dies leaves a lease that lapses; the next caller
        then takes over with the refresh token still stored, and treats it as possibly
        spent (see the module's description).
        """
        # Callers of this process asking the same at once share one answer: one of them
        # does the work below, the others wait for its result instead of each taking the
        # connection's lock in turn to read again (500 callers across 4 workers on one
        # expired token waited 0.7 s at the median for a refresh of 22 ms).
        return self._flights.run(
            (connection_id, within_seconds, seen_version, serve_current),
            partial(self._refresh, connection_id, within_seconds, seen_version, serve_current),
        )

    def _refresh(
        self,
        connection_id: str,
        within_seconds: float | None,
        seen_version: int | None,
        serve_current: bool,
    ) -> Refreshed:
        with self._locks.held(connection_id):
            deadline = time.monotonic() + 2 * self.lease_seconds
            while True:
                connection, profile = self.credentials.read(None, connection_id)
                if not needs_refresh(connection, self.clock.now(), within_seconds, seen_version):
                    return Refreshed(connection, profile)
                owner = f"{_WORKER}:{uuid.uuid4().hex[:12]}"
                with self.db.session() as session:
                    lease = self.connection_store.claim_refresh(
                        session,
                        connection_id,
                        version=connection.version,
                        owner=owner,
                        seconds=self.lease_seconds,
                    )
                if lease is not None:
                    return self._refresh_under_lease(connection, profile, lease, serve_current)
                # Another worker is refreshing. A forced refresh, or a token already
                # expired, waits for its result; a token still valid is served meanwhile.
                if seen_version is None and not _expired(connection, self.clock.now()):
                    return Refreshed(connection, profile)
                self._await_other_refresh(connection_id, connection.version, deadline)

    @property
    def lease_seconds(self) -> float:
        """Longer than the whole identity-provider call may take (its deadline covers the
        retries and backoff), so a live claimant's lease never lapses under it."""
        configured = self.settings.refresh_lease_seconds
        if configured is not None:
            return configured
        return self.oauth.deadline_seconds + 5.0

    def _await_other_refresh(self, connection_id: str, version: int, deadline: float) -> None:
        """Poll (cheap, non-decrypting reads) until the token changes or the lease ends."""
        pause = 0.01
        while True:
            with self.db.read() as session:
                current, lease_until = self.connection_store.lease_state(session, connection_id)
            if current != version or lease_until is None or lease_until <= utcnow():
                return
            if time.monotonic() >= deadline:
                raise from_oauth(
                    IdPUnavailable(
                        "another worker's refresh of this connection did not finish in time",
                        timeout=True,
                    )
                )
            time.sleep(pause)
            pause = min(pause * 2, 0.25)

    def _refresh_under_lease(
        self, connection: Connection, profile: Profile, lease: RefreshLease, serve_current: bool
    ) -> Refreshed:
        outcome = self._renew_and_write(connection, profile, lease)
        if not outcome.written:
            # A newer token was written while this refresh ran: that one stands.
            if outcome.failure is None:
                log.warning(
                    "refresh of %s finished after another worker stored a newer token; "
                    "keeping that",
                    connection.id,
                )
            return Refreshed(*self.credentials.read(None, connection.id))
        exc = outcome.failure
        if exc is None:
            return Refreshed(*self.credentials.read(None, connection.id))
        if outcome.needs_reauth:
            raise NeedsReauth(
                "the identity provider refused to refresh this connection; authorize it again",
                last_error=exc.detail,
            ) from None
        # Serve the current token while it is still valid (RFC 6749 leaves retry timing
        # to us; an outage of the IdP must not take down callers whose token works),
        # saying why it was not renewed.
        if serve_current and not _expired(connection, self.clock.now()):
            log.warning(
                "refresh of %s failed, serving the current token: %s", connection.id, exc.detail
            )
            return Refreshed(connection, profile, failure=exc.detail)
        raise from_oauth(exc) from None

    def _renew_and_write(
        self, connection: Connection, profile: Profile, lease: RefreshLease
    ) -> _Written:
        """Call the identity provider (no transaction open), then write the tokens, or the
        failure, back in one short transaction."""
        outcome = self._renew_under_lease(connection, profile, lease)
        if isinstance(outcome, _Written):
            return outcome
        return _Written(self._write_renewals([outcome])[0])

    def _renew_under_lease(
        self, connection: Connection, profile: Profile, lease: RefreshLease
    ) -> _Renewal | _Written:
        """The identity provider's new tokens, still to be written; or, when it refused or
        could not be reached, that failure, written already."""
        log_in_again = lease.possibly_spent and self._can_log_in_again(profile, connection)
        try:
            tokens = self._renew_counted(profile, connection, log_in_again=log_in_again)
        except (GrantRefused, IdPUnavailable) as exc:
            reauth, client_refused = after_refresh_failure(exc)
            reason = exc.detail
            if lease.possibly_spent and reauth:
                reason += (
                    " (a refresh interrupted earlier may have used this refresh token "
                    "at the identity provider)"
                )
            with self.db.session() as session:
                row = self.connection_store.abandon_refresh(
                    session,
                    connection.id,
                    version=connection.version,
                    owner=lease.owner,
                    error=reason,
                    needs_reauth=reauth,
                    retry_at=self._retry_at(),
                )
                if row is not None:
                    self.incidents.refresh_failed(
                        session,
                        workspace_id=connection.workspace_id,
                        profile_id=profile.id,
                        connection_id=connection.id,
                        owner=connection.owner,
                        reason=reason,
                        needs_reauth=reauth,
                        client_refused=client_refused,
                    )
            return _Written(row is not None, exc, reauth)
        return _Renewal(connection, profile, lease, tokens, log_in_again)

    def _write_renewals(self, renewals: Sequence[_Renewal]) -> list[bool]:
        """Write renewed tokens in one short transaction; for each, whether it was written
        (False: a newer token was written meanwhile, which stands)."""
        written: list[bool] = []
        with self.db.session() as session:
            for renewal in renewals:
                connection, profile = renewal.connection, renewal.profile
                done = self.connection_store.finish_refresh(
                    session,
                    connection.id,
                    version=connection.version,
                    tokens=renewal.tokens,
                    requested=profile.scopes,
                    owner=renewal.lease.owner,
                    new_grant=renewal.new_grant,
                )
                if done and connection.is_shared and profile.failing_reason:
                    self.incidents.working(
                        session,
                        workspace_id=connection.workspace_id,
                        profile_id=profile.id,
                        connection_id=connection.id,
                    )
                written.append(done)
        return written

    def _can_log_in_again(self, profile: Profile, connection: Connection) -> bool:
        """Whether the connection keeps what its grant needs to run again with no person
        (a preauthorized password connection's username and password)."""
        grant = grant_for(profile.auth_type)
        if not grant.keeps_credentials(profile):
            return False
        given = GrantInput(form_values=form_values_of(profile, connection.fields))
        _, missing = grant.check_input(profile, given, kept=connection)
        return not missing

    def _renew_counted(
        self, profile: Profile, connection: Connection, *, log_in_again: bool
    ) -> TokenSet:
        """:meth:`_renew` in a ``token.refresh`` span, counted by outcome
        (``telemetry.metrics.REFRESH_OUTCOMES``), on demand and in the background alike."""
        with telemetry.span(
            "token.refresh",
            {
                "authprofiles.connection_id": connection.id,
                "authprofiles.profile_id": profile.id,
                "authprofiles.auth_type": str(profile.auth_type),
                "authprofiles.refresh.log_in_again": log_in_again,
            },
        ) as refreshing:
            outcome = "error"
            try:
                tokens = self._renew(profile, connection, log_in_again=log_in_again)
                outcome = "ok"
                return tokens
            except (GrantRefused, IdPUnavailable) as exc:
                reauth, client_refused = after_refresh_failure(exc)
                if reauth or client_refused:
                    outcome = "needs_reauth" if reauth else "client_refused"
                raise
            finally:
                refreshing.set_attribute("authprofiles.outcome", outcome)
                telemetry.count_refresh(outcome)

    def _renew(
        self, profile: Profile, connection: Connection, *, log_in_again: bool = False
    ) -> TokenSet:
        """New tokens from the identity provider. ``log_in_again``: the refresh token may
        be spent, so it is not replayed; the grant runs again with the stored credentials."""
        settings = connection_settings(profile, connection, self.settings.callback_url)
        if log_in_again and connection.tokens is not None:
            connection = replace(connection, tokens=replace(connection.tokens, refresh_token=None))
        return grant_for(profile.auth_type).renew(self.oauth, settings, profile, connection)

    def _retry_at(self) -> datetime:
        """When a connection whose renewal failed for a passing reason is due again."""
        return self.clock.now() + timedelta(
            seconds=self.settings.background_refresh_interval_seconds
        )

    # -- the background refresher ---------------------------------------------------------
    def refresh_expiring(self) -> int:
        """Renew one batch of connections whose renewal time came; returns how many it
        leased (at most ``background_refresh_batch_size``).

        The batch is leased in one short transaction, long enough for the batch to be
        worked through ``background_refresh_concurrency`` at a time with each identity
        provider call taking all of its deadline; each connection is then renewed with no
        transaction open (queueing with this process's on-demand callers on its lock),
        and the renewed tokens are written back a few at a time as they come in."""
        batch = self.settings.background_refresh_batch_size
        concurrency = self.settings.background_refresh_concurrency
        rounds = -(-batch // concurrency)
        owner = f"{_WORKER}:{uuid.uuid4().hex[:12]}"
        with self.db.session() as session:
            claimed = self.connection_store.claim_due_refreshes(
                session,
                due_by=self.clock.now(),
                owner=owner,
                seconds=self.lease_seconds * rounds,
                limit=batch,
            )
        if not claimed:
            return 0
        profiles = self._profiles_of(row for _, row in claimed)
        jobs = [(lease, row, profiles.get(row.profile_id)) for lease, row in claimed]
        if len(jobs) == 1 or concurrency == 1:
            for job in jobs:
                self._write_group([renewal] if (renewal := self._renew_leased(*job)) else [])
            return len(jobs)
        with ThreadPoolExecutor(
            min(concurrency, len(jobs)), thread_name_prefix="token-renewal"
        ) as pool:
            ready: list[_Renewal] = []
            for done in as_completed([pool.submit(self._renew_leased, *job) for job in jobs]):
                if (renewal := done.result()) is not None:
                    ready.append(renewal)
                if len(ready) >= RENEWALS_WRITTEN_TOGETHER:
                    self._write_group(ready)
                    ready = []
            self._write_group(ready)
        return len(jobs)

    def _write_group(self, renewals: list[_Renewal]) -> None:
        """Write renewals the background refresher made, several in one transaction (one
        round trip each instead of four: ping, BEGIN, UPDATE, COMMIT), while the batch's
        other renewals go on. A failed write leaves their leases to lapse: whoever takes
        them over treats the refresh tokens as possibly spent."""
        if not renewals:
            return
        try:
            self._write_renewals(renewals)
        except Exception:
            log.exception("background refresh: writing %d renewed tokens failed", len(renewals))

    def _profiles_of(self, rows: Iterable[ConnectionRow]) -> dict[str, Profile]:
        """The profiles of a batch's connections, each read once; one that cannot be read
        is left out (its connections are then left for later)."""
        wanted = {row.profile_id: row.workspace_id for row in rows}
        found: dict[str, Profile] = {}
        with self.db.read() as session:
            for profile_id, workspace_id in wanted.items():
                try:
                    found[profile_id] = self.profile_store.get(session, workspace_id, profile_id)
                except DomainError as exc:
                    log.warning("background refresh: profile %s: %s", profile_id, exc)
        return found

    def renew_due(self) -> bool:
        """One pass of the background refresher: True when it found a full batch due (more
        may be waiting, so the next pass starts at once)."""
        return self.refresh_expiring() >= self.settings.background_refresh_batch_size

    def _renew_leased(
        self, lease: RefreshLease, row: ConnectionRow, profile: Profile | None
    ) -> _Renewal | None:
        """Renew a connection the batch leased, from the row the claim returned: the new
        tokens to write, or None when there is nothing to write (a failure, written
        already, or nothing asked of the identity provider)."""
        connection_id = lease.connection_id
        with self._locks.held(connection_id):
            connection = self.connection_store.to_domain(row)
            if profile is None or isinstance(connection, UnreadableConnection):
                # Nothing was asked of the identity provider: the lease ends now, and the
                # connection is due again later (a secret this worker cannot decrypt).
                log.warning("background refresh of %s: its secrets cannot be read", connection_id)
                self._release(lease, retry_at=self._retry_at())
                return None
            if not _usable(connection):
                self._release(lease, retry_at=self._retry_at())
                return None
            try:
                outcome = self._renew_under_lease(connection, profile, lease)
            except Exception:
                # The identity provider may have answered: the lease is left to lapse, so
                # that whoever takes it over knows the refresh token may be spent.
                log.exception("background refresh of %s failed", connection_id)
                return None
        if isinstance(outcome, _Written):
            if outcome.failure is not None:
                log.info("background refresh of %s: %s", connection_id, outcome.failure.detail)
            return None
        return outcome

    def _release(self, lease: RefreshLease, *, retry_at: datetime | None) -> None:
        try:
            with self.db.session() as session:
                self.connection_store.release_refresh(
                    session, lease.connection_id, owner=lease.owner, retry_at=retry_at
                )
        except Exception:
            log.exception("ending the refresh lease of %s failed", lease.connection_id)


def needs_refresh(
    connection: Connection, now: datetime, within_seconds: float | None, seen_version: int | None
) -> bool:
    """Whether a refresh is still due: an active connection whose token expires within
    ``within_seconds`` (or has none), or, forced (``seen_version``), whose token is still
    the one the caller saw refused."""
    if connection.status is not ConnectionStatus.ACTIVE:
        return False
    if seen_version is not None:
        return connection.version == seen_version
    if connection.tokens is None:
        return True
    return _stale(connection, now, within_seconds or 0.0)


def after_refresh_failure(exc: OAuthFailure) -> tuple[bool, bool]:
    """``(needs_reauth, client_refused)`` of a failed refresh. RFC 6749 section 5.2:
    ``invalid_client`` / ``unauthorized_client`` refuse the profile's client, whatever the
    grant (the seeds' "failing"; the connection's grant is not at fault and stays as it
    is). Any other refusal (``invalid_grant``: the refresh token is expired or revoked)
    means a person must authorize again. Anything else is transient: every token we hold
    is kept."""
    client_refused = refuses_client(exc)
    return isinstance(exc, GrantRefused) and not client_refused, client_refused


def _usable(connection: Connection) -> bool:
    return connection.status is ConnectionStatus.ACTIVE and connection.tokens is not None


def _expired(connection: Connection, now: datetime) -> bool:
    return connection.tokens is None or connection.tokens.is_expired(now)


def _stale(connection: Connection, now: object, within: float) -> bool:
    tokens = connection.tokens
    return tokens is None or tokens.expires_within(now, within)  # type: ignore[arg-type]


def _raise_unless_active(connection: Connection) -> None:
    if connection.status is ConnectionStatus.PENDING:
        raise NeedsReauth("this connection is waiting for its authorization to finish")
    if connection.status is ConnectionStatus.NEEDS_REAUTH:
        raise NeedsReauth(
            "this connection needs authorization again", last_error=connection.last_error
        )


class _Flight(Generic[T]):
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = threading.Event()
        self.result: T | None = None
        self.error: BaseException | None = None


class _Flights(Generic[T]):
    """Threads asking for the same thing at once: the first does it, the others wait for
    its result (or its error) and get that."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: dict[Hashable, _Flight[T]] = {}

    def run(self, key: Hashable, call: Callable[[], T]) -> T:
        with self._lock:
            flight = self._active.get(key)
            leading = flight is None
            if flight is None:
                flight = self._active[key] = _Flight()
        if not leading:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return cast(T, flight.result)
        try:
            flight.result = call()
            return flight.result
        except BaseException as exc:
            flight.error = exc
            raise
        finally:
            with self._lock:
                del self._active[key]
            flight.done.set()


class BackgroundRefresher:
    """A daemon thread per worker running each of its passes every ``interval`` seconds
    (renewing tokens before they expire, cleaning up unfinished authorizations); the
    leases make several workers safe together, and one failing pass stops no other. A
    pass that returns True found more work than one pass does: the next round starts at
    once instead of after ``interval``."""

    def __init__(self, interval: float, *passes: Callable[[], object]) -> None:
        self.interval = interval
        self.passes = passes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="token-refresher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        more = False
        while not self._stop.wait(0 if more else self.interval):
            more = False
            for run_pass in self.passes:
                try:
                    more = run_pass() is True or more
                except Exception:
                    log.exception("background pass %s failed", run_pass.__name__)
