"""Fixtures shared by every test layer: databases (SQLite and PostgreSQL) and the app."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from authprofiles.app import create_app
from authprofiles.composition import Services
from authprofiles.services.access import Principal, Role
from authprofiles.settings import Settings
from authprofiles.store.cipher import encode_key, new_key
from authprofiles.store.models import DEFAULT_WORKSPACE_ID
from tests.support.postgres import (
    create_database,
    drop_database,
    migrated_template,
    postgres_server,
)

# pytest-xdist starts its workers with COLUMNS=80 in the environment, and a Rich console
# made while it is set keeps that width for good: the CLI's tables would wrap differently
# from a plain run. Tests that care set COLUMNS themselves.
os.environ.pop("COLUMNS", None)
os.environ.pop("LINES", None)

pytest_plugins = [
    "tests.support.fixtures",
    "tests.support.app",
    "tests.support.mail",
    "tests.support.pgbouncer",
    "tests.support.telemetry",
]

ADMIN = Principal(workspace_id=DEFAULT_WORKSPACE_ID, role=Role.ADMIN, name="test-admin")


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A module saying ``SQLITE_ONLY = True`` tests HTTP behaviour the database does not
    change: its tests run on SQLite alone, but for those marked ``both_databases`` (locks,
    claims, concurrent writers, orderings), which run on PostgreSQL too. The suite stays
    within its time without losing a test of what PostgreSQL does differently. One saying
    ``POSTGRESQL_ONLY = True`` runs on PostgreSQL alone: the stricter of the two."""
    kept, dropped = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        on_postgres = callspec is not None and callspec.params.get("database_url") == "postgresql"
        module = getattr(item, "module", None)
        sqlite_only = getattr(module, "SQLITE_ONLY", False)
        on_sqlite = callspec is not None and callspec.params.get("database_url") == "sqlite"
        if on_postgres and sqlite_only and item.get_closest_marker("both_databases") is None:
            dropped.append(item)
        elif on_sqlite and getattr(module, "POSTGRESQL_ONLY", False):
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
    # The longest files first: xdist hands each worker the next file in this order as it
    # finishes one, so the many short ones fill in at the end instead of one worker
    # running a long file alone while the other has finished.
    kept.sort(key=_run_order)
    items[:] = kept


#: Files that take a minute or more (measured with --durations): started first of all.
_LONGEST = (
    "test_rotation_under_load.py",
    "test_openapi_fuzz.py",
    "test_packaging.py",
    "test_distributed_refresher.py",
    "test_readme.py",
)


def _run_order(item: pytest.Item) -> int:
    path = item.path.as_posix()
    if item.path.name in _LONGEST:
        return _LONGEST.index(item.path.name)
    if "/tests/browser/" in path:
        return len(_LONGEST)
    if "/tests/integration/" in path:
        return len(_LONGEST) + 1
    return len(_LONGEST) + 2


@pytest.fixture(scope="session")
def postgres_template(postgres_admin_url: str) -> Iterator[str]:
    with migrated_template(postgres_admin_url) as name:
        yield name


@pytest.fixture
def postgres_url(postgres_admin_url: str, postgres_template: str) -> Iterator[str]:
    """A database of its own for the test, migrated already (a copy of a template)."""
    url = create_database(postgres_admin_url, template=postgres_template)
    yield url
    drop_database(postgres_admin_url, url)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'authprofiles.db'}"
    return str(request.getfixturevalue("postgres_url"))


@pytest.fixture
def master_key() -> str:
    return encode_key(new_key())


@pytest.fixture
def make_settings(database_url: str, tmp_path: Path, master_key: str) -> Callable[..., Settings]:
    """Settings on the test's database and master key (the key file unused), retrying the
    IdP without waiting; ``overrides`` add to or replace these."""

    def make(**overrides: Any) -> Settings:
        return Settings(
            **{
                "database_url": database_url,
                "master_key": master_key,
                "key_file": tmp_path / "unused.key",
                "idp_backoff_seconds": 0.01,
                # A device code's polls come at the server's interval; the tick only says
                # how soon after that a worker notices.
                "authorization_poll_tick_seconds": 0.2,
                **overrides,
            }
        )

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(
        public_url="http://127.0.0.1:8000",
        http_timeout_seconds=5,
        # Tests age tokens by editing the database; a reused token would hide that.
        token_reuse_seconds=0,
    )


@pytest.fixture
def services(settings: Settings) -> Iterator[Services]:
    services = Services(settings)
    services.db.migrate()
    yield services
    services.close()


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    app = create_app(services=services, migrate=False, background_refresh=False)
    with TestClient(app) as client:
        yield client


def _key(services: Services, role: str) -> dict[str, str]:
    created = services.api_keys.create(name=f"test-{role}", role=role)
    return {"Authorization": f"Bearer {created.key}"}


@pytest.fixture
def admin_headers(services: Services) -> dict[str, str]:
    return _key(services, "admin")


@pytest.fixture
def developer_headers(services: Services) -> dict[str, str]:
    return _key(services, "developer")


@pytest.fixture
def viewer_headers(services: Services) -> dict[str, str]:
    return _key(services, "viewer")
