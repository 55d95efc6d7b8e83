"""Settings: the public URL follows host and port; every setting is documented, in the
README and in `serve --help`, from the fields themselves."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from authprofiles.cli.main import app as cli
from authprofiles.settings import Settings, settings_reference, settings_reference_markdown

ROOT = Path(__file__).resolve().parents[2]
#: Read from the environment outside Settings on purpose: not a setting for people.
INTERNAL = {"AUTHPROFILES_SKIP_MIGRATE"}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("AUTHPROFILES_"):
            monkeypatch.delenv(name)


# == the public URL (issue 9, item 1) ==============================================================


def test_the_callback_url_follows_the_port_when_no_public_url_is_set() -> None:
    assert Settings(port=9123).callback_url == "http://127.0.0.1:9123/oauth/callback"
    assert Settings().callback_url == "http://127.0.0.1:8000/oauth/callback"


def test_the_callback_url_follows_host_and_port_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a worker process of `serve --host ... --port ...` builds for itself.
    monkeypatch.setenv("AUTHPROFILES_HOST", "auth.internal")
    monkeypatch.setenv("AUTHPROFILES_PORT", "9443")
    assert Settings().callback_url == "http://auth.internal:9443/oauth/callback"


def test_a_public_url_that_is_set_wins_over_host_and_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUTHPROFILES_PUBLIC_URL", "https://auth.example.com/")
    settings = Settings(port=9123)
    assert settings.public_base_url == "https://auth.example.com"
    assert settings.callback_url == "https://auth.example.com/oauth/callback"


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("0.0.0.0", "http://127.0.0.1:9000"),
        ("::", "http://[::1]:9000"),
        ("::1", "http://[::1]:9000"),
        ("localhost", "http://localhost:9000"),
    ],
)
def test_an_address_for_every_interface_gives_a_loopback_public_url(
    host: str, expected: str
) -> None:
    assert Settings(host=host, port=9000).public_base_url == expected


# == the settings reference (issue 9, item 13) =====================================================


def test_every_setting_has_a_meaning() -> None:
    undocumented = [doc.env for doc in settings_reference() if len(doc.meaning) < 10]
    assert undocumented == [], "give each a Field(description=...) in settings.py"


def _readme_settings_table() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("|")]


def test_the_readme_settings_table_is_the_settings_fields() -> None:
    assert _readme_settings_table() == settings_reference_markdown().splitlines(), (
        "README.md's settings table differs from the Settings fields; paste the output of "
        "`.venv/bin/python -c 'from authprofiles.settings import settings_reference_markdown "
        "as m; print(m())'` under its ## Settings heading"
    )


def test_serve_help_lists_every_setting_with_its_default() -> None:
    result = CliRunner().invoke(cli, ["serve", "--help"], env={"TERMINAL_WIDTH": "100"})
    assert result.exit_code == 0, result.output
    shown = " ".join(result.stdout.split())
    for doc in settings_reference():
        assert f"{doc.env} (default: {doc.default})" in shown, doc.env
        # The meaning too, as one reads it (the help shows no Markdown backticks).
        assert " ".join(doc.meaning.replace("`", "").split()) in shown, doc.env


def test_the_code_reads_no_undocumented_setting() -> None:
    documented = {doc.env for doc in settings_reference()}
    readme = (ROOT / "README.md").read_text()
    named: dict[str, str] = {}
    for path in (ROOT / "src" / "authprofiles").rglob("*.py"):
        for name in re.findall(r"AUTHPROFILES_[A-Z][A-Z0-9_]*[A-Z0-9]", path.read_text()):
            named.setdefault(name, str(path.relative_to(ROOT)))
    unknown = {
        name: where
        for name, where in named.items()
        if name not in documented | INTERNAL and f"`{name}`" not in readme
    }
    assert unknown == {}, "make each a Settings field (or document it in the README)"
