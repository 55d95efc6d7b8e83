"""Entry point: `authprofiles serve | api-keys | profiles | keys`."""

from __future__ import annotations

import logging
import os
import sys
from typing import Annotated

import typer
import uvicorn

from authprofiles.cli import api_keys, keys, profiles
from authprofiles.cli.common import console, errors, settings_from
from authprofiles.core.errors import DomainError, ValidationFailed

app = typer.Typer(
    name="authprofiles",
    help="Authorization Profiles for AI agents and automations.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,  # locals may hold secrets
)
app.add_typer(api_keys.app, name="api-keys")
app.add_typer(profiles.app, name="profiles")
app.add_typer(keys.app, name="keys")


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on")] = None,
    database: Annotated[
        str | None, typer.Option(help="Database URL (default: SQLite file authprofiles.db)")
    ] = None,
    workers: Annotated[int | None, typer.Option(help="Worker processes")] = None,
    public_url: Annotated[
        str | None, typer.Option(help="URL users reach this server at (for the callback URL)")
    ] = None,
) -> None:
    """Run the API server; migrates the database first."""
    for name, value in (
        ("HOST", host),
        ("PORT", port),
        ("WORKERS", workers),
        ("PUBLIC_URL", public_url),
    ):
        if value is not None:
            os.environ[f"AUTHPROFILES_{name}"] = str(value)
    settings = settings_from(database)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    # Keys and schema are settled once, here, before any worker starts: two workers must
    # never each create a master key, or migrate at the same time.
    from authprofiles.services.container import Services

    services = Services(settings)
    services.db.migrate()
    services.close()
    console.print(
        f"authprofiles on http://{settings.host}:{settings.port} "
        f"(database {services.db.engine.url.render_as_string(hide_password=True)}, "
        f"{settings.workers} worker(s))"
    )
    os.environ["AUTHPROFILES_SKIP_MIGRATE"] = "1"
    uvicorn.run(
        "authprofiles.app:create_default_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level=settings.log_level,
        access_log=False,
    )


def main() -> None:
    try:
        app()
    except ValidationFailed as exc:
        errors.print(f"[red]{exc.detail}[/red]")
        for error in exc.errors:
            errors.print(f"  [bold]{error.field}[/bold]: {error.message}")
        sys.exit(2)
    except DomainError as exc:
        errors.print(f"[red]{exc.detail}[/red]")
        sys.exit(1)


if __name__ == "__main__":
    main()
