"""`authprofiles connections list|show|delete`."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer
from rich.text import Text

from authprofiles.api.schemas import ConnectionPublic
from authprofiles.cli.common import (
    LOCAL_ADMIN,
    DatabaseOption,
    JsonOption,
    console,
    new_table,
    open_services,
    print_json,
    print_table,
    when,
)
from authprofiles.cli.profiles import find_profile, print_revocation, print_view
from authprofiles.core.connections import ConnectionStatus

app = typer.Typer(
    help="Connections: the tokens obtained through a profile, shared or a user's.",
    no_args_is_help=True,
)

_STATUS_STYLE = {"active": "green", "pending": "yellow", "needs_reauth": "red"}


@app.command("list")
def list_connections(
    profile: Annotated[
        str | None, typer.Option("--profile", help="Only this profile's (name or id)")
    ] = None,
    owner: Annotated[
        str | None, typer.Option("--owner", help="Only this owner's: 'shared' or a user id")
    ] = None,
    status: Annotated[
        ConnectionStatus | None, typer.Option("--status", help="Only those in this state")
    ] = None,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """List connections, oldest first: id, profile, owner, tenant, status, expiry."""
    services = open_services(database)
    try:
        profile_id = find_profile(services, profile).id if profile is not None else None
        connections = services.connections.list(LOCAL_ADMIN, profile_id, owner=owner, status=status)
        names = {p.id: p.name for p in services.profiles.list(LOCAL_ADMIN)}
    finally:
        services.close()
    shown = [ConnectionPublic.of(c) for c in connections]
    if as_json:
        print_json([c.model_dump(mode="json") for c in shown])
        return
    table = new_table(
        "id",
        "profile",
        "owner",
        "tenant",
        "status",
        "expires (UTC)",
        fold=("tenant",),
        title="Connections",
    )
    for c in shown:
        table.add_row(
            Text(c.id),
            Text(names.get(c.profile_id, c.profile_id)),
            Text(c.owner),
            Text(c.tenant or ""),
            Text(c.status, style=_STATUS_STYLE.get(c.status, "")),
            when(c.expires_at),
        )
    print_table(table)


@app.command()
def show(
    connection_id: Annotated[str, typer.Argument(help="The id shown by `connections list`")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Show one connection: status, expiry, scopes, tenant, owner (never its tokens)."""
    services = open_services(database)
    try:
        connection = ConnectionPublic.of(services.connections.get(LOCAL_ADMIN, connection_id))
        profile = services.profiles.get(LOCAL_ADMIN, connection.profile_id)
    finally:
        services.close()
    view: dict[str, Any] = connection.model_dump(mode="json")
    if as_json:
        print_json(view)
        return
    print_view(f"Connection {connection.id} of profile {profile.name}", view)


@app.command()
def delete(
    connection_id: Annotated[str, typer.Argument(help="The id shown by `connections list`")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask first (only a terminal is asked)")
    ] = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Disconnect: revoke the tokens at the identity provider where the profile names a
    revocation URL, then forget them."""
    services = open_services(database)
    try:
        connection = services.connections.get(LOCAL_ADMIN, connection_id)
        profile = services.profiles.get(LOCAL_ADMIN, connection.profile_id)
        if not yes and sys.stdin.isatty():
            typer.confirm(
                f"Delete connection {connection.id} ({connection.owner}) of profile "
                f"{profile.name}?",
                abort=True,
            )
        report = services.connections.delete(LOCAL_ADMIN, connection_id)
    finally:
        services.close()
    if as_json:
        print_json(
            {
                "deleted": True,
                "id": connection_id,
                "revoked": report.revoked,
                "revocation_errors": report.errors,
            }
        )
        return
    console.print(
        Text(f"Deleted connection {connection_id} of profile {profile.name}."), soft_wrap=True
    )
    print_revocation(report, revocation_url=profile.revocation_url)
