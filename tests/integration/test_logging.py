"""Logs a person can use: one access line per request (method, path without its query,
status, duration, the caller's API key name; never a secret or a token), a 500 logged
once with its request and traceback, and JSON lines under AUTHPROFILES_LOG_FORMAT=json."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from authprofiles.composition import Services
from authprofiles.services.profiles import ProfileService
from tests.support.app import Live
from tests.support.echo import EchoServer
from tests.support.idp import IdP
from tests.support.live import ProcessServer

QUERY_SECRET = "query-secret-5d1e"
MESSAGE_SECRET = "exception-message-secret-77aa"

_TEXT_ACCESS = re.compile(
    r" INFO authprofiles\.access: (?P<method>\S+) (?P<path>\S+) (?P<status>\d+) "
    r"(?P<duration_ms>[\d.]+)ms caller=(?P<caller>\S+) client=(?P<client>\S+)$"
)


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """Logging is the same on any database: SQLite only (the conftest's runs both)."""
    return f"sqlite:///{tmp_path / 'authprofiles.db'}"


@dataclass
class Served:
    server: ProcessServer
    log_format: str
    key: str
    key_name: str
    secrets: list[str]

    def log_text(self) -> str:
        return self.server.errors.read_text()


@pytest.fixture
def serve(services: Services, master_key: str, tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start `authprofiles serve` as an operator runs it, in a log format and with a number
    of worker processes, its standard error (the log) kept apart from its output."""
    started: list[ProcessServer] = []

    def start(log_format: str, workers: int = 1) -> Served:
        env = {
            "AUTHPROFILES_DATABASE_URL": services.settings.database_url,
            "AUTHPROFILES_MASTER_KEY": master_key,
            "AUTHPROFILES_LOG_FORMAT": log_format,
            "AUTHPROFILES_LOG_LEVEL": "info",
        }
        server = ProcessServer(env, tmp_path, workers=workers, separate_stderr=True)
        started.append(server)
        server.start()
        key_name = f"log-reader-{uuid.uuid4().hex[:6]}"
        key = services.api_keys.create(name=key_name, role="admin").key
        return Served(server, log_format, key, key_name, [key, master_key])

    yield start
    for server in started:
        server.stop()


def _access_lines(served: Served) -> list[dict[str, Any]]:
    lines: list[dict[str, Any]] = []
    for raw in served.log_text().splitlines():
        if served.log_format == "json":
            record = json.loads(raw)
            if record["logger"] == "authprofiles.access":
                lines.append(record)
        elif match := _TEXT_ACCESS.search(raw):
            fields: dict[str, Any] = match.groupdict()
            fields["status"] = int(fields["status"])
            fields["duration_ms"] = float(fields["duration_ms"])
            lines.append(fields)
    return lines


def _one(lines: list[dict[str, Any]], path: str) -> dict[str, Any]:
    found = [line for line in lines if line["path"] == path]
    assert len(found) == 1, (path, lines)
    return found[0]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_each_request_is_one_access_line_without_query_secrets_or_tokens(
    serve: Callable[..., Served], log_format: str, idp: IdP, echo_server: EchoServer
) -> None:
    served = serve(log_format)
    client = idp.register_client("client-credentials")
    served.secrets.append(client.client_secret)
    headers = {"Authorization": f"Bearer {served.key}"}
    with httpx.Client(base_url=served.server.url, headers=headers, trust_env=False) as http:
        created = http.post(
            "/api/v1/profiles",
            json={
                "name": f"logged-{uuid.uuid4().hex[:6]}",
                "auth_type": "oauth2_client_credentials",
                "identity_provider": "Test IdP",
                "client_id": client.client_id,
                "client_secret": client.client_secret,
                "token_url": idp.token_url,
                "api_base_url": echo_server.url,
            },
        )
        assert created.status_code == 201, created.text
        profile_id = created.json()["id"]
        connected = http.post(f"/api/v1/profiles/{profile_id}/connections", json={})
        assert connected.status_code == 201, connected.text
        connection_id = connected.json()["connection_id"]
        token = http.get(f"/api/v1/connections/{connection_id}/token")
        assert token.status_code == 200, token.text
        served.secrets.append(token.json()["access_token"])
        proxied = http.get(
            f"/api/v1/proxy/{connection_id}/reports/today", params={"api_key": QUERY_SECRET}
        )
        assert proxied.status_code == 200, proxied.text
        missing = http.get(f"/api/v1/profiles/{uuid.uuid4()}")
        assert missing.status_code == 404
        refused = http.get(
            f"/api/v1/profiles/{profile_id}", headers={"Authorization": "Bearer not-a-key"}
        )
        assert refused.status_code == 401
    served.server.stop()  # a line is written once its answer has gone: all of them now

    lines = _access_lines(served)
    token_line = _one(lines, f"/api/v1/connections/{connection_id}/token")
    proxy_line = _one(lines, f"/api/v1/proxy/{connection_id}/reports/today")
    missing_line = _one(lines, missing.request.url.path)
    refused_line = _one(lines, f"/api/v1/profiles/{profile_id}")
    assert (token_line["method"], token_line["status"]) == ("GET", 200)
    assert (proxy_line["method"], proxy_line["status"]) == ("GET", 200)
    assert missing_line["status"] == 404
    assert refused_line["status"] == 401
    for line in (token_line, proxy_line, missing_line):
        assert line["caller"] == served.key_name
        assert line["duration_ms"] >= 0
        assert line["client"] == "127.0.0.1"
    assert refused_line["caller"] == "-"
    assert _one(lines, "/api/v1/profiles")["status"] == 201
    assert any(line["path"] == "/healthz" and line["caller"] == "-" for line in lines)

    log = served.log_text() + served.server.log.read_text()
    assert QUERY_SECRET not in log
    assert "not-a-key" not in log
    for secret in served.secrets:
        assert secret not in log
    assert 'HTTP/1.1" 200' not in log  # uvicorn's own access log stays off


def test_the_json_log_format_writes_every_line_as_a_json_object(
    serve: Callable[..., Served],
) -> None:
    # Two workers: uvicorn starts them as new processes, which must log in JSON too.
    served = serve("json", workers=2)
    httpx.get(served.server.url + "/healthz", trust_env=False).raise_for_status()
    # The first worker answering says nothing of the second: wait until both have started
    # (a real event, so a generous deadline) before stopping them.
    deadline = time.monotonic() + 60
    while served.log_text().count("Started server process") < 2:
        assert time.monotonic() < deadline, served.log_text()
        time.sleep(0.05)
    served.server.stop()
    text = served.log_text()
    lines = text.splitlines()
    assert lines
    for raw in lines:
        record = json.loads(raw)
        assert isinstance(record, dict), raw
        assert {"time", "level", "logger", "message"} <= record.keys(), raw
    access = [json.loads(raw) for raw in lines if '"authprofiles.access"' in raw]
    health = next(r for r in access if r["path"] == "/healthz")
    assert health["method"] == "GET"
    assert health["status"] == 200
    assert isinstance(health["duration_ms"], float)
    assert health["caller"] == "-"
    assert health["message"].startswith("GET /healthz 200 ")
    # Both workers started, each logging in JSON (uvicorn says so through the root logger).
    started = [r for r in (json.loads(raw) for raw in lines) if r["logger"] == "uvicorn.error"]
    assert sum("Started server process" in r["message"] for r in started) >= 2


def test_a_500_logs_its_method_and_path_once_with_the_traceback(
    live: Live, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def explode_while_listing(*_args: object, **_kwargs: object) -> None:
        raise RuntimeError(MESSAGE_SECRET)

    monkeypatch.setattr(ProfileService, "list", explode_while_listing)
    caplog.set_level(logging.INFO)

    response = live.http.get("/api/v1/profiles", params={"token": QUERY_SECRET})

    assert response.status_code == 500
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, caplog.text
    message = errors[0].getMessage()
    assert "unhandled RuntimeError in GET /api/v1/profiles at" in message
    assert "in explode_while_listing" in message  # the traceback
    assert (errors[0].method, errors[0].path) == ("GET", "/api/v1/profiles")  # type: ignore[attr-defined]
    access = [r for r in caplog.records if r.name == "authprofiles.access"]
    assert [(r.path, r.status) for r in access] == [("/api/v1/profiles", 500)]  # type: ignore[attr-defined]
    assert caplog.text.count("/api/v1/profiles") == 2  # the error and the access line
    assert QUERY_SECRET not in caplog.text
    assert MESSAGE_SECRET not in caplog.text
