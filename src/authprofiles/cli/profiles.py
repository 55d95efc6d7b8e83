"""`authprofiles profiles list|show|create|delete|export|import` (YAML or JSON files)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import yaml
from rich.progress import Progress
from rich.text import Text

from authprofiles.cli.common import (
    LOCAL_ADMIN,
    DatabaseOption,
    JsonOption,
    console,
    errors,
    new_table,
    open_services,
    print_json,
    print_table,
)
from authprofiles.composition import Services
from authprofiles.core.errors import FieldError, NotFound, ValidationFailed
from authprofiles.core.profiles import Profile
from authprofiles.services.connections import RevocationReport
from authprofiles.services.profiles import public_view
from authprofiles.store.profiles import UnreadableProfile

app = typer.Typer(help="Authorization Profiles.", no_args_is_help=True)

_STATUS_STYLE = {"configured": "green", "not_configured": "yellow", "failing": "red"}


@app.command("list")
def list_profiles(as_json: JsonOption = False, database: DatabaseOption = None) -> None:
    """List profiles: name, type, identity provider, status and id."""
    services = open_services(database)
    try:
        profiles = services.profiles.list(LOCAL_ADMIN)
    finally:
        services.close()
    if as_json:
        print_json(
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
        return
    table = new_table(
        "name",
        "auth type",
        "identity provider",
        "status",
        "id",
        fold=("identity provider",),
        title="Authorization Profiles",
    )
    for p in profiles:
        table.add_row(
            Text(p.name),
            p.auth_type.value,
            Text(p.identity_provider or ""),
            Text(p.status.value, style=_STATUS_STYLE[p.status.value]),
            Text(p.id),
        )
    print_table(table)


def _show(title: str, view: dict[str, Any], *, as_json: bool, note_callback: bool) -> None:
    """A profile's public view, as JSON or one field a line; ``note_callback``: say that
    its callback URL was derived from this shell's settings."""
    if as_json:
        print_json(view)
        return
    print_view(title, view)
    if note_callback:
        _note_derived_callback()


