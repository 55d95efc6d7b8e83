"""Entry point: `authprofiles serve | api-keys | profiles | connections | keys`."""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
import uvicorn
from rich.markup import escape
from rich.text import Text

from authprofiles import __version__
from authprofiles.cli import (
    api_keys,
    audit,
    connections,
    keys,
    mcp_stdio,
    notifications,
    profiles,
    users,
)
from authprofiles.cli.common import REPORTED, console, report_failure, sqlite_path
from authprofiles.logs import configure_logging
from authprofiles.settings import Settings, listens_everywhere, settings_reference

app = typer.Typer(
    name="authprofiles",
    help="Authorization Profiles for AI agents and automations.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(users.app, name="users")
app.add_typer(users.workspaces_app, name="workspaces")
app.add_typer(profiles.app, name="profiles")
app.add_typer(connections.app, name="connections")
app.add_typer(keys.app, name="keys")
app.add_typer(notifications.app, name="notifications")
app.add_typer(audit.app, name="audit")
app.command(name="mcp")(mcp_stdio.mcp)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"authprofiles {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", help="Print the version and exit", is_eager=True, callback=_print_version
        ),
    ] = False,
) -> None:
    """Authorization Profiles for AI agents and automations."""


def settings_epilog() -> str:
    """`serve --help`'s settings reference, made from the Settings fields themselves."""
    entries = ["[bold]Settings[/bold], from the environment (a flag above wins over its variable):"]
    for doc in settings_reference():
        meaning = doc.meaning.replace("`", "")
        entries.append(escape(f"{doc.env} (default: {doc.default}): {meaning}"))
    return "\n\n".join(entries)


@app.command(epilog=settings_epilog())
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [AUTHPROFILES_HOST: 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on [AUTHPROFILES_PORT: 8000]")
    ] = None,
    database: Annotated[
        str | None,
        typer.Option(
            help="Database URL [AUTHPROFILES_DATABASE_URL: SQLite file authprofiles.db here]"
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [AUTHPROFILES_WORKERS: 1]")
    ] = None,
    public_url: Annotated[
        str | None,
        typer.Option(
            help="URL people and identity providers reach this server at, for the callback "
            "URL [AUTHPROFILES_PUBLIC_URL: http://HOST:PORT]"
        ),
    ] = None,
) -> None:
    """Run the API server; migrates the database first. On first start it creates the
    SQLite database and the master key file here, and says so."""
    # Flags go into the environment: every worker process builds its own Settings from
    # it, and so derives the same public URL from the same host and port.
    for name, value in (
        ("DATABASE_URL", database),
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
        ("PUBLIC_URL", public_url),
    ):
        if value is not None:
            os.environ[f"AUTHPROFILES_{name}"] = str(value)
    settings = Settings()
    # The same log format here and in every worker: uvicorn applies it there (log_config).
    log_config = configure_logging(settings.log_level, settings.log_format)
    database_file = sqlite_path(settings.database_url)
    new_database = database_file is not None and not database_file.exists()
    new_key = settings.master_key is None and not settings.key_file.exists()
    # Keys and schema are settled once, here, before any worker starts: two workers must
    # never each create a master key, or migrate at the same time.
    from authprofiles.composition import Services

    services = Services(settings)
    services.db.migrate()
    services.close()
    _announce(
        settings,
        database=str(database_file)
        if database_file is not None
        else services.db.engine.url.render_as_string(hide_password=True),
        new_database=new_database,
        new_key=new_key,
    )
    os.environ["AUTHPROFILES_SKIP_MIGRATE"] = "1"
    uvicorn.run(
        "authprofiles.app:create_default_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        log_config=log_config,
        access_log=False,  # the app writes one access line per request (api/access_log.py)
    )


def _announce(settings: Settings, *, database: str, new_database: bool, new_key: bool) -> None:
    """Where this server keeps its data and which callback URL it hands out, so that
    other commands and identity providers can be pointed at the same."""
    lines = [
        f"authprofiles {__version__} listening on http://{settings.host}:{settings.port} "
        f"({settings.workers} worker(s))",
        f"  database      {database}" + (" (created now)" if new_database else ""),
    ]
    if settings.master_key is not None:
        lines.append("  master key    from AUTHPROFILES_MASTER_KEY")
    else:
        lines.append(
            f"  master key    {settings.key_file.resolve()}"
            + (
                " (created now, mode 0600: back it up, or set AUTHPROFILES_MASTER_KEY)"
                if new_key
                else ""
            )
        )
    lines.append(f"  callback URL  {settings.callback_url}")
    if not settings.public_url:
        if listens_everywhere(settings.host):
            lines.append(
                "                (listening on every interface: this loopback URL works "
                "only for a browser on this machine; set AUTHPROFILES_PUBLIC_URL or "
                "--public-url to the URL people and identity providers reach this "
                "server at)"
            )
        else:
            lines.append(
                "                (from host and port; set AUTHPROFILES_PUBLIC_URL or "
                "--public-url when people reach this server at another URL)"
            )
    for line in lines:
        console.print(Text(line), soft_wrap=True, highlight=False)
    # Written before uvicorn starts, whatever buffers stdout (a pipe, a log file).
    sys.stdout.flush()


def main() -> None:
    try:
        app()
    except REPORTED as exc:
        sys.exit(report_failure(exc))


if __name__ == "__main__":
    main()
