"""The token test URL's body in each of seed 003's ten content types."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET
from email import message_from_bytes
from urllib.parse import parse_qsl

import pytest

from authprofiles.core.body_encoders import ENCODERS, encode_test_body
from authprofiles.core.profiles import TestContentType

FIELDS = {"org_id": "org 42", "note": 'a "quoted" <b>&</b>, two'}
BOUNDARY = "b0undary"


def test_every_content_type_has_an_encoder() -> None:
    assert set(ENCODERS) == set(TestContentType)


def test_no_content_type_means_json() -> None:
    body, media = encode_test_body(None, FIELDS)
    assert media == "application/json"
    assert json.loads(body) == FIELDS


@pytest.mark.parametrize("kind", [TestContentType.JSON, TestContentType.ORACLE_ADF])
def test_json_kinds(kind: TestContentType) -> None:
    body, media = encode_test_body(kind, FIELDS)
    assert media == kind.media_type
    assert json.loads(body) == FIELDS


@pytest.mark.parametrize(
    "kind", [TestContentType.URL_ENCODED, TestContentType.TWITTER_ENCODED_JSON]
)
def test_form_kinds(kind: TestContentType) -> None:
    body, media = encode_test_body(kind, FIELDS)
    assert media == "application/x-www-form-urlencoded"
    assert dict(parse_qsl(body.decode())) == FIELDS


@pytest.mark.parametrize("kind", [TestContentType.XML, TestContentType.RSS])
def test_xml_kinds_escape_names_and_values(kind: TestContentType) -> None:
    body, media = encode_test_body(kind, FIELDS)
    assert media == kind.media_type
    root = ET.fromstring(body)
    assert root.tag == "request"
    assert {f.attrib["name"]: f.text for f in root.iter("field")} == FIELDS


def test_csv_is_a_header_row_and_a_value_row_with_crlf() -> None:
    body, media = encode_test_body(TestContentType.CSV, FIELDS)
    assert media == "text/csv"
    assert body.count(b"\r\n") == 2
    rows = list(csv.reader(io.StringIO(body.decode())))
    assert rows == [list(FIELDS), list(FIELDS.values())]
    assert encode_test_body(TestContentType.CSV, {})[0] == b""


def test_text_is_one_line_per_field() -> None:
    body, media = encode_test_body(TestContentType.TEXT, {"a": "1", "b": "2"})
    assert (body, media) == (b"a=1\nb=2\n", "text/plain")


def test_multipart_form_data_has_one_named_part_per_field() -> None:
    body, media = encode_test_body(TestContentType.MULTIPART_FORM_DATA, FIELDS, boundary=BOUNDARY)
    assert media == f"multipart/form-data; boundary={BOUNDARY}"
    message = message_from_bytes(f"Content-Type: {media}\r\n\r\n".encode() + body)
    parts = {
        p.get_param("name", header="content-disposition"): p.get_payload()
        for p in message.get_payload()
    }
    assert parts == FIELDS


def test_multipart_related_has_a_json_root_part() -> None:
    body, media = encode_test_body(TestContentType.MULTIPART_RELATED, FIELDS, boundary=BOUNDARY)
    assert media == f'multipart/related; boundary={BOUNDARY}; type="application/json"'
    message = message_from_bytes(f"Content-Type: {media}\r\n\r\n".encode() + body)
    [root] = message.get_payload()
    assert root.get_content_type() == "application/json"
    assert json.loads(root.get_payload()) == FIELDS


def test_a_fresh_boundary_each_time_unless_given() -> None:
    first = encode_test_body(TestContentType.MULTIPART_FORM_DATA, FIELDS)[1]
    second = encode_test_body(TestContentType.MULTIPART_FORM_DATA, FIELDS)[1]
    assert first != second
