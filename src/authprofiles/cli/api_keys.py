"""`authprofiles api-keys create|list|revoke`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.text import Text

from authprofiles.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    new_table,
    open_api_keys,
    print_json,
    print_table,
    when,
)
from authprofiles.core.errors import NotFound
from authprofiles.services.access import Role

app = typer.Typer(
    help="API keys for the HTTP API (shown once, stored only as a hash).", no_args_is_help=True
)


@app.command()
def create(
    name: Annotated[str, typer.Option(help="What the key is for, e.g. 'billing-agent'")],
    role: Annotated[
        Role, typer.Option(help="admin: manage profiles; developer: use them; viewer: read")
    ],
    user: Annotated[
        str | None,
        typer.Option(
            help="Email of the user the key acts for (default: the workspace's first admin)"
        ),
    ] = None,
    workspace: Annotated[
        str | None,
        typer.Option(help="The workspace, by name or id (default: the first one, `default`)"),
    ] = None,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Create an API key and print it once. It acts for a user, with its own role or the
    user's, whichever is lower."""
    store = open_api_keys(database)
    try:
        created = store.api_keys.create_for(
            name=name, role=role.value, workspace=workspace, user_email=user
        )
    finally:
        store.close()
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
    console.print(
        Text.assemble(
            "API key ", (created.name, "bold"), f" ({created.role.value}) created, id {created.id}"
        ),
        soft_wrap=True,
    )
    console.print("Copy it now; it is not shown again and only its hash is stored:\n")
    typer.echo(created.key)


@app.command("list")
def list_keys(as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """List API keys, revoked ones too (never the keys themselves)."""
    store = open_api_keys(database)
    try:
        keys = store.api_keys.list()
    finally:
        store.close()
    if as_json:
        print_json(
            [
                {
                    "id": k.id,
                    "name": k.name,
                    "role": k.role.value,
                    "created_at": k.created_at.isoformat(),
                    "revoked_at": k.revoked_at.isoformat() if k.revoked_at else None,
                }
                for k in keys
            ]
        )
        return
    table = new_table(
        "id",
        "name",
        "role",
        "created (UTC)",
        "revoked",
    )
    for k in keys:
        table.add_row(
            Text(k.id), Text(k.name), k.role.value, when(k.created_at), when(k.revoked_at)
        )
    print_table(table)


@app.command()
def revoke(
    key_id: Annotated[str, typer.Argument(help="The id shown by `api-keys list`")],
    database: DatabaseOption = None,
) -> None:
    """Revoke an API key; every worker stops accepting it within seconds."""
    store = open_api_keys(database)
    try:
        store.api_keys.revoke(key_id)
    except NotFound as exc:
        raise typer.BadParameter(exc.detail, param_hint="KEY_ID") from None
    finally:
        store.close()
    console.print(Text(f"Revoked {key_id}."), soft_wrap=True)
