"""``{tenant}`` and ``{{field}}`` rendering: strict, and never able to move a request."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from authprofiles.core.templating import (
    TemplateError,
    check_tenant,
    find_placeholders,
    host_placeholder_problem,
    is_valid_tenant,
    path_segment_problem,
    render_url,
    render_value,
)

SERVICE_NOW = "https://{tenant}.service-now.com/api/now/v1/table/incident"


def test_a_tenant_fills_the_subdomain() -> None:
    assert (
        render_url(SERVICE_NOW, tenant="acme")
        == "https://acme.service-now.com/api/now/v1/table/incident"
    )


def test_a_tenant_is_lowercased_as_dns_names_are() -> None:
    assert render_url(SERVICE_NOW, tenant="ACME-eu1").startswith("https://acme-eu1.service-now")


@pytest.mark.parametrize(
    "tenant",
    [
        "evil.com/x",
        "a@b",
        "..",
        "",
        "evil.com",
        "a:8080",
        "a/b",
        "-leading",
        "trailing-",
        "a b",
        "a#b",
        "a?b",
        "x" * 64,
        "%2e%2e",
        "acme\n",
        "acme\r\nHost: evil.com",
        "acme\t",
    ],
)
def test_a_tenant_that_is_not_a_dns_label_is_refused(tenant: str) -> None:
    assert not is_valid_tenant(tenant)
    with pytest.raises(TemplateError):
        render_url(SERVICE_NOW, tenant=tenant)


def test_a_missing_tenant_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(TemplateError, match="tenant"):
        render_url(SERVICE_NOW)
    with pytest.raises(TemplateError):
        check_tenant(None)


def test_a_63_character_tenant_is_the_longest_accepted() -> None:
    assert check_tenant("a" * 63) == "a" * 63


def test_field_values_are_percent_encoded_into_one_segment() -> None:
    template = "https://platform.example.com/sap/opu/odata/sap/{{authfield1}}/?$format=json"
    rendered = render_url(template, fields={"authfield1": "admin ?x=1#frag"})
    parts = urlsplit(rendered)
    assert parts.hostname == "platform.example.com"
    assert parts.path == "/sap/opu/odata/sap/admin%20%3Fx%3D1%23frag/"
    assert parts.query == "$format=json"
    assert parts.fragment == ""
    assert unquote(parts.path.split("/")[5]) == "admin ?x=1#frag"


def test_a_field_value_in_the_host_fills_its_label_lowercased() -> None:
    rendered = render_url("https://{{sub}}.example.com/api", fields={"sub": "Acme-EU1"})
    assert rendered == "https://acme-eu1.example.com/api"


@pytest.mark.parametrize(
    "value",
    [
        "evil.com/",
        "evil.com:443",
        "user@evil.com",
        "evil.com#",
        "evil.com?",
        "a/../../b",
        "127.0.0.1",
        "0x7f.1",
        "localhost.",
        "evil.com",
        "[::1]",
        "",
        "-x",
        "x" * 64,
        "a b",
        "acme\n",
        "ａｃｍｅ",  # noqa: RUF001 - fullwidth letters, which IDNA would fold to "acme"
    ],
)
def test_a_field_value_in_the_host_must_be_one_dns_label(value: str) -> None:
    """Held to the tenant's rule, so it can never be an IP literal, hold a dot or a port."""
    with pytest.raises(TemplateError, match="DNS label") as refused:
        render_url("https://{{sub}}.example.com/api", fields={"sub": value})
    assert value == "" or value not in str(refused.value)  # a value may be a secret


@pytest.mark.parametrize(
    "template",
    [
        "https://{{host}}/api",
        "https://{{host}}:8443/api",
        "https://{{host}}.com/api",
        "https://{tenant}.{{host}}.example.com/api",
        "https://{{host}}{{host}}.example.com/api",
        "https://{tenant}.0.1/api",
        "https://api.example.com:{{host}}/api",
        "https://{{host}}@api.example.com/api",
    ],
)
def test_a_stored_template_whose_placeholder_picks_the_host_does_not_render(
    template: str,
) -> None:
    """Profiles stored before the rule are held to it when they are used."""
    with pytest.raises(TemplateError, match="host"):
        render_url(template, tenant="acme", fields={"host": "127"})
    assert host_placeholder_problem(urlsplit(template).netloc)


