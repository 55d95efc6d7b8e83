"""What every command shares: settings from flags and environment, and output helpers."""

from __future__ import annotations

import os

from rich.console import Console

from authprofiles.services.access import Principal, Role
from authprofiles.services.container import Services
from authprofiles.settings import Settings
from authprofiles.store.models import DEFAULT_WORKSPACE_ID

console = Console()
errors = Console(stderr=True)


def settings_from(database: str | None = None) -> Settings:
    if database:
        os.environ["AUTHPROFILES_DATABASE_URL"] = database
    return Settings()


def open_services(database: str | None = None) -> Services:
    services = Services(settings_from(database))
    services.db.migrate()
    return services


#: The CLI runs on the server's own machine with its database: it acts as an admin.
LOCAL_ADMIN = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="cli")
