"""The README's examples run as written, in order, against `authprofiles serve` and the
suite's own identity provider, and each shows what it prints.

Every ```sh/```bash and ```python block of README.md runs, each shell block in a bash of
its own that starts with the variables the blocks before it set (as one terminal session
would have them). The variables the README asks the reader to set for their IdP (its
"placeholders" block) are set to the suite's IdP; CLIENT_ID and CLIENT_SECRET to a client
registered there for the grant the block names. The server is started as `make serve`
starts it, in a directory of its own, where the examples run too (`.venv` there is the
interpreter's environment). An HTML comment on the line before a block may say:

- ``readme-test: placeholders``: the variables the reader sets; not run, but they must be
  exactly those this test sets.
- ``readme-test: browser``: a person's step in a browser; the test signs in at the IdP
  with the authorization URL the previous answer gave, and follows the redirect back.
- ``readme-test: skip (why)``: cannot run here (Docker images, say); the reason is required.

A ```json or ```text block right after a block is what it prints: the test checks that each
block that prints shows it, with the same shape (keys, and values that are words, numbers,
booleans and nulls; ids, URLs, times and tokens differ from run to run).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.echo import EchoServer
from tests.support.idp import Client, IdP
from tests.support.live import ProcessServer, free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"

RUNNABLE = {"sh": "sh", "bash": "sh", "shell": "sh", "python": "python", "py": "python"}
SHOWN = {"json", "text"}
MARKER = re.compile(r"^<!--\s*readme-test:\s*(?P<kind>[\w-]+)\s*(?P<why>.*?)\s*-->$")
AUTH_TYPES = {
    "oauth2_client_credentials": "client-credentials",
    "oauth2_authorization_code": "authorization-code",
    "oauth2_password": "password",
}


@dataclass
class Block:
    language: str
    code: str
    line: int
    marker: str | None = None
    why: str = ""
    shown: Block | None = None


@dataclass
class Fence:
    language: str
    code: str
    line: int
    marker: str | None
    why: str


def _fences(text: str) -> list[Fence]:
    fences: list[Fence] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = re.match(r"^```(\w*)\s*$", lines[i])
        if not opening:
            i += 1
            continue
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous.strip())
        end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
        fences.append(
            Fence(
                opening.group(1).lower(),
                "\n".join(lines[i + 1 : end]) + "\n",
                i + 1,
                marker.group("kind") if marker else None,
                marker.group("why") if marker else "",
            )
        )
        i = end + 1
    return fences


def readme_blocks(text: str) -> list[Block]:
    """The runnable blocks in order, each with the output block that follows it."""
    blocks: list[Block] = []
    for fence in _fences(text):
        if fence.language in RUNNABLE:
            blocks.append(
                Block(RUNNABLE[fence.language], fence.code, fence.line, fence.marker, fence.why)
            )
        elif fence.language in SHOWN and blocks and blocks[-1].shown is None:
            blocks[-1].shown = Block(fence.language, fence.code, fence.line)
    return blocks


# -- what a block printed against what the README shows -------------------------------------

_WORD = re.compile(r"^[A-Za-z_]{1,40}$")
_VARYING = [
    (re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?"), "<time>"),
    (re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), "<id>"),
]


def shape_differences(shown: Any, actual: Any, where: str = "$", listed: bool = False) -> list[str]:
    """Where ``actual`` differs from ``shown`` in shape: keys, types, and the values that
    stay the same from run to run (words, numbers, booleans, null). A list is compared by
    its first item, whose words are an IdP's own (its scopes, say), so only their type."""
    if isinstance(shown, dict):
        if not isinstance(actual, dict):
            return [f"{where}: shown an object, got {actual!r}"]
        problems = [f"{where}: shown {k!r}, not in the answer" for k in shown if k not in actual]
        problems += [f"{where}: answered {k!r}, not shown" for k in actual if k not in shown]
        for key in shown.keys() & actual.keys():
            problems += shape_differences(shown[key], actual[key], f"{where}.{key}", listed)
        return problems
    if isinstance(shown, list):
        if not isinstance(actual, list):
            return [f"{where}: shown a list, got {actual!r}"]
        if shown and actual:
            return shape_differences(shown[0], actual[0], f"{where}[0]", listed=True)
        return [] if bool(shown) == bool(actual) else [f"{where}: shown {shown!r}, got {actual!r}"]
    if shown is None or isinstance(shown, bool | int | float):
        same = shown == actual and type(shown) is type(actual)
        return [] if same else [f"{where}: shown {shown!r}, got {actual!r}"]
    if not isinstance(actual, str):
        return [f"{where}: shown a string, got {actual!r}"]
    if not listed and _WORD.match(shown) and shown != actual:
        return [f"{where}: shown {shown!r}, got {actual!r}"]
    return []


