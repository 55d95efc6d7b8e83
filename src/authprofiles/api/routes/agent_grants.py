"""/api/v1/agent-grants and /api/v1/approvals: what agents may do, and the calls they wait on.

A grant's token is shown once, in the answer that creates it; it works only on the proxy
and ``/mcp``. Held calls are decided here (or on the console's approval page).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from authprofiles.api.deps import CurrentPrincipal, ServicesDep
from authprofiles.api.paging import Page, by_creation, page_responses
from authprofiles.api.problems import problem_responses
from authprofiles.composition import Services
from authprofiles.core.agent_grants import MAX_AGENT_NAME, MAX_TTL_SECONDS, AgentGrant
from authprofiles.core.callers import Principal
from authprofiles.services.approvals import Approval

router = APIRouter(tags=["agents"])

_EXAMPLE_ID = "6c1d2e3f-4a5b-4c6d-8e7f-9a0b1c2d3e4f"
_AGENT_OR_VIEWER = "An agent, or a viewer"


_TIME = "2025-01-31T09:30:00Z"


class RuleIn(BaseModel):
    """One call shape the agent may make."""

    model_config = ConfigDict(extra="forbid")

    methods: list[str] = Field(
        description="Upper-case HTTP methods", examples=[["GET"]], min_length=1, max_length=7
    )
    path: str = Field(
        description="A glob on the path relative to the connection's `api_base_url`, decoded "
        "and normalised once: `*` one segment, `**` any number of them",
        examples=["/repos/**"],
        max_length=1000,
    )
    host: str | None = Field(
        default=None,
        description="The upstream host the call must go to (left out: any)",
        examples=["api.github.com"],
        max_length=255,
    )
    approval: bool = Field(
        default=False,
        description="Hold each such call until a person approves it",
        examples=[False],
    )


_AGENT = Field(
    min_length=1,
    max_length=MAX_AGENT_NAME,
    description="The agent's name, as the audit log shows it",
    examples=["billing-agent"],
)
_CONNECTIONS = "Connections the agent may call through"
_RULES = "Allow rules; a call matching none is refused"
_RATE = "Calls a minute, at most (null: no limit)"
_BUDGET = "Calls that reach the upstream, in all (null: no budget)"


class AgentGrantCreate(BaseModel):
    """A grant for an agent: which connections, which calls, how many, how long."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "agent": "billing-agent",
                    "connection_ids": [_EXAMPLE_ID],
                    "rules": [
                        {"methods": ["GET"], "path": "/invoices/**"},
                        {"methods": ["POST"], "path": "/invoices/*/send", "approval": True},
                    ],
                    "rate_per_minute": 60,
                    "max_calls": 1000,
                    "ttl_seconds": 86400,
                }
            ]
        },
    )

    agent: str = _AGENT
    connection_ids: list[str] = Field(
        min_length=1, max_length=100, description=_CONNECTIONS, examples=[[_EXAMPLE_ID]]
    )
    rules: list[RuleIn] = Field(
        min_length=1,
        max_length=50,
        description=_RULES,
        examples=[[{"methods": ["GET"], "path": "/invoices/**"}]],
    )
    rate_per_minute: int | None = Field(
        default=None, ge=1, le=1_000_000, description=_RATE, examples=[60]
    )
    max_calls: int | None = Field(
        default=None, ge=1, le=1_000_000_000, description=_BUDGET, examples=[1000]
    )
    ttl_seconds: int = Field(
        ge=1,
        le=MAX_TTL_SECONDS,
        description="How long the grant works: 1 s to 30 days",
        examples=[86400],
    )


