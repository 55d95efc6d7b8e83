"""The registry of auth types: every type declared once, with its grant, labels and the
fields a form shows for it."""

from __future__ import annotations

import pytest

from authprofiles.core.auth_types import AUTH_TYPES, FIELD_LABELS, AuthType, spec_for
from authprofiles.core.profiles import PROFILE_FIELDS, fields_of
from authprofiles.oauth.grants import grant_for


@pytest.mark.parametrize("auth_type", list(AuthType))
def test_every_auth_type_has_one_declaration_and_one_grant(auth_type: AuthType) -> None:
    spec = spec_for(auth_type)
    assert spec.auth_type is auth_type
    assert grant_for(auth_type).spec is spec
    assert spec.label and spec.specification
    assert set(spec.mandatory) <= set(PROFILE_FIELDS)
    assert set(spec.own_fields) <= set(PROFILE_FIELDS)


def test_every_profile_field_has_a_label() -> None:
    assert set(PROFILE_FIELDS) <= set(FIELD_LABELS)


def test_a_type_shows_its_own_fields_and_not_another_types() -> None:
    code = fields_of(AuthType.AUTHORIZATION_CODE)
    assert "authorization_url" in code and "tenancy" in code and "pkce" in code
    assert "authorization_mode" not in code and "device_authorization_url" not in code
    device = fields_of(AuthType.DEVICE_CODE)
    assert "device_authorization_url" in device and "authorization_url" not in device
    assert list(code) == [f for f in PROFILE_FIELDS if f in code]  # form order kept


def test_the_password_form_says_token_url_as_seed_003_does() -> None:
    assert spec_for(AuthType.PASSWORD).label_of("token_url") == "Token URL"
    assert spec_for(AuthType.CLIENT_CREDENTIALS).label_of("token_url") == "Token Request URL"


def test_a_type_is_registered_once() -> None:
    with pytest.raises(ValueError, match="twice"):
        AUTH_TYPES.register(spec_for(AuthType.PASSWORD))
