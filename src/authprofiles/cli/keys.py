"""`authprofiles keys rotate`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)

from authprofiles.cli.common import console, errors, require_existing_store, settings_from
from authprofiles.services.audit import AuditLog
from authprofiles.services.keys import DEFAULT_WAIT_SECONDS, RotationResult, rotate_master_key
from authprofiles.store.db import Database

app = typer.Typer(help="Master keys for encryption at rest.", no_args_is_help=True)

_WAITING = {
    "load": "Servers loading the new key",
    "write": "Servers writing with the new key",
}


@app.command()
def rotate(
    database: Annotated[str | None, typer.Option(help="Database URL")] = None,
    wait: Annotated[
        float,
        typer.Option(
            help="Seconds to wait, at each step, for running servers to follow",
            min=0,
        ),
    ] = DEFAULT_WAIT_SECONDS,
) -> None:
    """Re-encrypt every secret under a new master key, while servers keep running.

    Running servers load the new key by themselves; the old key leaves the key file only
    once no row and no running server uses it."""
    settings = settings_from(database)
    require_existing_store(settings, keys=True)
    db = Database(settings.database_url)
    db.migrate()
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        waits: dict[str, TaskID] = {}
        rows = progress.add_task("Re-encrypting", total=None, visible=False)

        def waiting(what: str, ready: int, live: int) -> None:
            if live == 0 and what not in waits:
                return
            if what not in waits:
                waits[what] = progress.add_task(_WAITING[what], total=live)
            progress.update(waits[what], completed=ready, total=live)

        result = rotate_master_key(
            settings,
            db=db,
            wait_seconds=wait,
            on_start=lambda total: progress.update(rows, total=total, visible=True),
            on_row=lambda: progress.advance(rows),
            on_wait=waiting,
            audit=AuditLog(db),
            on_environment_key=lambda key, saved: console.print(
                Panel(
                    f"{key}\n\nThe keys come from AUTHPROFILES_MASTER_KEY, which this command "
                    f"cannot change. The new key is saved in {saved.resolve()} (mode 0600), where "
                    "running servers on this machine read it from. Store it now; what to "
                    "set AUTHPROFILES_MASTER_KEY to is said once the rotation ends.",
                    title="New master key",
                    border_style="yellow",
                )
            ),
        )
    db.dispose()
    _report(result)
    if result.kept_key_ids:
        raise typer.Exit(1)


def _report(result: RotationResult) -> None:
    for line in result.unreadable:
        errors.print(f"[yellow]Left as it was, cannot be decrypted:[/yellow] {line}")
    if not result.activated:
        where = result.pending_key_file or "the key file"
        console.print(
            f"[red]Not rotated:[/red] {result.kept_because}. Key {result.new_key_id} was "
            "withdrawn; every secret stays under the current key. Let every server read "
            f"{where} (the same machine, or AUTHPROFILES_KEY_FILE in a shared directory), or "
            "restart a server that is stuck, then run `authprofiles keys rotate` again."
        )
        return
    console.print(
        f"Re-encrypted {result.rows} row(s) under key [bold]{result.new_key_id}[/bold]"
        + (f"; retired {', '.join(result.retired_key_ids)}." if result.retired_key_ids else ".")
    )
    kept = ", ".join(result.kept_key_ids)
    if result.kept_key_ids:
        where = (
            "AUTHPROFILES_MASTER_KEY must keep it, after the new key"
            if result.new_key_for_environment
            else "the key file keeps it"
        )
        console.print(
            f"[yellow]Kept key(s) {kept}:[/yellow] {result.kept_because}; {where}. "
            "Run `authprofiles keys rotate` again once that is resolved."
        )
    if result.new_key_for_environment:
        now = (
            "Set AUTHPROFILES_MASTER_KEY to the new key shown above (the old key no longer "
            "decrypts anything)"
            if result.retired_key_ids
            else f"Set AUTHPROFILES_MASTER_KEY to the new key shown above followed by the "
            f"old one (new,old: rows still use {kept})"
        )
        console.print(
            f"{now}, then restart every server. Until they have restarted they read the new "
            f"key from {result.pending_key_file}: delete that file only after that."
        )