def _normalised(text: str) -> list[str]:
    lines = []
    for line in text.strip().splitlines():
        for pattern, name in _VARYING:
            line = pattern.sub(name, line)
        lines.append(line.rstrip())
    return lines


def check_shown(block: Block, printed: str) -> None:
    where = f"README.md line {block.line}"
    if block.shown is None:
        assert not printed.strip(), (
            f"{where} prints this, which the README does not show:\n{printed}"
        )
        return
    if block.shown.language == "json":
        shown = json.loads(block.shown.code)
        try:
            actual = json.loads(printed)
        except json.JSONDecodeError:
            raise AssertionError(f"{where} printed no JSON document:\n{printed}") from None
        problems = shape_differences(shown, actual)
        assert not problems, (
            f"{where}: what it printed differs from what the README shows:\n"
            + "\n".join(problems)
            + f"\nprinted:\n{printed}"
        )
    else:
        assert _normalised(printed) == _normalised(block.shown.code), (
            f"{where} printed:\n{printed}\nthe README shows:\n{block.shown.code}"
        )


# -- the unit tests of the reading above ----------------------------------------------------


def test_the_readme_reader_pairs_each_block_with_what_it_shows() -> None:
    text = (
        "<!-- readme-test: skip (no Docker here) -->\n```sh\ndocker build .\n```\n\n"
        '```sh\ncurl -s x | jq .\n```\n\nIt answers:\n\n```json\n{"a": 1}\n```\n\n'
        "```python\nprint(1)\n```\n```text\n1\n```\n```yaml\nnot: run\n```\n"
    )

    blocks = readme_blocks(text)

    assert [(b.language, b.marker, b.why) for b in blocks] == [
        ("sh", "skip", "(no Docker here)"),
        ("sh", None, ""),
        ("python", None, ""),
    ]
    assert blocks[0].shown is None
    assert blocks[1].shown is not None and blocks[1].shown.code == '{"a": 1}\n'
    assert blocks[2].shown is not None and blocks[2].shown.language == "text"


def test_shapes_differ_on_keys_and_stable_values_but_not_on_ids_or_times() -> None:
    shown = {"id": "abc-1", "status": "active", "n": 1, "ok": None, "items": [{"k": "x"}]}
    same = {"id": "zzz-9", "status": "active", "n": 1, "ok": None, "items": [{"k": "y"}]}
    # An IdP's words in a list are its own: compared by type only.
    assert shape_differences({"scopes": ["read"]}, {"scopes": ["openid"]}) == []
    assert shape_differences({"scopes": ["read"]}, {"scopes": []}) != []

    assert shape_differences(shown, same) == []
    assert shape_differences(shown, {**same, "status": "pending"}) == [
        "$.status: shown 'active', got 'pending'"
    ]
    assert shape_differences(shown, {**same, "extra": 1}) == ["$: answered 'extra', not shown"]
    assert shape_differences(shown, {**same, "items": [{"j": "y"}]}) == [
        "$.items[0]: shown 'k', not in the answer",
        "$.items[0]: answered 'j', not shown",
    ]
    assert _normalised("active Bearer 2025-01-15 10:30:00+00:00") == _normalised(
        "active Bearer 2026-12-02 08:08:03.758466+00:00"
    )


# -- running the README ---------------------------------------------------------------------


