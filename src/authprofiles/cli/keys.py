"""`authprofiles keys rotate`."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.panel import Panel
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from authprofiles.cli.common import console, errors, settings_from
from authprofiles.services.keys import rotate_master_key
from authprofiles.store.db import Database

app = typer.Typer(help="Master keys for encryption at rest.", no_args_is_help=True)


@app.command()
def rotate(database: Annotated[str | None, typer.Option(help="Database URL")] = None) -> None:
    """Re-encrypt every secret under a new master key, in one transaction."""
    settings = settings_from(database)
    db = Database(settings.database_url)
    db.migrate()
    with Progress(
        TextColumn("Re-encrypting"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
    ) as progress:
        task = progress.add_task("rows", total=None)
        result = rotate_master_key(
            settings,
            db=db,
            on_start=lambda total: progress.update(task, total=total),
            on_row=lambda: progress.advance(task),
        )
    db.dispose()
    console.print(
        f"Re-encrypted {result.rows} row(s) under key [bold]{result.new_key_id}[/bold]; "
        f"retired {', '.join(result.retired_key_ids)}."
    )
    if result.new_key_for_environment:
        console.print(
            Panel(
                f"{result.new_key_for_environment}\n\nThe keys came from AUTHPROFILES_MASTER_KEY. "
                "Set it to this new key before restarting; "
                "the old key no longer decrypts anything.",
                title="New master key (shown once)",
                border_style="yellow",
            )
        )
