"""`authprofiles audit tail [--follow] | export`: the audit log, read from the server's
database (it holds no secret, so no master key is needed)."""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Annotated, TextIO

import typer
from rich import box
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from authprofiles.cli.common import (
    DatabaseOption,
    JsonOption,
    console,
    errors,
    print_table,
    require_existing_store,
    settings_from,
    when,
)
from authprofiles.core.callers import Principal, Role
from authprofiles.services.audit import AuditFilters, AuditLog, AuditRecord, parse_time
from authprofiles.store.db import Database
from authprofiles.store.models import DEFAULT_WORKSPACE_ID

app = typer.Typer(
    help="The audit log: who did what, when and from where (never a secret).",
    no_args_is_help=True,
)

WorkspaceOption = Annotated[
    str,
    typer.Option("--workspace", help="The workspace whose log to read (name or id)"),
]
ActionOption = Annotated[
    str | None,
    typer.Option(
        "--action", help="Only this action (profile.created), or a prefix (profile. or profile.*)"
    ),
]
#: How far back each poll of ``--follow`` looks again: an entry is written with the time
#: its transaction began, so one that commits late lands behind entries already shown.
LOOKBACK = timedelta(seconds=30)
#: Entries read per poll of ``--follow``, at most (more are read at once, page by page).
_POLL_PAGE = 500


@contextmanager
def _log(database: str | None, workspace: str) -> Iterator[tuple[AuditLog, Principal]]:
    """The server's audit log, and the command line as an admin of ``workspace``."""
    settings = settings_from(database)
    require_existing_store(settings, keys=False)
    db = Database(settings.database_url)
    try:
        db.migrate()
        audit = AuditLog(db)
        principal = Principal(
            workspace_id=audit.workspace_id(workspace), role=Role.ADMIN, name="cli"
        )
        yield audit, principal
    finally:
        db.dispose()


@app.command()
def tail(
    follow: Annotated[
        bool,
        typer.Option("--follow", "-f", help="Keep printing new entries until Ctrl-C"),
    ] = False,
    limit: Annotated[
        int, typer.Option("--limit", "-n", min=1, max=1000, help="How many of the latest")
    ] = 20,
    action: ActionOption = None,
    as_json: JsonOption = False,
    interval: Annotated[
        float, typer.Option(min=0.1, max=60, help="--follow: seconds between looks")
    ] = 1.0,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE_ID,
    database: DatabaseOption = None,
) -> None:
    """Print the latest entries, oldest first; with --follow, then every new one as it
    is written, until Ctrl-C. (Tokens handed out appear once a minute, counted per
    connection and caller: one `token.issued` entry each.)"""
    filters = AuditFilters(action=action)
    try:
        with _log(database, workspace) as (audit, principal):
            latest = list(reversed(audit.query(principal, filters, limit=limit)))
            _print(latest, as_json=as_json, header=True)
            if follow:
                _follow(audit, principal, filters, latest, as_json=as_json, interval=interval)
    except KeyboardInterrupt:
        raise typer.Exit(0) from None


def _follow(
    audit: AuditLog,
    principal: Principal,
    filters: AuditFilters,
    shown: list[AuditRecord],
    *,
    as_json: bool,
    interval: float,
) -> None:
    """Poll for entries newer than those shown. Each look starts :data:`LOOKBACK` before
    the newest entry seen and skips those already printed, so an entry that committed
    after a newer one was printed is still printed (once)."""
    seen = {record.id: record.at for record in shown}
    newest: datetime | None = max(seen.values()) if seen else None
    # While following, Ctrl-C only sets a flag, so it never lands inside a database call
    # (whose pool it could leave locked, and the command hanging on its way out): the
    # loop sees it between looks and returns.
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _stop)
    while not _STOP.wait(interval):
        after = (newest - LOOKBACK, "") if newest is not None else None
        fresh: list[AuditRecord] = []
        while True:
            page = audit.in_order(principal, filters, after, _POLL_PAGE)
            fresh += [record for record in page if record.id not in seen]
            if len(page) < _POLL_PAGE:
                break
            after = page[-1].key
        if not fresh:
            continue
        _print(fresh, as_json=as_json, header=False)
        seen.update((record.id, record.at) for record in fresh)
        newest = max(seen.values())
        horizon = newest - LOOKBACK
        seen = {key: at for key, at in seen.items() if at >= horizon}


_STOP = threading.Event()


def _stop(signum: int, frame: object) -> None:
    _STOP.set()


def _print(records: list[AuditRecord], *, as_json: bool, header: bool) -> None:
    if as_json:
        for record in records:
            typer.echo(_line(record))
    elif records or header:
        table = _table(header=header)
        for record in records:
            table.add_row(*_cells(record))
        print_table(table)
    sys.stdout.flush()  # --follow into a pipe: each look's entries now, not when it fills


def _table(*, header: bool) -> Table:
    table = Table(show_header=header, box=box.HEAVY_HEAD if header else None)
    for name in ("at (UTC)", "actor", "action", "target", "ip"):
        table.add_column(name, no_wrap=True)
    table.add_column("detail", overflow="fold")
    return table


def _cells(record: AuditRecord) -> tuple[str, Text, Text, Text, Text, Text]:
    target = record.target
    return (
        when(record.at),
        Text(f"{record.actor.type} {record.actor.name}".strip()),
        Text(record.action, style="bold"),
        Text(f"{target.type} {target.name or target.id or ''}".strip() if target else ""),
        Text(record.address or ""),
        Text(" ".join(f"{key}={_shown(value)}" for key, value in record.detail.items())),
    )


def _shown(value: object) -> str:
    return json.dumps(value) if not isinstance(value, str) else value


def _line(record: AuditRecord) -> str:
    return json.dumps(record.as_json(), separators=(",", ":"))


@app.command()
def export(
    since: Annotated[
        str | None, typer.Option(help="Only entries at or after this time (ISO 8601)")
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="Only entries before this time (ISO 8601)")
    ] = None,
    action: ActionOption = None,
    actor: Annotated[
        str | None, typer.Option(help="Only this actor's: an id, a name or a person's email")
    ] = None,
    profile_id: Annotated[
        str | None, typer.Option("--profile-id", help="Only entries about this profile")
    ] = None,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write to this file (with progress) [stdout]"),
    ] = None,
    workspace: WorkspaceOption = DEFAULT_WORKSPACE_ID,
    database: DatabaseOption = None,
) -> None:
    """Write every matching entry as JSON Lines (one object a line, as `GET
    /api/v1/audit` lists them), oldest first."""
    filters = AuditFilters(
        actor=actor,
        profile_id=profile_id,
        action=action,
        since=parse_time(since, "--since") if since else None,
        until=parse_time(until, "--until") if until else None,
    )
    with _log(database, workspace) as (audit, principal):
        records = audit.export(principal, filters)
        if output is None:
            _write(records, sys.stdout)
            return
        total = audit.count(principal, filters)
        with (
            output.open("w", encoding="utf-8") as file,
            Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=errors,
            ) as progress,
        ):
            task = progress.add_task("Exporting", total=total)
            written = _write(records, file, on_line=lambda: progress.advance(task))
    console.print(Text(f"Wrote {written} entr{'y' if written == 1 else 'ies'} to {output}"))


def _write(
    records: Iterable[AuditRecord], out: TextIO, *, on_line: Callable[[], object] | None = None
) -> int:
    written = 0
    for record in records:
        out.write(_line(record) + "\n")
        written += 1
        if on_line is not None:
            on_line()
    out.flush()
    return written
