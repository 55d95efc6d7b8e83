"""The redactor hides a secret in every form it travels in, and secret keys and headers
whatever their value."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, urlencode

from authprofiles.core.redaction import REDACTED, Redactor, redact_keys

SECRET = 'p@ss w/rd+&="%£'


def test_a_secret_is_hidden_as_typed_and_in_every_encoding() -> None:
    redactor = Redactor(SECRET)
    forms = {
        "raw": SECRET,
        "percent-encoded": quote(SECRET, safe=""),
        "form-encoded": urlencode({"x": SECRET})[2:],
        "JSON-escaped": json.dumps(SECRET)[1:-1],
        "XML-escaped": "p@ss w/rd+&amp;=&quot;%£",
    }
    for name, form in forms.items():
        assert redactor.text(f"<{form}>") == f"<{REDACTED}>", name


def test_basic_credentials_are_hidden_as_rfc6749_encodes_them() -> None:
    redactor = Redactor()
    redactor.add_basic_credentials("client id", SECRET)
    # RFC 6749 section 2.3.1: each half form-encoded (Appendix B), then base64.
    user_pass = "client+id:p%40ss+w%2Frd%2B%26%3D%22%25%C2%A3"
    sent = base64.b64encode(user_pass.encode()).decode()
    assert redactor.text(f"Basic {sent}") == f"Basic {REDACTED}"


def test_basic_credentials_without_a_secret_add_nothing() -> None:
    redactor = Redactor()
    redactor.add_basic_credentials("client-1", None)
    assert redactor.text("Y2xpZW50LTE6") == "Y2xpZW50LTE6"


def test_short_values_are_skipped_unless_asked_for() -> None:
    assert Redactor("abc").text("abc abcd") == "abc abcd"
    assert Redactor("abc", min_length=1).text("abc") == REDACTED


def test_a_value_containing_another_is_hidden_whole() -> None:
    redactor = Redactor("secret", "secret-and-more")
    assert redactor.text("x secret-and-more y") == f"x {REDACTED} y"


def test_credential_headers_keep_only_their_scheme() -> None:
    redactor = Redactor("field-secret-1")
    shown = redactor.headers(
        {
            "Authorization": "Bearer eyJ.anything",
            "proxy-authorization": "Basic abc",
            "Cookie": "session=s3cr3t",
            "set-cookie": "id=1; HttpOnly",
            "X-Api-Key": "field-secret-1",
            "Accept": "application/json",
        }
    )
    assert shown == {
        "Authorization": f"Bearer {REDACTED}",
        "proxy-authorization": f"Basic {REDACTED}",
        "Cookie": REDACTED,
        "set-cookie": REDACTED,
        "X-Api-Key": REDACTED,
        "Accept": "application/json",
    }


def test_a_json_body_loses_its_secret_keys_at_any_depth() -> None:
    body = json.dumps(
        {
            "access_token": "issued-just-now",
            "token_type": "Bearer",
            "nested": [{"Refresh_Token": "r-1", "id_token": "i-1", "count": 3}],
            "echo": "known-secret-9",
        }
    )
    shown = Redactor("known-secret-9").body(body, {"Content-Type": "application/json"})
    assert shown is not None
    assert json.loads(shown) == {
        "access_token": REDACTED,
        "token_type": "Bearer",
        "nested": [{"Refresh_Token": REDACTED, "id_token": REDACTED, "count": 3}],
        "echo": REDACTED,
    }


def test_a_form_body_loses_its_secret_keys() -> None:
    body = "grant_type=password&username=alice&password=hunter22&client_secret=abc"
    shown = Redactor().body(body, {"content-type": "application/x-www-form-urlencoded"})
    assert shown == (
        "grant_type=password&username=alice&password=%5Bredacted%5D&client_secret=%5Bredacted%5D"
    )


def test_any_other_body_has_the_known_values_hidden() -> None:
    redactor = Redactor("org-secret-42")
    assert redactor.body("<id>org-secret-42</id>", {"content-type": "application/xml"}) == (
        f"<id>{REDACTED}</id>"
    )
    assert redactor.body("", {}) == ""
    assert redactor.body(None, {}) is None


def test_a_document_has_every_string_redacted_and_the_rest_kept() -> None:
    document = {"detail": "token tok-12345", "steps": [{"url": "/x?k=tok-12345", "n": 2}]}
    assert Redactor("tok-12345").document(document) == {
        "detail": f"token {REDACTED}",
        "steps": [{"url": f"/x?k={REDACTED}", "n": 2}],
    }


def test_redact_keys_leaves_non_string_values_of_secret_keys() -> None:
    assert redact_keys({"password": None, "assertion": {"a": 1}}) == {
        "password": None,
        "assertion": {"a": 1},
    }


def test_the_core_basic_encoding_is_the_one_client_authentication_sends() -> None:
    from authprofiles.core.client_secret_basic import basic_authorization as core_basic
    from authprofiles.oauth.client_auth import basic_authorization as sent

    for client_id, secret in [("client id+1%:x", SECRET), ("id", None), ("ä", "€ :/")]:
        assert core_basic(client_id, secret) == sent(client_id, secret)
