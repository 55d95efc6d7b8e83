"""`authprofiles notifications test`: check the email (and webhook) settings now."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from authprofiles.cli.common import (
    DatabaseOption,
    console,
    open_services,
    report_failure,
    settings_from,
)
from authprofiles.core.errors import DomainError
from authprofiles.notify.smtp import smtp_sender
from authprofiles.services.notifications import send_test_email

app = typer.Typer(help="Email (SMTP) and webhook notifications.", no_args_is_help=True)


@app.command("test")
def test(
    to: Annotated[
        str | None, typer.Option("--to", help="Send a test email to this address", metavar="EMAIL")
    ] = None,
    webhook: Annotated[
        str | None,
        typer.Option(
            "--webhook",
            help="Send a signed test event (webhook.test) to this webhook",
            metavar="ID",
        ),
    ] = None,
    database: DatabaseOption = None,
) -> None:
    """Send a test email now through the SMTP server of AUTHPROFILES_SMTP_HOST and the
    other SMTP settings (and, with --webhook, a signed test event to a webhook). Exits
    non-zero, saying why, when it does not get through."""
    if not to and not webhook:
        raise typer.BadParameter("give --to EMAIL, --webhook ID, or both", param_hint="--to")
    settings = settings_from(database)
    try:
        if to:
            send_test_email(smtp_sender(settings), to, settings.public_base_url)
            where = f"{settings.smtp_host}:{settings.smtp_port} ({settings.smtp_security})"
            console.print(Text(f"Sent a test email to {to} through {where}."), soft_wrap=True)
        if webhook:
            services = open_services(database)
            try:
                status = services.deliveries.send_test_webhook(webhook)
            finally:
                services.close()
            console.print(
                Text(f"Webhook {webhook} accepted the signed test event (HTTP {status})."),
                soft_wrap=True,
            )
    except DomainError as exc:
        raise typer.Exit(report_failure(exc)) from None
