"""Agent grants as the tests make them: minted over the API, used by an agent's client."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support.app import Live

#: Every GET goes; every POST and DELETE waits for a person.
ASK_BEFORE_CHANGES: list[dict[str, Any]] = [
    {"methods": ["GET"], "path": "/**"},
    {"methods": ["POST", "DELETE"], "path": "/**", "approval": True},
]


def mint_grant(
    live: Live,
    connection_ids: str | list[str],
    rules: list[dict[str, Any]],
    **extra: Any,
) -> dict[str, Any]:
    """A grant made by ``live``'s admin key (201), its token included: ``extra`` adds to or
    replaces the body's members (``agent``, ``max_calls``, ``ttl_seconds``...)."""
    ids = [connection_ids] if isinstance(connection_ids, str) else connection_ids
    body = {"agent": "billing-agent", "connection_ids": ids, "rules": rules, "ttl_seconds": 3600}
    response = live.http.post("/api/v1/agent-grants", json={**body, **extra})
    assert response.status_code == 201, response.text
    created = dict(response.json())
    assert created["token"].startswith("apg_")
    return created


def agent_client(live: Live, token: str) -> httpx.Client:
    """An HTTP client of ``live`` that presents an agent's token."""
    return httpx.Client(
        base_url=live.url,
        headers={"Authorization": f"Bearer {token}"},
        timeout=30,
        trust_env=False,
    )


__all__ = ["ASK_BEFORE_CHANGES", "agent_client", "mint_grant"]
