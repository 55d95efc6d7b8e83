"""A schema fuzzer over /openapi.json: schemathesis drives the real app on loopback, with
an admin API key and a real database, and judges every answer with all of its checks:
no 5xx, no status code, content type or header the schema does not document, no body
that breaks its schema, input that breaks the schema refused, missing auth refused, a
deleted resource gone, ``Allow`` on a 405 right.

One check is left out: ``positive_data_acceptance`` (every schema-valid request must
succeed). An opaque cursor, a rule joining fields (what each auth type needs), a path
that leaves a profile's base URL: schema-valid, rightly refused with 400 or 422.

The fuzzer runs as its command line does (its pytest plugin does not run on this pytest),
with every phase: examples, coverage, fuzzing and stateful. Ids of a real profile and
connection are handed to it, so that calls reach past the 404; their identity provider
and API are a loopback port nobody listens on, so calls that go out fail at once (502),
as they must: never a 500. ``make test`` runs a short, seeded pass; ``make fuzz`` a long
one with a fresh seed (``AUTHPROFILES_FUZZ_EXAMPLES``, ``AUTHPROFILES_FUZZ_SEED``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from authprofiles.settings import Settings
from tests.support.app import Live
from tests.support.live import free_port

#: PostgreSQL refuses what SQLite takes (a NUL in a string, an out-of-range integer), so
#: the fuzzer's inputs find more there; one database keeps the suite within its time.
POSTGRESQL_ONLY = True

#: Cases per operation in the fuzzing phase; the seed makes ``make test``'s pass repeatable.
EXAMPLES = int(os.environ.get("AUTHPROFILES_FUZZ_EXAMPLES", "25"))
SEED = os.environ.get("AUTHPROFILES_FUZZ_SEED", "8")

#: Operations that call an identity provider or an API: 502 and 504 are theirs to give.
CALLS_OUT = (
    r"^/api/v1/(profiles/\{profile_id\}/(connections|test)"
    r"|connections/\{connection_id\}/token(/refresh)?|discovery|proxy/.*)$"
)


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A host the fuzzer makes up may take this long to refuse.
    return make_settings(idp_retries=0, http_timeout_seconds=2)


def _seed(live: Live) -> dict[str, str]:
    """A configured profile of each kind and connections of one, against a loopback port
    where nothing listens: the ids the fuzzer calls with."""
    nowhere = f"http://127.0.0.1:{free_port()}"
    common = {
        "identity_provider": "Nowhere",
        "client_id": "fuzz",
        "client_secret": "fuzz-secret",
        "token_url": f"{nowhere}/token",
        "api_base_url": f"{nowhere}/api",
    }
    machine = live.create_profile(name="machine", auth_type="oauth2_client_credentials", **common)
    doomed = live.create_profile(name="doomed", auth_type="oauth2_client_credentials", **common)
    browser = live.create_profile(
        name="browser",
        auth_type="oauth2_authorization_code",
        authorization_url=f"{nowhere}/authorize",
        tenancy=False,
        **common,
    )
    pending, doomed_connection = (
        live.connect(browser["id"], owner="shared")["connection_id"] for _ in range(2)
    )
    return {
        "profile_id": machine["id"],
        "doomed_profile_id": doomed["id"],
        "connection_id": pending,
        "doomed_connection_id": doomed_connection,
    }


def _config(live: Live, ids: dict[str, str]) -> str:
    """schemathesis.toml: the API key, the ids, and what each operation may answer."""
    key = json.dumps(live.http.headers["authorization"])
    return f"""
headers = {{ Authorization = {key} }}
{f"seed = {int(SEED)}" if SEED else ""}

[parameters]
"path.profile_id" = "{ids["profile_id"]}"
"path.connection_id" = "{ids["connection_id"]}"

[[operations]]
include-name = "DELETE /api/v1/profiles/{{profile_id}}"
parameters = {{ "path.profile_id" = "{ids["doomed_profile_id"]}" }}

[[operations]]
include-name = "DELETE /api/v1/connections/{{connection_id}}"
parameters = {{ "path.connection_id" = "{ids["doomed_connection_id"]}" }}

[[operations]]
include-path-regex = '{CALLS_OUT}'
checks.not_a_server_error.expected-statuses = ["2xx", "3xx", "4xx", "502", "504"]
"""


def test_every_answer_is_one_the_openapi_schema_documents(live: Live, tmp_path: Path) -> None:
    ids = _seed(live)
    config = tmp_path / "schemathesis.toml"
    config.write_text(_config(live, ids))
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "--no-color",
        "--config-file",
        str(config),
        "run",
        f"{live.url}/openapi.json",
        "--checks",
        "all",
        "--exclude-checks",
        "positive_data_acceptance",
        "--mode",
        "all",
        "--phases",
        "examples,coverage,fuzzing,stateful",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "30",
        "--output-sanitize",
        "false",
    ]
    run = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, check=False)
    report = run.stdout + run.stderr
    print(report)  # shown with -s, or when the test fails
    failures = report[report.find("FAILURES") :] if "FAILURES" in report else report[-6000:]
    assert run.returncode == 0, failures[:20000]
    # The fuzzer reached past the 404s: the resources it was given to delete are gone.
    assert live.http.get(f"/api/v1/profiles/{ids['doomed_profile_id']}").status_code == 404
    assert live.http.get(f"/api/v1/connections/{ids['doomed_connection_id']}").status_code == 404
