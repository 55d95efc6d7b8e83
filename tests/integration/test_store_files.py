"""Files the store creates on disk are private to their owner."""

from __future__ import annotations

from pathlib import Path

from authprofiles.store.db import Database


def test_a_new_sqlite_database_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "nested" / "authprofiles.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.dispose()
    assert path.stat().st_mode & 0o777 == 0o600
    for sidecar in path.parent.glob("authprofiles.db-*"):
        assert sidecar.stat().st_mode & 0o077 == 0, sidecar