@pytest.mark.parametrize(
    "authority",
    [
        "{tenant}.example.com",
        "api.{{region}}.example.com",
        "{tenant}-eu.example.com:8443",
        "{{a.b}}.example.com",
        "api.example.com",
    ],
)
def test_one_placeholder_label_under_a_fixed_domain_is_allowed(authority: str) -> None:
    assert host_placeholder_problem(authority) is None
    rendered = render_url(
        f"https://{authority}/x", tenant="acme", fields={"region": "eu1", "a.b": "c"}
    )
    host = urlsplit(rendered).hostname
    assert host is not None and host.endswith(".example.com")


TRAVERSALS = [
    "..",
    ".",
    "../../x",
    "a/b",
    "//evil.com/steal",
    "http://evil.com",
    "a\\b",
    "%2e%2e",
    "%2E%2e/x",
    "%252e%252e",
    "%25252e%25252e",
    "..;x",
    "\uff0e\uff0e",  # FULLWIDTH FULL STOP, which NFKC folds to "."
    "\u2025",  # TWO DOT LEADER: ".."
    "a\uff0fb",  # FULLWIDTH SOLIDUS: "/"
    "a\uff3cb",  # FULLWIDTH REVERSE SOLIDUS: "\\"
    "\uff05\uff12\uff45\uff05\uff12\uff45",  # fullwidth "%2e%2e"
    "\x00",
]


@pytest.mark.parametrize("value", TRAVERSALS)
def test_a_field_value_in_the_path_cannot_climb_or_add_segments(value: str) -> None:
    with pytest.raises(TemplateError, match=r"\{\{p\}\} in the URL's path") as refused:
        render_url("https://api.example.com/v1/{{p}}/items", fields={"p": value})
    assert value in (".", "..") or value not in str(refused.value)  # a value may be a secret


@pytest.mark.parametrize("value", TRAVERSALS)
def test_the_same_value_in_the_query_is_only_encoded(value: str) -> None:
    rendered = render_url("https://api.example.com/v1?p={{p}}", fields={"p": value})
    assert urlsplit(rendered).path == "/v1"
    assert unquote(urlsplit(rendered).query) == f"p={value}"


@pytest.mark.parametrize(
    "segment", ["a", "...", "..x", "%2e%2e%2e", "%E2%80%A6", "caf%C3%A9", "50%25", "a;b=c", "~"]
)
def test_path_segments_that_stay_in_place_pass(segment: str) -> None:
    assert path_segment_problem(segment) is None


def test_a_missing_field_value_is_an_error_naming_it() -> None:
    with pytest.raises(TemplateError, match="tokenId"):
        render_url("http://x.example.com/test/{{tokenId}}")


def test_seed_003_example_renders_tenant_and_field_together() -> None:
    rendered = render_url(
        "http://{tenant}.example.com/test/{{tokenId}}",
        tenant="platform",
        fields={"tokenId": "t 1"},
    )
    assert rendered == "http://platform.example.com/test/t%201"


def test_placeholders_tolerate_spaces_inside_double_braces() -> None:
    assert render_url("https://a.example.com/{{ id }}", fields={"id": "7"}).endswith("/7")


def test_find_placeholders_tells_tenant_fields_and_stray_braces_apart() -> None:
    found = find_placeholders("https://{tenant}.x.com/{{a}}/{{b}}/{{a}}")
    assert found.tenant is True
    assert found.fields == ("a", "b")
    assert found.unknown_braces is False
    assert find_placeholders("https://x.com/{other}").unknown_braces is True
    assert find_placeholders("https://x.com/{{a}}").tenant is False


def test_a_url_without_placeholders_is_returned_unchanged() -> None:
    url = "https://idp.example.com/oauth2/token?x=1"
    assert render_url(url) == url


def test_render_value_fills_fields_verbatim_for_headers_and_bodies() -> None:
    assert render_value("Bearer {{access_token}}", {"access_token": "a/b c"}) == "Bearer a/b c"
    with pytest.raises(TemplateError, match="pin"):
        render_value("{{pin}}", {})
