"""The proxy's use case: plan a call, have the forwarder send it, refresh once if refused.

Every call asks the policy (purpose ``proxy``, with the method, host and path it will
reach) before its token is applied. On the profile's auth error status (default 401)
the token is refreshed once (single-flight, in the token issuer) and the call sent again
when its body can be replayed.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from functools import partial
from typing import Generic, TypeVar

import anyio

from authprofiles.core.agent_grants import (
    AgentCall,
    AgentGrant,
    ApprovalRequired,
    HeldCall,
    RuleRefused,
    decide,
    normalised_path,
)
from authprofiles.core.callers import CredentialRequest, Principal, Purpose
from authprofiles.core.connections import Connection
from authprofiles.core.errors import (
    Conflict,
    DomainError,
    Forbidden,
    UpstreamError,
    UpstreamTimeout,
)
from authprofiles.core.injection import CallerPath, join_path
from authprofiles.core.ports import (
    ConnectionReader,
    CredentialPolicy,
    ForwardedResponse,
    Forwarder,
    IssuedCredential,
    TokenIssuer,
)
from authprofiles.core.profiles import Profile
from authprofiles.core.redaction import Redactor
from authprofiles.services.blocking import in_thread_pool
from authprofiles.services.errors import NeedsReauth
from authprofiles.services.proxy.agents import AgentGate, AnswerRedactor, RedactedBody
from authprofiles.services.proxy.bodies import PAYLOAD_LIMIT, REPLAY_LIMIT, BodyTooLarge, read_body
from authprofiles.services.proxy.planning import (
    IncomingRequest,
    PolicyTarget,
    ProxyPlan,
    RequestBody,
    build_plan,
    credentials_of,
    forwarded_headers,
    outbound_request,
    policy_target,
    relayed_headers,
    target_of,
)
from authprofiles.wire.refresh_once import RefreshOnce

log = logging.getLogger("authprofiles.proxy")
T = TypeVar("T")
IssuedT = TypeVar("IssuedT", bound=IssuedCredential)

#: An upstream error's text is cut here, after the credentials were taken out of it.
MAX_ERROR_DETAIL = 500
#: The longest an agent's call may wait for a person's decision (``Prefer: wait=N``).
MAX_APPROVAL_WAIT_SECONDS = 300
#: How often a waiting call looks for the decision.
APPROVAL_POLL_SECONDS = 0.25


class UpstreamResponse:
    """The upstream's answer, body not yet read, with the fields a proxy relays. The
    edge streams it and must call :meth:`aclose` (also when the caller goes away)."""

    def __init__(self, response: ForwardedResponse, *, host: str, retried: bool) -> None:
        self._response = response
        self.host = host
        self.status_code = response.status
        self.retried = retried
        self.raw_headers, self.content_length = relayed_headers(response.raw_headers)

    async def read_raw(self) -> bytes:
        """The whole body as sent, for small ones (see ``content_length``); closes."""
        return await self._response.read()

    def aiter_raw(self) -> AsyncIterator[bytes]:
        """The body as sent (still compressed, if it was): Content-Length stays true."""
        return self._response.iter_raw()

    async def aclose(self) -> None:
        await self._response.release()


class AgentUpstreamResponse(UpstreamResponse):
    """The upstream's answer as an agent gets it: the injected credentials replaced by
    ``[redacted]`` in the headers and the body. The body's length changes with that, so
    its Content-Length is sent only for a body read whole (:meth:`read_raw`)."""

    def __init__(
        self, response: ForwardedResponse, redactor: Redactor, *, host: str, retried: bool
    ) -> None:
        super().__init__(response, host=host, retried=retried)
        self._body = body = RedactedBody(response, redactor)
        self.raw_headers = [
            (name, value)
            for name, value in body.headers(self.raw_headers)
            if name != b"content-length"
        ]

    async def read_raw(self) -> bytes:
        data = await self._body.read()
        self.raw_headers = [*self.raw_headers, (b"content-length", str(len(data)).encode())]
        return data

    def aiter_raw(self) -> AsyncIterator[bytes]:
        return self._body.iter_raw()


class ProxyService(Generic[IssuedT]):
    """``ANY /proxy/{connection_id}/{path}``: the caller's call, sent to the profile's
    ``api_base_url`` + ``path`` with the connection's credentials applied."""

    def __init__(
        self,
        *,
        tokens: TokenIssuer[IssuedT],
        connections: ConnectionReader,
        policy: CredentialPolicy,
        forwarder: Forwarder,
        replay_limit: int = REPLAY_LIMIT,
        payload_limit: int = PAYLOAD_LIMIT,
        agents: AgentGate | None = None,
    ) -> None:
        self._agents = agents
        self._tokens = tokens
        self._connections = connections
        self._policy = policy
        self._forwarder = forwarder
        self._replay_limit = replay_limit
        self._payload_limit = payload_limit

    # -- planning (blocking: runs in the thread pool) --------------------------------
    def plan(
        self, principal: Principal, connection_id: str, method: str, path: CallerPath, query: str
    ) -> ProxyPlan:
        """Ask the policy, get a valid token and build the target URL. ``path`` was
        checked before (:meth:`CallerPath.of`), so an escape is refused before any token
        is touched.

        The policy (asked by the token issuer, before it reads the token) is asked about
        the host and resource path the call will reach. Those come from the profile and
        the connection, which the issuer reads anyway; so the target seen last time for
        this connection is asked about, and checked against what the read returned: when
        it changed (the profile was edited), the policy is asked again about the new one.
        Only the first call reads twice.
        """
        last = self._tokens.last_issued(connection_id)
        target: PolicyTarget | None = None
        if last is not None:
            # Only a guess, checked below against what the token issuer reads.
            with contextlib.suppress(DomainError):
                target = policy_target(last.connection, last.profile)
        if target is None:
            connection, profile = self._connections.read(principal.workspace_id, connection_id)
            target = policy_target(connection, profile)
        for _ in range(2):
            issued = self._tokens.get_token(
                principal,
                connection_id,
                purpose=Purpose.PROXY,
                method=method,
                host=target.host,
                path=target.path_for(path),
            )
            current = target_of(issued)
            if current == target:
                return build_plan(issued, credentials_of(issued), path, query, target.host)
            target = current
        raise Conflict("the profile changed twice while this call was prepared; try again")

    def plan_from_memory(
        self, principal: Principal, connection_id: str, method: str, path: CallerPath, query: str
    ) -> ProxyPlan | None:
        """The same without I/O, from a token this process handed out within the reuse
        window (the token endpoint's too); None when there is none (then :meth:`plan`).

        The policy is asked every time, exactly as :meth:`plan` asks it, before the
        token is applied. Reuse is bounded so that a deleted connection or an edited
        profile takes effect within that time; a token replaced by another worker
        meanwhile is caught by the refused-token retry, which then finds the stored
        token without calling the IdP.
        """
        issued = self._tokens.reusable(principal, connection_id)
        if issued is None:
            return None
        target = target_of(issued)
        self._policy.authorize(
            principal,
            CredentialRequest.to_use(
                issued.connection,
                Purpose.PROXY,
                method=method,
                host=target.host,
                path=target.path_for(path),
            ),
        )
        return build_plan(issued, credentials_of(issued), path, query, target.host)

    def plan_after_refusal(
        self, principal: Principal, refused: ProxyPlan, path: CallerPath, query: str
    ) -> ProxyPlan:
        """The upstream refused ``refused``'s token: the same call with a refreshed one."""
        connection_id = refused.issued.connection.id
        try:
            issued = self._tokens.force_refresh(
                principal, connection_id, seen_version=refused.issued.connection.version
            )
        except DomainError:
            self._tokens.forget(connection_id)
            raise
        return build_plan(issued, credentials_of(issued), path, query, refused.host)

    def refresh_refused(
        self, principal: Principal, connection_id: str, refused_sha256: str | None
    ) -> IssuedT:
        """For clients applying the token themselves (the SDK): the API refused a token.

        Refresh once, unless the stored token already differs from the refused one (then
        another caller refreshed first, and the new token is the answer).
        """
        self._tokens.forget(connection_id)  # nobody may reuse the refused token
        issued = self._tokens.get_token(principal, connection_id)
        if refused_sha256 is not None:
            current = hashlib.sha256(issued.tokens.access_token.encode()).hexdigest()
            if not hmac.compare_digest(current, refused_sha256.strip().lower()):
                return issued
        return self._tokens.force_refresh(
            principal, connection_id, seen_version=issued.connection.version
        )

    # -- forwarding (async: runs on the server's loop) ---------------------------------
    async def forward(
        self,
        principal: Principal,
        connection_id: str,
        incoming: IncomingRequest,
        *,
        wait_seconds: float = 0,
    ) -> UpstreamResponse:
        """Send the caller's call; an agent's is checked against its grant first (and may
        wait up to ``wait_seconds`` for a person's approval)."""
        if principal.is_agent:
            return await self._forward_for_agent(principal, connection_id, incoming, wait_seconds)
        return await self._forward(principal, connection_id, incoming)

    async def _forward(
        self,
        principal: Principal,
        connection_id: str,
        incoming: IncomingRequest,
        *,
        for_agent: bool = False,
        path: CallerPath | None = None,
    ) -> UpstreamResponse:
        method = incoming.method.upper()
        # Checked once, before any token is touched; joined under two bases below.
        path = path or CallerPath.of(incoming.path)
        args = (principal, connection_id, method, path, incoming.query)
        plan = await self._tokens.reuse_or_read(
            connection_id,
            partial(self.plan_from_memory, *args),
            partial(in_thread_pool, partial(self.plan, *args)),
        )
        body = await read_body(
            incoming,
            plan.injection,
            replay_limit=self._replay_limit,
            payload_limit=self._payload_limit,
        )
        headers = forwarded_headers(incoming.headers)
        if for_agent:
            # The answer must be readable to take the credentials out of it.
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
            headers.append(("Accept-Encoding", "identity"))
        refresh = RefreshOnce(plan.auth_error_status)
        response = await self._send(plan, method, headers, body)
        retried = False
        while refresh.on_response(response.status):
            # RFC 6750 section 3.1: "invalid_token" (401) means the token is expired,
            # revoked or otherwise refused; a fresh one may be accepted.
            try:
                fresh = await in_thread_pool(
                    partial(self.plan_after_refusal, principal, plan, path, incoming.query)
                )
            except NeedsReauth:
                await response.release()
                raise
            except DomainError as exc:
                # The IdP is unreachable or similar: the API's own answer says the most.
                log.warning("refresh after HTTP %s failed: %s", response.status, exc.detail)
                break
            if not body.replayable or (
                fresh.issued.tokens.access_token == plan.issued.tokens.access_token
            ):
                # The body has streamed away (the caller's own retry will get the new
                # token), or there is no new token to try.
                break
            await response.release()
            plan, retried = fresh, True
            response = await self._send(plan, method, headers, body)
        if for_agent:
            redactor = plan.issued.derived.get(
                AnswerRedactor,
                lambda: AnswerRedactor(*plan.injection.values(), plan.issued.tokens.access_token),
            )
            try:
                return AgentUpstreamResponse(response, redactor, host=plan.host, retried=retried)
            except UpstreamError as exc:
                await response.release()
                raise UpstreamError(exc.detail, plan.host) from None
        return UpstreamResponse(response, host=plan.host, retried=retried)

    # -- agents ---------------------------------------------------------------------------
    async def _forward_for_agent(
        self,
        principal: Principal,
        connection_id: str,
        incoming: IncomingRequest,
        wait_seconds: float,
    ) -> UpstreamResponse:
        """The grant's rules, before any token is read; approval when a rule asks for it;
        the rate and budget; then the call, its answer with the credentials taken out."""
        gate = self._agents
        if gate is None:
            raise Forbidden("this server does not take agent grants")
        method = incoming.method.upper()
        grant = gate.grant_in_memory(principal)
        if grant is None:
            grant = await in_thread_pool(partial(gate.grant_of, principal))
        relative = "/"

        def record(path: str, outcome: str, status: int | None = None) -> None:
            gate.record_call(principal, AgentCall(connection_id, method, path, outcome, status))

        try:
            if connection_id not in grant.connection_ids:
                reason = f"connection {connection_id} is not one of the grant's connections"
                raise RuleRefused(f"the agent grant does not allow this: {reason}", [reason])
            relative = normalised_path(incoming.path)
            path = CallerPath.of(incoming.path)
            host = None
            if any(rule.host for rule in grant.rules):
                host = (await self._target_for_agent(principal, connection_id)).host
            rule = decide(grant, method, host, relative)
            approval_id = None
            if rule.approval:
                incoming, approval_id = await self._approved(
                    principal, grant, connection_id, incoming, path, wait_seconds
                )
            if grant.metered:
                try:
                    await in_thread_pool(partial(gate.reserve_call, grant))
                except DomainError:
                    await self._give_back(approval_id)
                    raise
        except DomainError as exc:
            record(path=relative, outcome=_outcome(exc))
            raise
        try:
            upstream = await self._forward(
                principal, connection_id, incoming, for_agent=True, path=path
            )
        except DomainError as exc:
            if not isinstance(exc, UpstreamTimeout):
                # It never reached the upstream: it does not count, and the person's
                # approval still stands for the call the agent makes again.
                if grant.metered:
                    await in_thread_pool(partial(gate.refund_call, grant))
                await self._give_back(approval_id)
            record(path=relative, outcome=_outcome(exc))
            raise
        record(path=relative, outcome="sent", status=upstream.status_code)
        return upstream

    async def _target_for_agent(self, principal: Principal, connection_id: str) -> PolicyTarget:
        """Where the connection's calls go, without applying any token."""
        last = self._tokens.last_issued(connection_id)
        if last is not None and last.connection.workspace_id == principal.workspace_id:
            with contextlib.suppress(DomainError):
                return policy_target(last.connection, last.profile)
        connection, profile = await in_thread_pool(
            partial(self._connections.read, principal.workspace_id, connection_id)
        )
        return policy_target(connection, profile)

    async def _approved(
        self,
        principal: Principal,
        grant: AgentGrant,
        connection_id: str,
        incoming: IncomingRequest,
        path: CallerPath,
        wait_seconds: float,
    ) -> tuple[IncomingRequest, str | None]:
        """The call, once a person approved exactly it (same method, URL and body), and the
        approval it used; else ``ApprovalRequired``, after waiting up to ``wait_seconds``
        for the decision."""
        gate = self._agents
        assert gate is not None
        body = await _whole_body(incoming.body, self._replay_limit)
        connection, profile = await in_thread_pool(
            partial(self._connections.read, principal.workspace_id, connection_id)
        )
        target = policy_target(connection, profile)
        url = join_path(target.base, path) + (f"?{incoming.query}" if incoming.query else "")
        call = HeldCall(
            connection_id=connection_id,
            profile_id=profile.id,
            profile_name=profile.name,
            method=incoming.method.upper(),
            url=url,
            body=body,
            hide=_secrets_of(connection, profile),
        )
        hold = partial(gate.pass_or_hold, principal, grant, call)
        deadline = time.monotonic() + min(max(wait_seconds, 0), MAX_APPROVAL_WAIT_SECONDS)
        while True:
            try:
                used = await in_thread_pool(hold)
                return replace(incoming, body=_once(body)), used
            except ApprovalRequired as held:
                status = await self._decision(held.approval_id, deadline)
                if status == "denied":
                    raise Forbidden("a person denied this call; it was not sent") from None
                if status != "approved":
                    raise

    async def _give_back(self, approval_id: str | None) -> None:
        """An approved call that was not made after all: the approval stands again."""
        if approval_id is not None and self._agents is not None:
            await in_thread_pool(partial(self._agents.restore_approval, approval_id))

    async def _decision(self, approval_id: str, deadline: float) -> str | None:
        """The approval's status once decided, or None when ``deadline`` comes first."""
        gate = self._agents
        assert gate is not None
        while time.monotonic() < deadline:
            await anyio.sleep(min(APPROVAL_POLL_SECONDS, max(deadline - time.monotonic(), 0)))
            status = await in_thread_pool(partial(gate.approval_status, approval_id))
            if status in ("approved", "denied"):
                return status
            if status != "pending":
                return None
        return None

    async def _send(
        self, plan: ProxyPlan, method: str, headers: list[tuple[str, str]], body: RequestBody
    ) -> ForwardedResponse:
        try:
            return await self._forwarder.send(outbound_request(plan, method, headers, body))
        except UpstreamError as exc:
            raise _without_credentials(exc, plan) from None


