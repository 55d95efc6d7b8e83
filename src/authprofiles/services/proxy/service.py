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
from collections.abc import AsyncIterator
from functools import partial
from typing import Generic, TypeVar

from authprofiles.core.callers import CredentialRequest, Principal, Purpose
from authprofiles.core.errors import Conflict, DomainError, UpstreamError, UpstreamTimeout
from authprofiles.core.injection import CallerPath
from authprofiles.core.ports import (
    ConnectionReader,
    CredentialPolicy,
    ForwardedResponse,
    Forwarder,
    IssuedCredential,
    TokenIssuer,
)
from authprofiles.core.redaction import Redactor
from authprofiles.services.blocking import in_thread_pool
from authprofiles.services.errors import NeedsReauth
from authprofiles.services.proxy.bodies import PAYLOAD_LIMIT, REPLAY_LIMIT, read_body
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
    ) -> None:
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
        self, principal: Principal, connection_id: str, incoming: IncomingRequest
    ) -> UpstreamResponse:
        method = incoming.method.upper()
        # Checked once, before any token is touched; joined under two bases below.
        path = CallerPath.of(incoming.path)
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
        return UpstreamResponse(response, host=plan.host, retried=retried)

    async def _send(
        self, plan: ProxyPlan, method: str, headers: list[tuple[str, str]], body: RequestBody
    ) -> ForwardedResponse:
        try:
            return await self._forwarder.send(outbound_request(plan, method, headers, body))
        except UpstreamError as exc:
            raise _without_credentials(exc, plan) from None


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
