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
            on_environment_key=lambda key, saved: console.print(
                Panel(
                    f"{key}\n\nThe keys come from AUTHPROFILES_MASTER_KEY, which this command "
                    f"cannot change. The new key is also saved in {saved} (mode 0600). Once the "
                    "re-encryption below completes, set AUTHPROFILES_MASTER_KEY to it before "
                    "restarting: the old key will no longer decrypt anything.",
                    title="New master key",
                    border_style="yellow",
                )
            ),
        )
    db.dispose()
    console.print(
        f"Re-encrypted {result.rows} row(s) under key [bold]{result.new_key_id}[/bold]; "
        f"retired {', '.join(result.retired_key_ids)}."
    )
    if result.new_key_for_environment:
        console.print(
            "Done. Set AUTHPROFILES_MASTER_KEY to the new key shown above, then delete the "
            ".new key file once it is stored safely."
        )
