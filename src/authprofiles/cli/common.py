"""What every command shares: settings from flags and environment, the store the server
uses (never a new one), and output helpers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text
from sqlalchemy.engine import make_url

from authprofiles.composition import Services
from authprofiles.core.errors import DomainError, ValidationFailed
from authprofiles.services.access import Principal, Role
from authprofiles.services.api_keys import ApiKeys
from authprofiles.services.audit import AuditLog
from authprofiles.settings import Settings
from authprofiles.store.cipher import KeyError_
from authprofiles.store.db import Database, normalise_url
from authprofiles.store.keys import LiveKeyring, load_keys
from authprofiles.store.models import DEFAULT_WORKSPACE_ID

console = Console()
errors = Console(stderr=True)

DatabaseOption = Annotated[str | None, typer.Option(help="Database URL")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON for scripts")]

#: The CLI runs on the server's own machine with its database: it acts as an admin.
LOCAL_ADMIN = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="cli")


def settings_from(database: str | None = None) -> Settings:
    """The environment's settings, ``--database`` winning over AUTHPROFILES_DATABASE_URL."""
    return Settings(database_url=database) if database else Settings()


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite database URL (absolute), or None for another database."""
    parsed = make_url(normalise_url(url))
    if parsed.get_backend_name() != "sqlite":
        return None
    name = parsed.database
    if not name or name == ":memory:" or name.startswith("file:"):
        return None
    return Path(name).resolve()


def require_existing_store(settings: Settings, *, keys: bool) -> None:
    """Refuse, with what to do, rather than create a second store.

    Every command but `serve` works on the server's data. Run from another directory, the
    default SQLite file and key file would be new and empty: an API key made there is
    unknown to the server, a profile made there invisible to it. So they are never
    created here; `serve` creates them on first start and says where."""
    path = sqlite_path(settings.database_url)
    defaulted = "database_url" not in settings.model_fields_set
    if path is not None and defaulted and not path.exists():
        _refuse(
            f"No authprofiles database here: {path.name} does not exist in {path.parent}. "
            "Commands other than `authprofiles serve` use the server's database and never "
            "create one. Run this from the directory where `authprofiles serve` runs (it "
            "creates the database there on first start), or set AUTHPROFILES_DATABASE_URL "
            "(or pass --database) to the server's database URL."
        )
    if keys and settings.master_key is None and not settings.key_file.exists():
        _refuse(
            f"No master key: {settings.key_file.resolve()} does not exist and "
            "AUTHPROFILES_MASTER_KEY is unset. Commands other than `authprofiles serve` "
            "never create a master key (a new one could not read the server's secrets). "
            "Run this from the directory where `authprofiles serve` runs, or set "
            "AUTHPROFILES_KEY_FILE or AUTHPROFILES_MASTER_KEY as the server has them."
        )


def _refuse(message: str) -> None:
    errors.print(f"[red]{message}[/red]", soft_wrap=True, highlight=False)
    raise typer.Exit(1)


def open_services(database: str | None = None) -> Services:
    """The server's store, migrated, with its master keys (never new ones)."""
    settings = settings_from(database)
    require_existing_store(settings, keys=True)
    keyring = LiveKeyring(settings, load_keys(settings, create=False))
    services = Services(settings, keyring=keyring)
    services.db.migrate()
    return services


@dataclass
class KeyStore:
    """The API keys of the server's database: they need no master key."""

    db: Database
    api_keys: ApiKeys

    def close(self) -> None:
        self.db.dispose()


def open_api_keys(database: str | None = None) -> KeyStore:
    settings = settings_from(database)
    require_existing_store(settings, keys=False)
    db = Database(settings.database_url)
    db.migrate()
    # Keys made here are in the audit log like those made over the API.
    return KeyStore(db=db, api_keys=ApiKeys(db, AuditLog(db)))


# -- errors ---------------------------------------------------------------------------------

#: The command line's answer to each error a command may end with: its exit code, found
#: along the error's MRO as the API finds its status. The message is the error's own, on
#: one line (input that breaks rules adds one line per field at fault). 2 is what click
#: exits with for a bad option: input the user can correct.
EXIT_CODES: dict[type[Exception], int] = {
    DomainError: 1,
    ValidationFailed: 2,
    KeyError_: 1,  # a master key missing or not matching: the message says which
}

#: Every error :func:`report_failure` answers; others are bugs, and keep their traceback.
REPORTED = tuple(EXIT_CODES)


def exit_code(exc: BaseException) -> int:
    """``exc``'s exit code (:data:`EXIT_CODES`); 1 for one not in the table."""
    for cls in type(exc).__mro__:
        if cls in EXIT_CODES:
            return EXIT_CODES[cls]
    return 1


def failure_lines(exc: BaseException) -> list[Text]:
    """What the command line says about ``exc``: its message, then each field at fault."""
    message = exc.detail if isinstance(exc, DomainError) else str(exc)
    lines = [Text(message, style="red")]
    if isinstance(exc, ValidationFailed):
        lines += [Text.assemble("  ", (e.field, "bold"), f": {e.message}") for e in exc.errors]
    return lines


def report_failure(exc: BaseException) -> int:
    """Print ``exc`` on stderr (:func:`failure_lines`) and return its exit code."""
    for line in failure_lines(exc):
        errors.print(line, soft_wrap=True)
    return exit_code(exc)


# -- output ---------------------------------------------------------------------------------


def print_json(value: Any) -> None:
    typer.echo(json.dumps(value, default=str, indent=2))


def when(value: datetime | None) -> str:
    """A time for a table: UTC, to the second (JSON output carries it in full)."""
    return f"{value:%Y-%m-%d %H:%M:%S}" if value is not None else ""


#: A column that may fold keeps at least this width, and its header's, next to whole ones.
_NARROWEST = 6


def print_table(table: Table, *, out: Console | None = None) -> None:
    """Print ``table`` with its ``no_wrap`` columns (ids, names of things) whole.

    Rich fits a table to the terminal by wrapping columns and, when that is not enough,
    by cutting cells short with an ellipsis: an id cut short is useless. Other columns
    fold (nothing is dropped, long words are broken over lines); when even that leaves
    too little room, the table is drawn wider than the terminal, which wraps the lines
    itself, and every id stays one unbroken string to copy."""
    out = out or console
    needed = _width_with_whole_cells(out, table)
    if needed <= out.width:
        out.print(table)
        return
    wide = Console(
        file=out.file,
        width=needed,
        force_terminal=out.is_terminal,
        no_color=out.no_color,
        highlight=False,
    )
    wide.print(table)


def _width_with_whole_cells(out: Console, table: Table) -> int:
    options = out.options.update_width(10_000)
    total = 1  # the right edge
    for column in table.columns:
        header = Measurement.get(out, options, column.header).maximum
        widest = max([header, *(Measurement.get(out, options, c).maximum for c in column.cells)])
        if not column.no_wrap:
            widest = max(header, min(widest, _NARROWEST))
        total += widest + 3  # padding on both sides, and the edge on the left
    return total


def new_table(*columns: str, fold: tuple[str, ...] = (), title: str | None = None) -> Table:
    """A table whose columns are never cut (ids, names, times), but for those in ``fold``
    (free text), which break over lines when the terminal is narrow."""
    table = Table(title=title)
    for name in columns:
        if name in fold:
            table.add_column(name, overflow="fold")
        else:
            table.add_column(name, no_wrap=True)
    return table