@dataclass
class Session:
    """One reader's terminal: the variables set so far, and where the commands run."""

    workdir: Path
    env: dict[str, str]
    clients: dict[str, Client]
    idp: IdP
    user: tuple[str, str]
    last_printed: str = ""
    placeholders: dict[str, str] = field(default_factory=dict)

    def run_shell(self, block: Block) -> str:
        env = dict(self.env)
        for auth_type, grant in AUTH_TYPES.items():
            if auth_type in block.code:
                env["CLIENT_ID"] = self.clients[grant].client_id
                env["CLIENT_SECRET"] = self.clients[grant].client_secret
        state = self.workdir / ".readme-state"
        script = (
            "set -euo pipefail\nset -a\n"
            + block.code
            + f"\nset +a\nenv -0 > {json.dumps(str(state))}\n"
        )
        result = subprocess.run(
            ["bash", "-c", script],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"README.md line {block.line} failed ({result.returncode}):\n{block.code}\n"
            f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
        )
        self.env = dict(
            entry.split("=", 1) for entry in state.read_text().split("\0") if "=" in entry
        )
        return result.stdout

    def run_python(self, block: Block) -> str:
        script = self.workdir / f"example_{block.line}.py"
        script.write_text(block.code)
        result = subprocess.run(
            [sys.executable, script.name],
            cwd=self.workdir,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (
            f"README.md line {block.line} failed:\n{result.stdout}\n{result.stderr}"
        )
        return result.stdout

    def sign_in_as_the_person(self, block: Block) -> None:
        """The browser step: open the authorization URL the previous answer gave, sign in
        and consent, then follow the IdP's redirect back to the callback page."""
        url = json.loads(self.last_printed)["authorization_url"]
        callback = self.idp.log_in_and_consent(url, *self.user)
        page = httpx.get(callback, trust_env=False, timeout=30)
        assert page.status_code == 200, page.text
        assert 'data-ok="true"' in page.text, page.text


@pytest.fixture
def session(
    tmp_path: Path, idp: IdP, echo_server: EchoServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    """`authprofiles serve` as `make serve` starts it (its defaults, in a directory of its
    own), and a reader's terminal in the same directory."""
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            raise RuntimeError(
                f"{tool} is missing: the README's examples use it (.ci/run installs it)"
            )
    for name in list(os.environ):
        if name.startswith("AUTHPROFILES_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "checkout"
    workdir.mkdir()
    (workdir / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = ProcessServer({}, workdir, port=port).start()
    username, password = f"reader-{uuid.uuid4().hex[:6]}", "a long readme password"
    idp.create_user(username, password)
    clients = {
        "client-credentials": idp.register_client("client-credentials"),
        "authorization-code": idp.register_client("authorization-code", [url + "/oauth/callback"]),
        "password": idp.register_client("password"),
    }
    placeholders = {
        "AUTHPROFILES_URL": url,
        "ISSUER": idp.issuer,
        "TOKEN_URL": idp.token_url,
        "AUTHORIZATION_URL": idp.authorization_url,
        "CLIENT_ID": clients["client-credentials"].client_id,
        "CLIENT_SECRET": clients["client-credentials"].client_secret,
        "IDP_USERNAME": username,
        "IDP_PASSWORD": password,
        "API_BASE_URL": echo_server.url,
    }
    env = {
        name: value
        for name, value in os.environ.items()
        if name.lower() not in ("http_proxy", "https_proxy", "all_proxy", "no_proxy")
    }
    env |= placeholders | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}
    try:
        yield Session(workdir, env, clients, idp, (username, password), placeholders=placeholders)
    finally:
        server.stop()


def test_the_readme_examples_run_as_written_and_show_what_they_print(session: Session) -> None:
    blocks = readme_blocks(README.read_text())
    assert sum(b.marker is None for b in blocks) >= 10, "the README's examples went missing"
    ran = 0
    for block in blocks:
        if block.marker == "placeholders":
            exported = set(re.findall(r"\b([A-Z][A-Z0-9_]*)=", block.code))
            assert exported == set(session.placeholders), (
                f"README.md line {block.line} asks the reader to set {sorted(exported)}; "
                f"this test sets {sorted(session.placeholders)}"
            )
            continue
        if block.marker == "skip":
            assert block.why, f"README.md line {block.line}: say why it cannot run"
            continue
        if block.marker == "browser":
            session.sign_in_as_the_person(block)
            continue
        assert block.marker is None, f"README.md line {block.line}: unknown {block.marker!r}"
        if block.language == "sh":
            printed = session.run_shell(block)
        else:
            printed = session.run_python(block)
        check_shown(block, printed)
        session.last_printed = printed
        ran += 1
    assert ran >= 10