class AgentGrantPublic(BaseModel):
    """A grant as lists show it: never its token."""

    id: str = Field(
        description="The grant's id (also its client id at the server's token endpoint)",
        examples=[_EXAMPLE_ID],
    )
    agent: str = Field(description="The agent's name", examples=["billing-agent"])
    connection_ids: list[str] = Field(description=_CONNECTIONS, examples=[[_EXAMPLE_ID]])
    rules: list[RuleIn] = Field(
        description=_RULES, examples=[[{"methods": ["GET"], "path": "/invoices/**"}]]
    )
    rate_per_minute: int | None = Field(description=_RATE, examples=[60])
    max_calls: int | None = Field(description=_BUDGET, examples=[1000])
    calls_made: int = Field(description="Calls that reached the upstream so far", examples=[3])
    created_by: str | None = Field(
        description="The person the agent acts for (null: a key from before the workspace "
        "had people)",
        examples=[_EXAMPLE_ID],
    )
    created_at: datetime = Field(description="When it was made", examples=[_TIME])
    expires_at: datetime = Field(description="When it stops working", examples=[_TIME])
    revoked_at: datetime | None = Field(description="When it was revoked, or null", examples=[None])
    status: Literal["active", "expired", "revoked"] = Field(
        description="Whether it works now", examples=["active"]
    )

    @classmethod
    def of(cls, grant: AgentGrant, now: datetime) -> AgentGrantPublic:
        state: Literal["active", "expired", "revoked"] = (
            "revoked"
            if grant.revoked_at is not None
            else "expired"
            if grant.expires_at <= now
            else "active"
        )
        return cls(
            id=grant.id,
            agent=grant.agent,
            connection_ids=sorted(grant.connection_ids),
            rules=[
                RuleIn(
                    methods=list(rule.methods),
                    path=rule.path,
                    host=rule.host,
                    approval=rule.approval,
                )
                for rule in grant.rules
            ],
            rate_per_minute=grant.rate_per_minute,
            max_calls=grant.max_calls,
            calls_made=grant.calls_made,
            created_by=grant.created_by,
            created_at=grant.created_at,
            expires_at=grant.expires_at,
            revoked_at=grant.revoked_at,
            status=state,
        )


class AgentGrantCreated(AgentGrantPublic):
    """The new grant, and its token: this answer is the only one that holds it."""

    token: str = Field(
        description="The agent's bearer token, for the proxy and `/mcp` only. Shown this "
        "once: only its hash is stored",
        examples=["apg_3f9c0d1e2a4b5c6d_Xb2...redacted"],
    )


@router.post(
    "/agent-grants",
    status_code=status.HTTP_201_CREATED,
    response_model=AgentGrantCreated,
    responses=problem_responses(
        {403: "An agent, a viewer, or a connection the caller may not use"}
    ),
)
def create_agent_grant(
    body: AgentGrantCreate, services: ServicesDep, principal: CurrentPrincipal
) -> AgentGrantCreated:
    """Mint a grant for an agent, on connections the caller may use. The answer's `token`
    is the only time it is shown."""
    created = services.agent_grants.create(
        principal,
        agent=body.agent,
        connection_ids=body.connection_ids,
        rules=[rule.model_dump() for rule in body.rules],
        ttl_seconds=body.ttl_seconds,
        rate_per_minute=body.rate_per_minute,
        max_calls=body.max_calls,
    )
    public = AgentGrantPublic.of(created.grant, services.clock.now())
    return AgentGrantCreated(**public.model_dump(), token=created.token)


@router.get(
    "/agent-grants",
    response_model=list[AgentGrantPublic],
    responses={
        **page_responses("A page of agent grants, oldest first"),
        **problem_responses({403: _AGENT_OR_VIEWER}),
    },
)
def list_agent_grants(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
    agent: Annotated[
        str | None, Query(max_length=MAX_AGENT_NAME, description="Only this agent's")
    ] = None,
) -> list[AgentGrantPublic]:
    """Grants, revoked and expired ones included: an admin sees the workspace's, anyone
    else the ones they made. Never a token."""
    grants = services.agent_grants.list_for(
        principal, after=page.after_created(), limit=page.fetch, agent=agent
    )
    now = services.clock.now()
    return [AgentGrantPublic.of(g, now) for g in page.page(request, response, grants, by_creation)]


