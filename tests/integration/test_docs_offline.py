"""``/docs`` and ``/redoc`` work without the internet: every script, style sheet, icon and
font they load comes from this server, which answers each."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest

from tests.support.app import Live

#: Where FastAPI's own pages load from; none of it may appear in ours.
CDN_HOSTS = ("cdn.jsdelivr.net", "fonts.googleapis.com", "fastapi.tiangolo.com", "unpkg.com")


@pytest.fixture
def database_url(tmp_path: Path) -> str:
    """The pages read no data: one database kind is enough."""
    return f"sqlite:///{tmp_path / 'docs.db'}"


class _References(HTMLParser):
    """Every URL a page asks the browser to load or follow: ``src``, ``href``, Redoc's
    ``spec-url``."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[tuple[str, str]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if name in ("src", "href", "spec-url") and value:
                self.urls.append((tag, value))


def references(html: str) -> list[tuple[str, str]]:
    parser = _References()
    parser.feed(html)
    return parser.urls


@pytest.mark.parametrize(
    ("page", "assets"),
    [
        ("/docs", {"swagger-ui-bundle.js", "swagger-ui.css"}),
        ("/redoc", {"redoc.standalone.js"}),
    ],
)
def test_the_docs_pages_load_every_asset_from_this_server(
    live: Live, page: str, assets: set[str]
) -> None:
    response = live.http.get(page)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/html")
    for host in CDN_HOSTS:
        assert host not in response.text, host
    found = references(response.text)
    loaded = set()
    origin = urlsplit(live.url)
    for tag, url in found:
        absolute = urlsplit(urljoin(live.url + page, url))
        assert (absolute.scheme, absolute.netloc) == (origin.scheme, origin.netloc), (tag, url)
        asset = live.http.get(absolute.geturl())
        assert asset.status_code == 200, (tag, url)
        assert asset.content, (tag, url)
        loaded.add(absolute.path.rsplit("/", 1)[-1])
    assert assets <= loaded, found


def test_the_docs_scripts_are_the_real_bundles(live: Live) -> None:
    """Installed from the package registry with the server, not stubs or redirects."""
    for name, content_type, marker in (
        ("swagger-ui-bundle.js", "javascript", b"SwaggerUIBundle"),
        ("redoc.standalone.js", "javascript", b"Redoc"),
        ("swagger-ui.css", "text/css", b".swagger-ui"),
    ):
        response = live.http.get(f"/docs/assets/{name}")
        assert response.status_code == 200, name
        assert content_type in response.headers["content-type"], name
        assert marker in response.content, name
        assert len(response.content) > 100_000, name


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_browser_is_told_to_load_from_this_server_only(live: Live, page: str) -> None:
    policy = live.http.get(page).headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["default-src"] == "'self'"
    for directive in ("script-src", "style-src", "img-src", "font-src", "connect-src"):
        sources = directives[directive].split()
        assert not [s for s in sources if s.startswith(("http", "*"))], directive


def test_the_swagger_page_reads_this_servers_schema(live: Live) -> None:
    html = live.http.get("/docs").text
    assert "url: '/openapi.json'" in html
    assert '"validatorUrl": null' in html  # no call to validator.swagger.io
    assert live.http.get("/openapi.json").status_code == 200


def test_the_docs_pages_are_not_in_the_schema(live: Live) -> None:
    paths = live.http.get("/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith(("/docs", "/redoc"))]
