"""`authprofiles profiles list|show|export|import` (YAML files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import Progress
from rich.table import Table

from authprofiles.cli.common import LOCAL_ADMIN, console, errors, open_services
from authprofiles.core.errors import NotFound
from authprofiles.services.profiles import export_document, public_view
from authprofiles.store.profiles import UnreadableProfile

app = typer.Typer(help="Authorization Profiles.", no_args_is_help=True)

DatabaseOption = Annotated[str | None, typer.Option(help="Database URL")]
_STATUS_STYLE = {"configured": "green", "not_configured": "yellow", "failing": "red"}


@app.command("list")
def list_profiles(
    as_json: Annotated[bool, typer.Option("--json")] = False, database: DatabaseOption = None
) -> None:
    """List profiles: name, type, identity provider and status."""
    services = open_services(database)
    try:
        profiles = services.profiles.list(LOCAL_ADMIN)
    finally:
        services.close()
    if as_json:
        typer.echo(
            json.dumps(
                [
                    {
                        "id": p.id,
                        "name": p.name,
                        "auth_type": p.auth_type.value,
                        "identity_provider": p.identity_provider,
                        "status": p.status.value,
                    }
                    for p in profiles
                ]
            )
        )
        return
    table = Table(
        "name", "auth type", "identity provider", "status", "id", title="Authorization Profiles"
    )
    for p in profiles:
        style = _STATUS_STYLE[p.status.value]
        table.add_row(
            p.name,
            p.auth_type.value,
            p.identity_provider or "",
            f"[{style}]{p.status.value}[/{style}]",
            p.id,
        )
    console.print(table)


@app.command()
def show(
    profile: Annotated[str, typer.Argument(help="Profile name or id")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
    database: DatabaseOption = None,
) -> None:
    """Show one profile. Secrets appear only as set or not set."""
    services = open_services(database)
    try:
        found = _find(services, profile)
        view = public_view(found, services.settings.callback_url)
    finally:
        services.close()
    if as_json:
        typer.echo(json.dumps(view, default=str, indent=2))
        return
    table = Table("field", "value", title=f"Profile {found.name}", show_lines=False)
    for key, value in view.items():
        table.add_row(key, _cell(value))
    console.print(table)


def _cell(value: Any) -> str:
    if value is None:
        return "[dim]-[/dim]"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | dict):
        return json.dumps(value, default=str) if value else "[dim]-[/dim]"
    return str(value)


def _find(services: Any, name_or_id: str) -> Any:
    named = services.profiles.list(LOCAL_ADMIN, name=name_or_id)
    if named:
        return named[0]
    try:
        return services.profiles.get(LOCAL_ADMIN, name_or_id)
    except NotFound:
        raise NotFound(f"no profile named or with id {name_or_id!r}") from None


@app.command()
def export(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="File to write (default: stdout)")
    ] = None,
    include_secrets: Annotated[
        bool,
        typer.Option(
            "--include-secrets",
            help="Also write client secrets, passwords and field values in plain text",
        ),
    ] = False,
    database: DatabaseOption = None,
) -> None:
    """Export every profile as YAML. Secrets are left out unless --include-secrets."""
    services = open_services(database)
    try:
        document = services.profiles.export(LOCAL_ADMIN, include_secrets=include_secrets)
        # A profile whose secrets cannot be decrypted is exported, without them, and named.
        unreadable = [
            p for p in services.profiles.list(LOCAL_ADMIN) if isinstance(p, UnreadableProfile)
        ]
    finally:
        services.close()
    if unreadable:
        bare = {p.name: export_document(p, include_secrets=False) for p in unreadable}
        document["profiles"] = [bare.get(item["name"], item) for item in document["profiles"]]
    header = (
        "# authprofiles export. WARNING: this file holds secrets in plain text.\n"
        if include_secrets
        else "# authprofiles export. Secrets were left out; "
        "imported profiles without them are not_configured.\n"
    )
    text = header + yaml.safe_dump(document, sort_keys=False, allow_unicode=True)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text)
        if include_secrets:
            output.chmod(0o600)
    count = len(document["profiles"])
    note = (
        "with secrets (file mode 0600)"
        if include_secrets
        else "without secrets (use --include-secrets to add them)"
    )
    errors.print(f"Exported {count} profile(s) {note}.")
    for profile in unreadable:
        errors.print(
            f"[yellow]Exported without its secrets:[/yellow] {profile.name}: "
            f"{profile.failing_reason}"
        )
    if unreadable and include_secrets:
        # A backup that lacks secrets must not look like a complete one to a script.
        raise typer.Exit(1)


@app.command("import")
def import_profiles(
    source: Annotated[
        Path, typer.Argument(help="A YAML file from `profiles export` ('-' for stdin)")
    ],
    database: DatabaseOption = None,
) -> None:
    """Import profiles: new names are created, existing ones updated; all or nothing."""
    text = sys.stdin.read() if str(source) == "-" else source.read_text()
    document = yaml.safe_load(text)
    if not isinstance(document, dict):
        raise typer.BadParameter("the file is not an authprofiles export", param_hint="SOURCE")
    services = open_services(database)
    total = len(document.get("profiles") or [])
    try:
        with Progress(console=errors, transient=True) as progress:
            task = progress.add_task("Importing", total=total)
            results = services.profiles.import_documents(
                LOCAL_ADMIN, document, on_progress=lambda _name: progress.advance(task)
            )
    finally:
        services.close()
    table = Table("name", "action", "status", title="Imported")
    for result in results:
        style = _STATUS_STYLE[result.status]
        table.add_row(result.name, result.action, f"[{style}]{result.status}[/{style}]")
    console.print(table)
