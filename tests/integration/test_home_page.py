"""`GET /`: a page for people (no API key), linking the docs, the health endpoints and
the README, with the service's name and version."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from authprofiles import __version__


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The page reads no data: SQLite is enough (the conftest's runs PostgreSQL too)."""
    return f"sqlite:///{tmp_path / 'authprofiles.db'}"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.hrefs.extend(v for k, v in attrs if k == "href" and v)
        self._in_title = tag == "title"

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data

    def handle_endtag(self, tag: str) -> None:
        self._in_title = False


def _links(html: str) -> _Links:
    parser = _Links()
    parser.feed(html)
    return parser


def test_the_root_answers_a_page_naming_the_service_and_its_version_without_a_key(
    client: TestClient,
) -> None:
    response = client.get("/")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = _links(response.text)
    assert page.title.strip() == f"authprofiles {__version__}"
    assert f">{__version__}<" in response.text
    # What to register at the IdP: this server's callback URL.
    assert "http://127.0.0.1:8000/oauth/callback" in response.text


def test_every_link_on_the_root_page_answers(client: TestClient) -> None:
    hrefs = _links(client.get("/").text).hrefs

    for expected in ("/docs", "/redoc", "/healthz", "/readyz", "/readme"):
        assert expected in hrefs
    for href in hrefs:
        assert client.get(href).status_code == 200, href


def test_the_readme_page_shows_the_readme_rendered(client: TestClient) -> None:
    response = client.get("/readme")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "<h1>authprofiles</h1>" in response.text
    assert "<h2>Quick start</h2>" in response.text
    assert 'href="/"' in response.text


def test_the_openapi_schema_describes_the_pages_as_html(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]

    for path in ("/", "/readme"):
        operation = paths[path]["get"]
        assert "security" not in operation
        assert "text/html" in operation["responses"]["200"]["content"]
