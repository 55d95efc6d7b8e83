"""`authprofiles api-keys create|list|revoke`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from authprofiles.cli.common import console, open_services
from authprofiles.services.access import Role

app = typer.Typer(
    help="API keys for the HTTP API (shown once, stored only as a hash).", no_args_is_help=True
)

DatabaseOption = Annotated[str | None, typer.Option(help="Database URL")]


@app.command()
def create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'billing-agent'")],
    role: Annotated[
        Role, typer.Option(help="admin: manage profiles; developer: use them; viewer: read")
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts")] = False,
    database: DatabaseOption = None,
) -> None:
    """Create an API key and print it once."""
    services = open_services(database)
    try:
        created = services.api_keys.create(name=name, role=role.value)
    finally:
        services.close()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "id": created.id,
                    "name": created.name,
                    "role": created.role.value,
                    "key": created.key,
                }
            )
        )
        return
    console.print(f"API key [bold]{created.name}[/bold] ({created.role.value}) created.")
    console.print("Copy it now; it is not shown again and only its hash is stored:\n")
    typer.echo(created.key)


@app.command("list")
def list_keys(database: DatabaseOption = None) -> None:
    """List API keys (never the keys themselves)."""
    services = open_services(database)
    try:
        rows = services.api_keys.list()
    finally:
        services.close()
    table = Table("id", "name", "role", "created", "revoked")
    for row in rows:
        table.add_row(
            row.id,
            row.name,
            row.role,
            f"{row.created_at:%Y-%m-%d %H:%M}",
            "yes" if row.revoked_at else "",
        )
    console.print(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The id shown by `api-keys list`")],
    database: DatabaseOption = None,
) -> None:
    """Revoke an API key; every worker stops accepting it within seconds."""
    services = open_services(database)
    try:
        done = services.api_keys.revoke(key_id)
    finally:
        services.close()
    if not done:
        raise typer.BadParameter(f"no active API key with id {key_id}", param_hint="KEY_ID")
    console.print(f"Revoked {key_id}.")