@app.command()
def show(
    profile: Annotated[str, typer.Argument(help="Profile name or id")],
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Show one profile. Secrets appear only as set or not set."""
    services = open_services(database)
    try:
        found = find_profile(services, profile)
        view = public_view(found, services.settings.callback_url)
        derived_callback = not services.settings.public_url
    finally:
        services.close()
    _show(f"Profile {found.name}", view, as_json=as_json, note_callback=derived_callback)


def print_view(title: str, view: dict[str, Any]) -> None:
    """One line per field, never cut nor wrapped by us (the terminal wraps long lines):
    an id or URL stays whole to copy."""
    console.print(Text(title, style="bold"), soft_wrap=True)
    first = {key: view[key] for key in ("id", "name", "status") if key in view}
    width = max(len(key) for key in view)
    for key, value in (first | view).items():
        console.print(Text.assemble((f"{key:<{width}}  ", "cyan"), _cell(value)), soft_wrap=True)


def _note_derived_callback() -> None:
    errors.print(
        "callback_url is made from AUTHPROFILES_HOST and AUTHPROFILES_PORT as this shell "
        "has them; set AUTHPROFILES_PUBLIC_URL as the server has it to be sure.",
        style="dim",
        soft_wrap=True,
        highlight=False,
    )


def _cell(value: Any) -> Text:
    if value is None or value == [] or value == {}:
        return Text("-", style="dim")
    if isinstance(value, bool):
        return Text("yes" if value else "no")
    if isinstance(value, list | dict):
        return Text(json.dumps(value, default=str))
    return Text(str(value))


def find_profile(services: Services, name_or_id: str) -> Profile:
    named = services.profiles.list(LOCAL_ADMIN, name=name_or_id)
    if named:
        return named[0]
    try:
        return services.profiles.get(LOCAL_ADMIN, name_or_id)
    except NotFound:
        raise NotFound(f"no profile named or with id {name_or_id!r}") from None


@app.command()
def create(
    source: Annotated[
        str, typer.Argument(help="A YAML or JSON file with one profile ('-' for stdin)")
    ],
    allow_incomplete: Annotated[
        bool,
        typer.Option(
            "--allow-incomplete",
            help="Store it even with mandatory fields empty (it is then not_configured)",
        ),
    ] = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Create a profile from a file, checked as the API checks it: every problem is
    reported at once, each naming its field, and nothing is stored unless all is well."""
    data = _read_profile_document(source)
    services = open_services(database)
    try:
        created = services.profiles.create(LOCAL_ADMIN, data, allow_incomplete=allow_incomplete)
        view = public_view(created, services.settings.callback_url)
        derived_callback = not services.settings.public_url
    finally:
        services.close()
    _show(
        f"Created profile {created.name}",
        view,
        as_json=as_json,
        note_callback=derived_callback and created.auth_type.value == "oauth2_authorization_code",
    )


def _read_profile_document(source: str) -> dict[str, Any]:
    """One profile as a mapping, from JSON or YAML (JSON first: YAML reads most JSON, but
    not all of it the same way)."""
    try:
        text = sys.stdin.read() if source == "-" else Path(source).read_text()
    except OSError as exc:
        raise typer.BadParameter(
            f"cannot read {source}: {exc.strerror}", param_hint="SOURCE"
        ) from None
    try:
        document = json.loads(text)
    except ValueError:
        try:
            document = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            where = getattr(exc, "problem_mark", None)
            at = f" at line {where.line + 1}, column {where.column + 1}" if where else ""
            raise typer.BadParameter(
                f"{source} is neither JSON nor YAML{at}", param_hint="SOURCE"
            ) from None
    if not isinstance(document, dict):
        raise ValidationFailed(
            [
                FieldError(
                    "profile",
                    "the file must hold one profile: a mapping of its fields, such as "
                    "name, auth_type and token_url",
                )
            ]
        )
    return document


@app.command()
def delete(
    profile: Annotated[str, typer.Argument(help="Profile name or id")],
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask first (only a terminal is asked)")
    ] = False,
    as_json: JsonOption = False,
    database: DatabaseOption = None,
) -> None:
    """Delete a profile with its connections and tokens; tokens are revoked at the
    identity provider where the profile names a revocation URL."""
    services = open_services(database)
    try:
        found = find_profile(services, profile)
        connections = len(services.connections.list(LOCAL_ADMIN, profile_id=found.id))
        if not yes and sys.stdin.isatty():
            typer.confirm(
                f"Delete profile {found.name} and its {connections} connection(s)?", abort=True
            )
        report = services.profiles.delete(LOCAL_ADMIN, found.id)
    finally:
        services.close()
    if as_json:
        print_json(
            {
                "deleted": True,
                "id": found.id,
                "name": found.name,
                "connections": connections,
                "revoked": report.revoked,
                "revocation_errors": report.errors,
            }
        )
        return
    console.print(
        Text(f"Deleted profile {found.name} ({found.id}) and {connections} connection(s)."),
        soft_wrap=True,
    )
    if connections or report.errors:
        print_revocation(report, revocation_url=found.revocation_url)


def print_revocation(report: RevocationReport, *, revocation_url: str | None) -> None:
    """What was revoked at the identity provider (RFC 7009), and what could not be."""
    if report.revoked:
        console.print(
            Text(f"Revoked at the identity provider: {', '.join(report.revoked)}."),
            soft_wrap=True,
        )
    elif not report.errors:
        why = (
            "nothing to revoke"
            if revocation_url
            else "the profile names no revocation_url; tokens the identity provider issued "
            "stay valid there until they expire"
        )
        console.print(Text(f"Nothing revoked: {why}."), soft_wrap=True)
    for error in report.errors:
        errors.print(Text(f"Not revoked: {error}", style="yellow"), soft_wrap=True)


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
        profiles = services.profiles.list(LOCAL_ADMIN)
        document = services.profiles.export(
            LOCAL_ADMIN, include_secrets=include_secrets, profiles=profiles
        )
    finally:
        services.close()
    # A profile whose secrets cannot be decrypted is exported without them, and named.
    unreadable = [p for p in profiles if isinstance(p, UnreadableProfile)]
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
    table = new_table("name", "action", "status", title="Imported")
    for result in results:
        style = _STATUS_STYLE[result.status]
        table.add_row(Text(result.name), result.action, Text(result.status, style=style))
    print_table(table)
