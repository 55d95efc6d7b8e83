"""`authprofiles users create|list|disable|reset` and `workspaces create`: people, from the
machine the server runs on (the first admin is made here)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer
from rich.text import Text

from authprofiles.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    new_table,
    open_services,
    print_json,
    print_table,
    when,
)
from authprofiles.core.callers import Role

app = typer.Typer(help="People: users, their roles and passwords.", no_args_is_help=True)
workspaces_app = typer.Typer(help="Workspaces: separate sets of profiles and people.")

WorkspaceOption = Annotated[
    str | None,
    typer.Option(help="The workspace, by name or id (default: the first one, `default`)"),
]


def read_password(prompt: str = "Password") -> str:
    """From a prompt (typed twice, hidden) on a terminal; else one line of stdin, so that
    scripts pipe it in and it never appears in the process list."""
    if sys.stdin.isatty():
        return str(typer.prompt(prompt, hide_input=True, confirmation_prompt=True))
    line = sys.stdin.readline()
    return line.rstrip("\r\n")


@app.command()
def create(
    email: Annotated[str, typer.Option(help="Their email address (how they sign in)")],
    name: Annotated[str, typer.Option(help="Display name")] = "",
    role: Annotated[
        Role, typer.Option(help="admin, developer or viewer (default: developer)")
    ] = Role.DEVELOPER,
    admin: Annotated[bool, typer.Option("--admin", help="Shorthand for --role admin")] = False,
    workspace: WorkspaceOption = None,
    no_password: Annotated[
        bool,
        typer.Option(
            "--no-password", help="Set no password now (single sign-on, or `users reset`)"
        ),
    ] = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Make a user with a role in a workspace (the first admin: `--admin`). The password
    is prompted for, or read as one line from stdin."""
    password = None if no_password else read_password()
    services = open_services(database)
    try:
        member = services.people.create_user(
            email=email,
            name=name,
            role=(Role.ADMIN if admin else role).value,
            workspace=workspace,
            password=password,
        )
    finally:
        services.close()
    if as_json:
        print_json({"id": member.id, "email": member.email, "role": member.role.value})
        return
    console.print(
        Text.assemble("User ", (member.email, "bold"), f" ({member.role.value}), id {member.id}"),
        soft_wrap=True,
    )


@app.command("list")
def list_users(
    workspace: WorkspaceOption = None, as_json: JsonOption = False, database: DatabaseOption = None
) -> None:
    """The members of a workspace, with their roles."""
    services = open_services(database)
    try:
        members = services.people.list_all(workspace)
    finally:
        services.close()
    if as_json:
        print_json(
            [
                {
                    "id": m.id,
                    "email": m.email,
                    "name": m.name,
                    "role": m.role.value,
                    "disabled": m.disabled,
                    "created_at": m.created_at.isoformat(),
                }
                for m in members
            ]
        )
        return
    table = new_table("id", "email", "name", "role", "disabled", "joined (UTC)")
    for m in members:
        table.add_row(
            Text(m.id),
            Text(m.email),
            Text(m.name),
            m.role.value,
            "yes" if m.disabled else "",
            when(m.created_at),
        )
    print_table(table)


@app.command()
def disable(
    email: Annotated[str, typer.Argument(help="The user's email address")],
    database: DatabaseOption = None,
) -> None:
    """Disable a user: they cannot sign in, their sessions end and their API keys stop."""
    services = open_services(database)
    try:
        services.people.disable_by_email(email)
    finally:
        services.close()
    console.print(Text(f"Disabled {email}."), soft_wrap=True)


@app.command()
def reset(
    email: Annotated[str, typer.Argument(help="The user's email address")],
    link: Annotated[
        bool,
        typer.Option("--link", help="Print a one-time link for them to set it themselves"),
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Set a new password (prompted for, or one line of stdin); every session of theirs
    ends. With --link: print a one-time link where they set it."""
    password = None if link else read_password("New password")
    services = open_services(database)
    try:
        if password is None:
            user_id = services.people.user_id(email)
            made = services.signin.reset_link(user_id)
        else:
            services.people.set_password(email, password)
    finally:
        services.close()
    if password is None:
        until = f"{made.expires_at:%Y-%m-%d %H:%M}"
        console.print(Text(f"Send this link to {email}; it works once, until {until} UTC:"))
        typer.echo(made.url)
        return
    console.print(Text(f"Password of {email} set."), soft_wrap=True)


@workspaces_app.command("create")
def create_workspace(
    name: Annotated[str, typer.Argument(help="The new workspace's name")],
    admin: Annotated[str, typer.Option("--admin", help="Email of its first admin (a user)")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """A new workspace with its first admin: nothing in it is shared with the others."""
    services = open_services(database)
    try:
        workspace = services.people.create_workspace(name, admin)
    finally:
        services.close()
    if as_json:
        print_json({"id": workspace.id, "name": workspace.name})
        return
    console.print(
        Text.assemble("Workspace ", (workspace.name, "bold"), f" created, id {workspace.id}"),
        soft_wrap=True,
    )
