"""client_secret_basic as RFC 6749 section 2.3.1 writes it: the exact header bytes."""

from __future__ import annotations

import base64

import pytest

from authprofiles.core.client_secret_basic import basic_authorization, form_urlencode

#: RFC 6749 Appendix B's example value and its encoding.
APPENDIX_B_VALUE = "\u0020\u0025\u0026\u002b\u00a3\u20ac"
APPENDIX_B_ENCODED = "+%25%26%2B%C2%A3%E2%82%AC"


def test_form_urlencode_gives_rfc_6749_appendix_b_example() -> None:
    assert form_urlencode(APPENDIX_B_VALUE) == APPENDIX_B_ENCODED


@pytest.mark.parametrize(
    ("value", "encoded"),
    [
        ("p@ss:w0rd+/=%&?", "p%40ss%3Aw0rd%2B%2F%3D%25%26%3F"),
        ("two words", "two+words"),
        ("already%20encoded", "already%2520encoded"),
        ("AZaz09-._", "AZaz09-._"),
    ],
)
def test_form_urlencode_escapes_every_reserved_character(value: str, encoded: str) -> None:
    assert form_urlencode(value) == encoded


def test_basic_header_form_encodes_id_and_secret_before_base64() -> None:
    header = basic_authorization("client id+1%:x", "p@ss:w0rd+/=%&? +%")
    assert header == (
        "Basic Y2xpZW50K2lkJTJCMSUyNSUzQXg6cCU0MHNzJTNBdzByZCUyQiUyRiUzRCUyNSUyNiUzRislMkIlMjU="
    )
    assert base64.b64decode(header.removeprefix("Basic ")) == (
        b"client+id%2B1%25%3Ax:p%40ss%3Aw0rd%2B%2F%3D%25%26%3F+%2B%25"
    )


def test_basic_header_of_plain_credentials_is_the_usual_one() -> None:
    # Letters, digits and "-._" encode to themselves: servers that skip the decoding
    # step still see the same credentials as before.
    assert basic_authorization("client-1", "s3cret") == "Basic Y2xpZW50LTE6czNjcmV0"


def test_basic_header_carries_a_secret_outside_latin_1_as_utf_8() -> None:
    header = basic_authorization("client-1", APPENDIX_B_VALUE)
    assert header == "Basic Y2xpZW50LTE6KyUyNSUyNiUyQiVDMiVBMyVFMiU4MiVBQw=="


def test_a_missing_secret_is_sent_empty() -> None:
    assert base64.b64decode(basic_authorization("id", None).split()[1]) == b"id:"