@router.delete(
    "/agent-grants/{grant_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    response_class=Response,
    responses=problem_responses({403: _AGENT_OR_VIEWER, 404: "No active grant of that id"}),
)
def revoke_agent_grant(
    grant_id: Annotated[str, Path(description="The grant's id", examples=[_EXAMPLE_ID])],
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> Response:
    """Revoke a grant: its token and the access tokens issued for it stop working (at once
    in this worker, within seconds in the others)."""
    services.agent_grants.revoke(principal, grant_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


class RevokedGrants(BaseModel):
    """The grants one request revoked."""

    revoked: list[str] = Field(
        description="The ids of the grants revoked", examples=[[_EXAMPLE_ID]]
    )


@router.delete(
    "/agent-grants",
    response_model=RevokedGrants,
    responses=problem_responses({403: _AGENT_OR_VIEWER}),
)
def revoke_agent(
    services: ServicesDep,
    principal: CurrentPrincipal,
    agent: Annotated[
        str, Query(min_length=1, max_length=MAX_AGENT_NAME, description="The agent's name")
    ],
) -> RevokedGrants:
    """Revoke every active grant of one agent (that the caller may revoke) at once."""
    revoked = services.agent_grants.revoke_agent(principal, agent)
    return RevokedGrants(revoked=[grant.id for grant in revoked])


ApprovalStatus = Literal["pending", "approved", "denied", "used", "expired"]


class ApprovalPublic(BaseModel):
    """A call an agent made that waits for (or got) a person's decision."""

    id: str = Field(description="The held call's id", examples=[_EXAMPLE_ID])
    grant_id: str = Field(description="The grant it was made with", examples=[_EXAMPLE_ID])
    agent: str = Field(description="The agent's name", examples=["billing-agent"])
    connection_id: str = Field(description="The connection it goes through", examples=[_EXAMPLE_ID])
    method: str = Field(description="The HTTP method", examples=["POST"])
    url: str = Field(
        description="Where the call goes (no credential is in it)",
        examples=["https://api.example.com/v1/invoices/7/send"],
    )
    body_sha256: str = Field(
        description="Hex SHA-256 of the call's body",
        examples=["9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"],
    )
    body_preview: str = Field(
        description="The body's first 2 KiB, as text, credentials hidden",
        examples=['{"amount": 10}'],
    )
    status: ApprovalStatus = Field(
        description="`pending` (waiting), `approved` (one call may go), `denied`, `used` "
        "(the approved call went) or `expired`",
        examples=["pending"],
    )
    created_at: datetime = Field(description="When the call was held", examples=[_TIME])
    expires_at: datetime = Field(
        description="When it expires unless decided (or, approved, made)", examples=[_TIME]
    )
    decided_at: datetime | None = Field(description="When a person decided", examples=[None])
    decided_by: str | None = Field(description="Who decided (a user id)", examples=[None])

    @classmethod
    def of(cls, approval: Approval) -> ApprovalPublic:
        fields: dict[str, Any] = {name: getattr(approval, name) for name in cls.model_fields}
        return cls(**fields)


@router.get(
    "/approvals",
    response_model=list[ApprovalPublic],
    responses={
        **page_responses("A page of held calls, oldest first"),
        **problem_responses({403: "An agent"}),
    },
)
def list_approvals(
    request: Request,
    response: Response,
    services: ServicesDep,
    principal: CurrentPrincipal,
    page: Page,
    status_filter: Annotated[
        ApprovalStatus | None, Query(alias="status", description="Only calls in this state")
    ] = None,
) -> list[ApprovalPublic]:
    """Held calls: an admin sees the workspace's, anyone else those of grants they made."""
    found = services.approvals.list_for(
        principal, status=status_filter, after=page.after_created(), limit=page.fetch
    )
    return [ApprovalPublic.of(a) for a in page.page(request, response, found, by_creation)]


@router.get(
    "/approvals/{approval_id}",
    response_model=ApprovalPublic,
    responses=problem_responses({403: "An agent", 404: "No such held call the caller sees"}),
)
def get_approval(
    approval_id: Annotated[str, Path(description="The held call's id")],
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> ApprovalPublic:
    """One held call."""
    return ApprovalPublic.of(services.approvals.get(principal, approval_id))


async def _decide(
    services: Services, principal: Principal, approval_id: str, *, approve: bool
) -> ApprovalPublic:
    decided = await run_in_threadpool(
        partial(services.approvals.decide, principal, approval_id, approve=approve)
    )
    return ApprovalPublic.of(decided)


_DECIDE_PROBLEMS = problem_responses(
    {
        403: "An agent (an agent never decides)",
        404: "No such held call the caller may decide (admins, and the grant's maker)",
        409: "Already decided, used or expired",
    }
)


@router.post(
    "/approvals/{approval_id}/approve", response_model=ApprovalPublic, responses=_DECIDE_PROBLEMS
)
async def approve_call(
    approval_id: Annotated[str, Path(description="The held call's id")],
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> ApprovalPublic:
    """Approve a held call: exactly one call with the same method, URL and body then goes
    through (before it expires)."""
    return await _decide(services, principal, approval_id, approve=True)


@router.post(
    "/approvals/{approval_id}/deny", response_model=ApprovalPublic, responses=_DECIDE_PROBLEMS
)
async def deny_call(
    approval_id: Annotated[str, Path(description="The held call's id")],
    services: ServicesDep,
    principal: CurrentPrincipal,
) -> ApprovalPublic:
    """Deny a held call: it never reaches the upstream."""
    return await _decide(services, principal, approval_id, approve=False)