def _secrets_of(connection: Connection, profile: Profile) -> tuple[str, ...]:
    """What the person deciding must not see in a held call's body preview: any secret the
    connection or profile holds (an agent may have put one there)."""
    tokens = connection.tokens
    found = (
        tokens.access_token if tokens else None,
        tokens.refresh_token if tokens else None,
        connection.password,
        profile.client_secret,
        *(field.value for field in profile.authorization_fields),
        *connection.fields.values(),
    )
    return tuple(value for value in found if value)


def _outcome(exc: DomainError) -> str:
    """How an agent's call ended, for the audit log."""
    if isinstance(exc, ApprovalRequired):
        return "held"
    if isinstance(exc, RuleRefused):
        return "refused"
    return type(exc).__name__


async def _whole_body(stream: AsyncIterator[bytes], limit: int) -> bytes:
    """A held call's body, whole: its digest names the call a person approves."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in stream:
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(
                f"a call that needs approval may have a body of at most {limit} bytes"
            )
        chunks.append(chunk)
    return b"".join(chunks)


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _without_credentials(exc: UpstreamError, plan: ProxyPlan) -> UpstreamError:
    """The forwarder's error with every credential of ``plan`` taken out of its text (an
    HTTP library may quote the URL, which can carry query-placed values), then cut."""
    # Every value, however short: a cut error text is worth less than a leaked credential.
    redactor = Redactor(
        *plan.injection.values(), plan.issued.tokens.access_token, plan.url, min_length=1
    )
    detail = redactor.text(exc.detail)[:MAX_ERROR_DETAIL]
    kind = UpstreamTimeout if isinstance(exc, UpstreamTimeout) else UpstreamError
    return kind(detail, exc.host)


__all__ = ["ProxyService", "UpstreamResponse"]
