"""``{tenant}`` and ``{{field}}`` rendering: strict, and never able to move a request."""

from __future__ import annotations

from urllib.parse import unquote, urlsplit

import pytest

from authprofiles.core.templating import (
    TemplateError,
    check_tenant,
    find_placeholders,
    is_valid_tenant,
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
    rendered = render_url(template, fields={"authfield1": "../../admin?x=1#frag"})
    parts = urlsplit(rendered)
    assert parts.hostname == "platform.example.com"
    assert parts.path == "/sap/opu/odata/sap/..%2F..%2Fadmin%3Fx%3D1%23frag/"
    assert parts.query == "$format=json"
    assert parts.fragment == ""
    assert unquote(parts.path.split("/")[5]) == "../../admin?x=1#frag"


@pytest.mark.parametrize(
    "value",
    ["evil.com/", "evil.com:443", "user@evil.com", "evil.com#", "evil.com?", "a/../../b"],
)
def test_a_field_value_in_the_host_cannot_change_the_host(value: str) -> None:
    rendered = render_url("https://{{sub}}.example.com/api", fields={"sub": value})
    parts = urlsplit(rendered)
    assert "@" not in parts.netloc
    assert parts.port is None
    assert parts.hostname is not None and parts.hostname.endswith(".example.com")
    assert parts.path == "/api"


def test_a_field_value_cannot_inject_a_scheme_or_authority_in_the_path() -> None:
    rendered = render_url("https://api.example.com/{{p}}", fields={"p": "//evil.com/steal"})
    assert urlsplit(rendered).hostname == "api.example.com"
    assert rendered == "https://api.example.com/%2F%2Fevil.com%2Fsteal"


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
