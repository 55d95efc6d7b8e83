"""Payload fields as a request body, in each of the token test URL's content types.

Seed 003 lists ten content types for the token test URL; each has one encoder here,
chosen by :func:`encode_test_body`. Pure: the profile test sends what they return.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from collections.abc import Callable, Mapping
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

from authprofiles.core.profiles import TestContentType

#: Fields in, ``(body, media type)`` out; ``boundary`` separates multipart parts.
BodyEncoder = Callable[[Mapping[str, str], str, str], tuple[bytes, str]]


def _json(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    return json.dumps(dict(fields)).encode(), media


def _form(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    return urlencode(list(fields.items())).encode(), media


def _xml(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    items = "".join(f"<field name={quoteattr(k)}>{escape(v)}</field>" for k, v in fields.items())
    document = f'<?xml version="1.0" encoding="UTF-8"?><request>{items}</request>'
    return document.encode(), media


def _csv(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    buffer = io.StringIO()
    if fields:
        writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 line breaks
        writer.writerow(list(fields))
        writer.writerow(list(fields.values()))
    return buffer.getvalue().encode(), media


def _text(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    return "".join(f"{k}={v}\n" for k, v in fields.items()).encode(), media


def _multipart_form_data(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    # RFC 7578: one part per field, each named by Content-Disposition.
    parts = [
        f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'
        for k, v in fields.items()
    ]
    body = "".join(parts) + f"--{boundary}--\r\n"
    return body.encode(), f"{media}; boundary={boundary}"


def _multipart_related(fields: Mapping[str, str], media: str, boundary: str) -> tuple[bytes, str]:
    # RFC 2387 multipart/related: a single JSON root part, named by the type parameter.
    body = (
        f"--{boundary}\r\nContent-Type: application/json\r\n\r\n"
        f"{json.dumps(dict(fields))}\r\n--{boundary}--\r\n"
    )
    return body.encode(), f'{media}; boundary={boundary}; type="application/json"'


ENCODERS: Mapping[TestContentType, BodyEncoder] = {
    TestContentType.JSON: _json,
    TestContentType.ORACLE_ADF: _json,
    TestContentType.URL_ENCODED: _form,
    TestContentType.TWITTER_ENCODED_JSON: _form,
    TestContentType.XML: _xml,
    TestContentType.RSS: _xml,
    TestContentType.CSV: _csv,
    TestContentType.TEXT: _text,
    TestContentType.MULTIPART_FORM_DATA: _multipart_form_data,
    TestContentType.MULTIPART_RELATED: _multipart_related,
}


def encode_test_body(
    content_type: TestContentType | None,
    fields: Mapping[str, str],
    *,
    boundary: str | None = None,
) -> tuple[bytes, str]:
    """Payload fields as a body of the profile's token test content type (seed 003),
    JSON when it names none; returns the body and its ``Content-Type``."""
    kind = content_type or TestContentType.JSON
    return ENCODERS[kind](fields, kind.media_type, boundary or secrets.token_hex(16))


__all__ = ["ENCODERS", "BodyEncoder", "encode_test_body"]
